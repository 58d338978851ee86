"""A hyperparameter sweep in one program against the same runs one by one:
wall time with compilation.

An 8-member learning-rate sweep (learning rates log-spaced over a range
around the algorithm's default; every member trains with the same key and the
same initial policy) of ``PPO()`` on CartPole (``--algo sac``: ``SAC()`` on
Pendulum with a 64x64 swish ``MLPSACPolicy``), trained three ways:

- **sweep, one program**: a batch of algorithms built by stacking the 8
  concrete ``PPO(learning_rate=lr)`` along a leading axis, trained by
  ``eqx.filter_jit(eqx.filter_vmap(train))`` (one trace, one compilation,
  the 8 members side by side);
- **separate, compile each**: the 8 runs one after another, each
  ``PPO(learning_rate=lr).train(...)`` after ``jax.clear_caches()``, so each
  traces and compiles its program again, as 8 fresh processes (or scripts)
  would, without their import time;
- **separate, one program**: the 8 runs one after another in one process:
  float hyperparameters are array leaves, so the first call compiles and the
  other 7 (other learning rates) reuse its program.

Every variant starts from empty caches (``jax.clear_caches()``), after a
small warm-up run that takes the process's one-time costs. Each timing
blocks until every array of the result is ready. Reported per variant: the
wall time of the whole variant (compilation included), the ratio to the
sweep, and the XLA compilations it ran (count and seconds, from JAX's
monitoring events); then the sweep's steady time (a second, compiled call)
and the separate runs' steady time (the median of the 7 reusing calls, times
the number of members), which separate compilation from training.

Run: ``.venv/bin/python bench/sweep.py`` (``--algo ppo|sac``, ``--timesteps``
per member, default 2**16 for PPO and 8192 for SAC; ``--members``;
``--repeats`` runs the three variants that many times, rotating their order,
and reports medians; ``--quick``: 3 members, a short budget, a smoke run).
"""

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import equinox as eqx
import jax
import jax.monitoring
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import PRNGKeyArray

from lerax.algorithm import PPO, SAC, AbstractAlgorithm
from lerax.env import AbstractEnv, CartPole, Pendulum
from lerax.policy import AbstractPolicy, MLPActorCriticPolicy, MLPSACPolicy

Algorithm = AbstractAlgorithm[Any, Any]
Policy = AbstractPolicy[Any, Any]
Env = AbstractEnv[Any, Any, Any]

COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


@dataclass(frozen=True)
class Setup:
    """One algorithm's sweep: environment, policy, algorithm of a learning
    rate, the learning-rate range and the default budget per member."""

    make_env: Callable[[], Env]
    make_policy: Callable[[Env, PRNGKeyArray], Policy]
    make_algorithm: Callable[[float], Algorithm]
    learning_rates: tuple[float, float]
    timesteps: int
    quick_timesteps: int


def ppo_policy(env: Env, key: PRNGKeyArray) -> Policy:
    return MLPActorCriticPolicy(env, key=key)


def sac_policy(env: Env, key: PRNGKeyArray) -> Policy:
    return MLPSACPolicy(env, key=key, hidden_sizes=(64, 64), activation=jax.nn.swish)


SETUPS: dict[str, Setup] = {
    "ppo": Setup(
        CartPole,
        ppo_policy,
        lambda lr: PPO(learning_rate=lr),
        (1e-4, 3e-3),
        2**16,
        2048,
    ),
    "sac": Setup(
        Pendulum,
        sac_policy,
        lambda lr: SAC(learning_rate=lr),
        (1e-3, 3e-2),
        8192,
        512,
    ),
}


class Compilations:
    """Counts XLA compilations and their seconds (JAX's monitoring events)."""

    def __init__(self) -> None:
        self.count = 0
        self.seconds = 0.0
        jax.monitoring.register_event_duration_secs_listener(self.record)

    def record(self, event: str, duration_secs: float, **kwargs: str | int) -> None:
        if event == COMPILE_EVENT:
            self.count += 1
            self.seconds += duration_secs

    def snapshot(self) -> tuple[int, float]:
        return self.count, self.seconds


def clear_caches() -> None:
    """Drop every compiled program and trace: the next call compiles anew."""
    jax.clear_caches()  # type: ignore[no-untyped-call]  # jax's untyped helper


def ready(tree: Any) -> None:
    """Block until every array of ``tree`` is computed."""
    for leaf in jax.tree.leaves(tree):
        if isinstance(leaf, jax.Array):
            leaf.block_until_ready()


