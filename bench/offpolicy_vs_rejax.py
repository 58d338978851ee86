"""DQN, SAC and TD3: Lerax vs rejax at rejax's tuned settings (speed).

The issue's targets: the wall time of the whole budgeted run, first call
included (tracing, compilation and training), at most rejax's, with rejax's
in-training evaluation off and Lerax without callbacks; and steady
environment steps per second at rejax's tuned settings at least rejax's
(ratio Lerax/rejax >= 1.0).

Contenders, one pair per algorithm (``--only`` selects):

- ``dqn``: CartPole-v1, 100,000 steps. Lerax ``DQN(batch_size=100,
  learning_rate=1e-3, anneal_lr=False)`` (rejax's values of the three
  settings in which ``DQN()``'s defaults differ from rejax's config) with
  ``MLPQPolicy(env, key=..., dueling=True, activation=jax.nn.swish)`` (64x64)
  on ``lerax.env.CartPole``; rejax ``DQN`` with the ``dqn`` section of
  keraJLi/rejax ``configs/gymnax/cartpole.yaml`` (commit 4954fbf) on gymnax's
  ``CartPole-v1``.
- ``sac``: Pendulum-v1, 10,000 steps. Lerax ``SAC()`` with
  ``MLPSACPolicy(env, key=..., hidden_sizes=(64, 64),
  activation=jax.nn.swish, log_std_min=-10.0)`` on ``lerax.env.Pendulum``;
  rejax ``SAC`` with the ``sac`` section of ``configs/gymnax/pendulum.yaml``
  on gymnax's ``Pendulum-v1``.
- ``td3``: Pendulum-v1, 10,000 steps. Lerax ``TD3()`` with
  ``MLPDeterministicPolicy(env, key=..., hidden_sizes=(64, 64),
  activation=jax.nn.swish)``; rejax ``TD3`` with the ``td3`` section of
  ``configs/gymnax/pendulum.yaml``.

The budgets are rejax's tuned ``total_timesteps``; ``--budget`` overrides
them. The yaml files are not shipped in rejax's wheel, so their values are
copied in ``REJAX_TUNED`` (without ``env``, ``total_timesteps`` and
``eval_freq``, set per run).

Lerax's defaults were taken from those configs. Each run prints both sides'
exact settings and a table of the settings that map one to one (``same`` or
``DIFFERS``). What differs or cannot be expressed on one side:

- all three: initialisation (Lerax: orthogonal; rejax: flax's LeCun normal,
  zero biases); gradient clipping (Lerax clips the global norm, rejax each
  element, ``optax.clip``); truncation (rejax's ``done`` is ``terminated |
  truncated`` and does not bootstrap; Lerax bootstraps from the true final
  observation of a truncated episode, so every Pendulum episode end differs);
  learning starts (rejax updates from the first iteration that begins after
  more than ``fill_buffer`` steps, two iterations later than Lerax, which
  updates from the iteration whose steps reach ``learning_starts``); the
  environments are Lerax's own and gymnax's implementations of the same
  tasks.
- DQN: both use the squared error (``optax.l2_loss``); rejax's ``target_update_freq: 200`` is commented out in the yaml, so both
  update the target by Polyak averaging (tau 0.02) once per iteration (Lerax:
  after every ``target_update_interval=5``-th gradient step, with
  ``gradient_steps=5``).
- SAC: rejax's tuned config normalises observations (``normalize_observations:
  true``, running mean and variance); Lerax has no observation normalisation
  (``--rejax-no-obs-norm`` runs rejax without it, for equal work). rejax acts
  with the policy from the first step (``fill_buffer`` only delays the
  updates); Lerax acts uniformly in the box before ``learning_starts``. Update
  order: rejax actor, critic, temperature; Lerax critic, actor, temperature.
  Temperature loss: rejax ``-alpha * (log_pi + target)``, Lerax ``-log_alpha
  * (log_pi + target)``. ``log_std`` range: rejax (-10, 2); Lerax's default
  (-20, 2), set to -10 here (``log_std_min=-10.0``). rejax's
  ``target_entropy_ratio: null`` is not read for a ``Box`` (both target
  ``-action_size``). rejax updates the target critic every environment step,
  before learning starts too (a no-op then: the critic has not changed);
  Lerax after each gradient step.
- TD3: rejax normalises observations (as SAC). Noise: Lerax's exploration
  and target noises are in the normalised action space [-1, 1], rejax's in
  the environment's (Pendulum's [-2, 2]), so rejax's are half as large
  relative to the box. Actor loss: rejax ``-mean`` over both critics' Q;
  Lerax ``-mean(Q1)``. Critic loss: rejax ``0.5 * (mse1 + mse2)``, Lerax
  ``mse1 + mse2``. Delayed updates: both make ``policy_delay=2`` critic
  updates per actor and target update; rejax updates the actor on the batch
  of the last critic update, Lerax on its own batch.

Measurements, per algorithm, in one process after a common warm-up (a tiny
jitted op and a key split):

1. First call: a fresh ``eqx.filter_jit`` around Lerax's ``train`` and a fresh
   ``jax.jit`` around rejax's ``train`` (as rejax's README), one seed; the wall
   time (and process CPU time) of the first call: tracing, compilation and the
   whole budgeted run. Lerax's call includes building the policy (eager; rejax
   initialises its networks inside ``train``); building the algorithm objects
   is outside both. The order of the libraries alternates between algorithms.
   All algorithms share one process, so a later algorithm's first call finds
   the eager operations an earlier one compiled (for Lerax, parts of building
   the policy); ``--only NAME`` measures one algorithm in a process of its
   own.
2. Steady: the same compiled functions called ``--repeats`` more times,
   interleaved (A B, B A, ...), each with a new key; the median wall time,
   env steps/s (the run's environment steps over it), the ratio Lerax/rejax
   of steady env steps/s (target >= 1.0) and of first-call wall time
   (target <= 1.0). ``compile`` is first call - median steady call.
3. With ``--seeds N`` (N > 1): N seeds vmapped in one program for both
   (``eqx.filter_jit(eqx.filter_vmap(train))`` over stacked policies and keys;
   ``jax.jit(jax.vmap(train))`` over keys), first call and steady as above.
   Lerax's N policies are built outside the vmapped program and stacked
   (building them inside ``jit(vmap(...))`` can hang jaxlib 0.10.2's CPU
   runtime; see BENCHMARKS.md).

rejax trains with ``eval_freq = total_timesteps``, ``skip_initial_evaluation``
and a no-op evaluation callback (its default evaluates 128 episodes each
``eval_freq`` steps), and returns only the trained actor's (or Q-network's)
parameters; Lerax's jitted function returns only the trained policy. Every
timing blocks until the result is ready. rejax 0.1.3 unpacks gymnax's pre-1.0
five-value ``step``; its environments are wrapped in ``GymnaxV0Step``
(imported from ``bench/ppo_cartpole.py``), which returns ``terminated |
truncated`` as ``done`` as gymnax 0.0.x did.

Run: ``python bench/offpolicy_vs_rejax.py`` (needs rejax, gymnax and flax;
see BENCHMARKS.md). ``--quick`` is a smoke run (DQN 10,000 steps, SAC and TD3
2,000, 2 repeats).
"""

