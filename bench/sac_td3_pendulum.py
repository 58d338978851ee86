"""SAC and TD3 on Pendulum: Lerax's defaults vs rejax's tuned configs (quality, speed).

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

rejax (``--with-rejax``, the default when rejax is importable): rejax 0.1.3's
``SAC`` and ``TD3`` with their tuned Pendulum configs, created, with the
gymnax adapter and evaluation off, by ``rejax_algo`` of
``bench/offpolicy_vs_rejax.py`` (``REJAX_TUNED``, observation normalisation
on), train the same five seeds on gymnax's ``Pendulum-v1`` at rejax's tuned
budget, 10,000 steps (``--rejax-both-budgets``: at 20,000 too), in one
program: ``jax.jit(jax.vmap(algo.train))`` over the keys ``jr.key(1000 +
s)``. Each seed's trained actor is wrapped as a Lerax policy
(``RejaxPolicy``: rejax's running-statistics observation normalisation from
the trained state, then the actor; SAC's deterministic action is the
tanh-squashed mean scaled to the action bounds, TD3's the actor's output) and
evaluated exactly as Lerax's: ``evaluate_policy`` on Lerax's ``Pendulum``,
20 deterministic episodes, key ``jr.key(2000 + s)``. Before that the wrapper
is checked against rejax's own ``make_act(train_state)`` on a few observations
(within 1e-5): TD3's actions; SAC's sampled actions (same key) and its
deterministic ones against ``make_act`` of the same actor with its log-std
range set to (-30, -30), so that rejax's sample is its mean. Printed per
algorithm and budget: both libraries' per-seed mean returns side by side and
their counts of seeds >= -200, and rejax's wall time (first call, all seeds
vmapped, compilation included).

Differences between the two sides (beyond those listed in
``bench/offpolicy_vs_rejax.py``'s docstring, which apply here too):
rejax normalises observations, Lerax does not; here Lerax's SAC policy has
``MLPSACPolicy``'s default log-std range (-20, 2), rejax's (-10, 2); Lerax's
seeds run one after another, rejax's vmapped; rejax trains on gymnax's
Pendulum-v1 (truncation treated as termination) and is evaluated on
Lerax's.

Run: ``.venv/bin/python bench/sac_td3_pendulum.py`` (``--quick``: 2 seeds,
budgets of 2,000 and 1,000 steps, rejax at 1,000, a smoke run; ``--only
sac|td3``; ``--no-with-rejax``: Lerax only). rejax needs rejax, gymnax and
flax (see BENCHMARKS.md).
"""

import argparse
import importlib
import importlib.util
import statistics
import time
from collections.abc import Callable
from typing import Any, Literal, final

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray
from offpolicy_vs_rejax import rejax_algo

from lerax.algorithm import SAC, TD3, AbstractAlgorithm
from lerax.env import Pendulum
from lerax.evaluation import evaluate_policy
from lerax.policy import AbstractPolicy, MLPDeterministicPolicy, MLPSACPolicy
from lerax.space import Box

TARGET = -200.0
EVAL_EPISODES = 20
CHECK_TOLERANCE = 1e-5

Policy = AbstractPolicy[Any, Any]
RejaxName = Literal["sac", "td3"]
REJAX_NAMES: dict[str, RejaxName] = {"sac": "sac", "td3": "td3"}


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


def evaluate(policy: Policy, env: Pendulum, seed: int) -> float:
    """The mean return of ``EVAL_EPISODES`` deterministic episodes (both
    libraries)."""
    result = evaluate_policy(
        policy,
        env,
        key=jr.key(2000 + seed),
        num_episodes=EVAL_EPISODES,
        deterministic=True,
    )
    return float(result.mean_return)


def run(name: str, budget: int, seeds: int) -> list[float]:
    """Lerax: train and evaluate ``seeds`` seeds; their mean returns."""
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
        returns.append(evaluate(trained, env, seed))
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
    return returns


# ---------------------------------------------------------------- rejax


