"""The non-finite guard: a NaN or infinite reward, observation, loss or
parameter stops the run with its state from before the iteration."""

from typing import Any, final

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jaxtyping import Array, Float, Int

from lerax.algorithm import A2C, SAC, NonFiniteError, StopReason, TrainResult
from lerax.callback import JSONLBackend, LoggingCallback
from lerax.env import AbstractEnv, CartPole, Pendulum, TimeStep
from lerax.errors import NonFiniteError as PublicNonFiniteError
from lerax.policy import MLPActorCriticPolicy, MLPSACPolicy
from lerax.space import AbstractSpace


@final
class PoisonState(eqx.Module):
    inner: Any
    t: Int[Array, ""]


@final
class Poisoned(AbstractEnv[PoisonState, Float[Array, " n"], Any]):
    """Wraps an environment as one endless episode (it resets the inner one
    itself, so its step count ``t`` runs over the whole run) whose reward or
    observation becomes ``value`` at step ``at``."""

    inner: AbstractEnv[Any, Float[Array, " n"], Any]
    at: Int[Array, ""]
    value: Float[Array, ""]
    observation_space: AbstractSpace[Float[Array, " n"]]
    action_space: AbstractSpace[Any]
    what: str = eqx.field(static=True)
    max_episode_steps: int | None = eqx.field(static=True)

    def __init__(
        self,
        inner: AbstractEnv[Any, Float[Array, " n"], Any],
        at: int | Int[Array, ""],
        value: float = float("nan"),
        what: str = "reward",
    ) -> None:
        self.inner = inner
        self.at = jnp.asarray(at, jnp.int32)
        self.value = jnp.asarray(value, jnp.float32)
        self.observation_space = inner.observation_space
        self.action_space = inner.action_space
        self.what = what
        self.max_episode_steps = None

    def reset(self, *, key: Any) -> tuple[PoisonState, Float[Array, " n"]]:
        state, obs = self.inner.reset(key=key)
        return PoisonState(state, jnp.zeros((), jnp.int32)), obs

    def step(
        self, state: PoisonState, action: Any, *, key: Any
    ) -> TimeStep[PoisonState, Float[Array, " n"]]:
        k_step, k_reset = jr.split(key)
        ts = self.inner.step(state.inner, action, key=k_step)
        fresh, first = self.inner.reset(key=k_reset)
        inner = jax.tree.map(lambda a, b: jnp.where(ts.done, a, b), fresh, ts.state)
        obs = jnp.where(ts.done, first, ts.observation)
        t = state.t + 1
        bad = t == self.at
        reward = jnp.where(bad & (self.what == "reward"), self.value, ts.reward)
        obs = jnp.where(bad & (self.what == "observation"), self.value, obs)
        return TimeStep(
            state=PoisonState(inner, t),
            observation=obs,
            reward=reward,
            terminated=jnp.array(False),
            truncated=jnp.array(False),
        )


CARTPOLE = CartPole()
POLICY = MLPActorCriticPolicy(env=CARTPOLE, key=jr.key(0))
ALGO = A2C(num_envs=2, num_steps=4)
SPI = ALGO.steps_per_iteration
ITERATIONS = 8
TOTAL = ITERATIONS * SPI
KEY = jr.key(1)


def params(policy: Any) -> list[np.ndarray[Any, Any]]:
    return [np.asarray(x) for x in jax.tree.leaves(eqx.filter(policy, eqx.is_array))]


def failing_iteration(at: int) -> int:
    """The iteration whose rollout holds env step ``at`` (each env counts its
    own steps; ``num_steps`` per iteration)."""
    return (at - 1) // ALGO.num_steps + 1


