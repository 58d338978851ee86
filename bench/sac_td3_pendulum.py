"""SAC and TD3 on Pendulum with their defaults: learning quality and speed.

For each algorithm (``SAC()`` with ``MLPSACPolicy``, ``TD3()`` with
``MLPDeterministicPolicy``; both policies 64x64 swish, the widths and
activation of rejax's tuned Pendulum configs, which the defaults come from)
and each budget (20,000 environment steps, the SB3 zoo's; 10,000, rejax's),
five seeds train one after another in one process. Seed ``s`` builds its
policy with ``jr.key(s)`` and trains with ``jr.key(1000 + s)``; its trained
policy is evaluated with ``evaluate_policy(num_episodes=20,
deterministic=True)`` (Pendulum's 200-step episodes) and key
``jr.key(2000 + s)``.

Printed per algorithm and budget: each seed's mean return, how many seeds
reach >= -200 (the target: >= 4 of 5 within 20,000 steps), the wall time of
the first call (tracing, compilation and the run; each budget is a program
of its own), and the steady environment steps per second: the budget over
the median wall time of the other four calls (compiled). Training runs
without callbacks. Every timing blocks until the result is ready.

Run: ``.venv/bin/python bench/sac_td3_pendulum.py`` (``--quick``: 2 seeds,
budgets of 2,000 and 1,000 steps, a smoke run; ``--only sac|td3``).
"""

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.random as jr

from lerax.algorithm import SAC, TD3, AbstractAlgorithm
from lerax.env import Pendulum
from lerax.evaluation import evaluate_policy
from lerax.policy import AbstractPolicy, MLPDeterministicPolicy, MLPSACPolicy

TARGET = -200.0
EVAL_EPISODES = 20

Policy = AbstractPolicy[Any, Any]


def sac_policy(env: Pendulum, seed: int) -> Policy:
    return MLPSACPolicy(
        env, key=jr.key(seed), hidden_sizes=(64, 64), activation=jax.nn.swish
    )


def td3_policy(env: Pendulum, seed: int) -> Policy:
    return MLPDeterministicPolicy(
        env, key=jr.key(seed), hidden_sizes=(64, 64), activation=jax.nn.swish
    )


CONTENDERS: dict[
    str, tuple[Callable[[], AbstractAlgorithm[Any, Any]], Callable[..., Policy]]
] = {
    "sac": (SAC, sac_policy),
    "td3": (TD3, td3_policy),
}


def ready(tree: Any) -> None:
    """Block until every array of ``tree`` is computed."""
    for leaf in jax.tree.leaves(tree):
        if isinstance(leaf, jax.Array):
            leaf.block_until_ready()


def run(name: str, budget: int, seeds: int) -> None:
    make_algorithm, make_policy = CONTENDERS[name]
    algorithm = make_algorithm()
    env = Pendulum()
    returns: list[float] = []
    times: list[float] = []
    for seed in range(seeds):
        policy = make_policy(env, seed)
        ready(policy)
        start = time.perf_counter()
        trained = algorithm.learn(env, policy, budget, key=jr.key(1000 + seed))
        ready(trained)
        times.append(time.perf_counter() - start)
        result = evaluate_policy(
            trained,
            env,
            key=jr.key(2000 + seed),
            num_episodes=EVAL_EPISODES,
            deterministic=True,
        )
        returns.append(float(result.mean_return))
        print(
            f"  {name} {budget:>6} seed {seed}: mean return {returns[-1]:8.1f}"
            f"  ({times[-1]:.1f} s)",
            flush=True,
        )
    solved = sum(r >= TARGET for r in returns)
    steady = statistics.median(times[1:]) if len(times) > 1 else float("nan")
    print(
        f"{name.upper()} {budget} steps: returns "
        f"[{', '.join(f'{r:.1f}' for r in returns)}]; >= {TARGET:g}: "
        f"{solved}/{seeds}; first call {times[0]:.1f} s (with compilation); "
        f"steady {budget / steady:,.0f} env steps/s ({steady:.2f} s per run)",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--only", choices=sorted(CONTENDERS), help="one algorithm")
    args = parser.parse_args()
    budgets = (2_000, 1_000) if args.quick else (20_000, 10_000)
    seeds = 2 if args.quick else 5
    print(f"jax {jax.__version__}, devices {jax.devices()}", flush=True)
    for name in [args.only] if args.only else sorted(CONTENDERS):
        for budget in budgets:
            run(name, budget, seeds)


if __name__ == "__main__":
    main()
