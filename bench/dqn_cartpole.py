"""DQN on CartPole: does ``DQN()`` with its defaults solve CartPole within
100,000 environment steps, and how fast does it train?

The issue's target: a deterministic mean return >= 475 over 20 evaluation
episodes on at least 4 of 5 seeds after 100,000 steps (rejax's tuned budget).

Each seed gets its own policy (``MLPQPolicy(env, key=..., dueling=True,
activation=jax.nn.swish)``, the network of rejax's tuned config that
``DQN()``'s defaults come from) and its own training key; the seeds train in
one compiled program (``eqx.filter_vmap`` over policies and keys). The
policies are built one by one outside the vmapped program and stacked:
building them inside ``jit(vmap(...))`` can hang jaxlib 0.10.2's CPU runtime
(see BENCHMARKS.md). Each trained policy is then evaluated with
``evaluate_policy(..., num_episodes=20, deterministic=True)``.

Reported: each seed's mean return, how many reach 475, the wall time of the
first call (tracing, compilation and training), and steady environment steps
per second (all seeds' steps over the time of a second, compiled call); then
the same for one seed alone (``--single`` off skips it).

rejax in the same run (``--with-rejax``, the default when rejax is
importable; ``make bench`` installs it): rejax 0.1.3's ``DQN`` with its tuned
CartPole config (``REJAX_TUNED["dqn"]`` of ``bench/offpolicy_vs_rejax.py``:
dueling 64x64 swish, 10 environments, no observation normalisation), its
in-training evaluation off, trains the same number of seeds vmapped on
gymnax's ``CartPole-v1`` for the same budget. Each trained Q-network is
wrapped as a Lerax policy (``RejaxQPolicy``: the greedy action, checked
against rejax's own ``act`` with ``epsilon=0``) and evaluated exactly as
Lerax's: ``evaluate_policy`` on ``lerax.env.CartPole``, 20 deterministic
episodes, the same evaluation keys.

Run: ``.venv/bin/python bench/dqn_cartpole.py`` (``--timesteps``, ``--seeds``
and any ``DQN`` field as ``--set name=value`` change the run;
``--no-with-rejax``: Lerax only).
"""

import argparse
import importlib.util
import statistics
import time
from typing import Any, final

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray
from offpolicy_vs_rejax import rejax_algo

from lerax.algorithm import DQN
from lerax.env import CartPole
from lerax.evaluation import evaluate_policy
from lerax.policy import AbstractPolicy, MLPQPolicy
from lerax.space import Box, Discrete

SOLVED = 475.0
EVAL_EPISODES = 20
EVAL_KEY = 20_261_127


def build_policies(env: CartPole, keys: PRNGKeyArray) -> MLPQPolicy[Any]:
    """One dueling 64x64 swish policy per key, stacked along a leading axis."""
    policies = [
        MLPQPolicy(env, key=k, dueling=True, activation=jax.nn.swish) for k in keys
    ]
    stacked: MLPQPolicy[Any] = jax.tree.map(lambda *xs: jnp.stack(xs), *policies)
    return stacked


@final
class RejaxQPolicy(AbstractPolicy[Float[Array, " 4"], Int[Array, ""]]):
    """A rejax-trained DQN Q-network as a Lerax policy on Lerax's CartPole: the
    action of the largest Q-value (rejax's tuned config does not normalise
    observations), whatever ``key``."""

    observation_space: Box
    action_space: Discrete
    agent: Any = eqx.field(static=True)
    params: Any

    def __init__(self, env: CartPole, agent: Any, params: Any):
        self.observation_space = env.observation_space
        self.action_space = env.action_space
        self.agent = agent
        self.params = params

    def __call__(
        self, observation: Float[Array, " 4"], *, key: PRNGKeyArray | None = None
    ) -> Int[Array, ""]:
        q_values = self.agent.apply(self.params, jnp.expand_dims(observation, 0))
        return jnp.argmax(q_values[0]).astype(jnp.int32)


def check_rejax_wrapper(agent: Any, params: Any, policy: RejaxQPolicy) -> None:
    """The wrapper picks rejax's own greedy action (``act`` with
    ``epsilon=0``) on a few observations; raise otherwise."""
    observations = jr.uniform(jr.key(3000), (16, 4), minval=-0.2, maxval=0.2)
    for i, obs in enumerate(observations):
        theirs = agent.apply(
            params, obs[None], jr.key(i), epsilon=0.0, method="act"
        ).reshape(())
        ours = policy.deterministic_action(obs)
        if int(ours) != int(theirs):
            raise AssertionError(
                f"the wrapper's action {int(ours)} differs from rejax's greedy "
                f"action {int(theirs)} for observation {obs}"
            )


