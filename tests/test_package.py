import lerax


def test_version() -> None:
    assert isinstance(lerax.__version__, str)
    assert lerax.__version__.count(".") == 2
