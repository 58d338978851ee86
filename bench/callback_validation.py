"""Validation is free: a validated hook compiles to the same program as a bare one.

Times a stateful on_step hook over 100_000 steps in one jitted lax.scan,
called (a) bare and (b) through CallbackList, which validates the returned
state while tracing. Compile time is excluded; the two must run equally fast.

Usage: .venv/bin/python bench/callback_validation.py
"""

import time
from collections.abc import Callable
from typing import TypeVar, final

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, Int, PRNGKeyArray

from lerax.algorithm import PPO
from lerax.callback import (
    AbstractCallback,
    CallbackList,
    EmptyCallbackState,
    ResetContext,
    StepContext,
)
from lerax.env import CartPole
from lerax.policy import MLPActorCriticPolicy

S = TypeVar("S")


@final
class Stats(eqx.Module):
    steps: Int[Array, ""]
    ret: Float[Array, ""]
    best: Float[Array, ""]


@final
class EpisodeStats(AbstractCallback[EmptyCallbackState, Stats]):
    def step_reset(self, ctx: ResetContext, *, key: PRNGKeyArray) -> Stats:
        return Stats(jnp.array(0, jnp.int32), jnp.array(0.0), jnp.array(0.0))

    def on_step(self, ctx: StepContext[Stats], *, key: PRNGKeyArray) -> Stats:
        s = ctx.state
        ret = s.ret + ctx.reward
        return Stats(
            s.steps + 1,
            jnp.where(ctx.done, 0.0, ret),
            jnp.where(ctx.done, jnp.maximum(s.best, ret), s.best),
        )


def _wait(tree: object) -> None:
    for leaf in jax.tree.leaves(tree):
        if isinstance(leaf, jax.Array):
            leaf.block_until_ready()


def main() -> None:
    env = CartPole()
    policy = MLPActorCriticPolicy(env=env, key=jr.key(0))
    algo = PPO(num_envs=1, num_steps=8)
    cb = EpisodeStats()
    ctx0 = ResetContext(
        env=env,
        policy=policy,
        algorithm_state=(),
        algorithm=algo,
        total_timesteps=1,
        num_envs=1,
        run_index=jnp.array(0, jnp.int32),
    )
    obs = jnp.zeros(4, jnp.float32)

    def ctx(state: S, r: Array) -> StepContext[S]:
        return StepContext(
            state=state,
            env=env,
            policy=policy,
            algorithm_state=(),
            training_log={},
            observation=obs,
            action=jnp.array(0, jnp.int32),
            next_observation=obs,
            reward=r,
            terminated=r > 0.9,
            truncated=jnp.array(False),
            iteration_count=jnp.array(0, jnp.int32),
            num_timesteps=jnp.array(0, jnp.int32),
            locals={},
            algorithm=algo,
            run_index=jnp.array(0, jnp.int32),
            active=jnp.array(True),
        )

    key = jr.key(0)
    rewards = jr.uniform(key, (100_000,))

    def bare(state: Stats) -> Stats:
        return jax.lax.scan(
            lambda s, r: (cb.on_step(ctx(s, r), key=key), None), state, rewards
        )[0]

    validated_cb = CallbackList(cb)

    def validated(state: tuple[Stats]) -> tuple[Stats]:
        return jax.lax.scan(
            lambda s, r: (validated_cb.on_step(ctx(s, r), key=key), None),
            state,
            rewards,
        )[0]

    s0 = cb.step_reset(ctx0, key=key)
    runs: list[tuple[str, Callable[[], object]]] = [
        ("bare hook", lambda: jax.jit(bare)(s0)),
        ("validated (CallbackList)", lambda: jax.jit(validated)((s0,))),
    ]
    print(f"jax {jax.__version__}, device {jax.devices()[0]}")
    for name, fn in runs:
        _wait(fn())  # compile
        times = []
        for _ in range(20):
            t = time.perf_counter()
            _wait(fn())
            times.append(time.perf_counter() - t)
        times.sort()
        print(
            f"{name:28s} median {1e3 * times[10]:.3f} ms  best {1e3 * times[0]:.3f} ms per 100k steps"
        )


if __name__ == "__main__":
    main()
