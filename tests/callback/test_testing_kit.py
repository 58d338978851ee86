"""lerax.callback.testing: contexts built as the training loop builds them, and
hooks run as the loop runs them."""

from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any, assert_type, final

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray
from typing_extensions import override

from lerax.algorithm import DQN, PPO
from lerax.callback import (
    HOOKS,
    AbstractCallback,
    CallbackList,
    CallbackStateError,
    EmptyCallbackState,
    EmptyCallbackStepState,
    IterationContext,
    ResetContext,
    RolloutContext,
    StepContext,
    TrainingContext,
    num_runs,
)
from lerax.callback.testing import (
    batch_contexts,
    initial_states,
    iteration_context,
    reset_context,
    rollout_context,
    run_hook,
    run_hook_vmapped,
    step_context,
    training_context,
)
from lerax.env import AbstractEnv, CartPole, ContinuousMountainCar
from lerax.policy import MLPActorCriticPolicy, MLPQPolicy
from lerax.space import Box

from .callbacks import EpisodeCounter, EpisodeStepState

ENV = CartPole()
POLICY = MLPActorCriticPolicy(env=ENV, key=jr.key(0))
ALGO = PPO(num_envs=2, num_steps=4, num_epochs=1, num_minibatches=1)
TOTAL = ALGO.steps_per_iteration  # one iteration
KEY = jr.key(1)


@final
class Count(eqx.Module):
    n: Int[Array, ""]


def _count(n: int = 0) -> Count:
    return Count(jnp.asarray(n, jnp.int32))


Sink = Callable[[str, Any], None]


@final
class Recorder(AbstractCallback[Count, Count]):
    """Hands every context it gets to ``sink`` (while training is traced)."""

    sink: Sink = eqx.field(static=True)

    @override
    def reset(self, ctx: ResetContext, *, key: PRNGKeyArray) -> Count:
        self.sink("reset", ctx)
        return _count()

    @override
    def step_reset(self, ctx: ResetContext, *, key: PRNGKeyArray) -> Count:
        self.sink("step_reset", ctx)
        return _count()

    @override
    def on_step(self, ctx: StepContext[Count], *, key: PRNGKeyArray) -> Count:
        self.sink("on_step", ctx)
        return ctx.state

    @override
    def on_rollout(self, ctx: RolloutContext[Count], *, key: PRNGKeyArray) -> Count:
        self.sink("on_rollout", ctx)
        return ctx.state

    @override
    def on_iteration(
        self, ctx: IterationContext[Count, Count], *, key: PRNGKeyArray
    ) -> Count:
        self.sink("on_iteration", ctx)
        return ctx.state

    @override
    def continue_training(
        self, ctx: IterationContext[Count, Count], *, key: PRNGKeyArray
    ) -> Bool[Array, ""]:
        self.sink("continue_training", ctx)
        return jnp.array(True)

    @override
    def on_training_start(
        self, ctx: TrainingContext[Count, Count], *, key: PRNGKeyArray
    ) -> Count:
        self.sink("on_training_start", ctx)
        return ctx.state

    @override
    def on_training_end(
        self, ctx: TrainingContext[Count, Count], *, key: PRNGKeyArray
    ) -> Count:
        self.sink("on_training_end", ctx)
        return ctx.state


def describe(ctx: Any) -> tuple[Any, list[tuple[Any, ...]]]:
    """A context's pytree structure (static fields, dict keys such as the
    training log's and ``locals``' included) and each leaf's shape, dtype and
    weak type: what a hook can tell about it before it runs."""
    leaves, treedef = jax.tree.flatten(ctx)
    kinds = [(x.shape, x.dtype, jax.typeof(x).weak_type) for x in leaves]
    return treedef, kinds


COUNTERS = ("iteration_count", "num_timesteps", "run_index", "active")


def counters(ctx: Any) -> dict[str, Any]:
    return {name: getattr(ctx, name) for name in COUNTERS if hasattr(ctx, name)}


Recorded = tuple[dict[str, list[Any]], dict[str, list[dict[str, Any]]]]


@pytest.fixture(scope="module")
def recorded() -> Recorded:
    """What the loop gives each hook in a real one-iteration PPO run: the
    contexts' descriptions (at trace time) and counters (at run time)."""
    seen: dict[str, list[Any]] = defaultdict(list)
    values: dict[str, list[dict[str, Any]]] = defaultdict(list)

    def sink(hook: str, ctx: Any) -> None:
        seen[hook].append(describe(ctx))

        def record(counts: dict[str, Any]) -> None:
            values[hook].append({k: np.asarray(v).item() for k, v in counts.items()})

        jax.debug.callback(record, counters(ctx))

    result = ALGO.train(ENV, POLICY, TOTAL, key=jr.key(2), callback=Recorder(sink))
    jax.effects_barrier()  # type: ignore[no-untyped-call]  # untyped in jax
    assert int(result.iterations) == 1
    return seen, values


