"""The public surface: every exported Module is abstract or final; every
exported exception is defined in ``lerax.errors``."""

import ast
import importlib
import importlib.util

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
    "lerax.callback.history",
    "lerax.callback.control",
    "lerax.checkpoint",
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


def test_public_errors_are_defined_in_lerax_errors() -> None:
    """Every exception a package exports is defined once, in ``lerax.errors``,
    and re-exported there as the same class."""
    errors = importlib.import_module("lerax.errors")
    for package in ["lerax", *PACKAGES]:
        module = importlib.import_module(package)
        for name, obj in vars(module).items():
            if (
                not name.startswith("_")
                and isinstance(obj, type)
                and issubclass(obj, BaseException)
            ):
                assert obj.__module__ == "lerax.errors", f"{package}.{name}"
                assert getattr(errors, name) is obj, f"{package}.{name}"


def test_lerax_errors_imports_nothing_from_lerax() -> None:
    """``lerax.errors`` is the bottom layer: every package may import it, so it
    imports no other part of Lerax."""
    spec = importlib.util.find_spec("lerax.errors")
    assert spec is not None and spec.origin is not None
    with open(spec.origin, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0, ast.unparse(node)
            assert not (node.module or "").startswith("lerax"), ast.unparse(node)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                assert not alias.name.startswith("lerax"), ast.unparse(node)
