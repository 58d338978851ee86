"""``on_rollout`` in training: once per iteration, after the rollout's
``on_step`` calls, with the rollout's transitions in step order; the same
through ``CallbackList``, ``EveryN`` and per-seed vmap; its returned states
validated as the other hooks'."""

from typing import Any, final

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jaxtyping import Array, Float, Int, PRNGKeyArray
from typing_extensions import override

from lerax.algorithm import DQN, PPO, AbstractAlgorithm
from lerax.callback import (
    AbstractCallback,
    CallbackList,
    CallbackStateError,
    EmptyCallbackState,
    EveryN,
    ResetContext,
    RolloutContext,
    StepContext,
)
from lerax.env import AbstractEnv, CartPole
from lerax.policy import AbstractPolicy, MLPActorCriticPolicy, MLPQPolicy


@final
class Seen(eqx.Module):
    """One environment's sums over its transitions, each weighted by the
    step's ``num_timesteps + 1`` (so that a step out of order, or another
    environment's, changes them), and the step count."""

    steps: Int[Array, ""]
    rewards: Float[Array, ""]
    dones: Int[Array, ""]
    observations: Float[Array, ""]
    actions: Float[Array, ""]
    rollouts: Int[Array, ""]
    steps_at_rollout: Int[Array, ""]
    iterations_at_rollout: Int[Array, ""]


def _zero() -> Seen:
    i, f = jnp.zeros((), jnp.int32), jnp.zeros((), jnp.float32)
    return Seen(i, f, i, f, f, i, i, i)


@final
class PerStep(AbstractCallback[EmptyCallbackState, Seen]):
    """The sums, one transition at a time."""

    @override
    def step_reset(self, ctx: ResetContext[Any, Any], *, key: PRNGKeyArray) -> Seen:
        return _zero()

    @override
    def on_step(self, ctx: StepContext[Seen, Any, Any], *, key: PRNGKeyArray) -> Seen:
        w = (ctx.num_timesteps + 1).astype(jnp.float32)
        s = ctx.state
        return Seen(
            steps=s.steps + 1,
            rewards=s.rewards + w * ctx.reward,
            dones=s.dones + ctx.done.astype(jnp.int32),
            observations=s.observations + w * jnp.sum(jnp.asarray(ctx.observation)),
            actions=s.actions + w * jnp.sum(jnp.asarray(ctx.action, jnp.float32)),
            rollouts=s.rollouts,
            steps_at_rollout=s.steps_at_rollout,
            iterations_at_rollout=s.iterations_at_rollout,
        )

    @override
    def reads_training_log(self) -> bool:
        return False


@final
class PerRollout(AbstractCallback[EmptyCallbackState, Seen]):
    """The same sums from the whole rollout, and when it was called: after
    how many steps of ``PerStep``'s kind (its own ``on_step`` counts them)
    and at which iteration."""

    @override
    def step_reset(self, ctx: ResetContext[Any, Any], *, key: PRNGKeyArray) -> Seen:
        return _zero()

    @override
    def on_step(self, ctx: StepContext[Seen, Any, Any], *, key: PRNGKeyArray) -> Seen:
        out: Seen = eqx.tree_at(lambda s: s.steps, ctx.state, ctx.state.steps + 1)
        return out

    @override
    def on_rollout(
        self, ctx: RolloutContext[Seen, Any, Any], *, key: PRNGKeyArray
    ) -> Seen:
        num_steps, num_envs = ctx.rewards.shape
        # Step t's num_timesteps, as on_step sees it: before the step.
        w = (ctx.num_timesteps + 1 + num_envs * jnp.arange(num_steps)).astype(
            jnp.float32
        )[:, None]
        obs = jnp.asarray(ctx.observations)
        obs = obs.reshape(num_steps, num_envs, -1).sum(-1)
        act = jnp.asarray(ctx.actions, jnp.float32)
        act = act.reshape(num_steps, num_envs, -1).sum(-1)
        s = ctx.state
        return Seen(
            steps=s.steps,
            rewards=s.rewards + jnp.sum(w * ctx.rewards, axis=0),
            dones=s.dones + jnp.sum(ctx.dones.astype(jnp.int32), axis=0),
            observations=s.observations + jnp.sum(w * obs, axis=0),
            actions=s.actions + jnp.sum(w * act, axis=0),
            rollouts=s.rollouts + 1,
            steps_at_rollout=s.steps,
            iterations_at_rollout=jnp.broadcast_to(ctx.iteration_count, (num_envs,)),
        )

    @override
    def reads_training_log(self) -> bool:
        return False


def _ppo() -> tuple[
    AbstractAlgorithm[Any, Any], AbstractEnv[Any, Any, Any], AbstractPolicy[Any, Any]
]:
    env = CartPole()
    return (
        PPO(num_envs=3, num_steps=16, num_epochs=1, num_minibatches=2),
        env,
        MLPActorCriticPolicy(env, key=jr.key(0)),
    )


