"""What logging costs: PPO on CartPole, 2**16 steps, logging every iteration.

Compares, in one process and alternating the variants so they see the same
machine load, the steady-state wall time of ``PPO().train`` (compile excluded:
each variant is called once before timing) with

- no callback,
- ``LoggingCallback([ConsoleBackend(), TensorBoardBackend()])``,
- ``LoggingCallback([JSONLBackend()])``,
- no callback and no Ctrl-C poll (``interruptible=False``): its ratio to
  "no callback" is one over what the poll costs.

The console writes to a non-terminal file (plain lines), as in CI or a pipe.
A new ``LoggingCallback`` is built for every timed call, as a user would do for
a new run; it must reuse the compiled program.

With ``--diag``, two more variants show where the time goes: a
``LoggingCallback`` whose backend does nothing, logging every iteration
(the host calls and the training-log computation, no I/O), and the same with
``log_every=10**6`` (only the last iteration is sent: the per-step episode
statistics and the compiled-in host calls that do not fire).

Usage: .venv/bin/python bench/logging_overhead.py [repeats] [--diag] [--raw]
(``--raw`` also prints every timed call).
"""

import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import jax
import jax.random as jr
from rich.console import Console

from lerax.algorithm import PPO
from lerax.callback import (
    AbstractLoggingBackend,
    ConsoleBackend,
    HParamValue,
    JSONLBackend,
    LoggingCallback,
    RunInfo,
    TensorBoardBackend,
)
from lerax.env import CartPole
from lerax.policy import MLPActorCriticPolicy

TOTAL = 2**16


class NullBackend(AbstractLoggingBackend):
    """A backend that does nothing (diagnostics only)."""

    def open(self, run: RunInfo) -> None:
        pass

    def log_hparams(self, hparams: Mapping[str, HParamValue], run_index: int) -> None:
        pass

    def log_scalars(
        self, scalars: Mapping[str, float], step: int, run_index: int
    ) -> None:
        pass

    def finish(self, run_index: int) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def _wait(tree: object) -> None:
    for leaf in jax.tree.leaves(tree):
        if isinstance(leaf, jax.Array):
            leaf.block_until_ready()


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    diag = "--diag" in sys.argv[1:]
    repeats = int(args[0]) if args else 7
    env = CartPole()
    policy = MLPActorCriticPolicy(env=env, key=jr.key(0))
    algo = PPO()
    out = tempfile.mkdtemp()
    sink = open(Path(out) / "console.txt", "w")  # noqa: SIM115  (closed below)

    def none(key: jax.Array) -> None:
        _wait(algo.train(env, policy, TOTAL, key=key))

    def not_interruptible(key: jax.Array) -> None:
        _wait(algo.train(env, policy, TOTAL, key=key, interruptible=False))

    def console_tb(key: jax.Array) -> None:
        logger = LoggingCallback(
            [ConsoleBackend(console=Console(file=sink)), TensorBoardBackend(out)],
            log_every=1,  # one environment step: every iteration
        )
        _wait(algo.train(env, policy, TOTAL, key=key, callback=logger))
        logger.close()

    def jsonl(key: jax.Array) -> None:
        logger = LoggingCallback([JSONLBackend(Path(out) / "log.jsonl")], log_every=1)
        _wait(algo.train(env, policy, TOTAL, key=key, callback=logger))
        logger.close()

    def null(log_every: int) -> Callable[[jax.Array], None]:
        def run(key: jax.Array) -> None:
            logger = LoggingCallback([NullBackend()], log_every=log_every)
            _wait(algo.train(env, policy, TOTAL, key=key, callback=logger))
            logger.close()

        return run

    variants: list[tuple[str, Callable[[jax.Array], None]]] = [
        ("no callback", none),
        ("no poll (interruptible=False)", not_interruptible),
        ("Console + TensorBoard", console_tb),
        ("JSONL", jsonl),
    ]
    if diag:
        variants += [
            ("no-op backend", null(1)),
            ("no-op, log_every=10**6", null(10**6)),
        ]
    compile_s: dict[str, float] = {}
    for name, fn in variants:
        t = time.perf_counter()
        fn(jr.key(0))
        compile_s[name] = time.perf_counter() - t
    times: dict[str, list[float]] = {name: [] for name, _ in variants}
    for r in range(repeats):
        for name, fn in variants:
            t = time.perf_counter()
            fn(jr.key(r + 1))
            times[name].append(time.perf_counter() - t)
    sink.close()

    base = times["no callback"]
    print(f"jax {jax.__version__}; PPO() on CartPole, {TOTAL} steps, {repeats} repeats")
    print(
        f"{'variant':30s} {'first call':>10s} {'median':>8s} {'min':>8s} "
        f"{'ratio (median)':>15s} {'ratio (min)':>12s} {'ratio (paired)':>15s}"
    )
    for name, _ in variants:
        ts = times[name]
        if "--raw" in sys.argv[1:]:
            print(name, " ".join(f"{t:.3f}" for t in ts))
        # Each repeat's time over the no-callback time of the same repeat
        # (adjacent calls): the median of these resists slow drifts in load.
        paired = statistics.median(t / b for t, b in zip(ts, base, strict=True))
        print(
            f"{name:30s} {compile_s[name]:9.2f}s {statistics.median(ts):7.3f}s "
            f"{min(ts):7.3f}s {statistics.median(ts) / statistics.median(base):15.3f} "
            f"{min(ts) / min(base):12.3f} {paired:15.3f}"
        )


if __name__ == "__main__":
    main()
