"""PPO on CartPole: Lerax vs rejax (learning quality, compile time, throughput).

Contenders (hyperparameters in the table printed at the start of a run):

- ``lerax-default``: ``PPO()`` with ``MLPActorCriticPolicy`` (Lerax's defaults).
- ``rejax-default``: ``rejax.PPO.create(env=...)`` with rejax's defaults.
- ``rejax-tuned``: rejax's tuned CartPole config (``configs/gymnax/cartpole.yaml``
  in keraJLi/rejax at 4954fbf; the yaml is not shipped in the wheel, so it is
  copied here).
- Matched settings, two shapes: ``rejax-lerax-settings`` is rejax with every
  setting of ``PPO()`` (envs, steps, epochs, minibatches, 64x64 tanh, learning
  rate annealed linearly to zero over the same number of updates, gamma,
  lambda, clip, entropy and value coefficients, gradient clip 0.5, total steps),
  to be compared with ``lerax-default``; ``lerax-rejax-settings`` is Lerax with
  every setting of rejax's default (except the activation: tanh on both sides),
  compared with ``rejax-default-tanh``. What rejax cannot express is listed in
  ``MATCH_CAVEATS``.

Measurements:

1. First call, one fresh process per contender and budget (2**16 and 2**17
   steps): the wall time of the first training call (trace + compile + run),
   then the steady time of the same call for each of the seeds (compiled, so
   compile time = first call - median steady call), and the mean return of
   each seed's deterministic policy over 20 evaluation episodes of our
   ``CartPole`` (Gymnasium's CartPole-v1, 500-step limit, ``argmax`` action),
   with the same evaluation code for both libraries. "Solved" means a mean
   return >= 475; time to solve is the first call's wall time at the smallest
   budget where at least 4 of 5 seeds solve. Rounds alternate the order of the
   processes.
2. Steady throughput, both libraries in one process: compiled calls of the two
   contenders of a pair interleaved (A B B A ...), env steps per second of
   training (rollout and updates, all environments).
3. Seeds: 8 seeds in one vmapped program (``eqx.filter_vmap`` over policies
   and keys for Lerax, ``jax.vmap`` over keys for rejax, each jitted) vs one
   seed, interleaved. Lerax's 8 policies are built one by one outside the
   vmapped program and stacked: building them inside ``jit(vmap(...))`` can
   hang jaxlib 0.10.2's CPU runtime (two batched QRs of the orthogonal init
   in one program; see BENCHMARKS.md).
4. Seeds over devices (phase ``vmap-devices``): the same in a child process
   with one XLA CPU device per core
   (``--xla_force_host_platform_device_count``) and the seed axis split over
   them with ``lerax.algorithm.shard_seeds`` (the same placement for rejax's
   keys), so each core trains its share of the seeds.

Every timing blocks until the result is ready. rejax trains with a no-op
evaluation callback (its default one evaluates 128 episodes every 4096 steps,
work Lerax's ``train`` does not do) and ``skip_initial_evaluation``.

rejax 0.1.3 unpacks gymnax's pre-1.0 five-value ``step``; gymnax 1.0 (which
our env benchmark uses) returns six values. rejax therefore gets gymnax's
CartPole-v1 behind :class:`GymnaxV0Step`, which returns ``terminated |
truncated`` as ``done``, exactly what gymnax 0.0.x returned.

Run: ``.venv/bin/python bench/ppo_cartpole.py`` (needs rejax; see
BENCHMARKS.md for the install commands). ``--quick`` is a smoke run.
"""

import argparse
import dataclasses
import importlib
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any, Generic, Literal, TypeVar

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from jaxtyping import Array, Float, Int, PRNGKeyArray

from lerax.algorithm import PPO, shard_seeds
from lerax.env import CartPole, CartPoleState
from lerax.policy import MLPActorCriticPolicy

R = TypeVar("R")
Key = PRNGKeyArray
Observation = Float[Array, " 4"]
Action = Int[Array, ""]