import argparse
import dataclasses
import importlib
import inspect
import math
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import PRNGKeyArray
from ppo_cartpole import GymnaxV0Step, block, fmt_rate, git_head, no_evaluation
from ppo_cartpole import warm_up as common_warm_up

from lerax.algorithm import DQN, SAC, TD3, AbstractAlgorithm
from lerax.env import CartPole, Pendulum
from lerax.policy import (
    AbstractPolicy,
    MLPDeterministicPolicy,
    MLPQPolicy,
    MLPSACPolicy,
)

Key = PRNGKeyArray
Name = Literal["dqn", "sac", "td3"]
Library = Literal["Lerax", "rejax"]
Policy = AbstractPolicy[Any, Any]
NAMES: tuple[Name, ...] = ("dqn", "sac", "td3")

# rejax's tuned budgets (`total_timesteps` of the yaml sections).
BUDGETS: dict[Name, int] = {"dqn": 100_000, "sac": 10_000, "td3": 10_000}
QUICK_BUDGETS: dict[Name, int] = {"dqn": 10_000, "sac": 2_000, "td3": 2_000}
GYMNAX_ENV: dict[Name, str] = {
    "dqn": "CartPole-v1",
    "sac": "Pendulum-v1",
    "td3": "Pendulum-v1",
}