@pytest.mark.parametrize(
    ("what", "value", "quantity"),
    [
        ("reward", float("nan"), "reward"),
        ("reward", float("inf"), "reward"),
        ("observation", float("nan"), "observation"),
    ],
)
def test_stops_with_the_state_before_the_failing_iteration(
    what: str, value: float, quantity: str
) -> None:
    at = 10
    env = Poisoned(CARTPOLE, at, value, what)
    with pytest.raises(NonFiniteError) as caught:
        ALGO.train(env, POLICY, TOTAL, key=KEY)
    error = caught.value
    k = failing_iteration(at)
    assert (error.iteration, error.run_index, error.quantity) == (k, 0, quantity)
    assert f"non-finite {quantity} in iteration {k} of run 0" in str(error)
    result: TrainResult[Any, Any, Any, Any] = error.result
    assert result.status.reasons() == StopReason.NON_FINITE
    assert int(result.status.iteration) == k
    assert result.status.non_finite() == quantity
    assert int(result.iterations) == k - 1
    assert int(result.timesteps) == (k - 1) * SPI
    # The same as a run of k - 1 iterations (A2C's default schedule is
    # constant), and finite.
    before = ALGO.train(env, POLICY, (k - 1) * SPI, key=KEY, check_finite=False)
    for got, want in zip(params(result.policy), params(before.policy), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
        assert np.isfinite(got).all()
    for got, want in zip(
        params(result.algorithm_state), params(before.algorithm_state), strict=True
    ):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_the_error_is_public_and_learn_raises_it() -> None:
    assert PublicNonFiniteError is NonFiniteError
    assert issubclass(NonFiniteError, FloatingPointError)
    with pytest.raises(NonFiniteError):
        ALGO.learn(Poisoned(CARTPOLE, 3), POLICY, TOTAL, key=KEY)


def test_without_the_check_the_nan_spreads_and_training_completes() -> None:
    result = ALGO.train(
        Poisoned(CARTPOLE, 3), POLICY, TOTAL, key=KEY, check_finite=False
    )
    assert result.status.reasons() == StopReason.COMPLETED
    assert int(result.iterations) == ITERATIONS
    assert np.isnan(params(result.policy)[0]).all()


def test_a_finite_run_is_unchanged_by_the_check() -> None:
    env = Poisoned(CARTPOLE, 10**6)
    guarded = ALGO.train(env, POLICY, TOTAL, key=KEY)
    unguarded = ALGO.train(env, POLICY, TOTAL, key=KEY, check_finite=False)
    assert guarded.status.reasons() == StopReason.COMPLETED
    assert guarded.status.non_finite() is None
    for a, b in zip(params(guarded.policy), params(unguarded.policy), strict=True):
        np.testing.assert_array_equal(a, b)


def test_each_vmapped_run_stops_on_its_own_and_nothing_raises() -> None:
    ats = jnp.array([5, 13, 27, 10**6])
    envs = eqx.filter_vmap(lambda at: Poisoned(CARTPOLE, at))(ats)
    result = eqx.filter_jit(
        eqx.filter_vmap(lambda e, k: ALGO.train(e, POLICY, TOTAL, key=k))
    )(envs, jr.split(KEY, 4))
    expected = [failing_iteration(int(a)) for a in ats[:3]]
    assert result.status.reasons() == [StopReason.NON_FINITE] * 3 + [
        StopReason.COMPLETED
    ]
    assert result.status.non_finite() == ["reward"] * 3 + [None]
    np.testing.assert_array_equal(result.status.iteration, [*expected, ITERATIONS])
    np.testing.assert_array_equal(
        result.iterations, [k - 1 for k in expected] + [ITERATIONS]
    )
    assert all(np.isfinite(p).all() for p in params(result.policy))


def test_eager_vmapped_call_names_the_first_failing_run() -> None:
    ats = jnp.array([10**6, 13, 5])
    envs = eqx.filter_vmap(lambda at: Poisoned(CARTPOLE, at))(ats)
    train = eqx.filter_vmap(lambda e, k: ALGO.train(e, POLICY, TOTAL, key=k))
    result = train(envs, jr.split(KEY, 3))  # under the transform: no raise
    assert result.status.non_finite() == [None, "reward", "reward"]


def test_parameters_that_overflow_are_caught_after_the_update() -> None:
    # A learning rate this large takes the parameters to infinity in the
    # first update, whose loss (computed before it) is still finite.
    algo = A2C(num_envs=2, num_steps=4, learning_rate=1e38)
    result = algo.train(
        Poisoned(CARTPOLE, 10**6), POLICY, TOTAL, key=KEY, check_finite=False
    )
    assert not all(np.isfinite(p).all() for p in params(result.policy))
    with pytest.raises(NonFiniteError) as caught:
        algo.train(Poisoned(CARTPOLE, 10**6), POLICY, TOTAL, key=KEY)
    assert caught.value.quantity in ("policy parameters", "training_log['loss']")
    assert caught.value.iteration <= 2
    assert all(np.isfinite(p).all() for p in params(caught.value.result.policy))


def test_losses_are_checked_when_a_callback_reads_the_log(tmp_path: Any) -> None:
    assert ALGO.loss_names == ("loss", "policy_loss", "value_loss")
    # A finite but huge reward overflows the returns: the value loss is
    # infinite and the update's parameters NaN, in the same iteration.
    env = Poisoned(CARTPOLE, 10, 3e38)
    logger = LoggingCallback([JSONLBackend(tmp_path / "log.jsonl")])
    with pytest.raises(NonFiniteError) as logged:
        ALGO.train(env, POLICY, TOTAL, key=KEY, callback=logger)
    logger.close()
    k = failing_iteration(10)
    assert (logged.value.iteration, logged.value.quantity) == (
        k,
        "training_log['loss']",
    )
    # Without a callback the update computes no log, so no loss is checked.
    # A2C's gradient clipping keeps this update's parameters finite on JAX
    # 0.10 (the run completes); with JAX 0.12's numerics they overflow in
    # that same update, which the parameter check catches. Either way the
    # quantity is not a loss.
    try:
        unlogged = ALGO.train(env, POLICY, TOTAL, key=KEY)
    except NonFiniteError as error:
        assert error.quantity == "policy parameters"
        assert error.iteration == k
    else:
        assert unlogged.status.reasons() == StopReason.COMPLETED
        assert all(np.isfinite(p).all() for p in params(unlogged.policy))


def test_a_replay_buffer_keeps_the_failing_iterations_transitions() -> None:
    pendulum = Pendulum()
    env = Poisoned(pendulum, 40, what="observation")
    policy = MLPSACPolicy(env=env, key=jr.key(0), hidden_sizes=(8, 8))
    algo = SAC(learning_starts=16, batch_size=8, buffer_size=128)
    with pytest.raises(NonFiniteError) as caught:
        algo.train(env, policy, 64, key=KEY)
    result = caught.value.result
    assert caught.value.quantity == "observation"
    assert int(result.iterations) == 39
    buffer = result.algorithm_state.buffer
    assert int(buffer.size) == 40  # the failing transition is in it
    assert not np.isfinite(np.asarray(buffer.next_observations)[39]).all()
    before = algo.train(env, policy, 39, key=KEY, check_finite=False)
    for got, want in zip(params(result.policy), params(before.policy), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(
        np.asarray(result.algorithm_state.log_alpha),
        np.asarray(before.algorithm_state.log_alpha),
        rtol=1e-6,
    )


def test_check_finite_must_be_a_bool() -> None:
    # Lerax's own check, or (the test suite checks types at run time)
    # jaxtyping's, which names the parameter too.
    with pytest.raises(TypeError, match="check_finite"):
        ALGO.train(CARTPOLE, POLICY, TOTAL, key=KEY, check_finite=1)  # type: ignore[call-overload]  # the wrong type on purpose