def run_rejax(timesteps: int, seeds: int, evaluate: Any, eval_keys: Any) -> None:
    """rejax's tuned DQN: ``seeds`` seeds vmapped, each evaluated as Lerax's."""
    algo = rejax_algo("dqn", timesteps, normalize_observations=False)

    def train(key: PRNGKeyArray) -> Any:
        train_state, _ = algo.train(key)
        return train_state.q_ts.params

    keys = jnp.stack([jr.key(1000 + seed) for seed in range(seeds)])
    first, params = timed(jax.jit(jax.vmap(train)), keys)
    env = CartPole()
    for seed in range(seeds):
        one = jax.tree.map(lambda x, i=seed: x[i], params)
        check_rejax_wrapper(algo.agent, one, RejaxQPolicy(env, algo.agent, one))
    policies = RejaxQPolicy(env, algo.agent, params)
    means = [float(m) for m in np.asarray(evaluate(policies, eval_keys))]
    solved = sum(m >= SOLVED for m in means)
    print(
        f"rejax DQN (tuned CartPole config), {timesteps} steps: mean return per "
        f"seed: {' '.join(f'{m:.1f}' for m in means)}; solved (>= {SOLVED:g}): "
        f"{solved}/{seeds}; {first:.2f} s for {seeds} seeds vmapped (first call, "
        "with compilation); wrapper matches rejax's greedy action"
    )


def parse_settings(items: list[str]) -> dict[str, Any]:
    """``name=value`` pairs: ints, floats and booleans as Python values."""
    out: dict[str, Any] = {}
    for item in items:
        name, _, text = item.partition("=")
        value: Any
        if text in ("True", "False"):
            value = text == "True"
        else:
            try:
                value = int(text)
            except ValueError:
                value = float(text)
        out[name] = value
    return out


def timed(fn: Any, *args: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn(*args)
    for leaf in jax.tree.leaves(out):
        leaf.block_until_ready()
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description="DQN on CartPole (see the module)")
    parser.add_argument("--timesteps", type=int, default=100_000)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--set", nargs="*", default=[], help="DQN field=value")
    parser.add_argument("--no-single", action="store_true")
    parser.add_argument(
        "--with-rejax",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also rejax's tuned config (default: when rejax is importable)",
    )
    args = parser.parse_args()
    with_rejax = (
        importlib.util.find_spec("rejax") is not None
        if args.with_rejax is None
        else args.with_rejax
    )

    env = CartPole()
    settings = parse_settings(args.set)
    algo = DQN(**settings)
    print(
        f"jax {jax.__version__} ({jax.default_backend()}), devices {jax.devices()}; "
        f"DQN({', '.join(f'{k}={v}' for k, v in settings.items())}), "
        f"{args.timesteps} steps, {args.seeds} seeds"
    )

    seeds = range(args.first_seed, args.first_seed + args.seeds)
    policy_keys = jr.split(jr.key(0), 1000)[np.asarray(seeds)]
    train_keys = jr.split(jr.key(1), 1000)[np.asarray(seeds)]
    policies = build_policies(env, policy_keys)

    def train(policy: MLPQPolicy[Any], key: PRNGKeyArray) -> MLPQPolicy[Any]:
        return algo.train(env, policy, args.timesteps, key=key).policy

    train_seeds = eqx.filter_jit(eqx.filter_vmap(train))
    first, trained = timed(train_seeds, policies, train_keys)
    steady, _ = timed(train_seeds, policies, train_keys)

    evaluate = eqx.filter_jit(
        eqx.filter_vmap(
            lambda p, k: (
                evaluate_policy(
                    p, env, key=k, num_episodes=EVAL_EPISODES, deterministic=True
                ).mean_return
            ),
        )
    )
    eval_keys = jr.split(jr.key(EVAL_KEY), args.seeds)
    means = [float(m) for m in np.asarray(evaluate(trained, eval_keys))]
    solved = sum(m >= SOLVED for m in means)
    steps = args.seeds * args.timesteps
    print(f"mean return per seed: {' '.join(f'{m:.1f}' for m in means)}")
    print(
        f"solved (>= {SOLVED:g}): {solved}/{args.seeds}; mean over seeds "
        f"{statistics.fmean(means):.1f}"
    )
    print(
        f"{args.seeds} vmapped seeds: first call {first:.2f} s (compile + train), "
        f"steady {steady:.2f} s, {steps / steady:,.0f} env steps/s"
    )
    if with_rejax:
        run_rejax(
            args.timesteps, args.seeds, evaluate, jr.split(jr.key(EVAL_KEY), args.seeds)
        )

    if not args.no_single:
        one = eqx.filter_jit(train)
        policy = jax.tree.map(lambda x: x[0], policies)
        first1, _ = timed(one, policy, train_keys[0])
        steady1, _ = timed(one, policy, train_keys[0])
        print(
            f"1 seed: first call {first1:.2f} s (compile + train), steady "
            f"{steady1:.2f} s, {args.timesteps / steady1:,.0f} env steps/s"
        )


if __name__ == "__main__":
    main()