EVAL_EPISODES = 20
EVAL_MAX_STEPS = 500
SOLVED = 475.0
EVAL_KEY = 20_261_127
MATCH_CAVEATS = (
    "rejax clips each gradient element to +-max_grad_norm (optax.clip); Lerax "
    "clips the global norm (optax.clip_by_global_norm)",
    "rejax: two Adam optimizers (actor, critic) with eps 1e-8; Lerax: one Adam "
    "over both with eps 1e-5 (same updates apart from eps: Adam is per-parameter)",
    "rejax clips the value loss (PPO2 style); Lerax does not",
    "rejax treats a truncation (500 steps) as terminal; Lerax bootstraps from "
    "the value of the final observation",
    "rejax: flax default init (LeCun normal, zero bias); Lerax: orthogonal init",
    "rejax rounds the step budget up to whole iterations, Lerax down",
)


@dataclass(frozen=True)
class Settings:
    """PPO hyperparameters in terms both libraries understand."""

    num_envs: int
    num_steps: int
    num_epochs: int
    num_minibatches: int
    learning_rate: float
    anneal_lr: bool
    gamma: float
    gae_lambda: float
    clip_coef: float
    ent_coef: float
    vf_coef: float
    max_grad_norm: float
    activation: Literal["tanh", "swish"]


def lerax_default_settings() -> Settings:
    """``PPO()``'s settings, read from the class (64x64 tanh policy)."""
    d = PPO()
    return Settings(
        num_envs=d.num_envs,
        num_steps=d.num_steps,
        num_epochs=d.num_epochs,
        num_minibatches=d.num_minibatches,
        learning_rate=float(d.learning_rate),
        anneal_lr=d.anneal_lr,
        gamma=float(d.gamma),
        gae_lambda=float(d.gae_lambda),
        clip_coef=float(d.clip_coef),
        ent_coef=float(d.ent_coef),
        vf_coef=float(d.vf_coef),
        max_grad_norm=float(d.max_grad_norm),
        activation="tanh",
    )


# rejax 0.1.3's defaults (PPO, OnPolicyMixin and Algorithm fields; the activation
# is PPO.create_agent's default); `check_rejax_defaults` verifies them.
REJAX_DEFAULT = Settings(
    num_envs=64,
    num_steps=64,
    num_epochs=8,
    num_minibatches=16,
    learning_rate=3e-4,
    anneal_lr=False,
    gamma=0.99,
    gae_lambda=0.95,
    clip_coef=0.2,
    ent_coef=0.01,
    vf_coef=0.5,
    max_grad_norm=math.inf,
    activation="swish",
)

# keraJLi/rejax configs/gymnax/cartpole.yaml (commit 4954fbf), section `ppo`,
# without its total_timesteps/eval_freq (set per run here).
REJAX_TUNED = Settings(
    num_envs=5,
    num_steps=100,
    num_epochs=5,
    num_minibatches=5,
    learning_rate=0.00075,
    anneal_lr=False,
    gamma=0.99,
    gae_lambda=0.95,
    clip_coef=0.2,
    ent_coef=0.01,
    vf_coef=0.5,
    max_grad_norm=0.5,
    activation="tanh",
)


@dataclass(frozen=True)
class Contender:
    name: str
    library: Literal["Lerax", "rejax"]
    settings: Settings
    description: str


def contenders() -> dict[str, Contender]:
    lerax = lerax_default_settings()
    rejax_tanh = dataclasses.replace(REJAX_DEFAULT, activation="tanh")
    items = [
        Contender("lerax-default", "Lerax", lerax, "PPO() (Lerax default)"),
        Contender(
            "rejax-lerax-settings", "rejax", lerax, "rejax with PPO()'s settings"
        ),
        Contender("rejax-default", "rejax", REJAX_DEFAULT, "rejax default"),
        Contender("rejax-tuned", "rejax", REJAX_TUNED, "rejax tuned CartPole"),
        Contender(
            "lerax-rejax-settings",
            "Lerax",
            rejax_tanh,
            "Lerax with rejax's default settings (tanh)",
        ),
        Contender("rejax-default-tanh", "rejax", rejax_tanh, "rejax default with tanh"),
    ]
    return {c.name: c for c in items}


# Pairs compared in the steady-throughput phase: (Lerax, rejax, what it shows).
PAIRS = (
    ("lerax-default", "rejax-lerax-settings", "matched: PPO()'s settings"),
    ("lerax-rejax-settings", "rejax-default-tanh", "matched: rejax's settings"),
    ("lerax-default", "rejax-default", "each library's default"),
    ("lerax-default", "rejax-tuned", "Lerax default vs rejax tuned"),
)
VMAP_CONTENDERS = ("lerax-default", "rejax-lerax-settings", "rejax-default")


