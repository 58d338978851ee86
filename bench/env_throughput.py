"""CartPole throughput: Lerax vs gymnax vs Gymnasium's vector env.

Each JAX contender runs the same program: ``num_envs`` CartPoles vmapped inside
one jitted ``lax.scan`` of ``steps`` steps; each step draws the actions with
one ``jax.random.randint`` call, splits one key per environment, steps every
environment and auto-resets the finished ones (a fresh reset drawn from a split
of the step key, selected where ``done``), carrying states and observations.
The scan returns the summed reward, the number of finished episodes and a
checksum of the final observations, so no work is dead code. Compilation is
excluded (a warm-up call first); each timing blocks on the result; the repeats
of the two JAX contenders are interleaved so both see the same machine load;
we report the median and best of the repeats. Gymnasium runs ``make_vec(...,
vectorization_mode="sync")`` with same-step auto-reset and numpy-drawn random
actions, for fewer steps (it is far slower).

Run: ``.venv/bin/python bench/env_throughput.py`` (needs gymnax: ``make bench``
or ``.venv/bin/pip install gymnax``).
"""

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from importlib.metadata import version
from typing import Any, NamedTuple

import equinox as eqx
import gymnasium
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, Int

from lerax.env import CartPole, CartPoleState


class Totals(NamedTuple):
    """What a rollout returns: enough to keep every computation alive."""

    reward: Float[Array, ""]
    episodes: Int[Array, ""]
    checksum: Float[Array, ""]


Rollout = Callable[[jax.Array], Totals]


def lerax_rollout(num_envs: int, steps: int) -> Rollout:
    """Lerax's CartPole; the environment is an argument of the compiled program."""

    def one_env(
        env: CartPole, state: CartPoleState, action: Int[Array, ""], key: jax.Array
    ) -> tuple[CartPoleState, Float[Array, " 4"], Float[Array, ""], jax.Array]:
        k_step, k_reset = jr.split(key)
        ts = env.step(state, action, key=k_step)
        reset_state, reset_obs = env.reset(key=k_reset)
        done = ts.done
        state = jax.tree.map(lambda r, s: jnp.where(done, r, s), reset_state, ts.state)
        obs = jnp.where(done, reset_obs, ts.observation)
        return state, obs, ts.reward, done

    @eqx.filter_jit
    def run(env: CartPole, key: jax.Array) -> Totals:
        k_init, k_loop = jr.split(key)
        states, obs = jax.vmap(lambda k: env.reset(key=k))(jr.split(k_init, num_envs))

        def body(
            carry: tuple[CartPoleState, Float[Array, "n 4"], jax.Array, Totals],
            _: None,
        ) -> tuple[tuple[CartPoleState, Float[Array, "n 4"], jax.Array, Totals], None]:
            states, _obs, key, totals = carry
            key, k_act, k_step = jr.split(key, 3)
            actions = jr.randint(k_act, (num_envs,), 0, 2)
            states, obs, reward, done = jax.vmap(one_env, in_axes=(None, 0, 0, 0))(
                env, states, actions, jr.split(k_step, num_envs)
            )
            totals = Totals(
                totals.reward + reward.sum(),
                totals.episodes + done.sum(dtype=jnp.int32),
                totals.checksum,
            )
            return (states, obs, key, totals), None

        zero = Totals(jnp.zeros(()), jnp.zeros((), jnp.int32), jnp.zeros(()))
        (_, obs, _, totals), _ = jax.lax.scan(
            body, (states, obs, k_loop, zero), None, length=steps
        )
        return totals._replace(checksum=obs.sum())

    env = CartPole()
    return lambda key: run(env, key)


