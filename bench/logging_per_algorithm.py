"""What logging costs with every algorithm's defaults: ``LoggingCallback``'s
and ``ProgressBarCallback``'s default cadence is in environment steps, so
logging should cost at most 5 % with each algorithm's defaults.

For each algorithm with its defaults (``PPO()`` and ``A2C()`` on CartPole with
``MLPActorCriticPolicy``; ``DQN()`` on CartPole with a dueling swish
``MLPQPolicy``; ``SAC()`` and ``TD3()`` on Pendulum with 64x64 swish
``MLPSACPolicy`` / ``MLPDeterministicPolicy``), compares the steady-state wall
time of ``algo.train(env, policy, budget, key=key, callback=...)`` with

- no callback,
- ``LoggingCallback([ConsoleBackend(...), TensorBoardBackend(...)])`` with the
  default ``log_every``,
- ``ProgressBarCallback(...)`` with the default ``update_every``.

The console and the progress bar write to a non-terminal file (plain lines,
as in CI or a pipe), TensorBoard to a temporary directory. A new callback is
built for every call, as a user would do for a new run; it must reuse the
compiled program: each variant is called once first (compilation, reported as
"first call"), and the XLA compilations during the timed calls are counted
(JAX's monitoring events; the column "recompiles" should read 0). Within each
repeat the variants run one after another (alternated), so they see the same
machine load. Every timing blocks until the result is ready.

Reported per algorithm and variant: the first call, the median and the
minimum of the timed calls, and three ratios to "no callback": of the medians,
of the minima, and "paired" (the median over repeats of each call's time over
the no-callback call of the same repeat, which resists slow drifts in load),
with a 95 % bootstrap interval for that paired median (the repeats resampled:
how precisely this run pins the ratio down).

Run: ``.venv/bin/python bench/logging_per_algorithm.py`` (``--repeats``,
default 7; ``--only ppo a2c ...``; ``--budget sac=4096 ...`` changes a
budget, in environment steps per call; ``--quick``: 2 repeats, small
budgets, a smoke run; ``--raw`` also prints every timed call).
"""

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import jax
import jax.monitoring
import jax.random as jr
from jaxtyping import PRNGKeyArray
from rich.console import Console

from lerax.algorithm import A2C, DQN, PPO, SAC, TD3, AbstractAlgorithm
from lerax.callback import (
    ConsoleBackend,
    LoggingCallback,
    ProgressBarCallback,
    TensorBoardBackend,
)
from lerax.env import AbstractEnv, CartPole, Pendulum
from lerax.policy import (
    AbstractPolicy,
    MLPActorCriticPolicy,
    MLPDeterministicPolicy,
    MLPQPolicy,
    MLPSACPolicy,
)

Algorithm = AbstractAlgorithm[Any, Any]
Policy = AbstractPolicy[Any, Any]
Env = AbstractEnv[Any, Any, Any]

COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
TARGET = 1.05


@dataclass(frozen=True)
class Contender:
    """An algorithm with its defaults, its environment and policy, and its
    budget per call (full and ``--quick``)."""

    make_algorithm: Callable[[], Algorithm]
    make_env: Callable[[], Env]
    make_policy: Callable[[Env, PRNGKeyArray], Policy]
    budget: int
    quick_budget: int


def actor_critic(env: Env, key: PRNGKeyArray) -> Policy:
    return MLPActorCriticPolicy(env, key=key)


def q_policy(env: Env, key: PRNGKeyArray) -> Policy:
    return MLPQPolicy(env, key=key, dueling=True, activation=jax.nn.swish)


def sac_policy(env: Env, key: PRNGKeyArray) -> Policy:
    return MLPSACPolicy(env, key=key, hidden_sizes=(64, 64), activation=jax.nn.swish)


def td3_policy(env: Env, key: PRNGKeyArray) -> Policy:
    return MLPDeterministicPolicy(
        env, key=key, hidden_sizes=(64, 64), activation=jax.nn.swish
    )


# Budgets: a few seconds per call on a CPU, and above each algorithm's
# default ``learning_starts`` (DQN 5000, SAC 256, TD3 1000) so they learn.
CONTENDERS: dict[str, Contender] = {
    "ppo": Contender(PPO, CartPole, actor_critic, 2**16, 2048),
    "a2c": Contender(A2C, CartPole, actor_critic, 2**16, 2048),
    "dqn": Contender(DQN, CartPole, q_policy, 2**15, 8192),
    "sac": Contender(SAC, Pendulum, sac_policy, 4096, 512),
    "td3": Contender(TD3, Pendulum, td3_policy, 8192, 2048),
}


class Compilations:
    """Counts XLA compilations (JAX's monitoring events)."""

    def __init__(self) -> None:
        self.count = 0
        jax.monitoring.register_event_duration_secs_listener(self.record)

    def record(self, event: str, duration_secs: float, **kwargs: str | int) -> None:
        if event == COMPILE_EVENT:
            self.count += 1


def ready(tree: Any) -> None:
    """Block until every array of ``tree`` is computed."""
    for leaf in jax.tree.leaves(tree):
        if isinstance(leaf, jax.Array):
            leaf.block_until_ready()