# keraJLi/rejax configs/gymnax/cartpole.yaml (`dqn`) and pendulum.yaml (`sac`,
# `td3`) at commit 4954fbf, without env, total_timesteps and eval_freq.
REJAX_TUNED: dict[Name, dict[str, Any]] = {
    "dqn": {
        "agent": "DuelingQNetwork",
        "agent_kwargs": {"activation": "swish"},
        "num_envs": 10,
        "buffer_size": 50_000,
        "fill_buffer": 5_000,
        "batch_size": 100,
        "max_grad_norm": 10,
        "learning_rate": 0.001,
        "num_epochs": 5,
        "polyak": 0.98,
        "eps_start": 1,
        "eps_end": 0.05,
        "exploration_fraction": 0.5,
        "gamma": 0.99,
        "ddqn": True,
        "normalize_observations": False,
    },
    "sac": {
        "agent_kwargs": {"activation": "swish"},
        "num_envs": 1,
        "buffer_size": 10_000,
        "fill_buffer": 256,
        "batch_size": 256,
        "learning_rate": 0.01,
        "num_epochs": 1,
        "gamma": 0.99,
        "polyak": 0.98,
        "target_entropy_ratio": None,
        "normalize_observations": True,
    },
    "td3": {
        "actor_kwargs": {"activation": "swish"},
        "critic_kwargs": {"activation": "swish"},
        "num_envs": 1,
        "buffer_size": 10_000,
        "fill_buffer": 1000,
        "batch_size": 100,
        "learning_rate": 0.001,
        "num_epochs": 1,
        "gamma": 0.99,
        "polyak": 0.95,
        "max_grad_norm": 100,
        "exploration_noise": 0.3,
        "target_noise": 0.2,
        "target_noise_clip": 0.5,
        "policy_delay": 2,
        "normalize_observations": True,
    },
}

# The policies' constructor arguments (besides env and key), as printed.
LERAX_POLICY_KWARGS: dict[Name, dict[str, Any]] = {
    "dqn": {"hidden_sizes": (64, 64), "activation": jax.nn.swish, "dueling": True},
    "sac": {
        "hidden_sizes": (64, 64),
        "activation": jax.nn.swish,
        "log_std_min": -10.0,
    },
    "td3": {"hidden_sizes": (64, 64), "activation": jax.nn.swish},
}


# ---------------------------------------------------------------- contenders


@dataclass(frozen=True)
class Contender:
    """One library's program for one algorithm, ready to call.

    ``run(key)`` trains one seed and returns the trained parameters;
    ``run_seeds(keys)`` trains one seed per key (leading axis) in one vmapped
    program. Both are freshly jitted when the contender is made.
    """

    library: Library
    run: Callable[[Key], object]
    run_seeds: Callable[[Key], object]
    steps_per_run: int
    config: dict[str, object]


def lerax_algorithm(name: Name) -> AbstractAlgorithm[Any, Any]:
    algorithms: dict[Name, Callable[[], AbstractAlgorithm[Any, Any]]] = {
        # DQN()'s defaults differ from rejax's tuned config in three settings
        # chosen for learning (BENCHMARKS.md); the speed comparison uses
        # rejax's (batch 100, learning rate 1e-3, constant).
        "dqn": lambda: DQN(batch_size=100, learning_rate=1e-3, anneal_lr=False),
        "sac": SAC,
        "td3": TD3,
    }
    return algorithms[name]()


