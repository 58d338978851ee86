"""Lerax's public errors live in `lerax.errors`, and the names users import
elsewhere are the same classes, still caught by their base classes."""

import pickle

import pytest

import lerax
import lerax.algorithm
import lerax.callback
import lerax.callback.logging
import lerax.errors
from lerax.errors import CallbackStateError, LoggingBackendError, TrainingInterrupted


@pytest.mark.parametrize(
    ("name", "reexport"),
    [
        ("CallbackStateError", lerax.callback.CallbackStateError),
        ("LoggingBackendError", lerax.callback.LoggingBackendError),
        ("LoggingBackendError", lerax.callback.logging.LoggingBackendError),
        ("TrainingInterrupted", lerax.algorithm.TrainingInterrupted),
        ("NonFiniteError", lerax.algorithm.NonFiniteError),
    ],
)
def test_reexports_are_the_same_class(name: str, reexport: type) -> None:
    defined = getattr(lerax.errors, name)
    assert defined is reexport
    assert defined.__module__ == "lerax.errors"
    assert name in lerax.errors.__all__


def test_import_lerax_exposes_errors() -> None:
    assert lerax.errors.CallbackStateError is CallbackStateError
    assert sorted(lerax.errors.__all__) == [
        "CallbackStateError",
        "LoggingBackendError",
        "NonFiniteError",
        "TrainingInterrupted",
    ]


def test_callback_state_error_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"^Counter\.reset must return"):
        raise CallbackStateError("Counter.reset must return its declared state type")


def test_callback_state_error_names_the_member_path() -> None:
    err = CallbackStateError(
        "Counter.on_step returned a bad step state",
        member_path=(2, 0),
        member_class="Counter",
    )
    assert str(err) == (
        "CallbackList member 2 > member 0 (Counter): "
        "Counter.on_step returned a bad step state"
    )
    assert err.detail == "Counter.on_step returned a bad step state"
    assert err.member_path == (2, 0) and err.member_class == "Counter"
    plain = CallbackStateError("Counter.reset is wrong", member_class="Counter")
    assert str(plain) == "Counter.reset is wrong"
    assert plain.member_path == () and plain.member_class is None
    copy = pickle.loads(pickle.dumps(err))
    assert str(copy) == str(err) and copy.member_path == (2, 0)


def test_logging_backend_error_is_a_runtime_error() -> None:
    with pytest.raises(
        RuntimeError, match=r"^JSONLBackend \(log\.jsonl\) failed"
    ) as info:
        raise LoggingBackendError(
            "JSONLBackend (log.jsonl) failed in log_scalars",
            "JSONLBackend",
            "log.jsonl",
            "log_scalars",
            (0,),
            3,
        )
    assert isinstance(info.value, LoggingBackendError)
    assert info.value.backend == "JSONLBackend" and info.value.iteration == 3
    assert info.value.result is None


def test_training_interrupted_is_a_keyboard_interrupt_not_an_exception() -> None:
    result = object()
    with pytest.raises(KeyboardInterrupt) as info:
        raise TrainingInterrupted(result, 4)
    assert not isinstance(info.value, Exception)  # `except Exception` lets it through
    assert isinstance(info.value, TrainingInterrupted)
    assert info.value.result is result
    assert str(info.value) == (
        "training interrupted by Ctrl-C after 4 iteration(s); the result so far "
        "is in this exception's `result`"
    )
