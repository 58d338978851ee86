"""A random policy on CartPole: one jitted ``lax.scan`` with auto-reset.

Run with ``make demo`` (or ``.venv/bin/python examples/demo.py``).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Bool, Float

from lerax.env import CartPole, CartPoleState

STEPS = 2000

Carry = tuple[CartPoleState, Float[Array, ""]]


@eqx.filter_jit
def rollout(
    env: CartPole, key: jax.Array
) -> tuple[Float[Array, " steps"], Bool[Array, " steps"]]:
    """Run ``STEPS`` random steps; return each step's episode return so far and
    whether the episode ended there."""

    def step(carry: Carry, key: jax.Array) -> tuple[Carry, tuple[Array, Array]]:
        state, episode_return = carry
        k_action, k_step, k_reset = jr.split(key, 3)
        action = env.action_space.sample(key=k_action)
        ts = env.step(state, action, key=k_step)
        episode_return = episode_return + ts.reward
        reset_state, _ = env.reset(key=k_reset)
        next_state = jax.tree.map(
            lambda r, s: jnp.where(ts.done, r, s), reset_state, ts.state
        )
        next_return = jnp.where(ts.done, 0.0, episode_return)
        return (next_state, next_return), (episode_return, ts.done)

    k_reset, k_steps = jr.split(key)
    state, _ = env.reset(key=k_reset)
    init: Carry = (state, jnp.zeros((), jnp.float32))
    _, (returns, done) = jax.lax.scan(step, init, jr.split(k_steps, STEPS))
    return returns, done


def main() -> None:
    env = CartPole()
    returns, done = rollout(env, jr.key(0))
    episode_returns = np.asarray(returns)[np.asarray(done)]
    print(f"{env.name}: random policy, {STEPS} steps, {len(episode_returns)} episodes")
    print("first episode returns:", ", ".join(f"{r:.0f}" for r in episode_returns[:8]))
    print(
        f"mean return {episode_returns.mean():.1f} "
        f"(min {episode_returns.min():.0f}, max {episode_returns.max():.0f})"
    )


if __name__ == "__main__":
    main()
