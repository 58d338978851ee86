"""evaluate_policy: equivalence to a Python rollout, limits, statistics, jit/vmap,
argument errors."""

from typing import Any, final

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import numpy.typing as npt
import pytest
from jaxtyping import Array, Float, Int, PRNGKeyArray

from lerax.env import AbstractEnv, CartPole, Pendulum, TimeStep
from lerax.evaluation import EvaluationResult, evaluate_policy
from lerax.policy import AbstractPolicy, MLPActorCriticPolicy
from lerax.space import Box, Discrete

Obs = Float[Array, " 4"]


@final
class _AlwaysRight(AbstractPolicy[Obs, Int[Array, ""]]):
    """Pushes the cart right at every step: the pole falls within a few dozen."""

    observation_space: Box = eqx.field(static=True)
    action_space: Discrete = eqx.field(static=True)

    def __call__(
        self, observation: Obs, *, key: PRNGKeyArray | None = None
    ) -> Int[Array, ""]:
        del observation, key
        return jnp.ones((), jnp.int32)


@final
class _NoTimeLimit(AbstractEnv[Int[Array, ""], Obs, Int[Array, ""]]):
    """An endless environment with CartPole's spaces: reward 1 per step, never done."""

    observation_space: Box = eqx.field(static=True)
    action_space: Discrete = eqx.field(static=True)
    max_episode_steps: int | None = eqx.field(static=True)

    def __init__(self) -> None:
        self.observation_space = CartPole().observation_space
        self.action_space = Discrete(2)
        self.max_episode_steps = None

    def reset(self, *, key: PRNGKeyArray) -> tuple[Int[Array, ""], Obs]:
        del key
        return jnp.zeros((), jnp.int32), jnp.zeros((4,), jnp.float32)

    def step(
        self, state: Int[Array, ""], action: Int[Array, ""], *, key: PRNGKeyArray
    ) -> TimeStep[Int[Array, ""], Obs]:
        del action, key
        false = jnp.zeros((), jnp.bool_)
        return TimeStep(
            state=state + 1,
            observation=jnp.zeros((4,), jnp.float32),
            reward=jnp.ones((), jnp.float32),
            terminated=false,
            truncated=false,
        )


def _reference(
    policy: AbstractPolicy[Any, Any],
    env: AbstractEnv[Any, Any, Any],
    key: PRNGKeyArray,
    num_episodes: int,
    deterministic: bool,
    limit: int,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int32]]:
    """A plain Python rollout that splits keys as ``evaluate_policy`` documents.

    Each call is jitted on its own only to keep the test fast.
    """
    reset = eqx.filter_jit(lambda e, k: e.reset(key=k))
    step = eqx.filter_jit(lambda e, s, a, k: e.step(s, a, key=k))
    act = eqx.filter_jit(lambda p, o, k: p(o, key=k))
    returns, lengths = [], []
    for episode_key in jr.split(key, num_episodes):
        reset_key, loop_key = jr.split(episode_key)
        state, obs = reset(env, reset_key)
        ret, length = np.float32(0.0), 0
        for t in range(limit):
            act_key, step_key = jr.split(jr.fold_in(loop_key, t))
            action = act(policy, obs, None if deterministic else act_key)
            if isinstance(env.action_space, Box):
                action = jnp.clip(action, env.action_space.low, env.action_space.high)
            ts = step(env, state, action, step_key)
            ret = np.float32(ret + np.float32(ts.reward))
            length += 1
            state, obs = ts.state, ts.observation
            if bool(ts.done):
                break
        returns.append(ret)
        lengths.append(length)
    return np.array(returns, np.float32), np.array(lengths, np.int32)


@pytest.fixture(scope="module")
def cartpole() -> CartPole:
    return CartPole()


@pytest.fixture(scope="module")
def policy(cartpole: CartPole) -> MLPActorCriticPolicy[Any]:
    return MLPActorCriticPolicy(cartpole, key=jr.key(0))


