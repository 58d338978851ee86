"""The public surface: every exported Module is abstract or final."""

import importlib

import equinox as eqx
import pytest

PACKAGES = [
    "lerax.space",
    "lerax.env",
    "lerax.env.classic_control",
    "lerax.policy",
    "lerax.distribution",
    "lerax.buffer",
    "lerax.evaluation",
    "lerax.algorithm",
    "lerax.callback",
    "lerax.callback.logging",
]


def _is_abstract(cls: type) -> bool:
    """Equinox's convention: abstract classes are named ``Abstract*``."""
    return cls.__name__.startswith("Abstract")


@pytest.mark.parametrize("package", PACKAGES)
def test_every_exported_module_is_abstract_or_final(package: str) -> None:
    module = importlib.import_module(package)
    exported = [
        obj
        for name, obj in vars(module).items()
        if not name.startswith("_")
        and isinstance(obj, type)
        and issubclass(obj, eqx.Module)
    ]
    assert exported, package
    for cls in exported:
        final = getattr(cls, "__final__", False)
        assert final or _is_abstract(cls), f"{package}.{cls.__name__}"
        assert not (final and _is_abstract(cls)), f"{package}.{cls.__name__}"
