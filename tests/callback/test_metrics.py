"""The metrics channel: callbacks publish named scalars (the ``metrics`` hook),
the others read them in ``ctx.metrics``, ``continue_training`` sees this
iteration's, ``LoggingCallback`` logs them, each vmapped run keeps its own."""

from typing import Any, final

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from lerax.algorithm import PPO
from lerax.callback import (
    AbstractCallback,
    CallbackList,
    CallbackStateError,
    EmptyCallbackState,
    EmptyCallbackStepState,
    IterationContext,
    JSONLBackend,
    LoggingCallback,
)
from lerax.env import CartPole
from lerax.policy import MLPActorCriticPolicy

ENV = CartPole()
POLICY = MLPActorCriticPolicy(ENV, key=jr.key(0))
ALGO = PPO(num_envs=2, num_steps=8, num_epochs=1, num_minibatches=1)
ITERATIONS = 4
TOTAL = ITERATIONS * ALGO.steps_per_iteration

Ctx = IterationContext[Any, Any, Any, Any]


@final
class Publisher(AbstractCallback[EmptyCallbackState, EmptyCallbackStepState]):
    """Publishes ``count/iterations`` (the iteration count, plus an offset)."""

    offset: Float[Array, ""] = eqx.field(default_factory=lambda: jnp.zeros(()))

    def metrics(self, ctx: Ctx, *, key: PRNGKeyArray) -> dict[str, Float[Array, ""]]:
        value = ctx.iteration_count.astype(jnp.float32) + self.offset
        return {"count/iterations": value}


@final
class Seen(eqx.Module):
    values: Float[Array, " iterations"]  # what on_iteration read, per iteration
    at_continue: Float[Array, " iterations"]  # what continue_training read


@final
class Reader(AbstractCallback[Seen, EmptyCallbackStepState]):
    """Records ``ctx.metrics["count/iterations"]`` at every iteration, in
    ``on_iteration`` and (through a host-free trick: the state) as
    ``continue_training`` would see it."""

    def reset(self, ctx: Any, *, key: PRNGKeyArray) -> Seen:
        nan = jnp.full((ITERATIONS,), jnp.nan, jnp.float32)
        return Seen(nan, nan)

    def on_iteration(
        self, ctx: IterationContext[Seen, Any], *, key: PRNGKeyArray
    ) -> Seen:
        slot = ctx.iteration_count - 1
        value = ctx.metrics["count/iterations"]
        return Seen(ctx.state.values.at[slot].set(value), ctx.state.at_continue)


@final
class StopAtMetric(AbstractCallback[EmptyCallbackState, EmptyCallbackStepState]):
    """Stops once the published count reaches ``limit``."""

    limit: float

    def continue_training(self, ctx: Ctx, *, key: PRNGKeyArray) -> Bool[Array, ""]:
        return ctx.metrics["count/iterations"] < self.limit


def test_members_after_a_publisher_see_this_iteration_before_it_the_last() -> None:
    result = ALGO.train(
        ENV, POLICY, TOTAL, key=jr.key(1), callback=(Reader(), Publisher(), Reader())
    )
    before, _, after = result.callback_state
    # After the publisher: this iteration's count. Before it: the previous
    # iteration's, NaN in the first (nothing published yet).
    np.testing.assert_array_equal(np.asarray(after.values), [1, 2, 3, 4])
    np.testing.assert_array_equal(np.asarray(before.values), [np.nan, 1, 2, 3])
    # The run's last published metrics are in the result.
    assert set(result.metrics) == {"count/iterations"}
    assert float(result.metrics["count/iterations"]) == ITERATIONS


def test_continue_training_sees_this_iterations_metrics() -> None:
    # The stopper comes first: continue_training runs after every member's
    # on_iteration and metrics, so it sees this iteration's value anyway.
    result = ALGO.train(
        ENV,
        POLICY,
        TOTAL,
        key=jr.key(1),
        callback=CallbackList(StopAtMetric(2.0), Publisher()),
    )
    assert int(result.iterations) == 2


def test_without_publishers_there_are_no_metrics() -> None:
    result = ALGO.train(ENV, POLICY, TOTAL, key=jr.key(1), callback=StopAtMetricFree())
    assert dict(result.metrics) == {}


@final
class StopAtMetricFree(AbstractCallback[EmptyCallbackState, EmptyCallbackStepState]):
    def continue_training(self, ctx: Ctx, *, key: PRNGKeyArray) -> Bool[Array, ""]:
        assert dict(ctx.metrics) == {}  # traced: no names at all
        return jnp.array(True)