# ---------------------------------------------------------------- evaluation


def make_evaluator(
    act: Callable[[R, Observation], Action],
) -> Callable[[R, Key], Float[Array, " episodes"]]:
    """Mean-free evaluation: the undiscounted return of ``EVAL_EPISODES`` episodes.

    ``act(policy, observation)`` is the deterministic action. The episodes run
    on Lerax's CartPole (Gymnasium's CartPole-v1 with its 500-step limit) for
    both libraries; rewards after an episode ends are masked out.
    """
    env = CartPole()
    assert env.max_episode_steps == EVAL_MAX_STEPS

    def episode(policy: R, key: Key) -> Float[Array, ""]:
        k_reset, k_steps = jr.split(key)
        state, obs = env.reset(key=k_reset)

        def step(
            carry: tuple[CartPoleState, Observation, Float[Array, ""], Array],
            k: Key,
        ) -> tuple[tuple[CartPoleState, Observation, Float[Array, ""], Array], None]:
            state, obs, ret, alive = carry
            ts = env.step(state, act(policy, obs), key=k)
            ret = ret + jnp.where(alive, ts.reward, 0.0)
            alive = jnp.logical_and(alive, jnp.logical_not(ts.done))
            return (ts.state, ts.observation, ret, alive), None

        init = (state, obs, jnp.zeros((), jnp.float32), jnp.array(True))
        (_, _, ret, _), _ = jax.lax.scan(step, init, jr.split(k_steps, EVAL_MAX_STEPS))
        return ret

    @eqx.filter_jit
    def evaluate(policy: R, key: Key) -> Float[Array, " episodes"]:
        keys = jr.split(key, EVAL_EPISODES)
        return jax.vmap(episode, in_axes=(None, 0))(policy, keys)

    return evaluate


# ---------------------------------------------------------------- trainers


@dataclass(frozen=True)
class Trainer(Generic[R]):
    """One contender ready to run: key -> trained policy (R), and its evaluator.

    ``run`` and ``run_seeds`` (keys with a leading seed axis) return what
    ``evaluate`` takes (with a leading seed axis for ``run_seeds``).
    """

    run: Callable[[Key], R]
    run_seeds: Callable[[Key], R]
    evaluate: Callable[[R, Key], Float[Array, " episodes"]]
    steps_per_run: int


def lerax_trainer(
    settings: Settings, total_timesteps: int, shard: bool = False
) -> Trainer[Any]:
    """Lerax as a user calls it: build the policy, then ``algo.train``."""
    if settings.activation != "tanh":
        raise ValueError(f"Lerax contenders use tanh, got {settings.activation!r}")
    algo = PPO(
        num_envs=settings.num_envs,
        num_steps=settings.num_steps,
        num_epochs=settings.num_epochs,
        num_minibatches=settings.num_minibatches,
        learning_rate=settings.learning_rate,
        anneal_lr=settings.anneal_lr,
        gamma=settings.gamma,
        gae_lambda=settings.gae_lambda,
        clip_coef=settings.clip_coef,
        ent_coef=settings.ent_coef,
        vf_coef=settings.vf_coef,
        max_grad_norm=settings.max_grad_norm,
    )
    env = CartPole()

    def run(key: Key) -> MLPActorCriticPolicy[Any]:
        k_policy, k_train = jr.split(key)
        policy = MLPActorCriticPolicy(env=env, key=k_policy)
        return algo.train(env, policy, total_timesteps, key=k_train).policy

    def train(policy: MLPActorCriticPolicy[Any], key: Key) -> MLPActorCriticPolicy[Any]:
        return algo.train(env, policy, total_timesteps, key=key).policy

    train_seeds = eqx.filter_jit(eqx.filter_vmap(train))

    def run_seeds(keys: Key) -> MLPActorCriticPolicy[Any]:
        # Each seed's policy is built as in `run`, outside the vmapped program:
        # building policies inside jit(vmap(...)) can hang jaxlib 0.10.2 on CPU
        # (batched QR of the orthogonal init; see BENCHMARKS.md).
        splits = [jr.split(k) for k in keys]
        policies = [MLPActorCriticPolicy(env=env, key=k[0]) for k in splits]
        stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *policies)
        train_keys = jnp.stack([k[1] for k in splits])
        if shard:
            stacked, train_keys = shard_seeds((stacked, train_keys))
        trained: MLPActorCriticPolicy[Any] = train_seeds(stacked, train_keys)
        return trained

    def act(policy: MLPActorCriticPolicy[Any], obs: Observation) -> Action:
        return policy(obs)

    return Trainer(
        run=run,
        run_seeds=run_seeds,
        evaluate=make_evaluator(act),
        steps_per_run=algo.num_iterations(total_timesteps) * algo.steps_per_iteration,
    )


