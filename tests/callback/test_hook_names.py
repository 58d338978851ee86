"""A method that looks like a misspelt hook is rejected when its class is
defined (the loop would silently never call it)."""

import inspect
import re
import types
from typing import Any

import pytest

from lerax.callback import (
    HOOKS,
    AbstractCallback,
    EmptyCallbackState,
    EmptyCallbackStepState,
    not_a_hook,
)

Base = AbstractCallback[EmptyCallbackState, EmptyCallbackStepState]


def define(namespace: dict[str, Any]) -> type:
    """A callback class ``Bad`` with ``namespace`` as its body."""
    return types.new_class("Bad", (Base,), {}, lambda ns: ns.update(namespace))


def test_hooks_are_the_base_class_hooks() -> None:
    public = {
        name
        for name, value in vars(AbstractCallback).items()
        if inspect.isfunction(value) and not name.startswith("_")
    }
    # The two non-hook methods: what the loop asks of a callback besides hooks.
    assert set(HOOKS) == public - {
        "host_ids",
        "train_state_savers",
        "reads_training_log",
    }
    assert len(HOOKS) == len(set(HOOKS)) == 9


@pytest.mark.parametrize(
    ("name", "nearest"),
    [
        ("on_steps", "on_step"),  # the case: silently never called
        ("on_iterations", "on_iteration"),
        ("continue_trainig", "continue_training"),
        ("on_training_begin", "on_training_end"),
        ("step_rest", "step_reset"),
        ("rest", "reset"),
        ("on_episode_end", "on_training_end"),  # starts with on_: nearest hook named
    ],
)
def test_a_misspelt_hook_is_rejected_naming_the_nearest(
    name: str, nearest: str
) -> None:
    def method(self: Any, ctx: Any, *, key: Any) -> Any:
        return ctx.state

    with pytest.raises(
        TypeError,
        match=rf"^Bad\.{name} is not a callback hook, so the training loop would "
        rf"never call it; did you mean '{nearest}'\? The hooks are "
        + re.escape(", ".join(HOOKS))
        + rf"\. If {name} is a helper on purpose, decorate it with "
        r"@lerax\.callback\.not_a_hook$",
    ):
        define({name: method})


def test_static_and_class_methods_are_checked_too() -> None:
    with pytest.raises(TypeError, match=r"Bad\.on_stepp is not a callback hook"):
        define({"on_stepp": staticmethod(lambda: 0)})
    with pytest.raises(TypeError, match=r"Bad\.on_reset is not a callback hook"):
        define({"on_reset": classmethod(lambda cls: 0)})


def test_helpers_fields_private_names_and_exempt_methods_pass() -> None:
    class Fine(Base):
        on_count: int = 0  # a field, not a method
        threshold: float = 1.0

        def helper(self) -> int:  # far from every hook
            return 1

        def _on_steps(self) -> int:  # private
            return 2

        @not_a_hook
        def on_step_count(self) -> int:
            return 3

        @property
        def on_value(self) -> int:  # a property is read, never called by the loop
            return 4

    fine = Fine()
    assert (fine.helper(), fine._on_steps(), fine.on_step_count(), fine.on_value) == (
        1,
        2,
        3,
        4,
    )


def test_overriding_real_hooks_is_fine() -> None:
    class Overrides(Base):
        def on_step(self, ctx: Any, *, key: Any) -> Any:
            return ctx.state

        def continue_training(self, ctx: Any, *, key: Any) -> Any:
            return True

    assert isinstance(Overrides(), AbstractCallback)