def lerax_policy(name: Name, env: Any, key: Key) -> Policy:
    kwargs = LERAX_POLICY_KWARGS[name]
    if name == "dqn":
        return MLPQPolicy(env, key=key, **kwargs)
    if name == "sac":
        return MLPSACPolicy(env, key=key, **kwargs)
    return MLPDeterministicPolicy(env, key=key, **kwargs)


def stack(modules: Sequence[Policy]) -> Policy:
    """Modules of one structure stacked along a new leading axis of their arrays."""
    static = eqx.partition(modules[0], eqx.is_array)[1]
    arrays = [eqx.filter(m, eqx.is_array) for m in modules]
    stacked: Policy = eqx.combine(
        jax.tree.map(lambda *xs: jnp.stack(xs), *arrays), static
    )
    return stacked


def field_values(obj: Any, skip: Sequence[str] = ()) -> dict[str, object]:
    """A dataclass's fields, scalar arrays as Python floats."""
    out: dict[str, object] = {}
    for f in dataclasses.fields(obj):
        if f.name in skip:
            continue
        value = getattr(obj, f.name)
        if isinstance(value, jax.Array) and value.ndim == 0:
            value = float(value)
        out[f.name] = value
    return out


def num(x: Any) -> float:
    """A float32 hyperparameter as the decimal it was written as."""
    return float(f"{float(x):.6g}")


def grad_clip(x: Any) -> object:
    return "none" if math.isinf(float(x)) else num(x)


def sac_default(argument: str) -> object:
    """The default of one of ``MLPSACPolicy``'s arguments."""
    default: object = inspect.signature(MLPSACPolicy).parameters[argument].default
    return default


def activation_name(fn: Any) -> str:
    return str(getattr(fn, "__name__", fn))


def lerax_contender(name: Name, budget: int) -> Contender:
    """Lerax as a user calls it: build the policy, then ``algo.train`` (jitted)."""
    algo = lerax_algorithm(name)
    env: Any = CartPole() if name == "dqn" else Pendulum()

    def train(policy: Policy, key: Key) -> Policy:
        trained: Policy = algo.train(env, policy, budget, key=key).policy
        return trained

    one = eqx.filter_jit(train)
    many = eqx.filter_jit(eqx.filter_vmap(train))

    def run(key: Key) -> object:
        k_policy, k_train = jr.split(key)
        out: object = one(lerax_policy(name, env, k_policy), k_train)
        return out

    def run_seeds(keys: Key) -> object:
        splits = [jr.split(k) for k in keys]
        policies = stack([lerax_policy(name, env, k[0]) for k in splits])
        out: object = many(policies, jnp.stack([k[1] for k in splits]))
        return out

    policy_kwargs = {
        k: activation_name(v) if k == "activation" else v
        for k, v in LERAX_POLICY_KWARGS[name].items()
    }
    policy_class = {
        "dqn": MLPQPolicy,
        "sac": MLPSACPolicy,
        "td3": MLPDeterministicPolicy,
    }
    config: dict[str, object] = {
        "algorithm": (
            "DQN(batch_size=100, learning_rate=1e-3, anneal_lr=False)"
            if name == "dqn"
            else f"{type(algo).__name__}() (defaults)"
        ),
        **field_values(algo),
        "env": type(env).__name__,
        "policy": policy_class[name].__name__,
        **{f"policy.{k}": v for k, v in policy_kwargs.items()},
    }
    return Contender(
        library="Lerax",
        run=run,
        run_seeds=run_seeds,
        steps_per_run=algo.num_iterations(budget) * algo.steps_per_iteration,
        config=config,
    )