class GymnaxV0Step:
    """gymnax >= 1.0's CartPole-v1 with the five-value ``step`` of gymnax 0.0.x.

    rejax 0.1.3 unpacks ``obs, state, reward, done, info``; gymnax 1.0 returns
    ``obs, state, reward, terminated, truncated, info`` (auto-reset unchanged).
    """

    def __init__(self, env: Any):
        self.env = env

    def step(
        self, key: Key, state: Any, action: Action, params: Any
    ) -> tuple[Any, Any, Any, Any, Any]:
        out: tuple[Any, Any, Any, Any, Any, Any] = self.env.step(
            key, state, action, params
        )
        obs, state, reward, terminated, truncated, info = out
        return obs, state, reward, jnp.logical_or(terminated, truncated), info

    def reset(self, key: Key, params: Any) -> tuple[Any, Any]:
        out: tuple[Any, Any] = self.env.reset(key, params)
        return out

    def action_space(self, params: Any) -> Any:
        return self.env.action_space(params)

    def observation_space(self, params: Any) -> Any:
        return self.env.observation_space(params)

    @property
    def default_params(self) -> Any:
        return self.env.default_params


def rejax_iterations(settings: Settings, total_timesteps: int) -> int:
    """rejax's iteration count with ``eval_freq = total_timesteps`` (rounds up)."""
    return math.ceil(total_timesteps / (settings.num_envs * settings.num_steps))


def no_evaluation(algo: Any, train_state: Any, key: Key) -> tuple[()]:
    """rejax evaluation callback that does nothing (rejax needs a pytree)."""
    return ()


def rejax_algo(settings: Settings, total_timesteps: int) -> Any:
    """A ``rejax.PPO`` for gymnax's CartPole-v1 with ``settings``.

    Annealing is rejax's Adam given an optax linear schedule over the same
    number of updates as Lerax's (rejax has no anneal option; both actor and
    critic optimizers count one step per minibatch update).
    """
    rejax = importlib.import_module("rejax")
    gymnax = importlib.import_module("gymnax")
    env, env_params = gymnax.make("CartPole-v1")
    updates = (
        rejax_iterations(settings, total_timesteps)
        * settings.num_epochs
        * settings.num_minibatches
    )
    learning_rate: float | optax.Schedule = settings.learning_rate
    if settings.anneal_lr:
        learning_rate = optax.linear_schedule(settings.learning_rate, 0.0, updates)
    algo = rejax.PPO.create(
        env=GymnaxV0Step(env),
        env_params=env_params,
        agent_kwargs={"activation": settings.activation},
        num_envs=settings.num_envs,
        num_steps=settings.num_steps,
        num_epochs=settings.num_epochs,
        num_minibatches=settings.num_minibatches,
        learning_rate=learning_rate,
        max_grad_norm=settings.max_grad_norm,
        gamma=settings.gamma,
        gae_lambda=settings.gae_lambda,
        clip_eps=settings.clip_coef,
        ent_coef=settings.ent_coef,
        vf_coef=settings.vf_coef,
        total_timesteps=total_timesteps,
        eval_freq=total_timesteps,
        skip_initial_evaluation=True,
    )
    return algo.replace(eval_callback=no_evaluation)