def kit_contexts() -> dict[str, Any]:
    """The kit's context for each hook of that run."""
    reset = reset_context(ENV, POLICY, ALGO, key=KEY)
    stacked = Count(jnp.zeros((ALGO.num_envs,), jnp.int32))
    iteration = iteration_context(
        ENV, POLICY, ALGO, key=KEY, state=_count(), step_state=stacked
    )
    return {
        "reset": reset,
        "step_reset": reset,
        "on_step": step_context(ENV, POLICY, ALGO, key=KEY, state=_count()),
        "on_rollout": rollout_context(ENV, POLICY, ALGO, key=KEY, state=stacked),
        "on_iteration": iteration,
        "continue_training": iteration,
        "on_training_start": training_context(
            ENV, POLICY, ALGO, key=KEY, state=_count(), step_state=stacked
        ),
        "on_training_end": training_context(
            ENV, POLICY, ALGO, key=KEY, state=_count(), step_state=stacked, iteration=1
        ),
    }


def test_every_context_is_built_as_the_loop_builds_it(recorded: Recorded) -> None:
    seen, _ = recorded
    kit = kit_contexts()
    assert set(seen) == set(kit)
    for hook, ctx in kit.items():
        loop_treedef, loop_kinds = seen[hook][0]
        kit_treedef, kit_kinds = describe(ctx)
        assert kit_treedef == loop_treedef, hook
        assert kit_kinds == loop_kinds, hook


def test_counters_and_flags_equal_the_loops(recorded: Recorded) -> None:
    _, values = recorded
    kit = {hook: counters(ctx) for hook, ctx in kit_contexts().items()}
    for hook, counts in kit.items():
        got = {k: np.asarray(v).item() for k, v in counts.items()}
        # the kit's step is the first of the run (num_timesteps 0 at step 0)
        assert got == values[hook][0], hook
    # (the counters are the same for every environment: one call per step)
    steps = values["on_step"]
    assert [s["num_timesteps"] for s in steps] == [0, 2, 4, 6]
    assert {s["iteration_count"] for s in steps} == {0}
    assert {s["active"] for s in steps} == {True}
    # one on_rollout per iteration, counted before its rollout (as on_step's first)
    assert values["on_rollout"] == [
        {"iteration_count": 0, "num_timesteps": 0, "run_index": 0, "active": True}
    ]
    assert values["on_training_end"][0]["num_timesteps"] == TOTAL


def test_step_context_defaults() -> None:
    ctx = step_context(ENV, POLICY, ALGO, key=KEY, state=_count())
    assert ctx.env is ENV and ctx.policy is POLICY and ctx.algorithm is ALGO
    assert set(ctx.locals) == {"log_prob", "value"}
    assert dict(ctx.training_log).keys() == ALGO.initial_training_log().keys()
    assert all(float(v) == 0.0 for v in ctx.training_log.values())
    assert ctx.reward.dtype == jnp.float32 and ctx.terminated.dtype == jnp.bool_
    assert ctx.iteration_count.dtype == jnp.int32 and int(ctx.iteration_count) == 0
    assert bool(ctx.active) and int(ctx.run_index) == 0
    # the observation is env.reset's, the next one env.step's
    assert ctx.observation.shape == ctx.next_observation.shape == (4,)
    # a later iteration: counters as the loop gives the first step of it
    later = step_context(ENV, POLICY, ALGO, key=KEY, state=_count(), iteration=2)
    assert int(later.iteration_count) == 2
    assert int(later.num_timesteps) == 2 * ALGO.steps_per_iteration
    stacked = Count(jnp.zeros((ALGO.num_envs,), jnp.int32))
    end = training_context(
        ENV, POLICY, ALGO, key=KEY, state=_count(), step_state=stacked, iteration=3
    )
    assert int(end.iteration_count) == 3
    assert int(end.num_timesteps) == end.total_timesteps == 3 * TOTAL


def test_overrides_replace_fields_with_the_loops_dtypes() -> None:
    ctx = step_context(
        ENV,
        POLICY,
        ALGO,
        key=KEY,
        state=_count(),
        reward=2.0,
        terminated=True,
        active=False,
        run_index=2,
        num_timesteps=6,
        training_log={"loss": 0.5},
    )
    assert ctx.reward.dtype == jnp.float32 and float(ctx.reward) == 2.0
    assert bool(ctx.done) and not bool(ctx.active)
    assert ctx.run_index.dtype == jnp.int32 and int(ctx.run_index) == 2
    assert ctx.num_timesteps.dtype == jnp.int32 and int(ctx.num_timesteps) == 6
    assert float(ctx.training_log["loss"]) == 0.5
    assert ctx.training_log["loss"].dtype == jnp.float32
    assert float(ctx.training_log["entropy"]) == 0.0  # the rest stays zero


