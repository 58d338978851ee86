"""A2C on CartPole: does ``A2C()`` with its defaults solve CartPole within
500,000 environment steps (the SB3 zoo's budget), and how does it compare
with ``PPO()`` at the same budget (rejax has no A2C to compare with)?

The issue's target: a deterministic mean return >= 475 over 20 evaluation
episodes on at least 4 of 5 seeds after 500,000 steps.

Each seed gets its own policy (``MLPActorCriticPolicy(env, key=...)``, its
default 64x64 tanh network, the SB3 zoo's CartPole policy that ``A2C()``'s
defaults come with) and its own training key; the seeds train in one compiled
program (``eqx.filter_vmap`` over policies and keys). The policies are built
one by one outside the vmapped program and stacked: building them inside
``jit(vmap(...))`` can hang jaxlib 0.10.2's CPU runtime (see BENCHMARKS.md).
Each trained policy is then evaluated with ``evaluate_policy(...,
num_episodes=20, deterministic=True)``. Then the same for ``PPO()`` with the
same policies and keys (``--no-with-ppo`` skips it).

Reported per algorithm: each seed's mean return, how many reach 475, the wall
time of the first call (tracing, compilation and training) and of a second,
compiled call (steady; ``--no-steady`` skips it), and steady environment steps
per second (all seeds' steps). With ``--budgets`` (e.g. ``--budgets 100000
200000 300000 400000``), each budget is also trained as a run (a program) of
its own from the same start, and each seed's first budget reaching 475 is
reported. Every timing blocks until the result is ready.

Run: ``.venv/bin/python bench/a2c_cartpole.py`` (``--seeds``,
``--timesteps``; ``--quick``: 2 seeds, 4,096 steps and a 2,048-step
checkpoint, a smoke run).
"""

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import PRNGKeyArray

from lerax.algorithm import A2C, PPO, AbstractAlgorithm
from lerax.env import CartPole
from lerax.evaluation import evaluate_policy
from lerax.policy import MLPActorCriticPolicy

SOLVED = 475.0
EVAL_EPISODES = 20
EVAL_KEY = 20_261_127

Policy = MLPActorCriticPolicy[Any]


def build_policies(env: CartPole, keys: PRNGKeyArray) -> Policy:
    """One default (64x64 tanh) policy per key, stacked along a leading axis."""
    policies = [MLPActorCriticPolicy(env, key=k) for k in keys]
    stacked: Policy = jax.tree.map(lambda *xs: jnp.stack(xs), *policies)
    return stacked


def timed(fn: Callable[..., Any], *args: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn(*args)
    for leaf in jax.tree.leaves(out):
        if isinstance(leaf, jax.Array):
            leaf.block_until_ready()
    return time.perf_counter() - start, out


def evaluate(env: CartPole, policies: Policy, seeds: int) -> list[float]:
    """Each seed's deterministic mean return over 20 episodes."""
    run = eqx.filter_jit(
        eqx.filter_vmap(
            lambda p, k: (
                evaluate_policy(
                    p, env, key=k, num_episodes=EVAL_EPISODES, deterministic=True
                ).mean_return
            ),
        )
    )
    keys = jr.split(jr.key(EVAL_KEY), seeds)
    return [float(m) for m in np.asarray(run(policies, keys))]


def run(
    algo: AbstractAlgorithm[Any, Any],
    env: CartPole,
    policies: Policy,
    keys: PRNGKeyArray,
    budgets: list[int],
    steady: bool,
) -> None:
    """Train every seed at each budget (the last one timed twice); print the
    returns and times."""
    name = type(algo).__name__
    seeds = len(keys)
    solved_at: list[int | None] = [None] * seeds
    for budget in budgets:

        def train(policy: Policy, key: PRNGKeyArray, budget: int = budget) -> Policy:
            return algo.train(env, policy, budget, key=key).policy

        train_seeds = eqx.filter_jit(eqx.filter_vmap(train))
        first, trained = timed(train_seeds, policies, keys)
        means = evaluate(env, trained, seeds)
        for i, m in enumerate(means):
            if m >= SOLVED and solved_at[i] is None:
                solved_at[i] = budget
        solved = sum(m >= SOLVED for m in means)
        print(
            f"{name}() {budget} steps ({algo.num_iterations(budget)} iterations): "
            f"mean return per seed {' '.join(f'{m:.1f}' for m in means)}; "
            f">= {SOLVED:g}: {solved}/{seeds}; mean over seeds "
            f"{statistics.fmean(means):.1f}",
            flush=True,
        )
        line = f"  {seeds} vmapped seeds: first call {first:.2f} s (compile + train)"
        if steady and budget == budgets[-1]:
            again, _ = timed(train_seeds, policies, keys)
            line += f", steady {again:.2f} s, {seeds * budget / again:,.0f} env steps/s"
        print(line, flush=True)
    if len(budgets) > 1:
        print(
            f"  first budget reaching {SOLVED:g} per seed: "
            + " ".join(str(b) if b is not None else "-" for b in solved_at),
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--timesteps", type=int)
    parser.add_argument("--seeds", type=int)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument(
        "--budgets", type=int, nargs="*", default=None, help="checkpoint budgets"
    )
    parser.add_argument(
        "--with-ppo", action=argparse.BooleanOptionalAction, default=True
    )
    parser.add_argument("--steady", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    args = parser.parse_args()
    timesteps: int = args.timesteps or (4096 if args.quick else 500_000)
    seeds: int = args.seeds or (2 if args.quick else 5)
    checkpoints: list[int] = (
        args.budgets if args.budgets is not None else [2048] if args.quick else []
    )
    budgets = sorted({b for b in checkpoints if b < timesteps} | {timesteps})

    env = CartPole()
    print(
        f"jax {jax.__version__} ({jax.default_backend()}), devices {jax.devices()}; "
        f"CartPole, {seeds} seeds, budgets {budgets}",
        flush=True,
    )
    chosen = np.arange(args.first_seed, args.first_seed + seeds)
    policy_keys = jr.split(jr.key(0), 1000)[chosen]
    train_keys = jr.split(jr.key(1), 1000)[chosen]
    policies = build_policies(env, policy_keys)
    algorithms: list[AbstractAlgorithm[Any, Any]] = [A2C()]
    if args.with_ppo:
        algorithms.append(PPO())
    for algo in algorithms:
        run(algo, env, policies, train_keys, budgets, args.steady)


if __name__ == "__main__":
    main()