def check_rejax_defaults() -> None:
    """Raise if ``REJAX_DEFAULT`` is not what ``rejax.PPO.create`` builds."""
    rejax = importlib.import_module("rejax")
    gymnax = importlib.import_module("gymnax")
    env, env_params = gymnax.make("CartPole-v1")
    linen = importlib.import_module("flax.linen")
    algo = rejax.PPO.create(env=GymnaxV0Step(env), env_params=env_params)
    d = REJAX_DEFAULT
    found = {
        "num_envs": (algo.num_envs, d.num_envs),
        "num_steps": (algo.num_steps, d.num_steps),
        "num_epochs": (algo.num_epochs, d.num_epochs),
        "num_minibatches": (algo.num_minibatches, d.num_minibatches),
        "learning_rate": (algo.learning_rate, d.learning_rate),
        "gamma": (algo.gamma, d.gamma),
        "gae_lambda": (algo.gae_lambda, d.gae_lambda),
        "clip_eps": (algo.clip_eps, d.clip_coef),
        "ent_coef": (algo.ent_coef, d.ent_coef),
        "vf_coef": (algo.vf_coef, d.vf_coef),
        "max_grad_norm": (float(algo.max_grad_norm), d.max_grad_norm),
        "activation": (algo.actor.activation, getattr(linen, d.activation)),
    }
    wrong = {k: v for k, v in found.items() if v[0] != v[1]}
    if wrong:
        raise RuntimeError(f"rejax defaults differ from REJAX_DEFAULT: {wrong}")


def rejax_trainer(
    settings: Settings, total_timesteps: int, shard: bool = False
) -> Trainer[Any]:
    """rejax as its README shows: ``jax.jit(algo.train)``, ``jax.jit(jax.vmap(...))``."""
    if settings == REJAX_DEFAULT:
        rejax = importlib.import_module("rejax")
        gymnax = importlib.import_module("gymnax")
        env, env_params = gymnax.make("CartPole-v1")
        algo = rejax.PPO.create(
            env=GymnaxV0Step(env),
            env_params=env_params,
            total_timesteps=total_timesteps,
            eval_freq=total_timesteps,
            skip_initial_evaluation=True,
        ).replace(eval_callback=no_evaluation)
    else:
        algo = rejax_algo(settings, total_timesteps)
    train = algo.train
    actor = algo.actor

    def params_of(out: tuple[Any, Any]) -> Any:
        train_state, _ = out
        return train_state.actor_ts.params

    def run_one(key: Key) -> Any:
        return params_of(train(key))

    def act(params: Any, obs: Observation) -> Action:
        dist = actor.apply(params, obs[None], method="_action_dist")
        logits: Float[Array, "1 2"] = dist.logits
        return jnp.argmax(logits[0]).astype(jnp.int32)

    many = jax.jit(jax.vmap(run_one))

    def run_seeds(keys: Key) -> Any:
        return many(shard_seeds(keys) if shard else keys)

    return Trainer(
        run=jax.jit(run_one),
        run_seeds=run_seeds,
        evaluate=make_evaluator(act),
        steps_per_run=rejax_iterations(settings, total_timesteps)
        * settings.num_envs
        * settings.num_steps,
    )


def make_trainer(
    contender: Contender, total_timesteps: int, shard: bool = False
) -> Trainer[Any]:
    """``shard``: split the seed axis of ``run_seeds`` over all devices."""
    if contender.library == "Lerax":
        return lerax_trainer(contender.settings, total_timesteps, shard)
    return rejax_trainer(contender.settings, total_timesteps, shard)


# ---------------------------------------------------------------- timing


def block(tree: object) -> None:
    """Wait until every array in ``tree`` is computed."""
    for leaf in jax.tree.leaves(eqx.filter(tree, eqx.is_array)):
        leaf.block_until_ready()


def timed(fn: Callable[[Key], R], key: Key) -> tuple[float, R]:
    """Wall seconds of ``fn(key)``, result ready."""
    start = time.perf_counter()
    out = fn(key)
    block(out)
    return time.perf_counter() - start, out


def timed_cpu(fn: Callable[[Key], R], key: Key) -> tuple[float, float, R]:
    """Wall and process CPU seconds (all threads) of ``fn(key)``, result ready.

    On a shared machine the CPU time is the steadier measure of compile work:
    other jobs lengthen the wall time of a compile, not its CPU time.
    """
    start, start_cpu = time.perf_counter(), time.process_time()
    out = fn(key)
    block(out)
    return time.perf_counter() - start, time.process_time() - start_cpu, out


def warm_up() -> None:
    """Start the backend and compile the small eager ops every run uses."""
    x = jnp.arange(8, dtype=jnp.float32)
    block(jax.jit(lambda v: jnp.tanh(v) @ v)(x))
    block(jr.split(jr.key(0)))


def seed_key(seed: int) -> Key:
    return jr.key(seed)


def eval_key(seed: int) -> Key:
    return jr.fold_in(jr.key(EVAL_KEY), seed)


