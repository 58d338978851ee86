"""Bad arguments are refused at construction, naming the argument and the
value; names no callback publishes, before training."""

import math
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import pytest

from lerax.callback import EmptyCallback
from lerax.callback.control import (
    EvalCallback,
    EveryN,
    StopOnMaxEpisodes,
    StopOnNoImprovement,
    StopOnRewardThreshold,
)

from .helpers import ALGO, ENV, POLICY, STEPS, Endless


def _named(argument: str) -> str:
    """A wrong type is named by Lerax (``every=2.0``) or, first, by the
    runtime type checker the tests run under (``parameter 'every'``)."""
    return f"{argument}=|parameter '{argument}'"


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (lambda: EveryN(EmptyCallback(), every=0), ValueError, "every=0"),
        (lambda: EveryN(EmptyCallback(), every=-8), ValueError, "every=-8"),
        (lambda: EveryN(EmptyCallback(), every=2.0), TypeError, _named("every")),  # type: ignore[arg-type]  # the wrong type on purpose
        (lambda: EveryN("logger", every=8), TypeError, _named("callback")),  # type: ignore[arg-type]  # the wrong type on purpose
        (lambda: EvalCallback(ENV, every=0), ValueError, "every=0"),
        (
            lambda: EvalCallback(ENV, every=8, num_episodes=0),
            ValueError,
            "num_episodes=0",
        ),
        (
            lambda: EvalCallback(ENV, every=8, max_episode_steps=-1),
            ValueError,
            "max_episode_steps=-1",
        ),
        (
            lambda: EvalCallback(ENV, every=8, keep_best=1),  # type: ignore[arg-type]  # the wrong type on purpose
            TypeError,
            _named("keep_best"),
        ),
        (lambda: EvalCallback(ENV, every=8, prefix="a/b"), ValueError, "prefix='a/b'"),
        (lambda: EvalCallback(POLICY, every=8), TypeError, _named("eval_env")),  # type: ignore[arg-type]  # the wrong type on purpose
        (lambda: StopOnNoImprovement(0), ValueError, "patience=0"),
        (lambda: StopOnNoImprovement(-2), ValueError, "patience=-2"),
        (lambda: StopOnNoImprovement(3, min_delta=-0.1), ValueError, "min_delta=-0.1"),
        (lambda: StopOnNoImprovement(3, key="return"), ValueError, "iteration_key"),
        (lambda: StopOnMaxEpisodes(0), ValueError, "n=0"),
        (lambda: StopOnMaxEpisodes(2.5), TypeError, _named("n")),  # type: ignore[arg-type]  # the wrong type on purpose
        (lambda: StopOnRewardThreshold(math.nan), ValueError, "threshold=nan"),
        (lambda: StopOnRewardThreshold(math.inf), ValueError, "threshold=inf"),
        (lambda: StopOnRewardThreshold(True), TypeError, _named("threshold")),
        (lambda: StopOnRewardThreshold(1.0, key=""), TypeError, _named("key")),
        (
            lambda: StopOnRewardThreshold(1.0, ema_alpha=1.0),
            ValueError,
            "ema_alpha=1.0",
        ),
        (
            lambda: StopOnRewardThreshold(jnp.ones(2)),
            TypeError,
            "threshold of shape|parameter 'threshold'",
        ),
    ],
)
def test_bad_arguments_are_refused_at_construction(
    build: Callable[[], object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        build()


def test_a_bad_threshold_built_under_vmap_is_refused_when_it_runs() -> None:
    with pytest.raises(Exception, match="threshold must be a finite number"):
        eqx.filter_vmap(StopOnRewardThreshold)(jnp.asarray([1.0, jnp.nan]))


def test_an_eval_env_without_time_limit_needs_max_episode_steps() -> None:
    unlimited = Endless()
    with pytest.raises(ValueError, match="max_episode_steps=None and eval_env"):
        EvalCallback(unlimited, every=8)
    assert EvalCallback(unlimited, every=8, max_episode_steps=5).max_episode_steps == 5


@pytest.mark.parametrize(
    ("callback", "named"),
    [
        (StopOnRewardThreshold(1.0), "key='eval/mean_return'"),
        (StopOnNoImprovement(2, key="mine/score"), "key='mine/score'"),
        (
            (EvalCallback(ENV, every=8), StopOnRewardThreshold(1.0, key="eval/return")),
            "key='eval/return'.*did you mean 'eval/mean_return'.*published: "
            "'eval/best_mean_return', 'eval/last_iteration', 'eval/mean_return'",
        ),
        (
            (
                EvalCallback(ENV, every=8, prefix="test"),
                StopOnNoImprovement(2, key="test/mean_return", iteration_key="t/it"),
            ),
            "iteration_key='t/it'",
        ),
    ],
)
def test_an_unpublished_metric_is_named_before_training(
    callback: Any, named: str
) -> None:
    with pytest.raises(ValueError, match=named):
        ALGO.train(ENV, POLICY, STEPS, key=jr.key(0), callback=callback)