def gymnax_rollout(num_envs: int, steps: int) -> Rollout:
    """gymnax's CartPole-v1; its params are an argument of the compiled program.

    gymnax's ``step`` already splits the key and auto-resets (``select`` on
    ``done``), exactly what :func:`lerax_rollout` does by hand.
    """
    import gymnax  # pyright: ignore[reportMissingImports]  # the optional bench extra; untyped

    made: tuple[Any, Any] = gymnax.make("CartPole-v1")
    env, params = made

    def one_env(
        params: Any, state: Any, action: Int[Array, ""], key: jax.Array
    ) -> tuple[Any, Float[Array, " 4"], Float[Array, ""], jax.Array]:
        out: tuple[Any, Any, Any, Any, Any, Any] = env.step(key, state, action, params)
        obs, state, reward, terminated, truncated, _ = out
        return state, obs, reward, jnp.logical_or(terminated, truncated)

    @jax.jit
    def run(params: Any, key: jax.Array) -> Totals:
        k_init, k_loop = jr.split(key)

        def reset(k: jax.Array) -> tuple[Any, Any]:
            obs_and_state: tuple[Any, Any] = env.reset(k, params)
            return obs_and_state

        obs, states = jax.vmap(reset)(jr.split(k_init, num_envs))

        def body(
            carry: tuple[Any, Float[Array, "n 4"], jax.Array, Totals], _: None
        ) -> tuple[tuple[Any, Float[Array, "n 4"], jax.Array, Totals], None]:
            states, _obs, key, totals = carry
            key, k_act, k_step = jr.split(key, 3)
            actions = jr.randint(k_act, (num_envs,), 0, 2)
            states, obs, reward, done = jax.vmap(one_env, in_axes=(None, 0, 0, 0))(
                params, states, actions, jr.split(k_step, num_envs)
            )
            totals = Totals(
                totals.reward + reward.sum(),
                totals.episodes + done.sum(dtype=jnp.int32),
                totals.checksum,
            )
            return (states, obs, key, totals), None

        zero = Totals(jnp.zeros(()), jnp.zeros((), jnp.int32), jnp.zeros(()))
        (_, obs, _, totals), _ = jax.lax.scan(
            body, (states, obs, k_loop, zero), None, length=steps
        )
        return totals._replace(checksum=obs.sum())

    return lambda key: run(params, key)


def wait(totals: Totals) -> None:
    """Block until the rollout has finished computing."""
    for x in totals:
        x.block_until_ready()


def time_jax(
    rollouts: dict[str, Rollout], num_envs: int, steps: int, repeats: int
) -> dict[str, list[float]]:
    """Steps per second of each repeat of each rollout.

    Every rollout is compiled and run once first (not timed). The repeats are
    interleaved (A B, B A, A B, ...) so that both contenders see the same
    machine load; each repeat uses a new key.
    """
    for rollout in rollouts.values():
        wait(rollout(jr.key(0)))
    rates: dict[str, list[float]] = {name: [] for name in rollouts}
    names = list(rollouts)
    for i in range(repeats):
        for name in names if i % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            wait(rollouts[name](jr.key(i + 1)))
            rates[name].append(num_envs * steps / (time.perf_counter() - start))
    return rates


def time_gymnasium(num_envs: int, steps: int, repeats: int) -> list[float]:
    envs = gymnasium.make_vec(
        "CartPole-v1",
        num_envs=num_envs,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": gymnasium.vector.AutoresetMode.SAME_STEP},
    )
    rng = np.random.default_rng(0)
    envs.reset(seed=0)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            envs.step(rng.integers(0, 2, size=num_envs))
        rates.append(num_envs * steps / (time.perf_counter() - start))
    envs.close()
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(
        description="CartPole throughput: Lerax vs gymnax vs Gymnasium"
    )
    parser.add_argument("--num-envs", type=int, nargs="+", default=[1024, 4096])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--gym-steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--gym-repeats", type=int, default=3)
    args = parser.parse_args()

    print(
        f"jax {jax.__version__} ({jax.default_backend()}: {jax.devices()[0]}), "
        f"equinox {version('equinox')}, gymnax {version('gymnax')}, "
        f"gymnasium {gymnasium.__version__}, numpy {np.__version__}, "
        f"python {platform.python_version()}"
    )
    print(
        f"steps per run: {args.steps} (Gymnasium: {args.gym_steps}); "
        f"repeats: {args.repeats} (Gymnasium: {args.gym_repeats})\n"
    )
    header = f"{'num_envs':>8}  {'implementation':<22}{'median steps/s':>16}"
    print(f"{header}{'best steps/s':>16}{'median/gymnax':>15}{'best/gymnax':>13}")
    for n in args.num_envs:
        rollouts = {
            "lerax": lerax_rollout(n, args.steps),
            "gymnax": gymnax_rollout(n, args.steps),
        }
        results = time_jax(rollouts, n, args.steps, args.repeats)
        results["gymnasium (sync vec)"] = time_gymnasium(
            n, args.gym_steps, args.gym_repeats
        )
        ref_median = statistics.median(results["gymnax"])
        ref_best = max(results["gymnax"])
        for name, rates in results.items():
            median, best = statistics.median(rates), max(rates)
            print(
                f"{n:>8}  {name:<22}{median:>16,.0f}{best:>16,.0f}"
                f"{median / ref_median:>15.3f}{best / ref_best:>13.3f}"
            )


if __name__ == "__main__":
    main()