def test_builders_infer_the_context_types() -> None:
    reset = reset_context(ENV, POLICY, ALGO, key=KEY)
    assert_type(reset, ResetContext[CartPole, MLPActorCriticPolicy[Array], Any])
    step = step_context(ENV, POLICY, ALGO, key=KEY, state=_count())
    assert_type(step, StepContext[Count, CartPole, MLPActorCriticPolicy[Array], Any])
    out = run_hook(EpisodeCounter(), "step_reset", reset, key=KEY)
    assert_type(out, EpisodeStepState)
    rollout = rollout_context(ENV, POLICY, ALGO, key=KEY, state=_episodes())
    assert_type(
        rollout,
        RolloutContext[EpisodeStepState, CartPole, MLPActorCriticPolicy[Array], Any],
    )
    after = run_hook(RolloutEpisodes(), "on_rollout", rollout, key=KEY)
    assert_type(after, EpisodeStepState)


def test_run_hook_returns_validated_states() -> None:
    cb = EpisodeCounter()
    reset = reset_context(ENV, POLICY, ALGO, key=KEY)
    state, step_states = initial_states(cb, reset, key=KEY)
    assert step_states.steps.shape == (ALGO.num_envs,)
    step = run_hook(cb, "step_reset", reset, key=KEY)
    ctx = step_context(
        ENV, POLICY, ALGO, key=KEY, state=step, reward=2.0, terminated=True
    )
    out = run_hook(cb, "on_step", ctx, key=KEY)
    assert int(out.episodes) == 1 and float(out.last_return) == 2.0
    jitted = run_hook(cb, "on_step", ctx, key=KEY, jit=True)
    for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(jitted), strict=True):
        np.testing.assert_array_equal(a, b)
    it = iteration_context(
        ENV, POLICY, ALGO, key=KEY, state=state, step_state=step_states
    )
    new = run_hook(cb, "on_iteration", it, key=KEY)
    assert int(new.iterations) == 1 and int(new.last_timesteps) == TOTAL
    flag = run_hook(cb, "continue_training", it, key=KEY, jit=True)
    assert flag.dtype == jnp.bool_ and bool(flag)


@final
class FloatingStep(AbstractCallback[EmptyCallbackState, Count]):
    """A mistake: ``on_step`` turns the int32 count into a float."""

    @override
    def step_reset(self, ctx: ResetContext, *, key: PRNGKeyArray) -> Count:
        return _count()

    @override
    def on_step(self, ctx: StepContext[Count], *, key: PRNGKeyArray) -> Count:
        return Count(ctx.state.n.astype(jnp.float32) + ctx.reward)


def _training_error(callback: Any) -> str:
    with pytest.raises(CallbackStateError) as info:
        ALGO.train(ENV, POLICY, TOTAL, key=KEY, callback=callback)
    return str(info.value)


@pytest.mark.parametrize("jit", [False, True])
def test_a_bad_state_raises_what_training_raises(jit: bool) -> None:
    ctx = step_context(ENV, POLICY, ALGO, key=KEY, state=_count())
    with pytest.raises(CallbackStateError) as info:
        run_hook(FloatingStep(), "on_step", ctx, key=KEY, jit=jit)
    assert str(info.value) == _training_error(FloatingStep())
    assert "FloatingStep.on_step" in str(info.value)


def test_a_bad_member_state_raises_what_training_raises() -> None:
    cb = CallbackList(EpisodeCounter(), FloatingStep())
    reset = reset_context(ENV, POLICY, ALGO, key=KEY)
    step = run_hook(cb, "step_reset", reset, key=KEY)
    ctx = step_context(ENV, POLICY, ALGO, key=KEY, state=step)
    with pytest.raises(CallbackStateError) as info:
        run_hook(cb, "on_step", ctx, key=KEY)
    assert str(info.value) == _training_error(cb)
    assert str(info.value).startswith("CallbackList member 1 (FloatingStep)")


@final
class Seen(eqx.Module):
    live_steps: Int[Array, ""]
    runs: Int[Array, ""]
    index: Int[Array, ""]


@final
class LiveSteps(AbstractCallback[EmptyCallbackState, Seen]):
    """Counts the steps of runs that are still active (a stopped seed's
    ``on_step`` still runs under vmap), and what the run indices say."""

    @override
    def step_reset(self, ctx: ResetContext, *, key: PRNGKeyArray) -> Seen:
        z = jnp.zeros((), jnp.int32)
        return Seen(z, z, z)

    @override
    def on_step(self, ctx: StepContext[Seen], *, key: PRNGKeyArray) -> Seen:
        return Seen(
            ctx.state.live_steps + ctx.active.astype(jnp.int32),
            num_runs(ctx.run_index),
            ctx.run_index,
        )


def test_a_batch_with_a_stopped_seed_gives_per_member_results() -> None:
    cb = LiveSteps()
    reset = reset_context(ENV, POLICY, ALGO, key=KEY)
    step = run_hook(cb, "step_reset", reset, key=KEY)
    active = [True, False, True]
    members = [
        step_context(
            ENV, POLICY, ALGO, key=jr.key(i), state=step, run_index=i, active=a
        )
        for i, a in enumerate(active)
    ]
    batch = batch_contexts(members)
    assert batch.active.shape == (3,) and batch.reward.shape == (3,)
    np.testing.assert_array_equal(batch.active, active)
    keys = jr.split(KEY, 3)
    for jit in (False, True):
        out = run_hook_vmapped(cb, "on_step", batch, keys=keys, jit=jit)
        np.testing.assert_array_equal(out.live_steps, [1, 0, 1])
        np.testing.assert_array_equal(out.index, [0, 1, 2])
        np.testing.assert_array_equal(out.runs, [3, 3, 3])  # as under vmap in training
    # each member alone: the same, but one run
    for i, member in enumerate(members):
        alone = run_hook(cb, "on_step", member, key=keys[i])
        assert int(alone.live_steps) == int(active[i]) and int(alone.runs) == 1


