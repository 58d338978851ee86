"""lerax.save / lerax.load: policies round trip bitwise, rebuilt from the
header or loaded into ``like``; mismatches and damaged files are named."""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jaxtyping import Array, Float

import lerax
from lerax.algorithm import TrainState
from lerax.env import CartPole
from lerax.env.classic_control import Pendulum
from lerax.policy import (
    AbstractPolicy,
    MLPActorCriticPolicy,
    MLPDeterministicPolicy,
    MLPQPolicy,
    MLPSACPolicy,
)
from lerax.space import Box, Dict, Discrete, MultiBinary, MultiDiscrete, Tuple

from .helpers import assert_bitwise_equal

KINDS: dict[str, Callable[[], AbstractPolicy[Any, Any]]] = {
    "actor-critic-cartpole": lambda: MLPActorCriticPolicy(
        env=CartPole(), key=jr.key(1), hidden_sizes=(8, 4)
    ),
    "actor-critic-pendulum-shared": lambda: MLPActorCriticPolicy(
        env=Pendulum(),
        key=jr.key(2),
        hidden_sizes=(8,),
        activation=jax.nn.relu,
        shared=True,
        log_std_init=-0.5,
    ),
    "q-dueling": lambda: MLPQPolicy(
        env=CartPole(), key=jr.key(3), hidden_sizes=(8,), dueling=True
    ),
    "q-linear": lambda: MLPQPolicy(env=CartPole(), key=jr.key(4), hidden_sizes=()),
    "sac": lambda: MLPSACPolicy(
        env=Pendulum(), key=jr.key(5), hidden_sizes=(8,), log_std_min=-5.0
    ),
    "deterministic": lambda: MLPDeterministicPolicy(
        env=Pendulum(), key=jr.key(6), hidden_sizes=(8,), activation=jnp.tanh
    ),
}

CONFIGS = {
    "actor-critic-cartpole": {
        "hidden_sizes": [8, 4],
        "activation": "jax.nn.tanh",
        "shared": False,
    },
    "actor-critic-pendulum-shared": {
        "hidden_sizes": [8],
        "activation": "jax.nn.relu",
        "shared": True,
    },
    "q-dueling": {"hidden_sizes": [8], "activation": "jax.nn.relu", "dueling": True},
    "q-linear": {"hidden_sizes": [], "activation": "jax.nn.relu", "dueling": False},
    "sac": {
        "hidden_sizes": [8],
        "activation": "jax.nn.relu",
        "log_std_min": -5.0,
        "log_std_max": 2.0,
    },
    "deterministic": {"hidden_sizes": [8], "activation": "jax.nn.tanh"},
}


def header(path: Path) -> dict[str, Any]:
    with open(path, "rb") as f:
        data: dict[str, Any] = json.loads(f.readline())
    return data


@pytest.mark.parametrize("kind", list(KINDS))
def test_round_trip_rebuilds_every_lerax_policy(kind: str, tmp_path: Path) -> None:
    policy = KINDS[kind]()
    path = tmp_path / "policy.lerax"
    lerax.save(path, policy)
    loaded = lerax.load(path)
    assert type(loaded) is type(policy)
    assert_bitwise_equal(loaded, policy)
    assert loaded.observation_space == policy.observation_space
    assert loaded.action_space == policy.action_space
    assert all(isinstance(x, jax.Array) for x in jax.tree.leaves(loaded))

    into = lerax.load(path, like=KINDS[kind]())
    assert_bitwise_equal(into, policy)

    data = header(path)
    assert data["format"] == "lerax-policy"
    assert data["class"] == f"lerax.policy.{type(policy).__name__}"
    assert data["config"] == CONFIGS[kind]
    assert data["batch_shape"] == []
    assert data["jax_version"] == jax.__version__
    assert data["lerax_version"] == lerax.__version__
    leaves = [entry for entry in data["structure"] if len(entry) == 3]
    assert [(p, tuple(s), d) for p, s, d in leaves] == [
        (jax.tree_util.keystr(p), x.shape, str(x.dtype))
        for p, x in jax.tree_util.tree_flatten_with_path(policy)[0]
    ]


