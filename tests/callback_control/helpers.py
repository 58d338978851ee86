"""Small callbacks and settings the control-callback tests share."""

import threading
from typing import Any, final

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, Int, PRNGKeyArray
from typing_extensions import override

from lerax._host import host_call, new_token
from lerax.algorithm import PPO
from lerax.callback import (
    AbstractCallback,
    EmptyCallbackState,
    EmptyCallbackStepState,
    IterationContext,
    ResetContext,
    StepContext,
)
from lerax.env import AbstractEnv, CartPole, TimeStep
from lerax.policy import MLPActorCriticPolicy
from lerax.space import Box, Discrete

ENV = CartPole()
POLICY = MLPActorCriticPolicy(ENV, key=jr.key(0))
#: 2 envs x 4 steps: 8 environment steps per iteration.
ALGO = PPO(num_envs=2, num_steps=4, num_epochs=1, num_minibatches=1)
STEPS = ALGO.steps_per_iteration


@final
class IterationPublisher(AbstractCallback[EmptyCallbackState, EmptyCallbackStepState]):
    """Publishes ``test/iteration``: the iteration count, so that a stopper
    reading it stops at a known iteration."""

    @override
    def metrics(
        self, ctx: IterationContext[Any, Any, Any, Any], *, key: PRNGKeyArray
    ) -> dict[str, Float[Array, ""]]:
        return {"test/iteration": ctx.iteration_count.astype(jnp.float32)}


@final
class HostLog:
    """What the counting host calls saw: ``(run, iteration, active)`` per row
    of each batched call, in order."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rows: list[tuple[int, int, bool]] = []

    def __call__(self, record: Any, run_index: int, runs: int) -> None:
        iteration, active = record
        with self.lock:
            self.rows.append((run_index, int(iteration), bool(active)))

    def fired(self, run: int) -> list[int]:
        """The iterations at which run ``run`` fired (was active)."""
        return [it for r, it, active in self.rows if r == run and active]

    def batched_calls(self) -> int:
        """Host calls made: every call has a row for run 0."""
        return sum(1 for r, _, _ in self.rows if r == 0)


@final
class Token(eqx.Module):
    token: Int[Array, ""]


@final
class Counting(AbstractCallback[Token, EmptyCallbackStepState]):
    """A host call at every ``on_iteration`` (for every run, with its
    ``active`` flag, so that the host sees each batched call), and the
    iteration published as ``inner/fired``."""

    log: HostLog = eqx.field(static=True)

    @override
    def reset(self, ctx: ResetContext[Any, Any], *, key: PRNGKeyArray) -> Token:
        return Token(new_token())

    @override
    def on_iteration(
        self, ctx: IterationContext[Token, Any, Any, Any], *, key: PRNGKeyArray
    ) -> Token:
        record = (ctx.iteration_count, ctx.active)
        return Token(host_call(self.log, record, ctx.run_index, ctx.state.token))

    @override
    def metrics(
        self, ctx: IterationContext[Token, Any, Any, Any], *, key: PRNGKeyArray
    ) -> dict[str, Float[Array, ""]]:
        return {"inner/fired": ctx.iteration_count.astype(jnp.float32)}


@final
class Fired(eqx.Module):
    """The iterations at which a ``Recorder`` fired, in order (0: unused)."""

    iterations: Int[Array, " slots"]
    count: Int[Array, ""]


@final
class Steps(eqx.Module):
    """One environment's steps, counted by ``Recorder.on_step``."""

    steps: Int[Array, ""]


@final
class Recorder(AbstractCallback[Fired, Steps]):
    """Records the iterations at which its ``on_iteration`` runs, publishes
    how many times it ran as ``inner/count`` and counts every step."""

    @override
    def reset(self, ctx: ResetContext[Any, Any], *, key: PRNGKeyArray) -> Fired:
        return Fired(jnp.zeros((16,), jnp.int32), jnp.zeros((), jnp.int32))

    @override
    def step_reset(self, ctx: ResetContext[Any, Any], *, key: PRNGKeyArray) -> Steps:
        return Steps(jnp.zeros((), jnp.int32))

    @override
    def on_step(self, ctx: StepContext[Steps, Any, Any], *, key: PRNGKeyArray) -> Steps:
        return Steps(ctx.state.steps + 1)

    @override
    def on_iteration(
        self, ctx: IterationContext[Fired, Steps, Any, Any], *, key: PRNGKeyArray
    ) -> Fired:
        s = ctx.state
        iteration = jnp.asarray(ctx.iteration_count, jnp.int32)
        return Fired(s.iterations.at[s.count].set(iteration), s.count + 1)

    @override
    def metrics(
        self, ctx: IterationContext[Fired, Steps, Any, Any], *, key: PRNGKeyArray
    ) -> dict[str, Float[Array, ""]]:
        return {"inner/count": ctx.state.count.astype(jnp.float32)}


@final
class Endless(AbstractEnv[Int[Array, ""], Float[Array, " 4"], Int[Array, ""]]):
    """CartPole's spaces, reward 1 at every step, never done, no time limit."""

    observation_space: Box = eqx.field(static=True)
    action_space: Discrete = eqx.field(static=True)
    max_episode_steps: int | None = eqx.field(static=True)

    def __init__(self) -> None:
        self.observation_space = ENV.observation_space
        self.action_space = ENV.action_space
        self.max_episode_steps = None

    @override
    def reset(self, *, key: PRNGKeyArray) -> tuple[Int[Array, ""], Float[Array, " 4"]]:
        return jnp.zeros((), jnp.int32), jnp.zeros((4,), jnp.float32)

    @override
    def step(
        self, state: Int[Array, ""], action: Int[Array, ""], *, key: PRNGKeyArray
    ) -> TimeStep[Int[Array, ""], Float[Array, " 4"]]:
        false = jnp.zeros((), jnp.bool_)
        return TimeStep(
            state=state + 1,
            observation=jnp.zeros((4,), jnp.float32),
            reward=jnp.ones((), jnp.float32),
            terminated=false,
            truncated=false,
        )