def test_a_batch_of_iteration_contexts() -> None:
    cb = EpisodeCounter()
    reset = reset_context(ENV, POLICY, ALGO, key=KEY)
    state, steps = initial_states(cb, reset, key=KEY)
    batch = batch_contexts(
        [
            iteration_context(
                ENV,
                POLICY,
                ALGO,
                key=KEY,
                state=state,
                step_state=steps,
                run_index=i,
                active=i != 1,
            )
            for i in range(3)
        ]
    )
    out = run_hook_vmapped(cb, "on_iteration", batch, keys=jr.split(KEY, 3))
    np.testing.assert_array_equal(out.iterations, [1, 1, 1])
    flags = run_hook_vmapped(cb, "continue_training", batch, keys=jr.split(KEY, 3))
    assert flags.shape == (3,) and flags.dtype == jnp.bool_


# -- on_rollout ------------------------------------------------------------------


def _episodes(**fields: Any) -> EpisodeStepState:
    """Every environment's ``EpisodeStepState`` (ALGO.num_envs of them, stacked),
    zero but for ``fields``."""
    dtypes = dict(
        steps=jnp.int32,
        episodes=jnp.int32,
        reward_sum=jnp.float32,
        episode_return=jnp.float32,
        last_return=jnp.float32,
    )
    return EpisodeStepState(
        **{
            name: jnp.asarray(fields.get(name, [0] * ALGO.num_envs), dtype)
            for name, dtype in dtypes.items()
        }
    )


@final
class RolloutEpisodes(AbstractCallback[EmptyCallbackState, EpisodeStepState]):
    """EpisodeCounter's per-environment statistics, from the whole rollout at
    once (a scan over its steps, every environment at a time)."""

    @override
    def step_reset(self, ctx: ResetContext, *, key: PRNGKeyArray) -> EpisodeStepState:
        z = jnp.array(0, jnp.int32)
        f = jnp.array(0.0, jnp.float32)
        return EpisodeStepState(z, z, f, f, f)

    @override
    def on_rollout(
        self, ctx: RolloutContext[EpisodeStepState], *, key: PRNGKeyArray
    ) -> EpisodeStepState:
        def step(
            s: EpisodeStepState, xs: tuple[Array, Array]
        ) -> tuple[EpisodeStepState, None]:
            reward, done = xs
            ret = s.episode_return + reward
            return EpisodeStepState(
                steps=s.steps + 1,
                episodes=s.episodes + done.astype(jnp.int32),
                reward_sum=s.reward_sum + reward,
                episode_return=jnp.where(done, 0.0, ret),
                last_return=jnp.where(done, ret, s.last_return),
            ), None

        state, _ = jax.lax.scan(step, ctx.state, (ctx.rewards, ctx.dones))
        return state


# Hand-chosen transitions of ALGO's rollout (4 steps, 2 environments):
# environment 0 ends an episode at step 1 (truncated), environment 1 at step 3.
REWARDS = np.arange(8, dtype=np.float32).reshape(4, 2)  # env 0: 0 2 4 6; env 1: 1 3 5 7
TERMINATED = [[False, False], [False, False], [False, False], [False, True]]
TRUNCATED = np.array([[False, False], [True, False], [False, False], [False, False]])


def _hand_rollout(
    state: EpisodeStepState, **overrides: Any
) -> RolloutContext[EpisodeStepState, CartPole, MLPActorCriticPolicy[Array], Any]:
    """ALGO's rollout with the hand-chosen transitions (and ``overrides``)."""
    transitions: dict[str, Any] = dict(
        rewards=REWARDS, terminated=TERMINATED, truncated=TRUNCATED
    )
    return rollout_context(
        ENV, POLICY, ALGO, key=KEY, state=state, **(transitions | overrides)
    )