def _assert_same(a: EvaluationResult, b: EvaluationResult) -> None:
    for name in ("mean_return", "std_return", "returns", "lengths"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


@pytest.mark.parametrize("deterministic", [True, False])
def test_cartpole_matches_python_rollout(
    cartpole: CartPole, policy: MLPActorCriticPolicy[Any], deterministic: bool
) -> None:
    key = jr.key(1)
    result = evaluate_policy(
        policy, cartpole, key=key, num_episodes=3, deterministic=deterministic
    )
    returns, lengths = _reference(policy, cartpole, key, 3, deterministic, 500)
    assert result.returns.shape == (3,) and result.returns.dtype == jnp.float32
    assert result.lengths.shape == (3,) and result.lengths.dtype == jnp.int32
    np.testing.assert_array_equal(result.lengths, lengths)
    np.testing.assert_allclose(result.returns, returns, rtol=1e-6)
    # CartPole pays 1 per step, the last one included.
    np.testing.assert_array_equal(result.returns, lengths.astype(np.float32))


def test_always_right_ends_episodes_early(cartpole: CartPole) -> None:
    pusher = _AlwaysRight(cartpole.observation_space, cartpole.action_space)
    key = jr.key(2)
    result = evaluate_policy(pusher, cartpole, key=key, num_episodes=4)
    returns, lengths = _reference(pusher, cartpole, key, 4, True, 500)
    np.testing.assert_array_equal(result.lengths, lengths)
    np.testing.assert_allclose(result.returns, returns, rtol=1e-6)
    assert np.all(np.asarray(result.lengths) < 500)
    assert np.all(np.asarray(result.lengths) > 1)
    assert len(set(np.asarray(result.lengths).tolist())) > 1  # episodes end apart


def test_pendulum_runs_to_its_time_limit() -> None:
    env = Pendulum()
    pendulum_policy = MLPActorCriticPolicy(env, key=jr.key(3))
    key = jr.key(4)
    result = evaluate_policy(pendulum_policy, env, key=key, num_episodes=2)
    np.testing.assert_array_equal(result.lengths, [200, 200])
    returns, lengths = _reference(pendulum_policy, env, key, 2, True, 200)
    np.testing.assert_array_equal(lengths, [200, 200])
    np.testing.assert_allclose(result.returns, returns, rtol=1e-5)
    assert np.all(np.asarray(result.returns) < 0)  # Pendulum's rewards are <= 0


def test_max_episode_steps_caps_lengths(
    cartpole: CartPole, policy: MLPActorCriticPolicy[Any]
) -> None:
    key = jr.key(5)
    result = evaluate_policy(
        policy, cartpole, key=key, num_episodes=3, max_episode_steps=7
    )
    returns, lengths = _reference(policy, cartpole, key, 3, True, 7)
    np.testing.assert_array_equal(result.lengths, lengths)
    np.testing.assert_array_equal(result.lengths, [7, 7, 7])
    np.testing.assert_allclose(result.returns, returns, rtol=1e-6)


def test_endless_env_runs_to_max_episode_steps(
    policy: MLPActorCriticPolicy[Any],
) -> None:
    result = evaluate_policy(
        policy, _NoTimeLimit(), key=jr.key(6), num_episodes=2, max_episode_steps=5
    )
    np.testing.assert_array_equal(result.lengths, [5, 5])
    np.testing.assert_array_equal(result.returns, [5.0, 5.0])


def test_statistics_are_numpy_mean_and_population_std(
    cartpole: CartPole, policy: MLPActorCriticPolicy[Any]
) -> None:
    result = evaluate_policy(
        policy, cartpole, key=jr.key(7), num_episodes=5, deterministic=False
    )
    returns = np.asarray(result.returns)
    assert np.std(returns) > 0  # the episodes differ, so std is tested
    np.testing.assert_allclose(result.mean_return, np.mean(returns), rtol=1e-6)
    np.testing.assert_allclose(result.std_return, np.std(returns), rtol=1e-6)
    assert result.mean_return.shape == () and result.std_return.shape == ()


def test_filter_jit_equals_eager_without_retracing(
    cartpole: CartPole, policy: MLPActorCriticPolicy[Any]
) -> None:
    @eqx.filter_jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def evaluate(p: MLPActorCriticPolicy[Any], key: PRNGKeyArray) -> EvaluationResult:
        return evaluate_policy(
            p, cartpole, key=key, num_episodes=3, deterministic=False
        )

    for seed in (8, 9):  # the second key reuses the compiled program
        eager = evaluate_policy(
            policy, cartpole, key=jr.key(seed), num_episodes=3, deterministic=False
        )
        _assert_same(evaluate(policy, jr.key(seed)), eager)


def test_filter_vmap_over_keys_equals_separate_calls(
    cartpole: CartPole, policy: MLPActorCriticPolicy[Any]
) -> None:
    def evaluate(key: PRNGKeyArray) -> EvaluationResult:
        return evaluate_policy(
            policy, cartpole, key=key, num_episodes=2, deterministic=False
        )

    keys = jr.split(jr.key(10), 3)
    batched = eqx.filter_vmap(evaluate)(keys)
    assert batched.returns.shape == (3, 2) and batched.mean_return.shape == (3,)
    one = eqx.filter_jit(evaluate)  # compiled once for the three calls
    for i in range(3):
        _assert_same(jax.tree.map(lambda x, i=i: x[i], batched), one(keys[i]))


def test_filter_vmap_over_policies_equals_separate_calls(cartpole: CartPole) -> None:
    seeds = jr.split(jr.key(11), 2)
    policies = eqx.filter_vmap(lambda k: MLPActorCriticPolicy(cartpole, key=k))(seeds)
    batched = eqx.filter_vmap(
        lambda p: evaluate_policy(p, cartpole, key=jr.key(12), num_episodes=2)
    )(policies)
    assert batched.lengths.shape == (2, 2)
    for i in range(2):
        p = MLPActorCriticPolicy(cartpole, key=seeds[i])
        one = evaluate_policy(p, cartpole, key=jr.key(12), num_episodes=2)
        np.testing.assert_array_equal(batched.lengths[i], one.lengths)
        np.testing.assert_allclose(batched.returns[i], one.returns, rtol=1e-6)


def test_bad_num_episodes(
    cartpole: CartPole, policy: MLPActorCriticPolicy[Any]
) -> None:
    with pytest.raises(
        ValueError, match=r"num_episodes must be a positive int, got num_episodes=0"
    ):
        evaluate_policy(policy, cartpole, key=jr.key(0), num_episodes=0)
    with pytest.raises(
        TypeError, match=r"num_episodes must be a positive int, got num_episodes=True"
    ):
        evaluate_policy(policy, cartpole, key=jr.key(0), num_episodes=True)


def test_bad_max_episode_steps(
    cartpole: CartPole, policy: MLPActorCriticPolicy[Any]
) -> None:
    with pytest.raises(
        ValueError,
        match=r"max_episode_steps must be a positive int, got max_episode_steps=0",
    ):
        evaluate_policy(policy, cartpole, key=jr.key(0), max_episode_steps=0)
    with pytest.raises(
        ValueError, match=r"max_episode_steps=None and _NoTimeLimit has no time limit"
    ):
        evaluate_policy(policy, _NoTimeLimit(), key=jr.key(0))
