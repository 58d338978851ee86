"""Bad arguments to ``train``/``learn`` are clear errors before anything compiles:
called directly and inside the user's ``eqx.filter_jit`` (at trace time).

In this suite jaxtyping + beartype check every annotated argument of ``lerax``
first: a value the annotation rejects (``key=0``, ``env=None``, a float
``total_timesteps``, ...) raises their ``TypeError`` naming the parameter.
Lerax's own messages, which users get, are checked in a plain Python process
([`test_lerax_messages_without_the_runtime_checker`][]); values the
annotations accept (a bool ``total_timesteps``, counts that would overflow)
reach Lerax's checks here too.
"""

import json
import re
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import equinox as eqx
import gymnasium
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from lerax.algorithm import A2C, DQN, PPO, SAC, TD3, AbstractAlgorithm
from lerax.env import CartPole
from lerax.policy import MLPActorCriticPolicy, MLPQPolicy

ENV = CartPole()
POLICY = MLPActorCriticPolicy(env=ENV, key=jr.key(0))
ALGO = PPO(num_envs=2, num_steps=8, num_epochs=1, num_minibatches=1)
TOTAL = 2 * ALGO.steps_per_iteration

ENTRIES = ["learn", "train"]
MODES = ["eager", "filter_jit"]


def _call(
    algo: AbstractAlgorithm[Any, Any], entry: str, mode: str, **overrides: object
) -> None:
    """``algo.<entry>`` with the good arguments but ``overrides``, called
    directly or inside ``eqx.filter_jit`` (the arguments pass through it, so
    arrays arrive traced)."""
    args: dict[str, object] = {
        "env": ENV,
        "policy": POLICY,
        "total_timesteps": TOTAL,
        "key": jr.key(1),
        **overrides,
    }
    method = algo.train if entry == "train" else algo.learn

    def run(a: dict[str, object]) -> object:
        return method(**a)  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType, reportCallIssue]  # deliberately wrong types

    if mode == "eager":
        run(args)
    else:
        eqx.filter_jit(run)(args)


# The runtime checker's message or Lerax's: either names the argument.
def _names(argument: str, lerax: str) -> str:
    return rf"parameter '{argument}'|{lerax}"


class _StatefulEnv:
    """Looks like a Gymnasium environment (``reset``/``step``), from elsewhere."""

    def reset(self) -> None: ...
    def step(self, action: int) -> None: ...