def worker(name: str, total_timesteps: int, seeds: int) -> dict[str, object]:
    """One fresh process: first call, then steady calls per seed, then evaluation.

    For Lerax the first call is split in two: building the policy (eager JAX
    ops, each compiled on first use) and the first ``train`` call. The
    user-visible first call is their sum; rejax initialises its networks inside
    its compiled ``train``.
    """
    start = time.perf_counter()
    contender = contenders()[name]
    if contender.library == "rejax":
        importlib.import_module("rejax")
    import_s = time.perf_counter() - start
    warm_up()
    init_s = init_cpu_s = 0.0
    if contender.library == "Lerax":
        init_s, init_cpu_s, _ = timed_cpu(
            lambda k: MLPActorCriticPolicy(env=CartPole(), key=k), seed_key(0)
        )
    trainer = make_trainer(contender, total_timesteps)
    first_s, first_cpu_s, _ = timed_cpu(trainer.run, seed_key(0))
    steady: list[float] = []
    steady_cpu: list[float] = []
    returns: list[list[float]] = []
    for seed in range(seeds):
        t, t_cpu, policy = timed_cpu(trainer.run, seed_key(seed))
        steady.append(t)
        steady_cpu.append(t_cpu)
        episode_returns = trainer.evaluate(policy, eval_key(seed))
        returns.append([float(r) for r in np.asarray(episode_returns)])
    return {
        "name": name,
        "timesteps": total_timesteps,
        "steps_per_run": trainer.steps_per_run,
        "import_s": import_s,
        "init_s": init_s,
        "init_cpu_s": init_cpu_s,
        "first_s": first_s,
        "first_cpu_s": first_cpu_s,
        "steady_s": steady,
        "steady_cpu_s": steady_cpu,
        "returns": returns,
    }


def run_worker(name: str, total_timesteps: int, seeds: int) -> dict[str, Any]:
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        name,
        "--timesteps",
        str(total_timesteps),
        "--seeds",
        str(seeds),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"worker {name} failed:\n{out.stderr}")
    line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")][-1]
    result: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
    return result


def interleaved(
    fns: Sequence[Callable[[Key], object]], repeats: int
) -> list[list[float]]:
    """Seconds per call of each (compiled) fn, in the order A B, B A, A B, ..."""
    times: list[list[float]] = [[] for _ in fns]
    order = list(range(len(fns)))
    for i in range(repeats):
        for j in order if i % 2 == 0 else order[::-1]:
            t, _ = timed(fns[j], seed_key(100 + i))
            times[j].append(t)
    return times


def seed_keys(n: int) -> Key:
    return jr.split(jr.key(1000), n)


# ---------------------------------------------------------------- report