@dataclass
class Measured:
    """One variant's wall time (s) and XLA compilations (count, s)."""

    wall: float
    compiles: int
    compile_s: float


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--algo", choices=sorted(SETUPS), default="ppo")
    parser.add_argument("--timesteps", type=int, help="per member")
    parser.add_argument("--members", type=int)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    args = parser.parse_args()
    setup = SETUPS[args.algo]
    timesteps: int = args.timesteps or (
        setup.quick_timesteps if args.quick else setup.timesteps
    )
    members: int = args.members or (3 if args.quick else 8)

    env = setup.make_env()
    policy = setup.make_policy(env, jr.key(0))
    key = jr.key(1)
    low, high = setup.learning_rates
    rates = [float(r) for r in np.geomspace(low, high, members, dtype=np.float32)]
    algorithms = [setup.make_algorithm(r) for r in rates]
    name = type(algorithms[0]).__name__
    print(
        f"jax {jax.__version__} ({jax.default_backend()}), devices {jax.devices()}; "
        f"{name} on {type(env).__name__}, {members} members x {timesteps} steps, "
        f"learning rates {', '.join(f'{r:.3g}' for r in rates)}",
        flush=True,
    )

    def train(algo: Algorithm, policy: Policy, key: PRNGKeyArray) -> Any:
        return algo.train(env, policy, timesteps, key=key)

    # The process's one-time costs (backend start, first trace) go here.
    warm_up = setup.make_algorithm(rates[0])
    ready(warm_up.train(env, policy, setup.quick_timesteps, key=key))

    compilations = Compilations()

    def measure(run: Callable[[], None]) -> Measured:
        clear_caches()
        count, seconds = compilations.snapshot()
        start = time.perf_counter()
        run()
        wall = time.perf_counter() - start
        count2, seconds2 = compilations.snapshot()
        return Measured(wall, count2 - count, seconds2 - seconds)

    sweep_steady: list[float] = []
    separate_steady: list[float] = []

    compiled_sweep: list[Callable[[], None]] = []

    def sweep() -> None:
        stacked: Algorithm = jax.tree.map(lambda *xs: jnp.stack(xs), *algorithms)
        run = eqx.filter_jit(eqx.filter_vmap(train, in_axes=(0, None, None)))
        ready(run(stacked, policy, key))
        compiled_sweep[:] = [lambda: ready(run(stacked, policy, key))]

    def compile_each() -> None:
        for algo in algorithms:
            clear_caches()
            ready(train(algo, policy, key))

    def one_program() -> None:
        times = []
        for algo in algorithms:
            start = time.perf_counter()
            ready(train(algo, policy, key))
            times.append(time.perf_counter() - start)
        if len(times) > 1:
            separate_steady.append(statistics.median(times[1:]) * members)

    variants: list[tuple[str, Callable[[], None]]] = [
        ("sweep, one program", sweep),
        ("separate, compile each", compile_each),
        ("separate, one program", one_program),
    ]
    results: dict[str, list[Measured]] = {label: [] for label, _ in variants}
    for r in range(args.repeats):
        for label, run in variants[r % 3 :] + variants[: r % 3]:
            measured = measure(run)
            results[label].append(measured)
            if run is sweep:
                # A second call reuses the program: the sweep's training alone.
                start = time.perf_counter()
                compiled_sweep[0]()
                sweep_steady.append(time.perf_counter() - start)
            print(
                f"  repeat {r}: {label}: {measured.wall:.2f} s "
                f"({measured.compiles} compilations, {measured.compile_s:.2f} s)",
                flush=True,
            )

    base = statistics.median(m.wall for m in results["sweep, one program"])
    print(
        f"{'variant':26s} {'wall (with compile)':>20s} {'/ sweep':>8s} "
        f"{'XLA compiles':>13s} {'compile s':>10s}"
    )
    for label, _ in variants:
        ms = results[label]
        wall = statistics.median(m.wall for m in ms)
        print(
            f"{label:26s} {wall:19.2f}s {wall / base:8.2f} "
            f"{statistics.median(m.compiles for m in ms):13g} "
            f"{statistics.median(m.compile_s for m in ms):10.2f}"
        )
    steps = members * timesteps
    sweep_s = statistics.median(sweep_steady)
    print(
        f"steady (compiled, training only): sweep {sweep_s:.2f} s "
        f"({steps / sweep_s:,.0f} env steps/s)",
        end="",
    )
    if separate_steady:
        sep = statistics.median(separate_steady)
        print(
            f"; {members} separate runs {sep:.2f} s ({steps / sep:,.0f} env "
            f"steps/s); ratio {sep / sweep_s:.2f}"
        )
    else:
        print()


if __name__ == "__main__":
    main()