def _squashed_mean(actor: Any, observations: Any) -> Any:
    """rejax ``SquashedGaussianPolicy``'s deterministic action: the mean of its
    Gaussian, squashed by ``tanh`` and scaled to the action bounds as its
    ``__call__`` scales a sample. For ``actor.apply(..., method=...)``."""
    mean = actor._action_dist(observations).mean()
    return actor.action_loc + jnp.tanh(mean) * actor.action_scale


@final
class RejaxPolicy(AbstractPolicy[Float[Array, " 3"], Float[Array, " 1"]]):
    """A rejax-trained SAC or TD3 actor as a Lerax policy on Lerax's Pendulum.

    As rejax's ``make_act``: the observation is normalised with the running
    statistics of the trained state (``(x - mean) / sqrt(var + 1e-8)``,
    rejax's ``normalize_obs``) when rejax normalised observations, then the
    flax ``actor`` is applied to it (a batch of one). TD3: the actor's output
    whatever ``key``. SAC: with ``key``, rejax's ``act`` (a sample); without,
    the tanh-squashed mean scaled to the action bounds.
    """

    observation_space: Box
    action_space: Box
    actor: Any = eqx.field(static=True)
    params: Any
    obs_mean: Float[Array, " 3"] | None
    obs_var: Float[Array, " 3"] | None
    squashed_gaussian: bool = eqx.field(static=True)

    def __init__(self, env: Pendulum, algo: Any, train_state: Any):
        self.observation_space = env.observation_space
        self.action_space = env.action_space
        self.actor = algo.actor
        self.params = train_state.actor_ts.params
        if algo.normalize_observations:
            self.obs_mean = train_state.obs_rms_state.mean
            self.obs_var = train_state.obs_rms_state.var
        else:
            self.obs_mean = self.obs_var = None
        self.squashed_gaussian = type(algo).__name__ == "SAC"

    def __call__(
        self, observation: Float[Array, " 3"], *, key: PRNGKeyArray | None = None
    ) -> Float[Array, " 1"]:
        obs = observation
        if self.obs_mean is not None and self.obs_var is not None:
            obs = (obs - self.obs_mean) / jnp.sqrt(self.obs_var + 1e-8)
        batch = jnp.expand_dims(obs, 0)
        if not self.squashed_gaussian:
            action = self.actor.apply(self.params, batch)
        elif key is None:
            action = self.actor.apply(self.params, batch, method=_squashed_mean)
        else:
            action = self.actor.apply(self.params, batch, key, method="act")
        out: Float[Array, " 1"] = jnp.reshape(action, self.action_space.shape)
        return out


def check_wrapper(
    name: RejaxName, algo: Any, train_state: Any, policy: RejaxPolicy, seed: int
) -> float:
    """The largest difference between ``policy``'s actions and rejax's own
    ``make_act(train_state)`` on a few observations; raise above the
    tolerance."""
    k_theta, k_speed, k_act = jr.split(jr.key(3000 + seed), 3)
    n = 8
    theta = jr.uniform(k_theta, (n,), minval=-jnp.pi, maxval=jnp.pi)
    speed = jr.uniform(k_speed, (n,), minval=-8.0, maxval=8.0)
    observations = jnp.stack([jnp.cos(theta), jnp.sin(theta), speed], axis=1)
    act_keys = jr.split(k_act, n)
    pairs: list[tuple[Array, Array]] = []
    make_act = algo.make_act(train_state)
    if name == "sac":
        # rejax's act samples: same key, same sample ...
        pairs += [
            (policy(o, key=k), make_act(o, k))
            for o, k in zip(observations, act_keys, strict=True)
        ]
        # ... and with the log-std range collapsed, rejax's sample is its mean.
        collapsed = algo.replace(
            actor=algo.actor.clone(log_std_range=(-30.0, -30.0))
        ).make_act(train_state)
        pairs += [
            (policy.deterministic_action(o), collapsed(o, k))
            for o, k in zip(observations, act_keys, strict=True)
        ]
    else:
        pairs += [
            (policy.deterministic_action(o), make_act(o, k))
            for o, k in zip(observations, act_keys, strict=True)
        ]
    worst = max(
        float(jnp.max(jnp.abs(ours.reshape(-1) - theirs.reshape(-1))))
        for ours, theirs in pairs
    )
    if not worst <= CHECK_TOLERANCE:
        raise AssertionError(
            f"{name} seed {seed}: the wrapper's actions differ from rejax's "
            f"make_act by {worst:.3g} (> {CHECK_TOLERANCE:g})"
        )
    return worst


