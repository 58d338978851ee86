"""What checkpointing costs: ``CheckpointCallback(directory, every=total // 10)``
(a save every 10 % of the run, and at the end) against no callback, for
``PPO()`` on CartPole and for ``SAC(buffer_size=100_000)`` on Pendulum, with 1
and 8 seeds (``eqx.filter_vmap`` over keys: the batch is one checkpoint).

Each variant is called once first (compilation); then, in every repeat, the
two run one after the other with a fresh key and a fresh directory (on the
local disk, under a temporary directory), blocking until the result is
ready; ``train`` returns after every write has finished, so the time
includes them. Reported: medians, the paired ratio (median over repeats of
with / without), the size of one checkpoint, and the time per save.

Run: ``.venv/bin/python bench/checkpoint_cost.py [--repeats 5] [--only ppo sac]
[--seeds 1 8]``.
"""

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.random as jr
from jaxtyping import PRNGKeyArray
from logging_per_algorithm import ready

from lerax.algorithm import PPO, SAC
from lerax.checkpoint import CheckpointCallback
from lerax.env import CartPole, Pendulum
from lerax.policy import MLPActorCriticPolicy, MLPSACPolicy


def setup(name: str) -> tuple[Any, Any, Any, int]:
    """Algorithm, environment, policy and budget of one contender."""
    if name == "ppo":
        cartpole = CartPole()
        return PPO(), cartpole, MLPActorCriticPolicy(cartpole, key=jr.key(0)), 2**16
    env = Pendulum()
    policy = MLPSACPolicy(env, key=jr.key(0), hidden_sizes=(64, 64))
    return SAC(buffer_size=100_000), env, policy, 4096


def size(directory: Path) -> int:
    """Bytes under ``directory``."""
    return sum(f.stat().st_size for f in directory.rglob("*") if f.is_file())


def run(name: str, seeds: int, repeats: int, tmp: Path) -> None:
    algo, env, policy, budget = setup(name)
    every = budget // 10
    counter = iter(range(10**9))

    def variant(save: bool) -> Callable[[PRNGKeyArray], Path | None]:
        def call(key: PRNGKeyArray) -> Path | None:
            directory = tmp / f"{name}-{seeds}-{next(counter)}"
            callback = CheckpointCallback(directory, every=every) if save else None

            def one(k: PRNGKeyArray) -> Any:
                return algo.train(env, policy, budget, key=k, callback=callback)

            if seeds == 1:
                ready(one(key))
            else:
                ready(eqx.filter_vmap(one)(jr.split(key, seeds)))
            return directory if save else None

        return call

    variants = {"none": variant(False), "checkpoints": variant(True)}
    for fn in variants.values():
        fn(jr.key(1))
    times: dict[str, list[float]] = {label: [] for label in variants}
    last: Path | None = None
    for r in range(repeats):
        for label, fn in variants.items():
            start = time.perf_counter()
            out = fn(jr.key(r + 2))
            times[label].append(time.perf_counter() - start)
            last = out or last
    assert last is not None
    saves = len([d for d in last.iterdir() if d.name.isdigit()])
    paired = statistics.median(
        c / n for c, n in zip(times["checkpoints"], times["none"], strict=True)
    )
    extra = statistics.median(times["checkpoints"]) - statistics.median(times["none"])
    one = size(last) / max(saves, 1)
    print(
        f"{name} x{seeds}: {type(algo).__name__} {budget} steps, {saves} saves of "
        f"{one / 1e6:.2f} MB: none {statistics.median(times['none']):.3f}s, "
        f"checkpoints {statistics.median(times['checkpoints']):.3f}s, paired ratio "
        f"{paired:.3f}, {1e3 * extra / saves:.1f} ms per save",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", nargs="+", choices=["ppo", "sac"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 8])
    args = parser.parse_args()
    print(f"jax {jax.__version__} ({jax.default_backend()})")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only or ["ppo", "sac"]:
            for seeds in args.seeds:
                run(name, seeds, args.repeats, Path(tmp))


if __name__ == "__main__":
    main()