BAD_KEYS: dict[str, Callable[[], object]] = {
    "zero": lambda: 0,
    "none": lambda: None,
    "int_array": lambda: jnp.arange(2),
    "batch_of_keys": lambda: jr.split(jr.key(0), 3),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("bad", sorted(BAD_KEYS))
def test_a_bad_key_is_a_type_error_naming_key(bad: str, entry: str, mode: str) -> None:
    with pytest.raises(TypeError, match=_names("key", "key must be a JAX PRNG key")):
        _call(ALGO, entry, mode, key=BAD_KEYS[bad]())


def test_a_numpy_array_is_not_a_key() -> None:
    with pytest.raises(TypeError, match=_names("key", "key must be a JAX PRNG key")):
        _call(ALGO, "learn", "eager", key=np.zeros(2, np.uint32))


BAD_ENVS: dict[str, Callable[[], object]] = {
    "none": lambda: None,
    "gymnasium": lambda: gymnasium.make("CartPole-v1"),
    "stateful": _StatefulEnv,
    "a_policy": lambda: POLICY,
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("bad", sorted(BAD_ENVS))
def test_a_bad_env_is_a_type_error_naming_env(bad: str, entry: str, mode: str) -> None:
    with pytest.raises(
        TypeError, match=_names("env", "env must be a Lerax environment")
    ):
        _call(ALGO, entry, mode, env=BAD_ENVS[bad]())


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("bad", [None, "policy", ENV])
def test_a_bad_policy_is_a_type_error_naming_policy(
    bad: object, entry: str, mode: str
) -> None:
    with pytest.raises(
        TypeError, match=_names("policy", "policy must be a Lerax policy")
    ):
        _call(ALGO, entry, mode, policy=bad)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("entry", ENTRIES)
def test_a_bool_total_timesteps_is_refused_by_lerax(entry: str, mode: str) -> None:
    # bool is an int to the annotation: Lerax's check answers.
    with pytest.raises(
        TypeError,
        match=r"total_timesteps must be an int \(a Python or NumPy integer, not a "
        r"bool\), got total_timesteps=True of type bool",
    ):
        _call(ALGO, entry, mode, total_timesteps=True)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("bad", ["float", "jax_array"])
def test_a_float_or_an_array_total_timesteps_is_refused(
    bad: str, entry: str, mode: str
) -> None:
    value = 1e4 if bad == "float" else jnp.array(10_000)
    with pytest.raises(
        TypeError, match=_names("total_timesteps", "total_timesteps must be an int")
    ):
        _call(ALGO, entry, mode, total_timesteps=value)


def _parameters(policy: object) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree.leaves(eqx.filter(policy, eqx.is_array))]


def _same_parameters(a: object, b: object) -> None:
    for x, y in zip(_parameters(a), _parameters(b), strict=True):
        np.testing.assert_array_equal(x, y)


def test_a_numpy_integer_total_timesteps_trains_as_the_int() -> None:
    def learn(total: int | np.integer[Any]) -> MLPActorCriticPolicy[Any]:
        return ALGO.learn(ENV, POLICY, total, key=jr.key(1))

    _same_parameters(learn(TOTAL), learn(np.int64(TOTAL)))
    assert ALGO.num_iterations(np.uint16(TOTAL)) == 2


def test_a_numpy_integer_total_timesteps_inside_filter_jit() -> None:
    # Closed over: passed through the jit, a NumPy integer would be traced.
    result = eqx.filter_jit(
        lambda: ALGO.train(ENV, POLICY, np.int32(TOTAL), key=jr.key(1))
    )()
    assert int(result.iterations) == 2
    assert int(result.timesteps) == TOTAL


# The loop counts in int32 (without jax_enable_x64).
STEPS_LIMIT = (
    r"total_timesteps={total} is too large: the training loop counts environment "
    r"steps in int32, so total_timesteps must be below 2\*\*31 - "
    r"steps_per_iteration = {below} \({per} steps per iteration\); train for "
    r"fewer steps"
)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("entry", ENTRIES)
def test_ppo_refuses_a_run_beyond_the_int32_step_counter(entry: str, mode: str) -> None:
    # 2**40 steps: refused before anything is allocated or traced.
    message = STEPS_LIMIT.format(total=2**40, below=2**31 - 16, per=16)
    with pytest.raises(ValueError, match="PPO: " + message):
        _call(ALGO, entry, mode, total_timesteps=2**40)


def test_the_step_limit_is_exact() -> None:
    per = ALGO.steps_per_iteration
    assert ALGO.num_iterations(2**31 - per - 1) == (2**31 - per - 1) // per
    with pytest.raises(
        ValueError, match=r"must be below 2\*\*31 - steps_per_iteration"
    ):
        ALGO.num_iterations(2**31 - per)
    with pytest.raises(
        ValueError, match=r"must be below 2\*\*31 - steps_per_iteration"
    ):
        ALGO.num_iterations(np.int64(2**31 - per))


def test_ppo_refuses_a_run_whose_updates_overflow_int32() -> None:
    algo = PPO(num_envs=1, num_steps=1, num_epochs=2, num_minibatches=1)
    assert algo.updates_per_iteration == 2
    assert algo.num_iterations(2**30 - 1) == 2**30 - 1  # 2**31 - 2 updates
    with pytest.raises(
        ValueError,
        match=r"PPO: total_timesteps=1073741824 makes 1073741824 iterations of "
        r"updates_per_iteration=2 optimizer updates, 2147483648 in all, but "
        r"optimizers count their updates in int32, so a run must make fewer than "
        r"2\*\*31 = 2147483648; train for fewer steps or with fewer updates per "
        r"iteration",
    ):
        algo.learn(ENV, POLICY, 2**30, key=jr.key(0))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("entry", ENTRIES)
def test_dqn_refuses_runs_beyond_its_counters(entry: str, mode: str) -> None:
    dqn = DQN(num_envs=1, num_steps=1, gradient_steps=4)
    policy = MLPQPolicy(env=ENV, key=jr.key(0))
    message = STEPS_LIMIT.format(total=2**40, below=2**31 - 1, per=1)
    with pytest.raises(ValueError, match="DQN: " + message):
        _call(dqn, entry, mode, policy=policy, total_timesteps=2**40)
    with pytest.raises(
        ValueError,
        match=r"DQN: total_timesteps=536870912 makes 536870912 iterations of "
        r"updates_per_iteration=4 optimizer updates, 2147483648 in all",
    ):
        _call(dqn, entry, mode, policy=policy, total_timesteps=2**29)


def test_each_algorithm_counts_its_updates() -> None:
    assert PPO(num_epochs=3, num_minibatches=4).updates_per_iteration == 12
    assert A2C().updates_per_iteration == 1
    assert DQN(gradient_steps=3).updates_per_iteration == 3
    assert SAC(gradient_steps=2).updates_per_iteration == 2
    assert TD3(gradient_steps=5).updates_per_iteration == 5


def test_with_x64_the_int32_limits_do_not_apply() -> None:
    # Only the check: a scoped (thread-local) switch, nothing trained.
    with jax.enable_x64(True):
        assert ALGO.num_iterations(2**40) == 2**40 // ALGO.steps_per_iteration
        dqn = DQN(num_envs=1, num_steps=1, gradient_steps=4)
        assert dqn.num_iterations(2**31) == 2**31
        with pytest.raises(ValueError, match=r"int64, so .* below 2\*\*63 - "):
            ALGO.num_iterations(2**63)
    with pytest.raises(ValueError, match=r"below 2\*\*31"):
        ALGO.num_iterations(2**40)


# Lerax's own messages, as a user gets them (no runtime type checker).
_SCRIPT = r"""
import json

import equinox as eqx
import gymnasium
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from lerax.algorithm import PPO
from lerax.env import CartPole
from lerax.policy import MLPActorCriticPolicy


class Stateful:
    def reset(self): ...
    def step(self, action): ...


env = CartPole()
policy = MLPActorCriticPolicy(env=env, key=jr.key(0))
algo = PPO(num_envs=2, num_steps=8, num_epochs=1, num_minibatches=1)
good = dict(env=env, policy=policy, total_timesteps=32, key=jr.key(1))
cases = {
    "key=0": dict(key=0),
    "key=None": dict(key=None),
    "key=numpy": dict(key=np.zeros(2, np.uint32)),
    "key=batch": dict(key=jr.split(jr.key(0), 3)),
    "key=long": dict(key=jnp.arange(100)),
    "env=None": dict(env=None),
    "env=gymnasium": dict(env=gymnasium.make("CartPole-v1")),
    "env=stateful": dict(env=Stateful()),
    "policy=None": dict(policy=None),
    "total_timesteps=float": dict(total_timesteps=1e4),
    "total_timesteps=jax": dict(total_timesteps=jnp.array(10_000)),
}
# Through a jit a NumPy key arrives as a JAX array (a legacy key: accepted),
# and a long array as a short tracer.
eager_only = {"key=numpy", "key=long"}
out = {}
for name, bad in cases.items():
    for entry in ("learn", "train"):
        for mode in ("eager",) if name in eager_only else ("eager", "filter_jit"):
            args = {**good, **bad}
            method = getattr(algo, entry)
            try:
                if mode == "eager":
                    method(**args)
                else:
                    eqx.filter_jit(lambda a: method(**a))(args)
            except Exception as error:
                out[f"{name} {entry} {mode}"] = [type(error).__name__, str(error)]
            else:
                out[f"{name} {entry} {mode}"] = ["no error", ""]
print(json.dumps(out))
"""

_KEY = (
    r"^key must be a JAX PRNG key: jax.random.key\(seed\) \(a typed key of shape "
    r"\(\)\) or a legacy jax.random.PRNGKey\(seed\) \(uint32 of shape \(2,\)\), "
    r"got key="
)
_ENV = (
    r"^env must be a Lerax environment \(an instance of lerax.env.AbstractEnv, "
    r"e.g. lerax.env.CartPole\(\)\), got "
)
_GYM = (
    _ENV + r"a Gymnasium-style environment: env={value}. Lerax trains on pure JAX "
    r"environments, .* not on Gymnasium's stateful ones"
)
EXPECTED = {
    "key=0": _KEY + r"0 of type int$",
    "key=None": _KEY + r"None of type NoneType$",
    "key=numpy": _KEY + r"array\(\[0, 0\], dtype=uint32\) \(of type numpy.ndarray, "
    r"dtype uint32, shape \(2,\)\)$",
    "key=batch": _KEY + r".*shape \(3,\)\); this is a batch of keys of shape \(3,\): "
    r"to train one run per key, eqx.filter_vmap over them$",
    # A long value is shortened to 80 characters.
    "key=long": _KEY + r".{77}\.\.\. \(of type .*, dtype int32, shape \(100,\)\)$",
    "env=None": _ENV + r"env=None of type NoneType$",
    "env=gymnasium": _GYM.format(value=r"<TimeLimit<.*>> of type gymnasium\.\S+"),
    "env=stateful": _GYM.format(
        value=r"<__main__.Stateful object .*> of type __main__.Stateful"
    ),
    "policy=None": r"^policy must be a Lerax policy \(an instance of "
    r"lerax.policy.AbstractPolicy built for env, e.g. "
    r"lerax.policy.MLPActorCriticPolicy\(env=env, key=key\)\), got policy=None of "
    r"type NoneType$",
    "total_timesteps=float": r"^total_timesteps must be an int \(a Python or NumPy "
    r"integer, not a bool\), got total_timesteps=10000.0 of type float$",
    "total_timesteps=jax": r"^total_timesteps must be an int .*, got "
    r"total_timesteps=.* \(of type .*, dtype int32, shape \(\)\); total_timesteps "
    r"is static .*: pass a Python int",
}


def test_lerax_messages_without_the_runtime_checker() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"JAX_PLATFORMS": "cpu", "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got: dict[str, list[str]] = json.loads(proc.stdout)
    assert len(got) == 4 * len(EXPECTED) - 2 * 2
    for case, (kind, message) in got.items():
        pattern = EXPECTED[case.split()[0]]
        assert kind == "TypeError", (case, kind, message)
        assert re.search(pattern, message, re.S), (case, message)