def _written_out(
    env: AbstractEnv[Any, Any, Any],
    policy: MLPActorCriticPolicy[Any],
    algo: PPO,
    key: PRNGKeyArray,
    iteration: int,
) -> dict[str, Any]:
    """The rollout of iteration ``iteration``, written out step by step and
    environment by environment from the kit's keys: env.reset, then the
    algorithm's act and env.step (a Box action clipped to its bounds), and a
    new episode (env.reset) after one ends."""
    k_algorithm, k_reset, k_steps = jr.split(key, 3)
    num_iterations = algo.num_iterations((iteration + 1) * algo.steps_per_iteration)
    algorithm_state = algo.init_state(env, policy, num_iterations, key=k_algorithm)
    n, steps = algo.num_envs, algo.num_steps
    step_keys = jr.split(k_steps, steps * n * 3).reshape(steps, n, 3)
    envs = [env.reset(key=k) for k in jr.split(k_reset, n)]
    rows = []
    for t in range(steps):
        row = []
        for e in range(n):
            env_state, obs = envs[e]
            k_act, k_step, k_new = step_keys[t, e]
            timestep = jnp.asarray(iteration * algo.steps_per_iteration + t * n)
            action, extras = algo.act(
                policy, algorithm_state, obs, timestep=timestep, key=k_act
            )
            space = env.action_space
            sent = action
            if isinstance(space, Box):
                sent = jnp.clip(action, jnp.asarray(space.low), jnp.asarray(space.high))
            ts = env.step(env_state, sent, key=k_step)
            row.append(
                dict(
                    observations=obs,
                    actions=action,
                    next_observations=ts.observation,
                    rewards=ts.reward,
                    terminated=ts.terminated,
                    truncated=ts.truncated,
                    locals=extras,
                )
            )
            done = bool(ts.terminated) or bool(ts.truncated)
            envs[e] = env.reset(key=k_new) if done else (ts.state, ts.observation)
        rows.append(jax.tree.map(lambda *xs: jnp.stack(xs), *row))
    written: dict[str, Any] = jax.tree.map(lambda *xs: jnp.stack(xs), *rows)
    return written


@pytest.mark.parametrize(
    "env", [CartPole(), ContinuousMountainCar()], ids=["discrete", "box"]
)
def test_rollout_context_is_the_rollout_written_out(
    env: AbstractEnv[Any, Any, Any],
) -> None:
    """Its defaults are the loop's rollout: every step's act and env.step,
    automatic resets, clipped Box actions, per-step counters passed to act."""
    policy = MLPActorCriticPolicy(env=env, key=jr.key(3))
    algo = PPO(num_envs=2, num_steps=24, num_epochs=1, num_minibatches=1)
    key, iteration = jr.key(4), 1
    stacked = Count(jnp.zeros((2,), jnp.int32))
    ctx = rollout_context(
        env, policy, algo, key=key, state=stacked, iteration=iteration
    )
    want = _written_out(env, policy, algo, key, iteration)
    for name, expected in want.items():
        got = getattr(ctx, name)
        assert str(jax.tree.structure(got)) == str(jax.tree.structure(expected)), name
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
            assert a.shape == b.shape and a.shape[:2] == (24, 2), name
            assert a.dtype == b.dtype, name
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=name)
    assert ctx.state is stacked
    assert int(ctx.iteration_count) == iteration
    assert int(ctx.num_timesteps) == iteration * algo.steps_per_iteration == 48
    if isinstance(env.action_space, Box):
        # actions are recorded as the policy produced them; the env got them clipped
        assert bool((jnp.abs(ctx.actions) > 1.0).any())
    else:
        # episodes ended within the rollout: the automatic reset was exercised
        assert bool(ctx.dones.any())


def test_rollout_context_defaults() -> None:
    ctx = rollout_context(ENV, POLICY, ALGO, key=KEY, state=_episodes())
    steps, envs = ALGO.num_steps, ALGO.num_envs
    assert ctx.env is ENV and ctx.policy is POLICY and ctx.algorithm is ALGO
    assert ctx.observations.shape == ctx.next_observations.shape == (steps, envs, 4)
    assert ctx.actions.shape == (steps, envs) and ctx.actions.dtype == jnp.int32
    for name in ("rewards", "terminated", "truncated"):
        assert getattr(ctx, name).shape == (steps, envs), name
    assert ctx.rewards.dtype == jnp.float32 and ctx.terminated.dtype == jnp.bool_
    np.testing.assert_array_equal(ctx.rewards, np.ones((steps, envs)))  # CartPole
    assert ctx.dones.shape == (steps, envs) and ctx.dones.dtype == jnp.bool_
    assert {k: v.shape for k, v in ctx.locals.items()} == {
        "log_prob": (steps, envs),
        "value": (steps, envs),
    }
    assert dict(ctx.training_log).keys() == ALGO.initial_training_log().keys()
    assert all(float(v) == 0.0 for v in ctx.training_log.values())
    assert ctx.iteration_count.dtype == ctx.num_timesteps.dtype == jnp.int32
    assert int(ctx.iteration_count) == 0 and int(ctx.num_timesteps) == 0
    assert bool(ctx.active) and int(ctx.run_index) == 0
    # each step's observation follows the last one's, as no episode ended here
    assert not bool(ctx.dones.any())
    np.testing.assert_array_equal(ctx.observations[1:], ctx.next_observations[:-1])
    later = rollout_context(ENV, POLICY, ALGO, key=KEY, state=_episodes(), iteration=2)
    assert int(later.iteration_count) == 2
    assert int(later.num_timesteps) == 2 * ALGO.steps_per_iteration