def test_trained_policy_acts_the_same_after_loading(
    ppo_state: TrainState[Any, Any, Any, Any], tmp_path: Path
) -> None:
    policy = ppo_state.policy
    path = tmp_path / "trained.lerax"
    lerax.save(path, policy)
    loaded = lerax.load(path)
    obs = jax.vmap(lambda k: CartPole().observation_space.sample(key=k))(
        jr.split(jr.key(7), 16)
    )
    keys = jr.split(jr.key(8), 16)

    def act(p: Any) -> tuple[Array, Array, Array]:
        sampled = jax.vmap(lambda o, k: p(o, key=k))(obs, keys)
        greedy = jax.vmap(p.deterministic_action)(obs)
        return sampled, greedy, jax.vmap(p.value)(obs)

    # One compiled program for both: the loaded policy has the same structure.
    jitted = eqx.filter_jit(act)
    for want, got in zip(jitted(policy), jitted(loaded), strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_vmapped_batch_of_policies_round_trips(tmp_path: Path) -> None:
    policies = eqx.filter_vmap(
        lambda k: MLPQPolicy(env=CartPole(), key=k, hidden_sizes=(8,))
    )(jr.split(jr.key(9), 3))
    path = tmp_path / "batch.lerax"
    lerax.save(path, policies)
    assert header(path)["batch_shape"] == [3]
    loaded = lerax.load(path)
    assert_bitwise_equal(loaded, policies)
    assert isinstance(loaded, MLPQPolicy)
    assert loaded.head.weight.shape == (3, 8, 2)


def test_spaces_of_every_kind_survive_the_header(tmp_path: Path) -> None:
    class Spaces:
        observation_space = Dict(
            {
                "box": Box(np.array([-1.0, 0.0]), np.array([np.inf, 2.5])),
                "int": Box(-np.inf, 5, (2, 1), np.int32),
                "parts": Tuple([Discrete(3, start=-1), MultiBinary((2, 2))]),
                "multi": MultiDiscrete([2, 3], start=[1, 0]),
            }
        )
        action_space = Discrete(4, start=2)

    policy = MLPActorCriticPolicy(env=Spaces(), key=jr.key(0), hidden_sizes=(4,))
    path = tmp_path / "spaces.lerax"
    lerax.save(path, policy)
    loaded = lerax.load(path)
    assert loaded.observation_space == Spaces.observation_space
    assert loaded.action_space == Spaces.action_space
    assert_bitwise_equal(loaded, policy)


def test_like_accepts_a_shape_only_policy(tmp_path: Path) -> None:
    policy = KINDS["sac"]()
    path = tmp_path / "sac.lerax"
    lerax.save(path, policy)
    like = eqx.filter_eval_shape(
        MLPSACPolicy, Pendulum(), key=jr.key(0), hidden_sizes=(8,), log_std_min=-5.0
    )
    assert_bitwise_equal(lerax.load(path, like=like), policy)


def test_mismatched_like_names_the_first_difference(tmp_path: Path) -> None:
    path = tmp_path / "policy.lerax"
    lerax.save(path, KINDS["actor-critic-cartpole"]())
    wider = MLPActorCriticPolicy(env=CartPole(), key=jr.key(0), hidden_sizes=(16, 4))
    with pytest.raises(ValueError) as info:
        lerax.load(path, like=wider)
    assert str(info.value).endswith(
        ".actor_torso.layers[0].weight: the file has shape (4, 8) dtype float32; "
        "the given structure has shape (4, 16) dtype float32"
    )
    relu = MLPActorCriticPolicy(
        env=CartPole(), key=jr.key(0), hidden_sizes=(8, 4), activation=jax.nn.relu
    )
    with pytest.raises(
        ValueError,
        match=r"\.actor_torso\.activation: the file has "
        r"static function jax\.nn\.tanh; the given structure has "
        r"static function jax\.nn\.relu",
    ):
        lerax.load(path, like=relu)
    with pytest.raises(
        ValueError,
        match=r"holds a lerax\.policy\.MLPActorCriticPolicy, like is a "
        r"lerax\.policy\.MLPQPolicy",
    ):
        lerax.load(path, like=KINDS["q-linear"]())
    # The runtime checker's message (this suite) or Lerax's (plain Python,
    # test_without_orbax_and_the_runtime_checker): either names the argument.
    with pytest.raises(
        TypeError, match="parameter 'like'|like must be an AbstractPolicy"
    ):
        lerax.load(path, like=jnp.zeros(3))  # type: ignore[call-overload]  # a wrong type on purpose


class LinearPolicy(AbstractPolicy[Float[Array, " 4"], Array]):
    """A policy class of the test's own: not rebuildable from a header."""

    observation_space: Box
    action_space: Discrete
    weight: Float[Array, "4 2"]

    def __init__(self, key: Array):
        self.observation_space = CartPole().observation_space
        self.action_space = Discrete(2)
        self.weight = jr.normal(key, (4, 2))

    def __call__(
        self, observation: Float[Array, " 4"], *, key: Array | None = None
    ) -> Array:
        return jnp.argmax(observation @ self.weight)


def test_a_policy_class_of_ones_own_loads_with_like(tmp_path: Path) -> None:
    policy = LinearPolicy(jr.key(0))
    path = tmp_path / "linear.lerax"
    lerax.save(path, policy)
    assert "rebuild_error" in header(path)
    with pytest.raises(
        ValueError,
        match=r"cannot be rebuilt from its header .*LinearPolicy is not one of Lerax's policies.*pass like=",
    ):
        lerax.load(path)
    assert_bitwise_equal(lerax.load(path, like=LinearPolicy(jr.key(1))), policy)


def test_an_activation_not_named_by_jax_loads_with_like(tmp_path: Path) -> None:
    def swish(x: Array) -> Array:
        return x * jax.nn.sigmoid(x)

    policy = MLPQPolicy(
        env=CartPole(), key=jr.key(0), hidden_sizes=(4,), activation=swish
    )
    path = tmp_path / "swish.lerax"
    lerax.save(path, policy)
    with pytest.raises(
        ValueError,
        match=r"its activation .*swish.* is not a public function of jax\.nn",
    ):
        lerax.load(path)
    assert_bitwise_equal(lerax.load(path, like=policy), policy)


def test_missing_and_damaged_files_are_named(tmp_path: Path) -> None:
    missing = tmp_path / "nothing.lerax"
    with pytest.raises(FileNotFoundError, match=f"no file at path={str(missing)!r}"):
        lerax.load(missing)
    with pytest.raises(ValueError, match="is a directory, not a policy file"):
        lerax.load(tmp_path)

    path = tmp_path / "policy.lerax"
    lerax.save(path, KINDS["q-linear"]())
    data = path.read_bytes()

    truncated = tmp_path / "truncated.lerax"
    truncated.write_bytes(data[:-10])
    with pytest.raises(
        ValueError,
        match=r"truncated\.lerax' is corrupt: it holds \d+ bytes of leaves, its header says \d+",
    ):
        lerax.load(truncated)

    altered = tmp_path / "altered.lerax"
    altered.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(ValueError, match="check sum of its leaves does not match"):
        lerax.load(altered)

    other = tmp_path / "other.lerax"
    other.write_bytes(b"\x93NUMPY binary junk\n\x00\x01")
    with pytest.raises(
        ValueError,
        match="is not a policy file written by lerax.save: its first line is not a JSON header",
    ):
        lerax.load(other)

    newer = tmp_path / "newer.lerax"
    head, _, rest = data.partition(b"\n")
    fields = json.loads(head)
    fields["format_version"] = 99
    newer.write_bytes(json.dumps(fields).encode() + b"\n" + rest)
    with pytest.raises(
        ValueError, match="has format version 99; this Lerax reads version 1"
    ):
        lerax.load(newer)


def test_save_refuses_what_is_not_a_policy(tmp_path: Path) -> None:
    with pytest.raises(
        TypeError, match="parameter 'policy'|policy must be an AbstractPolicy, got dict"
    ):
        lerax.save(tmp_path / "x.lerax", {"w": jnp.zeros(3)})  # type: ignore[arg-type]  # a wrong type on purpose
    assert list(tmp_path.iterdir()) == []


def test_save_replaces_a_file_atomically(tmp_path: Path) -> None:
    path = tmp_path / "policy.lerax"
    lerax.save(path, KINDS["q-linear"]())
    lerax.save(path, KINDS["q-dueling"]())
    loaded = lerax.load(path)
    assert isinstance(loaded, MLPQPolicy)
    assert loaded.dueling
    assert [p.name for p in tmp_path.iterdir()] == ["policy.lerax"]