def git_head() -> str:
    """The commit the benchmarked Lerax comes from (``+dirty`` if src/ differs)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "src"], capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "unknown"
    return head + ("+dirty" if dirty else "")


def fmt_rate(x: float) -> str:
    return f"{x:,.0f}"


def settings_table(all_contenders: dict[str, Contender]) -> str:
    fields = [f.name for f in dataclasses.fields(Settings)]
    seen: dict[Settings, list[str]] = {}
    for c in all_contenders.values():
        seen.setdefault(c.settings, []).append(c.name)
    lines = ["| setting | " + " | ".join(", ".join(v) for v in seen.values()) + " |"]
    lines.append("| --- |" + " --- |" * len(seen))
    for f in fields:
        values = [str(getattr(s, f)) for s in seen]
        lines.append(f"| {f} | " + " | ".join(values) + " |")
    return "\n".join(lines)


@dataclass(frozen=True)
class FirstCall:
    """Medians over rounds of one contender at one budget (seconds)."""

    name: str
    steps: int
    init: float
    train_first: float
    steady: float
    init_cpu: float
    train_first_cpu: float
    steady_cpu: float
    means: list[float]

    @property
    def first(self) -> float:
        """The user-visible first call: policy init + first train call."""
        return self.init + self.train_first

    @property
    def compile(self) -> float:
        return self.first - self.steady

    @property
    def compile_cpu(self) -> float:
        return self.init_cpu + self.train_first_cpu - self.steady_cpu

    @property
    def solved(self) -> int:
        return sum(m >= SOLVED for m in self.means)


def summarise(rounds: list[dict[str, Any]]) -> FirstCall:
    def med(key: str) -> float:
        return float(statistics.median(r[key] for r in rounds))

    def med_of_medians(key: str) -> float:
        return float(statistics.median(statistics.median(r[key]) for r in rounds))

    return FirstCall(
        name=rounds[0]["name"],
        steps=rounds[0]["steps_per_run"],
        init=med("init_s"),
        train_first=med("first_s"),
        steady=med_of_medians("steady_s"),
        init_cpu=med("init_cpu_s"),
        train_first_cpu=med("first_cpu_s"),
        steady_cpu=med_of_medians("steady_cpu_s"),
        # learning does not depend on the round: the same seeds every round
        means=[statistics.fmean(x) for x in rounds[0]["returns"]],
    )


def first_call_report(calls: list[FirstCall], seeds: int) -> str:
    lines = [
        "| contender | steps | first call s (policy init + train) | steady s "
        "| compile s (CPU s) | steady steps/s | mean return per seed | solved "
        "| mean |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    for c in calls:
        lines.append(
            f"| {c.name} | {c.steps} | {c.first:.2f} ({c.init:.2f} + "
            f"{c.train_first:.2f}) | {c.steady:.2f} | {c.compile:.2f} "
            f"({c.compile_cpu:.2f}) | {fmt_rate(c.steps / c.steady)} "
            f"| {' '.join(f'{m:.0f}' for m in c.means)} | {c.solved}/{seeds} "
            f"| {statistics.fmean(c.means):.1f} |"
        )
    return "\n".join(lines)


def time_to_solve_report(calls: list[FirstCall], seeds: int) -> str:
    """First call (compile included) at the smallest budget solving >= 4/5 seeds."""
    need = math.ceil(0.8 * seeds)
    lines = [
        f"| contender | time to solve s (first call, >= {need}/{seeds} seeds) "
        "| at steps |",
        "| --- | ---: | ---: |",
    ]
    for name in dict.fromkeys(c.name for c in calls):
        ok = sorted(
            (c for c in calls if c.name == name and c.solved >= need),
            key=lambda c: c.steps,
        )
        if ok:
            lines.append(f"| {name} | {ok[0].first:.2f} | {ok[0].steps} |")
        else:
            lines.append(f"| {name} | not solved | - |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description="PPO on CartPole: Lerax vs rejax")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--timesteps", type=int, default=2**16)
    parser.add_argument("--budgets", type=int, nargs="+", default=[2**16, 2**17])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--vmap-seeds", type=int, default=8)
    parser.add_argument("--vmap-repeats", type=int, default=3)
    parser.add_argument(
        "--phases", nargs="+", default=["first", "steady", "vmap", "vmap-devices"]
    )
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    parser.add_argument(
        "--shard-seeds",
        action="store_true",
        help="vmap phase: split the seeds over all devices (lerax.algorithm.shard_seeds)",
    )
    parser.add_argument(
        "--json", default="/tmp/ppo_cartpole.json", help="raw first-call results"
    )
    args = parser.parse_args()

    if args.worker is not None:
        result = worker(args.worker, args.timesteps, args.seeds)
        print("RESULT " + json.dumps(result))
        return

    if args.quick:
        args.budgets, args.seeds, args.rounds = [2**13], 2, 1
        args.repeats, args.vmap_seeds, args.vmap_repeats = 2, 2, 1
    check_rejax_defaults()
    all_contenders = contenders()
    print(
        f"python {platform.python_version()}, jax {jax.__version__} "
        f"({jax.default_backend()}), equinox {version('equinox')}, "
        f"optax {version('optax')}, rejax {version('rejax')}, gymnax "
        f"{version('gymnax')}, flax {version('flax')}, distrax {version('distrax')}"
    )
    print(f"devices: {jax.devices()}, lerax at {git_head()}")
    print(f"\nSettings\n\n{settings_table(all_contenders)}\n")
    print("Caveats of the matched comparison:")
    for c in MATCH_CAVEATS:
        print(f"- {c}")

    if "first" in args.phases:
        print(f"\n## First call and returns ({args.seeds} seeds)\n", flush=True)
        results: dict[tuple[str, int], list[dict[str, Any]]] = {}
        names = list(all_contenders)
        for budget in args.budgets:
            for i in range(args.rounds):
                for name in names if i % 2 == 0 else names[::-1]:
                    r = run_worker(name, budget, args.seeds)
                    results.setdefault((name, budget), []).append(r)
                    print(
                        f"  {name} {budget} round {i}: first "
                        f"{r['init_s'] + r['first_s']:.2f}s "
                        f"steady {statistics.median(r['steady_s']):.2f}s "
                        f"import {r['import_s']:.2f}s",
                        flush=True,
                    )
        calls = [summarise(rounds) for rounds in results.values()]
        print()
        print(first_call_report(calls, args.seeds))
        print()
        print(time_to_solve_report(calls, args.seeds), flush=True)
        with open(args.json, "w") as f:
            json.dump({f"{k[0]} {k[1]}": v for k, v in results.items()}, f)

    trainers: dict[str, Trainer[Any]] = {}
    budget = args.budgets[0]
    if "steady" in args.phases or "vmap" in args.phases:
        warm_up()
        needed = set(VMAP_CONTENDERS) if "vmap" in args.phases else set()
        if "steady" in args.phases:
            needed |= {n for pair in PAIRS for n in pair[:2]}
        for name in sorted(needed):
            trainers[name] = make_trainer(
                all_contenders[name], budget, args.shard_seeds
            )
            t, _ = timed(trainers[name].run, seed_key(0))
            print(f"  compiled {name}: first call {t:.2f}s", flush=True)

    if "steady" in args.phases:
        print(
            f"\n## Steady throughput at {budget} steps "
            f"({args.repeats} interleaved repeats)\n"
        )
        print(
            "| pair | Lerax steps/s median (best) | rejax steps/s median (best) "
            "| Lerax/rejax median | Lerax/rejax best |"
        )
        print("| --- | ---: | ---: | ---: | ---: |")
        for lerax_name, rejax_name, what in PAIRS:
            a, b = trainers[lerax_name], trainers[rejax_name]
            ta, tb = interleaved([a.run, b.run], args.repeats)
            ra = [a.steps_per_run / t for t in ta]
            rb = [b.steps_per_run / t for t in tb]
            print(
                f"| {what}: {lerax_name} vs {rejax_name} "
                f"| {fmt_rate(statistics.median(ra))} ({fmt_rate(max(ra))}) "
                f"| {fmt_rate(statistics.median(rb))} ({fmt_rate(max(rb))}) "
                f"| {statistics.median(ra) / statistics.median(rb):.3f} "
                f"| {max(ra) / max(rb):.3f} |",
                flush=True,
            )

    if "vmap-devices" in args.phases:
        # JAX fixes the CPU device count at start-up: a child process with one
        # device per core, running the vmap phase with the seeds split over them.
        cores = os.cpu_count() or 1
        flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={cores}"
        cmd = [sys.executable, __file__, "--phases", "vmap", "--shard-seeds"]
        cmd += ["--budgets", str(budget), "--vmap-seeds", str(args.vmap_seeds)]
        cmd += ["--vmap-repeats", str(args.vmap_repeats)]
        print(
            f"\n## Seeds split over {cores} CPU devices (child process)\n", flush=True
        )
        subprocess.run(cmd, check=True, env={**os.environ, "XLA_FLAGS": flags.strip()})

    if "vmap" in args.phases:
        n = args.vmap_seeds
        where = f", split over {len(jax.devices())} devices" if args.shard_seeds else ""
        print(f"\n## {n} vmapped seeds{where} vs 1 seed at {budget} steps\n")
        print(
            f"| contender | 1 seed s | {n} seeds first call s | {n} seeds s "
            f"| ratio | {n}-seed mean returns |"
        )
        print("| --- | ---: | ---: | ---: | ---: | --- |")
        keys = seed_keys(n)
        for name in VMAP_CONTENDERS:
            tr = trainers[name]
            first, policies = timed(tr.run_seeds, keys)

            def run_seeds(_key: Key, tr: Trainer[Any] = tr) -> object:
                return tr.run_seeds(keys)

            single, many = interleaved([tr.run, run_seeds], args.vmap_repeats)
            evaluate = eqx.filter_vmap(tr.evaluate)
            rets = np.asarray(evaluate(policies, jr.split(jr.key(EVAL_KEY), n)))
            s1, sn = statistics.median(single), statistics.median(many)
            print(
                f"| {name} | {s1:.2f} | {first:.2f} | {sn:.2f} | {sn / s1:.2f} "
                f"| {' '.join(f'{m:.0f}' for m in rets.mean(axis=1))} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