def paired_interval(
    ratios: list[float], level: float = 0.95, resamples: int = 4000
) -> tuple[float, float]:
    """A percentile-bootstrap interval (``level``) for the median of the
    paired ratios: how far the reported median could be from the machine's
    true ratio, given this run's spread (seeded, so a rerun on the same
    timings prints the same interval)."""
    rng = random.Random(0)
    medians = sorted(
        statistics.median(rng.choices(ratios, k=len(ratios))) for _ in range(resamples)
    )
    tail = (1.0 - level) / 2.0
    return medians[int(tail * resamples)], medians[int((1.0 - tail) * resamples) - 1]


def parse_budgets(
    items: list[str], names: Collection[str] = tuple(CONTENDERS)
) -> dict[str, int]:
    """``name=steps`` pairs, ``name`` one of ``names``."""
    out: dict[str, int] = {}
    for item in items:
        name, _, steps = item.partition("=")
        if name not in names:
            raise SystemExit(f"--budget: unknown algorithm {name!r}")
        out[name] = int(steps)
    return out


def run(
    contender: Contender,
    budget: int,
    repeats: int,
    out: Path,
    sink: IO[str],
    compilations: Compilations,
    raw: bool,
) -> float:
    """Time one algorithm's variants; print its table and return its largest
    paired ratio."""
    algo = contender.make_algorithm()
    env = contender.make_env()
    policy = contender.make_policy(env, jr.key(0))
    ready(policy)

    def none(key: PRNGKeyArray) -> None:
        ready(algo.train(env, policy, budget, key=key))

    def logging(key: PRNGKeyArray) -> None:
        logger = LoggingCallback(
            [ConsoleBackend(console=Console(file=sink)), TensorBoardBackend(out)]
        )
        ready(algo.train(env, policy, budget, key=key, callback=logger))
        logger.close()

    def progress(key: PRNGKeyArray) -> None:
        bar = ProgressBarCallback(console=Console(file=sink))
        ready(algo.train(env, policy, budget, key=key, callback=bar))

    variants: list[tuple[str, Callable[[PRNGKeyArray], None]]] = [
        ("no callback", none),
        ("Console + TensorBoard", logging),
        ("progress bar", progress),
    ]
    first: dict[str, float] = {}
    for label, fn in variants:
        key = jr.key(1)
        start = time.perf_counter()
        fn(key)
        first[label] = time.perf_counter() - start
    times: dict[str, list[float]] = {label: [] for label, _ in variants}
    recompiles: dict[str, int] = {label: 0 for label, _ in variants}
    for r in range(repeats):
        for label, fn in variants:
            key = jr.key(r + 2)
            before = compilations.count
            start = time.perf_counter()
            fn(key)
            times[label].append(time.perf_counter() - start)
            recompiles[label] += compilations.count - before

    print(
        f"{type(algo).__name__}() on {type(env).__name__}, {budget} steps "
        f"({algo.num_iterations(budget)} iterations), {repeats} repeats"
    )
    print(
        f"  {'variant':24s} {'first call':>10s} {'median':>8s} {'min':>8s} "
        f"{'ratio (median)':>15s} {'ratio (min)':>12s} {'ratio (paired)':>15s} "
        f"{'paired 95% CI':>15s} {'recompiles':>10s}"
    )
    base = times["no callback"]
    worst = 0.0
    for label, _ in variants:
        ts = times[label]
        if raw:
            print(f"  {label}: {' '.join(f'{t:.3f}' for t in ts)}")
        ratios = [t / b for t, b in zip(ts, base, strict=True)]
        paired = statistics.median(ratios)
        low, high = paired_interval(ratios)
        if label != "no callback":
            worst = max(worst, paired)
        print(
            f"  {label:24s} {first[label]:9.2f}s {statistics.median(ts):7.3f}s "
            f"{min(ts):7.3f}s "
            f"{statistics.median(ts) / statistics.median(base):15.3f} "
            f"{min(ts) / min(base):12.3f} {paired:15.3f} "
            f"{f'[{low:.3f}, {high:.3f}]':>15s} {recompiles[label]:10d}",
            flush=True,
        )
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--only", nargs="+", choices=sorted(CONTENDERS))
    parser.add_argument("--budget", nargs="*", default=[], help="name=steps")
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--raw", action="store_true", help="print every call")
    args = parser.parse_args()
    repeats: int = args.repeats or (2 if args.quick else 7)
    budgets = parse_budgets(args.budget)
    names: list[str] = args.only or list(CONTENDERS)
    print(f"jax {jax.__version__} ({jax.default_backend()}), devices {jax.devices()}")
    compilations = Compilations()
    worst: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        with open(out / "console.txt", "w") as sink:
            for name in names:
                contender = CONTENDERS[name]
                budget = budgets.get(
                    name, contender.quick_budget if args.quick else contender.budget
                )
                worst[name] = run(
                    contender,
                    budget,
                    repeats,
                    out,
                    sink,
                    compilations,
                    args.raw,
                )
    print(
        f"largest paired ratio per algorithm (target <= {TARGET}): "
        + ", ".join(f"{name} {ratio:.3f}" for name, ratio in worst.items())
    )


if __name__ == "__main__":
    main()