def test_rollout_overrides_replace_fields_with_the_loops_dtypes() -> None:
    ctx = _hand_rollout(
        _episodes(), active=False, run_index=1, training_log={"loss": 0.5}
    )
    np.testing.assert_array_equal(ctx.rewards, REWARDS)
    assert ctx.rewards.dtype == jnp.float32 and ctx.terminated.dtype == jnp.bool_
    np.testing.assert_array_equal(ctx.terminated, TERMINATED)
    np.testing.assert_array_equal(ctx.dones, np.logical_or(TERMINATED, TRUNCATED))
    assert not bool(ctx.active) and int(ctx.run_index) == 1
    assert ctx.run_index.dtype == jnp.int32
    assert float(ctx.training_log["loss"]) == 0.5
    # integers are rewards too; a JAX array of the loop's kind is taken as is
    ints = rollout_context(
        ENV, POLICY, ALGO, key=KEY, state=_episodes(), rewards=[[1, 2]] * 4
    )
    assert ints.rewards.dtype == jnp.float32 and float(ints.rewards.sum()) == 12.0
    truncated = jnp.ones((4, 2), jnp.bool_)
    assert (
        rollout_context(
            ENV, POLICY, ALGO, key=KEY, state=_episodes(), truncated=truncated
        ).truncated
        is truncated
    )


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            {"rewards": np.ones((2, 4))},
            r"rewards must be a float32 array of shape \(4, 2\)",
        ),
        ({"rewards": 1.0}, r"rewards must be a float32 array of shape \(4, 2\)"),
        ({"rewards": jnp.ones((4, 2), jnp.int32)}, r"rewards must be a float32 array"),
        ({"rewards": np.ones((4, 2), bool)}, r"rewards must be .* of numbers"),
        (
            {"terminated": np.ones((4, 2))},
            r"terminated must be a bool array .* of bools",
        ),
        ({"truncated": [[True], [False]]}, r"truncated must be a bool array of shape"),
        ({"iteration_count": 1.5}, r"iteration_count must be a int32 scalar"),
    ],
)
def test_rollout_overrides_of_the_wrong_kind_are_refused(
    override: dict[str, Any], message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        rollout_context(ENV, POLICY, ALGO, key=KEY, state=_episodes(), **override)


def test_rollout_context_refuses_unknown_overrides_and_unstacked_states() -> None:
    with pytest.raises(
        TypeError,
        match=r"unexpected override reward=1\.0.*the fields of RolloutContext are "
        r"state, env, .*rewards",
    ):
        rollout_context(ENV, POLICY, ALGO, key=KEY, state=_episodes(), reward=1.0)
    with pytest.raises(TypeError, match=r"dones is a property.*terminated"):
        rollout_context(ENV, POLICY, ALGO, key=KEY, state=_episodes(), dones=True)
    with pytest.raises(ValueError, match=r"state must hold every environment"):
        rollout_context(ENV, POLICY, ALGO, key=KEY, state=_count())
    three = Count(jnp.zeros((3,), jnp.int32))
    with pytest.raises(
        ValueError, match=r"num_envs=2 environments .* leaf state\.n of shape \(3,\)"
    ):
        rollout_context(ENV, POLICY, ALGO, key=KEY, state=three)
    with pytest.raises(ValueError, match=r"iteration must be in \[0, 0\]"):
        rollout_context(
            ENV,
            POLICY,
            ALGO,
            key=KEY,
            state=_episodes(),
            iteration=1,
            total_timesteps=8,
        )


@pytest.mark.parametrize("jit", [False, True])
def test_run_hook_on_rollout(jit: bool) -> None:
    start = _episodes(steps=[5, 5], episode_return=[1.0, 0.5], last_return=[9.0, 9.0])
    ctx = _hand_rollout(start)
    out = run_hook(RolloutEpisodes(), "on_rollout", ctx, key=KEY, jit=jit)
    np.testing.assert_array_equal(out.steps, [9, 9])
    np.testing.assert_array_equal(out.episodes, [1, 1])
    np.testing.assert_array_equal(out.reward_sum, [12.0, 16.0])
    # env 0: 1 + 0 + 2 closes at step 1, then 4 + 6 runs on; env 1: 0.5 + 16 closes
    np.testing.assert_array_equal(out.last_return, [3.0, 16.5])
    np.testing.assert_array_equal(out.episode_return, [10.0, 0.0])
    assert out.steps.dtype == jnp.int32 and out.last_return.dtype == jnp.float32
    # the defaults (as for any callback that does not override on_rollout)
    # a callback that does not override on_rollout keeps the step states
    same = run_hook(EpisodeCounter(), "on_rollout", ctx, key=KEY, jit=jit)
    for a, b in zip(jax.tree.leaves(same), jax.tree.leaves(start), strict=True):
        np.testing.assert_array_equal(a, b)


def test_on_rollout_after_initial_states() -> None:
    """The step states initial_states builds go into rollout_context as is."""
    cb = RolloutEpisodes()
    reset = reset_context(ENV, POLICY, ALGO, key=KEY)
    _, steps = initial_states(cb, reset, key=KEY)
    ctx = rollout_context(ENV, POLICY, ALGO, key=KEY, state=steps)
    out = run_hook(cb, "on_rollout", ctx, key=KEY)
    np.testing.assert_array_equal(out.steps, [ALGO.num_steps] * ALGO.num_envs)
    np.testing.assert_array_equal(out.reward_sum, ctx.rewards.sum(axis=0))
    np.testing.assert_array_equal(out.episodes, ctx.dones.sum(axis=0))


def test_a_batch_of_rollout_contexts() -> None:
    start = _episodes(episode_return=[1.0, 0.5])
    batch = batch_contexts(
        [
            _hand_rollout(start, run_index=0),
            _hand_rollout(start, run_index=1, active=False),  # a stopped seed
            _hand_rollout(start, run_index=2, rewards=2 * REWARDS),
        ]
    )
    assert batch.rewards.shape == (3, 4, 2) and batch.state.steps.shape == (3, 2)
    np.testing.assert_array_equal(batch.active, [True, False, True])
    for jit in (False, True):
        out = run_hook_vmapped(
            RolloutEpisodes(), "on_rollout", batch, keys=jr.split(KEY, 3), jit=jit
        )
        assert out.steps.shape == (3, 2)
        np.testing.assert_array_equal(out.steps, [[4, 4]] * 3)
        np.testing.assert_array_equal(out.reward_sum, [[12, 16], [12, 16], [24, 32]])
        np.testing.assert_array_equal(
            out.last_return, [[3.0, 16.5], [3.0, 16.5], [5.0, 32.5]]
        )


@final
class FloatingRollout(AbstractCallback[EmptyCallbackState, Count]):
    """A mistake: ``on_rollout`` turns the int32 counts into floats."""

    @override
    def step_reset(self, ctx: ResetContext, *, key: PRNGKeyArray) -> Count:
        return _count()

    @override
    def on_rollout(self, ctx: RolloutContext[Count], *, key: PRNGKeyArray) -> Count:
        return Count(ctx.state.n.astype(jnp.float32) + ctx.rewards.sum(axis=0))


@final
class OneEnvRollout(AbstractCallback[EmptyCallbackState, Count]):
    """A mistake: ``on_rollout`` returns one environment's step state, not
    every environment's."""

    @override
    def step_reset(self, ctx: ResetContext, *, key: PRNGKeyArray) -> Count:
        return _count()

    @override
    def on_rollout(self, ctx: RolloutContext[Count], *, key: PRNGKeyArray) -> Count:
        return Count(ctx.state.n.sum())


@pytest.mark.parametrize("callback", [FloatingRollout(), OneEnvRollout()])
@pytest.mark.parametrize("jit", [False, True])
def test_a_bad_rollout_state_raises_what_training_raises(
    callback: AbstractCallback[EmptyCallbackState, Count], jit: bool
) -> None:
    stacked = Count(jnp.zeros((ALGO.num_envs,), jnp.int32))
    ctx = rollout_context(ENV, POLICY, ALGO, key=KEY, state=stacked)
    with pytest.raises(CallbackStateError) as info:
        run_hook(callback, "on_rollout", ctx, key=KEY, jit=jit)
    assert str(info.value) == _training_error(callback)
    assert f"{type(callback).__name__}.on_rollout" in str(info.value)


@final
class Publisher(AbstractCallback[Count, EmptyCallbackStepState]):
    """Publishes its count, and stops once another callback's score is high."""

    @override
    def reset(self, ctx: ResetContext, *, key: PRNGKeyArray) -> Count:
        return _count()

    @override
    def metrics(
        self, ctx: IterationContext[Count, EmptyCallbackStepState], *, key: PRNGKeyArray
    ) -> Mapping[str, Float[Array, ""]]:
        return {"test/count": ctx.state.n.astype(jnp.float32)}

    @override
    def continue_training(
        self, ctx: IterationContext[Count, EmptyCallbackStepState], *, key: PRNGKeyArray
    ) -> Bool[Array, ""]:
        return ctx.metrics["other/score"] < 10.0


def test_metrics_are_published_and_read() -> None:
    ctx = iteration_context(
        ENV,
        POLICY,
        ALGO,
        key=KEY,
        state=_count(3),
        step_state=EmptyCallbackStepState(),
        metrics={"other/score": 12.0},
    )
    assert ctx.metrics["other/score"].dtype == jnp.float32
    published = run_hook(Publisher(), "metrics", ctx, key=KEY)
    assert set(published) == {"test/count"} and float(published["test/count"]) == 3.0
    assert not bool(run_hook(Publisher(), "continue_training", ctx, key=KEY))
    assert (
        iteration_context(
            ENV,
            POLICY,
            ALGO,
            key=KEY,
            state=_count(),
            step_state=EmptyCallbackStepState(),
        ).metrics
        == {}
    )  # as training gives it when no callback publishes


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_runs(hook: Any) -> None:
    """The kit knows every hook (a new one in HOOKS must be added to it)."""
    cb = EpisodeCounter()
    reset = reset_context(ENV, POLICY, ALGO, key=KEY)
    state, steps = initial_states(cb, reset, key=KEY)
    step = run_hook(cb, "step_reset", reset, key=KEY)
    contexts: dict[str, Any] = {
        "reset": reset,
        "step_reset": reset,
        "on_step": step_context(ENV, POLICY, ALGO, key=KEY, state=step),
        "on_rollout": rollout_context(ENV, POLICY, ALGO, key=KEY, state=steps),
        "on_training_start": training_context(
            ENV, POLICY, ALGO, key=KEY, state=state, step_state=steps
        ),
        "on_training_end": training_context(
            ENV, POLICY, ALGO, key=KEY, state=state, step_state=steps, iteration=1
        ),
    }
    ctx = contexts.get(hook) or iteration_context(
        ENV, POLICY, ALGO, key=KEY, state=state, step_state=steps
    )
    run_hook(cb, hook, ctx, key=KEY)


def test_unknown_override_names_it_and_lists_the_fields() -> None:
    with pytest.raises(TypeError, match=r"unexpected override rewrad=1\.0.*reward"):
        step_context(ENV, POLICY, ALGO, key=KEY, state=_count(), rewrad=1.0)
    with pytest.raises(TypeError, match=r"done is a property.*terminated"):
        step_context(ENV, POLICY, ALGO, key=KEY, state=_count(), done=True)
    with pytest.raises(TypeError, match=r"the fields of ResetContext are env, policy"):
        reset_context(ENV, POLICY, ALGO, key=KEY, active=False)


def test_overrides_of_the_wrong_kind_are_refused() -> None:
    with pytest.raises(TypeError, match=r"reward must be a float32 scalar"):
        step_context(ENV, POLICY, ALGO, key=KEY, state=_count(), reward=jnp.array(1))
    with pytest.raises(TypeError, match=r"active must be a bool scalar"):
        step_context(ENV, POLICY, ALGO, key=KEY, state=_count(), active=1)
    with pytest.raises(ValueError, match=r"does not report: 'los'.*'loss'"):
        step_context(
            ENV, POLICY, ALGO, key=KEY, state=_count(), training_log={"los": 1.0}
        )


def test_unknown_hook_names_it_and_lists_the_hooks() -> None:
    ctx = step_context(ENV, POLICY, ALGO, key=KEY, state=_count())
    with pytest.raises(
        ValueError, match=r"hook='on_steps'; the hooks are reset, step_reset, on_step"
    ):
        run_hook(FloatingStep(), "on_steps", ctx, key=KEY)  # type: ignore[call-overload]  # deliberate misuse
    with pytest.raises(TypeError, match=r"'on_iteration' takes ctx: IterationContext"):
        run_hook(FloatingStep(), "on_iteration", ctx, key=KEY)  # type: ignore[call-overload]  # deliberate misuse


def test_bad_iterations_step_states_batches_and_keys_are_refused() -> None:
    with pytest.raises(ValueError, match=r"iteration must be in \[0, 1\]"):
        step_context(
            ENV, POLICY, ALGO, key=KEY, state=_count(), iteration=2, total_timesteps=16
        )
    with pytest.raises(ValueError, match=r"step_state must hold every environment"):
        iteration_context(
            ENV, POLICY, ALGO, key=KEY, state=_count(), step_state=_count()
        )
    a = step_context(ENV, POLICY, ALGO, key=KEY, state=_count())
    b = step_context(ENV, POLICY, ALGO, key=KEY, state=_count(), iteration=1)
    with pytest.raises(ValueError, match=r"contexts\[1\].algorithm_state"):
        batch_contexts([a, b])  # a longer run: another num_iterations
    with pytest.raises(ValueError, match=r"at least one context"):
        batch_contexts([])
    batch = batch_contexts([a, a])
    with pytest.raises(ValueError, match=r"one PRNG key per member"):
        run_hook_vmapped(FloatingStep(), "on_step", batch, keys=jr.split(KEY, 3))
    with pytest.raises(ValueError, match=r"must be a batch of contexts"):
        run_hook_vmapped(FloatingStep(), "on_step", a, keys=jr.split(KEY, 1))


def test_a_default_run_too_short_for_the_algorithm_says_so() -> None:
    policy = MLPQPolicy(env=ENV, key=jr.key(0))
    with pytest.raises(ValueError, match="learning_starts") as info:
        reset_context(ENV, policy, DQN(learning_starts=100, batch_size=64), key=KEY)
    assert "pass total_timesteps" in " ".join(info.value.__notes__)
    long = reset_context(
        ENV,
        policy,
        DQN(learning_starts=100, batch_size=64),
        key=KEY,
        total_timesteps=100,
    )
    assert long.total_timesteps == 100


def test_import_as_a_module() -> None:
    import lerax.callback.testing as kit

    assert kit.run_hook is run_hook
    assert set(kit.__all__) >= {
        "reset_context",
        "rollout_context",
        "run_hook",
        "batch_contexts",
    }