def rejax_algo(name: Name, budget: int, normalize_observations: bool) -> Any:
    """rejax's algorithm with its tuned config, evaluation off."""
    rejax = importlib.import_module("rejax")
    gymnax = importlib.import_module("gymnax")
    env, env_params = gymnax.make(GYMNAX_ENV[name])
    config = dict(REJAX_TUNED[name])
    if not normalize_observations:
        config["normalize_observations"] = False
    algo = getattr(rejax, name.upper()).create(
        env=GymnaxV0Step(env),
        env_params=env_params,
        total_timesteps=budget,
        eval_freq=budget,
        skip_initial_evaluation=True,
        **config,
    )
    return algo.replace(eval_callback=no_evaluation)


def rejax_steps(name: Name, algo: Any, budget: int) -> int:
    """The environment steps of rejax's run with ``eval_freq = budget`` (one
    evaluation block; iterations rounded up)."""
    per_iteration = int(algo.num_envs)
    if name == "td3":
        per_iteration *= int(algo.policy_delay)
    return math.ceil(budget / per_iteration) * per_iteration


def rejax_contender(name: Name, budget: int, normalize_observations: bool) -> Contender:
    """rejax as its README shows: ``jax.jit(algo.train)``, ``jax.jit(jax.vmap(...))``."""
    algo = rejax_algo(name, budget, normalize_observations)
    train = algo.train

    def run_one(key: Key) -> Any:
        train_state, _ = train(key)
        if name == "dqn":
            return train_state.q_ts.params
        return train_state.actor_ts.params

    one = jax.jit(run_one)
    many = jax.jit(jax.vmap(run_one))

    def run(key: Key) -> object:
        out: object = one(key)
        return out

    def run_seeds(keys: Key) -> object:
        out: object = many(keys)
        return out

    config: dict[str, object] = {
        "algorithm": f"rejax.{type(algo).__name__} (tuned {GYMNAX_ENV[name]})",
        "env": f"gymnax {GYMNAX_ENV[name]} (GymnaxV0Step)",
        **field_values(algo, skip=("env", "env_params", "eval_callback")),
        "tuned config": REJAX_TUNED[name],
    }
    return Contender(
        library="rejax",
        run=run,
        run_seeds=run_seeds,
        steps_per_run=rejax_steps(name, algo, budget),
        config=config,
    )


def make_contender(
    library: Library, name: Name, budget: int, normalize_observations: bool
) -> Contender:
    if library == "Lerax":
        return lerax_contender(name, budget)
    return rejax_contender(name, budget, normalize_observations)


# ---------------------------------------------------------------- settings


