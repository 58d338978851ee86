"""What evaluation costs: ``EvalCallback(env, every=total // 10,
num_episodes=10)`` (ten evaluations of ten episodes over the run, inside the
compiled program) against no callback, for ``PPO()`` on CartPole and
``SAC()`` on Pendulum, with 1 and 8 seeds (``eqx.filter_vmap`` over keys).

Each variant is called once first (compilation); then, in every repeat, the
two run one after the other with a fresh key, blocking until the result is
ready. Reported: medians, the paired ratio (median over repeats of with /
without) and the time per evaluation.

Run: ``.venv/bin/python bench/eval_cost.py [--repeats 5] [--only ppo sac]
[--seeds 1 8]``.
"""

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.random as jr
from jaxtyping import PRNGKeyArray
from logging_per_algorithm import ready

from lerax.algorithm import PPO, SAC
from lerax.callback import EvalCallback
from lerax.env import CartPole, Pendulum
from lerax.policy import MLPActorCriticPolicy, MLPSACPolicy


def setup(name: str) -> tuple[Any, Any, Any, int]:
    """Algorithm, environment, policy and budget of one contender."""
    if name == "ppo":
        cartpole = CartPole()
        return PPO(), cartpole, MLPActorCriticPolicy(cartpole, key=jr.key(0)), 2**16
    env = Pendulum()
    policy = MLPSACPolicy(env, key=jr.key(0), hidden_sizes=(64, 64))
    return SAC(), env, policy, 4096


def run(name: str, seeds: int, repeats: int) -> None:
    algo, env, policy, budget = setup(name)
    evaluations = 10

    def variant(evaluate: bool) -> Callable[[PRNGKeyArray], None]:
        def call(key: PRNGKeyArray) -> None:
            callback = (
                EvalCallback(env, every=budget // evaluations, num_episodes=10)
                if evaluate
                else None
            )

            def one(k: PRNGKeyArray) -> Any:
                return algo.train(env, policy, budget, key=k, callback=callback)

            if seeds == 1:
                ready(one(key))
            else:
                ready(eqx.filter_vmap(one)(jr.split(key, seeds)))

        return call

    variants = {"none": variant(False), "eval": variant(True)}
    for fn in variants.values():
        fn(jr.key(1))
    times: dict[str, list[float]] = {label: [] for label in variants}
    for r in range(repeats):
        for label, fn in variants.items():
            start = time.perf_counter()
            fn(jr.key(r + 2))
            times[label].append(time.perf_counter() - start)
    paired = statistics.median(
        e / n for e, n in zip(times["eval"], times["none"], strict=True)
    )
    extra = statistics.median(times["eval"]) - statistics.median(times["none"])
    print(
        f"{name} x{seeds}: {type(algo).__name__} {budget} steps, {evaluations} "
        f"evaluations of 10 episodes: none {statistics.median(times['none']):.3f}s, "
        f"eval {statistics.median(times['eval']):.3f}s, paired ratio {paired:.3f}, "
        f"{1e3 * extra / evaluations:.1f} ms per evaluation",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", nargs="+", choices=["ppo", "sac"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 8])
    args = parser.parse_args()
    print(f"jax {jax.__version__} ({jax.default_backend()})")
    for name in args.only or ["ppo", "sac"]:
        for seeds in args.seeds:
            run(name, seeds, args.repeats)


if __name__ == "__main__":
    main()
