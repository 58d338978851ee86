"""What the non-finite guard costs: ``train(check_finite=True)`` (the default)
against ``check_finite=False``, per algorithm with its defaults (the same
algorithms, environments, policies and budgets as
``bench/logging_per_algorithm.py``). Targets: at most 1 % of a default
``PPO()`` iteration and 2 % of a default ``SAC()`` iteration.

Each variant is called once first (compilation); then, in every repeat, the
two variants run one after the other (interleaved, so they see the same load)
with a fresh key, blocking until the result is ready. Reported: the medians,
and the "paired" ratio (the median over repeats of guarded / unguarded time
of the same repeat). Without a callback the update computes no training log,
so the guard checks rewards, observations and parameters; ``--logged`` adds a
callback that reads the log (``LoggingCallback`` with no backend... a JSONL
file), so the declared losses are checked as well.

Run: ``.venv/bin/python bench/non_finite_guard.py [--only ppo sac]
[--repeats 9] [--logged]``.
"""

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.random as jr
from jaxtyping import PRNGKeyArray
from logging_per_algorithm import CONTENDERS, Compilations, ready

from lerax.callback import JSONLBackend, LoggingCallback

TARGETS = {"ppo": 1.01, "sac": 1.02}


def run(name: str, repeats: int, logged: bool, out: Path) -> float:
    """Time one algorithm with and without the guard; print and return the
    paired ratio."""
    contender = CONTENDERS[name]
    algo = contender.make_algorithm()
    env = contender.make_env()
    policy = contender.make_policy(env, jr.key(0))
    budget = contender.budget
    ready(policy)

    def variant(check: bool) -> Callable[[PRNGKeyArray], None]:
        def call(key: PRNGKeyArray) -> None:
            if logged:
                logger = LoggingCallback([JSONLBackend(out / f"{name}-{check}")])
                result = algo.train(
                    env, policy, budget, key=key, callback=logger, check_finite=check
                )
                ready(result)
                logger.close()
            else:
                ready(algo.train(env, policy, budget, key=key, check_finite=check))

        return call

    variants = {"unguarded": variant(False), "guarded": variant(True)}
    for fn in variants.values():
        fn(jr.key(1))
    times: dict[str, list[float]] = {label: [] for label in variants}
    compilations = Compilations()
    for r in range(repeats):
        for label, fn in variants.items():
            start = time.perf_counter()
            fn(jr.key(r + 2))
            times[label].append(time.perf_counter() - start)
    paired = statistics.median(
        g / u for g, u in zip(times["guarded"], times["unguarded"], strict=True)
    )
    iterations = algo.num_iterations(budget)
    print(
        f"{name}: {type(algo).__name__}() on {type(env).__name__}, {budget} steps "
        f"({iterations} iterations), {repeats} repeats, "
        f"{'with a logging callback' if logged else 'no callback'}"
    )
    for label, ts in times.items():
        print(
            f"  {label:10s} median {statistics.median(ts):.3f}s "
            f"({1e6 * statistics.median(ts) / iterations:.0f} us/iteration)"
        )
    print(
        f"  paired ratio {paired:.4f} (target <= {TARGETS.get(name, '-')}), "
        f"recompiles {compilations.count}",
        flush=True,
    )
    return paired


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--only", nargs="+", choices=sorted(CONTENDERS))
    parser.add_argument("--logged", action="store_true")
    args = parser.parse_args()
    print(f"jax {jax.__version__} ({jax.default_backend()})")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only or list(CONTENDERS):
            run(name, args.repeats, args.logged, Path(tmp))


if __name__ == "__main__":
    main()