def mapped_settings(
    name: Name, budget: int, normalize: bool
) -> list[tuple[str, object, object]]:
    """(setting, Lerax, rejax) for the settings that map one to one, read from
    the objects both libraries build."""
    algo: Any = lerax_algorithm(name)
    r = rejax_algo(name, budget, normalize)
    kw = LERAX_POLICY_KWARGS[name]
    network = r.agent if name == "dqn" else r.actor
    # Read from the arguments, not a built policy: building one here would
    # compile Lerax's eager initialisation ops before the first-call timing.
    env: Any = CartPole() if name == "dqn" else Pendulum()
    rows: list[tuple[str, object, object]] = [
        ("num_envs", algo.num_envs, r.num_envs),
        ("env steps per iteration", algo.steps_per_iteration, r.num_envs),
        ("buffer_size", algo.buffer_size, r.buffer_size),
        ("learning_starts / fill_buffer", algo.learning_starts, r.fill_buffer),
        ("batch_size", algo.batch_size, r.batch_size),
        ("gradient_steps / num_epochs", algo.gradient_steps, r.num_epochs),
        ("learning_rate", num(algo.learning_rate), num(r.learning_rate)),
        ("gamma", num(algo.gamma), num(r.gamma)),
        ("tau / 1 - polyak", num(algo.tau), num(1 - float(r.polyak))),
        ("hidden sizes", tuple(kw["hidden_sizes"]), tuple(network.hidden_layer_sizes)),
        (
            "activation",
            activation_name(kw["activation"]),
            activation_name(network.activation),
        ),
        (
            "observation normalisation",
            "off",  # Lerax has none
            "on" if r.normalize_observations else "off",
        ),
    ]
    if name in ("dqn", "td3"):
        rows.append(
            (
                "max_grad_norm (global / per element)",
                grad_clip(algo.max_grad_norm),
                grad_clip(r.max_grad_norm),
            )
        )
    else:
        rows.append(("max_grad_norm", "none", grad_clip(r.max_grad_norm)))
    if name == "dqn":
        rows += [
            (
                "dueling",
                kw["dueling"],
                any(c.__name__ == "DuelingQNetwork" for c in type(network).__mro__),
            ),
            ("double_dqn / ddqn", algo.double_dqn, bool(r.ddqn)),
            ("eps_start", num(algo.eps_start), num(r.eps_start)),
            ("eps_end", num(algo.eps_end), num(r.eps_end)),
            (
                "exploration_fraction",
                num(algo.exploration_fraction),
                num(r.exploration_fraction),
            ),
            (
                "target updates per iteration",
                algo.gradient_steps // algo.target_update_interval,
                1 if r.target_update_freq <= r.num_envs else "fewer",
            ),
        ]
    if name == "sac":
        rows += [
            # rejax starts log_alpha at 0 (SAC.initialize_network_params)
            ("initial temperature", num(algo.ent_coef), 1.0),
            (
                "target entropy",
                -env.action_space.flat_size
                if algo.auto_target_entropy
                else num(algo.target_entropy),
                -int(r.action_dim),
            ),
            (
                "log_std range",
                (kw["log_std_min"], sac_default("log_std_max")),
                tuple(float(x) for x in network.log_std_range),
            ),
        ]
    if name == "td3":
        rows += [
            ("policy_delay", algo.policy_delay, r.policy_delay),
            (
                "exploration_noise (normalised / env units)",
                num(algo.exploration_noise),
                num(r.exploration_noise),
            ),
            (
                "target_noise (normalised / env units)",
                num(algo.target_noise),
                num(r.target_noise),
            ),
            (
                "target_noise_clip (normalised / env units)",
                num(algo.target_noise_clip),
                num(r.target_noise_clip),
            ),
        ]
    return rows


def settings_report(name: Name, budget: int, normalize: bool) -> str:
    lines = [
        f"| {name.upper()} setting | Lerax | rejax | |",
        "| --- | --- | --- | --- |",
    ]
    for setting, a, b in mapped_settings(name, budget, normalize):
        same = "same" if str(a) == str(b) else "DIFFERS"
        lines.append(f"| {setting} | {a} | {b} | {same} |")
    return "\n".join(lines)


# ---------------------------------------------------------------- timing


def timed(fn: Callable[[Key], object], key: Key) -> tuple[float, float]:
    """Wall and process CPU seconds of ``fn(key)``, result ready."""
    start, start_cpu = time.perf_counter(), time.process_time()
    block(fn(key))
    return time.perf_counter() - start, time.process_time() - start_cpu


def warm_up() -> None:
    """JAX's one-time start-up, paid before any measurement: the backend, a
    tiny jitted op and key splitting (``ppo_cartpole.warm_up``), and a tiny
    ``eqx.filter_jit`` call."""
    common_warm_up()
    block(eqx.filter_jit(lambda x: x + 1)(jnp.ones(2)))


def interleaved(
    fns: Sequence[Callable[[Key], object]], repeats: int, key_of: Callable[[int], Key]
) -> list[list[float]]:
    """Wall seconds per call of each (compiled) fn, in the order A B, B A, ..."""
    times: list[list[float]] = [[] for _ in fns]
    order = list(range(len(fns)))
    for i in range(repeats):
        for j in order if i % 2 == 0 else order[::-1]:
            t, _ = timed(fns[j], key_of(i))
            times[j].append(t)
    return times


@dataclass(frozen=True)
class Measured:
    """One library's first call and steady calls for one algorithm."""

    library: Library
    steps: int
    first: float
    first_cpu: float
    steady: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.steady)

    @property
    def rate(self) -> float:
        return self.steps / self.median

    @property
    def compile(self) -> float:
        return self.first - self.median