def test_logging_callback_logs_published_metrics(tmp_path: Any) -> None:
    import json

    path = tmp_path / "log.jsonl"
    with LoggingCallback([JSONLBackend(path)], log_every=1) as logger:
        ALGO.train(ENV, POLICY, TOTAL, key=jr.key(1), callback=(Publisher(), logger))
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows = [r for r in rows if "time/iteration" in r]
    assert [r["count/iterations"] for r in rows] == [1.0, 2.0, 3.0, 4.0]


def test_a_metric_that_collides_with_the_loggers_own_names_is_refused(
    tmp_path: Any,
) -> None:
    @final
    class Clash(AbstractCallback[EmptyCallbackState, EmptyCallbackStepState]):
        def metrics(
            self, ctx: Ctx, *, key: PRNGKeyArray
        ) -> dict[str, Float[Array, ""]]:
            return {"train/loss": jnp.zeros((), jnp.float32)}

    with LoggingCallback([JSONLBackend(tmp_path / "log.jsonl")], log_every=1) as logger:
        with pytest.raises(ValueError, match=r"publishes the metric 'train/loss'"):
            ALGO.train(ENV, POLICY, TOTAL, key=jr.key(1), callback=(Clash(), logger))


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (jnp.zeros((), jnp.int32), r"published 'bad' as .*int32.*float32 scalar"),
        (jnp.zeros((2,), jnp.float32), r"published 'bad' as .*shape \(2,\)"),
        (1.0, r"published 'bad' as .*float"),
    ],
)
def test_a_bad_metric_is_named_before_compiling(value: Any, match: str) -> None:
    @final
    class Bad(AbstractCallback[EmptyCallbackState, EmptyCallbackStepState]):
        def metrics(self, ctx: Ctx, *, key: PRNGKeyArray) -> Any:
            return {"bad": value}

    train = eqx.filter_jit(
        lambda key: ALGO.train(ENV, POLICY, TOTAL, key=key, callback=Bad())
    )
    with pytest.raises(CallbackStateError, match=r"Bad\.metrics " + match):
        train(jr.key(1))


def test_two_members_publishing_one_name_are_named() -> None:
    with pytest.raises(
        CallbackStateError,
        match=r"CallbackList members 0 \(Publisher\) and 2 \(Publisher\) both "
        r"publish the metric 'count/iterations'",
    ):
        ALGO.train(
            ENV,
            POLICY,
            TOTAL,
            key=jr.key(1),
            callback=(Publisher(), Reader(), Publisher()),
        )


@final
class StopAt(AbstractCallback[EmptyCallbackState, EmptyCallbackStepState]):
    iterations: Int[Array, ""]

    def continue_training(self, ctx: Ctx, *, key: PRNGKeyArray) -> Bool[Array, ""]:
        return ctx.iteration_count < self.iterations


def test_each_vmapped_run_keeps_its_own_metrics() -> None:
    """Per-seed offsets and stop iterations: each run's metrics are its own,
    a stopped run's stay where it stopped."""
    offsets = jnp.array([0.0, 10.0, 20.0])
    stops = jnp.array([4, 2, 3])

    @eqx.filter_vmap
    def train(offset: Array, stop: Array, key: Array) -> Any:
        callback = CallbackList(Publisher(offset), StopAt(stop), Reader())
        return ALGO.train(ENV, POLICY, TOTAL, key=key, callback=callback)

    result = train(offsets, stops, jr.split(jr.key(2), 3))
    np.testing.assert_array_equal(
        np.asarray(result.metrics["count/iterations"]), [4.0, 12.0, 23.0]
    )
    seen = np.asarray(result.callback_state[2].values)
    np.testing.assert_array_equal(seen[0], [1, 2, 3, 4])
    np.testing.assert_array_equal(seen[1], [11, 12, np.nan, np.nan])
    np.testing.assert_array_equal(seen[2], [21, 22, 23, np.nan])


def test_metrics_change_nothing_else() -> None:
    """Publishing and reading metrics does not change what is learned."""
    plain = ALGO.train(ENV, POLICY, TOTAL, key=jr.key(3))
    with_metrics = ALGO.train(
        ENV, POLICY, TOTAL, key=jr.key(3), callback=(Publisher(), Reader())
    )
    for a, b in zip(
        jax.tree.leaves(eqx.filter(plain.policy, eqx.is_array)),
        jax.tree.leaves(eqx.filter(with_metrics.policy, eqx.is_array)),
        strict=True,
    ):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