def _dqn() -> tuple[
    AbstractAlgorithm[Any, Any], AbstractEnv[Any, Any, Any], AbstractPolicy[Any, Any]
]:
    env = CartPole()
    return (
        DQN(num_envs=2, buffer_size=256, learning_starts=16, batch_size=8),
        env,
        MLPQPolicy(env, key=jr.key(0)),
    )


def _assert_same_sums(a: Seen, b: Seen) -> None:
    np.testing.assert_array_equal(np.asarray(a.dones), np.asarray(b.dones))
    for name in ("rewards", "observations", "actions"):
        np.testing.assert_allclose(
            np.asarray(getattr(a, name)),
            np.asarray(getattr(b, name)),
            rtol=1e-5,
            err_msg=name,
        )


@pytest.mark.parametrize(
    ("make", "iterations"), [(_ppo, 5), (_dqn, 40)], ids=["ppo", "dqn"]
)
def test_on_rollout_sees_the_steps_on_step_saw_once_per_iteration(
    make: Any, iterations: int
) -> None:
    algo, env, policy = make()
    total = iterations * algo.steps_per_iteration
    result = algo.train(
        env, policy, total, key=jr.key(1), callback=(PerStep(), PerRollout())
    )
    per_step, per_rollout = result.callback_step_state
    _assert_same_sums(per_step, per_rollout)
    assert int(np.sum(np.asarray(per_step.dones))) > 0  # episodes ended
    num_envs = algo.num_envs
    np.testing.assert_array_equal(
        np.asarray(per_rollout.rollouts), [iterations] * num_envs
    )
    # Called after the last rollout's on_step calls, before its update: it
    # saw every step, and the iterations completed before the rollout.
    np.testing.assert_array_equal(
        np.asarray(per_rollout.steps_at_rollout),
        [iterations * algo.num_steps] * num_envs,
    )
    np.testing.assert_array_equal(
        np.asarray(per_rollout.iterations_at_rollout), [iterations - 1] * num_envs
    )


def test_on_rollout_through_callback_list_every_n_and_vmap() -> None:
    algo, env, policy = _ppo()
    total = 4 * algo.steps_per_iteration

    def train(key: PRNGKeyArray) -> Any:
        callback = (
            PerStep(),
            CallbackList(PerRollout()),
            EveryN(PerRollout(), every=3 * algo.steps_per_iteration),
        )
        return algo.train(env, policy, total, key=key, callback=callback)

    keys = jr.split(jr.key(3), 2)
    batched = eqx.filter_jit(eqx.filter_vmap(train))(keys)
    per_step, (listed,), every = batched.callback_step_state
    _assert_same_sums(per_step, listed)
    # EveryN runs the hooks that update step states at every iteration.
    _assert_same_sums(per_step, every)
    np.testing.assert_array_equal(np.asarray(every.rollouts), np.full((2, 3), 4))
    for i in range(2):
        alone = train(keys[i])
        single = jax.tree.map(lambda x, i=i: x[i], batched.callback_step_state)
        for a, b in zip(
            jax.tree.leaves(alone.callback_step_state),
            jax.tree.leaves(single),
            strict=True,
        ):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5)


@final
class Shrinks(AbstractCallback[EmptyCallbackState, Seen]):
    """Returns one environment's state from ``on_rollout``: a mistake."""

    @override
    def step_reset(self, ctx: ResetContext[Any, Any], *, key: PRNGKeyArray) -> Seen:
        return _zero()

    @override
    def on_rollout(
        self, ctx: RolloutContext[Seen, Any, Any], *, key: PRNGKeyArray
    ) -> Seen:
        first: Seen = jax.tree.map(lambda x: x[0], ctx.state)
        return first


@final
class FloatSteps(AbstractCallback[EmptyCallbackState, Seen]):
    """Returns float step counts from ``on_rollout``: a mistake."""

    @override
    def step_reset(self, ctx: ResetContext[Any, Any], *, key: PRNGKeyArray) -> Seen:
        return _zero()

    @override
    def on_rollout(
        self, ctx: RolloutContext[Seen, Any, Any], *, key: PRNGKeyArray
    ) -> Seen:
        steps = ctx.state.steps.astype(jnp.float32)
        out: Seen = eqx.tree_at(lambda s: s.steps, ctx.state, steps)
        return out


@pytest.mark.parametrize(
    ("callback", "message"),
    [
        (
            Shrinks(),
            r"Shrinks\.on_rollout returned a step state whose leaf .steps "
            r"has shape \(\) and dtype int32; expected shape \(3,\)",
        ),
        (
            FloatSteps(),
            r"FloatSteps\.on_rollout returned a step state whose leaf \.steps "
            r"has shape \(3,\) and dtype float32; expected shape \(3,\) and "
            r"dtype int32 as created by step_reset \(for every environment\)",
        ),
    ],
    ids=["unstacked", "dtype"],
)
def test_a_bad_rollout_state_is_named_before_training(
    callback: AbstractCallback[Any, Any, Any, Any], message: str
) -> None:
    algo, env, policy = _ppo()
    with pytest.raises(CallbackStateError, match=message):
        algo.train(
            env, policy, algo.steps_per_iteration, key=jr.key(0), callback=callback
        )