@dataclass(frozen=True)
class Row:
    name: Name
    budget: int
    seeds: int
    lerax: Measured
    rejax: Measured


def measure(
    name: Name,
    budget: int,
    repeats: int,
    lerax_first: bool,
    normalize: bool,
    seeds: int,
) -> tuple[Row, Row | None]:
    """First call of each library (in the given order), then steady calls
    interleaved; then the same with ``seeds`` vmapped seeds if ``seeds > 1``."""
    order: list[Library] = ["Lerax", "rejax"] if lerax_first else ["rejax", "Lerax"]
    contenders = {
        lib: make_contender(lib, name, budget, normalize) for lib in ("Lerax", "rejax")
    }
    c_lerax, c_rejax = contenders["Lerax"], contenders["rejax"]

    def one_seed(i: int) -> Key:
        return jr.key(100 + i)

    first: dict[Library, tuple[float, float]] = {}
    for lib in order:
        first[lib] = timed(contenders[lib].run, jr.key(0))
        print(
            f"  {name} {lib}: first call {first[lib][0]:.2f} s "
            f"(CPU {first[lib][1]:.2f} s)",
            flush=True,
        )
    steady = interleaved([c_lerax.run, c_rejax.run], repeats, one_seed)
    single = Row(
        name,
        budget,
        1,
        Measured("Lerax", c_lerax.steps_per_run, *first["Lerax"], steady[0]),
        Measured("rejax", c_rejax.steps_per_run, *first["rejax"], steady[1]),
    )
    print_row_progress(single)
    if seeds <= 1:
        return single, None

    def seed_keys(i: int) -> Key:
        return jr.split(jr.key(1000 + i), seeds)

    # Fresh jit wrappers, so the vmapped first calls compile too.
    contenders = {
        lib: make_contender(lib, name, budget, normalize) for lib in ("Lerax", "rejax")
    }
    c_lerax, c_rejax = contenders["Lerax"], contenders["rejax"]
    first_n: dict[Library, tuple[float, float]] = {}
    for lib in order:
        first_n[lib] = timed(contenders[lib].run_seeds, seed_keys(-1))
        print(
            f"  {name} {lib} {seeds} seeds: first call {first_n[lib][0]:.2f} s "
            f"(CPU {first_n[lib][1]:.2f} s)",
            flush=True,
        )
    steady_n = interleaved([c_lerax.run_seeds, c_rejax.run_seeds], repeats, seed_keys)
    many = Row(
        name,
        budget,
        seeds,
        Measured(
            "Lerax", seeds * c_lerax.steps_per_run, *first_n["Lerax"], steady_n[0]
        ),
        Measured(
            "rejax", seeds * c_rejax.steps_per_run, *first_n["rejax"], steady_n[1]
        ),
    )
    print_row_progress(many)
    return single, many


# ---------------------------------------------------------------- report


def print_row_progress(row: Row) -> None:
    for m in (row.lerax, row.rejax):
        print(
            f"  {row.name} {m.library} {row.seeds} seed(s): steady "
            f"{' '.join(f'{t:.2f}' for t in m.steady)} s, median {m.median:.2f} s, "
            f"{fmt_rate(m.rate)} env steps/s ({m.steps} steps per call)",
            flush=True,
        )


def table(rows: Sequence[Row], repeats: int) -> str:
    lines = [
        "| algorithm | env | steps | seeds | Lerax first call s (CPU s) "
        "| rejax first call s (CPU s) | first call Lerax/rejax (<= 1) "
        "| Lerax compile s | rejax compile s "
        f"| Lerax steady s (median of {repeats}) | rejax steady s "
        "| Lerax env steps/s | rejax env steps/s | steady steps/s Lerax/rejax (>= 1) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: | ---: | ---: |",
    ]
    for r in rows:
        a, b = r.lerax, r.rejax
        lines.append(
            f"| {r.name.upper()} | {GYMNAX_ENV[r.name]} | {r.budget:,} | {r.seeds} "
            f"| {a.first:.2f} ({a.first_cpu:.2f}) | {b.first:.2f} ({b.first_cpu:.2f}) "
            f"| {a.first / b.first:.3f} | {a.compile:.2f} | {b.compile:.2f} "
            f"| {a.median:.2f} | {b.median:.2f} | {fmt_rate(a.rate)} "
            f"| {fmt_rate(b.rate)} | {a.rate / b.rate:.3f} |"
        )
    return "\n".join(lines)