def run_rejax(name: RejaxName, budget: int, seeds: int) -> list[float]:
    """rejax's tuned config: train ``seeds`` seeds vmapped, check the wrapper,
    evaluate each with Lerax's evaluation; their mean returns."""
    algo = rejax_algo(name, budget, normalize_observations=True)

    def train(key: PRNGKeyArray) -> Any:
        train_state, _ = algo.train(key)
        return train_state

    keys = jnp.stack([jr.key(1000 + seed) for seed in range(seeds)])
    start = time.perf_counter()
    train_states = jax.jit(jax.vmap(train))(keys)
    ready(train_states)
    wall = time.perf_counter() - start
    env = Pendulum()
    returns: list[float] = []
    checks: list[float] = []
    for seed in range(seeds):
        train_state = jax.tree.map(lambda x, i=seed: x[i], train_states)
        policy = RejaxPolicy(env, algo, train_state)
        checks.append(check_wrapper(name, algo, train_state, policy, seed))
        returns.append(evaluate(policy, env, seed))
        print(
            f"  rejax {name} {budget:>6} seed {seed}: mean return "
            f"{returns[-1]:8.1f}  (wrapper vs make_act: max |diff| "
            f"{checks[-1]:.2g})",
            flush=True,
        )
    solved = sum(r >= TARGET for r in returns)
    print(
        f"rejax {name.upper()} {budget} steps: returns "
        f"[{', '.join(f'{r:.1f}' for r in returns)}]; >= {TARGET:g}: "
        f"{solved}/{seeds}; {wall:.1f} s for {seeds} seeds vmapped (first "
        f"call, with compilation); wrapper check passed (max |diff| "
        f"{max(checks):.2g} <= {CHECK_TOLERANCE:g})",
        flush=True,
    )
    return returns


def compare(name: str, budget: int, lerax: list[float], rejax: list[float]) -> None:
    """Both libraries' per-seed mean returns side by side."""
    print(
        f"\n{name.upper()} {budget:,} steps: mean return of {EVAL_EPISODES} "
        f"deterministic episodes on Lerax's Pendulum\n"
        f"  seed     Lerax     rejax"
    )
    for seed, (a, b) in enumerate(zip(lerax, rejax, strict=True)):
        print(f"  {seed:>4}  {a:8.1f}  {b:8.1f}")
    seeds = len(lerax)
    print(
        f"  >= {TARGET:g}: Lerax {sum(r >= TARGET for r in lerax)}/{seeds}, "
        f"rejax {sum(r >= TARGET for r in rejax)}/{seeds}\n",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--only", choices=sorted(CONTENDERS), help="one algorithm")
    parser.add_argument(
        "--with-rejax",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also rejax's tuned configs (default: when rejax is importable)",
    )
    parser.add_argument(
        "--rejax-both-budgets",
        action="store_true",
        help="rejax at both budgets (default: only rejax's tuned 10,000)",
    )
    args = parser.parse_args()
    budgets = (2_000, 1_000) if args.quick else (20_000, 10_000)
    seeds = 2 if args.quick else 5
    with_rejax: bool = args.with_rejax
    if with_rejax is None:
        with_rejax = importlib.util.find_spec("rejax") is not None
    rejax_budgets = budgets if args.rejax_both_budgets else budgets[1:]
    print(f"jax {jax.__version__}, devices {jax.devices()}", flush=True)
    if with_rejax:
        importlib.import_module("rejax")
        print(f"rejax at {', '.join(f'{b:,}' for b in rejax_budgets)} steps")
    for name in [args.only] if args.only else sorted(CONTENDERS):
        for budget in budgets:
            lerax = run(name, budget, seeds)
            if with_rejax and budget in rejax_budgets:
                rejax = run_rejax(REJAX_NAMES[name], budget, seeds)
                compare(name, budget, lerax, rejax)


if __name__ == "__main__":
    main()
