"""What the non-finite guard costs: ``train(check_finite=True)`` (the default)
against ``check_finite=False``, per algorithm with its defaults (the same
algorithms, environments, policies and budgets as
``bench/logging_per_algorithm.py``, and ``sac-256``: SAC with
``MLPSACPolicy``'s own defaults, 256x256 ReLU networks). Targets: at most 1 % of a default
``PPO()`` iteration and 2 % of a default ``SAC()`` iteration.

Each variant is called once first (compilation); then, in every repeat,
the variants run one after the other with a fresh key, blocking until the
result is ready, in an order that rotates from repeat to repeat (the first
call of a repeat tends to be the fastest, and a fixed order biases the
ratio by a few percent on a 2-core machine). Reported: the medians, and the
"paired" ratio (the median over repeats of a variant's time over the
unguarded time of the same repeat). The control, the unguarded program run a
second time in each repeat, shows the noise floor: its paired ratio would be
1 on a perfectly quiet machine. Without a callback the update computes no
training log, so the guard checks rewards, observations and parameters;
``--logged`` adds a callback that reads the log (``LoggingCallback`` with
a JSONL file), so the declared losses are checked as well.

Run: ``.venv/bin/python bench/non_finite_guard.py [--only ppo sac]
[--repeats 31] [--budget sac=1024 ...] [--logged]``.
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
from logging_per_algorithm import (
    CONTENDERS,
    Compilations,
    Contender,
    parse_budgets,
    ready,
)

from lerax.algorithm import SAC
from lerax.callback import JSONLBackend, LoggingCallback
from lerax.env import Pendulum
from lerax.policy import MLPSACPolicy

TARGETS = {"ppo": 1.01, "sac": 1.02, "sac-256": 1.02}

# The other benchmarks' contenders, and SAC with the policy's own defaults
# (256x256 ReLU networks, where those give SAC 64x64 swish networks).
GUARD_CONTENDERS: dict[str, Contender] = {
    **CONTENDERS,
    "sac-256": Contender(
        SAC, Pendulum, lambda env, key: MLPSACPolicy(env, key=key), 1024, 512
    ),
}


def run(name: str, repeats: int, logged: bool, out: Path, budget: int) -> float:
    """Time one algorithm with and without the guard; print and return the
    paired ratio."""
    contender = GUARD_CONTENDERS[name]
    algo = contender.make_algorithm()
    env = contender.make_env()
    policy = contender.make_policy(env, jr.key(0))
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

    variants = {
        "unguarded": variant(False),
        "control": variant(False),
        "guarded": variant(True),
    }
    for fn in variants.values():
        fn(jr.key(1))
    times: dict[str, list[float]] = {label: [] for label in variants}
    compilations = Compilations()
    labels = list(variants)
    for r in range(repeats):
        shift = r % len(labels)
        for label in labels[shift:] + labels[:shift]:
            start = time.perf_counter()
            variants[label](jr.key(r + 2))
            times[label].append(time.perf_counter() - start)

    def paired_ratio(label: str) -> float:
        return statistics.median(
            t / u for t, u in zip(times[label], times["unguarded"], strict=True)
        )

    paired = paired_ratio("guarded")
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
        f"control {paired_ratio('control'):.4f}, "
        f"recompiles {compilations.count}",
        flush=True,
    )
    return paired


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeats", type=int, default=31)
    parser.add_argument("--budget", nargs="*", default=[], help="name=steps")
    parser.add_argument("--only", nargs="+", choices=sorted(GUARD_CONTENDERS))
    parser.add_argument("--logged", action="store_true")
    args = parser.parse_args()
    print(f"jax {jax.__version__} ({jax.default_backend()})")
    budgets = parse_budgets(args.budget, GUARD_CONTENDERS)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only or list(GUARD_CONTENDERS):
            budget = budgets.get(name, GUARD_CONTENDERS[name].budget)
            run(name, args.repeats, args.logged, Path(tmp), budget)


if __name__ == "__main__":
    main()