def print_config(name: Name, budget: int, normalize: bool) -> None:
    print(f"\n## {name.upper()} ({GYMNAX_ENV[name]}, {budget:,} steps): settings\n")
    for library in ("Lerax", "rejax"):
        c = make_contender(library, name, budget, normalize)
        print(f"{library} ({c.steps_per_run:,} env steps per run):")
        for k, v in c.config.items():
            print(f"  {k}: {v}")
    print()
    print(settings_report(name, budget, normalize), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description="DQN, SAC and TD3: Lerax vs rejax at rejax's tuned settings"
    )
    parser.add_argument(
        "--only", nargs="+", choices=NAMES, default=list(NAMES), help="algorithms"
    )
    parser.add_argument(
        "--budget",
        type=int,
        help="env steps for every selected algorithm (default: rejax's tuned "
        "budgets, DQN 100,000, SAC and TD3 10,000)",
    )
    parser.add_argument("--repeats", type=int, default=5, help="steady calls each")
    parser.add_argument(
        "--seeds", type=int, default=1, help="also N seeds vmapped (N > 1)"
    )
    parser.add_argument(
        "--rejax-no-obs-norm",
        action="store_true",
        help="rejax without observation normalisation (SAC, TD3; Lerax has none)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: DQN 10,000 steps, SAC and TD3 2,000, 2 repeats",
    )
    args = parser.parse_args()
    budgets = dict(QUICK_BUDGETS if args.quick else BUDGETS)
    if args.budget is not None:
        budgets = {n: args.budget for n in NAMES}
    repeats = 2 if args.quick else args.repeats
    normalize = not args.rejax_no_obs_norm
    names: list[Name] = [n for n in NAMES if n in args.only]

    print(
        f"python {platform.python_version()}, jax {jax.__version__} "
        f"({jax.default_backend()}), jaxlib {version('jaxlib')}, equinox "
        f"{version('equinox')}, optax {version('optax')}, rejax {version('rejax')}, "
        f"gymnax {version('gymnax')}, flax {version('flax')}"
    )
    print(f"devices: {jax.devices()}, lerax at {git_head()}")
    print(
        f"persistent compilation cache: "
        f"{jax.config.values.get('jax_compilation_cache_dir') or 'off'}"
    )
    print(
        f"budgets: {', '.join(f'{n.upper()} {budgets[n]:,}' for n in names)}; "
        f"{repeats} steady repeats; seeds {args.seeds}; rejax observation "
        f"normalisation: {'as tuned' if normalize else 'off'}"
    )
    for name in names:
        print_config(name, budgets[name], normalize)

    warm_up()
    rows: list[Row] = []
    vmapped: list[Row] = []
    for i, name in enumerate(names):
        lerax_first = i % 2 == 0
        print(
            f"\n## {name.upper()}: first call and {repeats} steady calls "
            f"({'Lerax' if lerax_first else 'rejax'} first)\n",
            flush=True,
        )
        single, many = measure(
            name, budgets[name], repeats, lerax_first, normalize, args.seeds
        )
        rows.append(single)
        if many is not None:
            vmapped.append(many)

    print("\n## Summary (paste into BENCHMARKS.md)\n")
    print(
        f"jax {jax.__version__} ({jax.default_backend()}), {platform.processor() or platform.machine()}, "
        f"rejax {version('rejax')}, gymnax {version('gymnax')}, lerax {git_head()}; "
        f"rejax observation normalisation {'as tuned' if normalize else 'off'}\n"
    )
    print(table(rows + vmapped, repeats))


if __name__ == "__main__":
    main()
