"""Saving and loading trained policies: [`lerax.save`][lerax.save] and
[`lerax.load`][lerax.load].

A policy file is one file: a first line holding a JSON header, then the
policy's leaves as ``eqx.tree_serialise_leaves`` writes them (a NumPy ``.npy``
record per array leaf, in ``jax.tree.leaves`` order). The header says what
the leaves belong to: ``format`` (``"lerax-policy"``), ``format_version``
(1), ``class`` (``"lerax.policy.MLPActorCriticPolicy"``), ``config`` (the
constructor arguments that shape the policy: ``hidden_sizes``,
``activation`` by name, ``shared``/``dueling``/``log_std_min``/
``log_std_max``), ``observation_space`` and ``action_space`` (as JSON),
``batch_shape`` (leading axes of a vmapped batch of policies),
``lerax_version``, ``jax_version``, ``equinox_version``, ``structure`` (every
node's type and static field, every leaf's path, shape and dtype),
``leaves_bytes`` and ``leaves_sha256`` (a check sum of what follows the
header). ``head -n 1 policy.lerax`` prints the header.
"""

import hashlib
import io
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, TypeVar, final, overload

import equinox as eqx
import jax
import jax.random as jr
import numpy as np

from ._structure import (
    LeafInfo,
    Structure,
    describe,
    first_difference,
    function_name,
    is_key,
    paths_and_leaves,
    resolve_function,
    versions,
)
from .policy import (
    AbstractPolicy,
    MLPActorCriticPolicy,
    MLPDeterministicPolicy,
    MLPQPolicy,
    MLPSACPolicy,
)
from .policy._layers import _Linear
from .space import AbstractSpace, Box, Dict, Discrete, MultiBinary, MultiDiscrete, Tuple

PolicyT = TypeVar("PolicyT", bound=AbstractPolicy[Any, Any])

FORMAT: Final = "lerax-policy"
FORMAT_VERSION: Final = 1
# A header longer than this is not a header (a file of another kind).
_MAX_HEADER_BYTES: Final = 64 * 2**20


class _NotRebuildable(Exception):
    """A policy (or a part of it) has no JSON description to rebuild it from."""


# -- spaces ------------------------------------------------------------------------


def _number(value: object) -> object:
    """A bound as JSON: finite numbers as themselves, infinities as strings."""
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, int | float):
        return value
    raise _NotRebuildable(f"bound {value!r} is not a number")


def _from_number(value: object) -> float | int:
    if value in ("inf", "-inf"):
        return math.inf if value == "inf" else -math.inf
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    raise ValueError(f"bad bound {value!r}")


def _bounds(values: list[object]) -> list[object]:
    encoded = [_number(v) for v in values]
    if encoded and all(v == encoded[0] for v in encoded):
        return encoded[:1]
    return encoded


def encode_space(space: object) -> dict[str, object]:
    """A Lerax space as JSON, read back by ``decode_space`` into an equal space.

    Raises:
        _NotRebuildable: for a space that is not one of Lerax's.
    """
    encoded: dict[str, object]
    if isinstance(space, Box):
        low = np.where(space.bounded_below, space.low.astype(object), -math.inf)
        high = np.where(space.bounded_above, space.high.astype(object), math.inf)
        encoded = {
            "type": "Box",
            "shape": list(space.shape),
            "dtype": space.dtype.name,
            "low": _bounds(low.ravel().tolist()),
            "high": _bounds(high.ravel().tolist()),
        }
    elif isinstance(space, Discrete):
        encoded = {"type": "Discrete", "n": space.n, "start": space.start}
    elif isinstance(space, MultiDiscrete):
        encoded = {
            "type": "MultiDiscrete",
            "nvec": list(space.nvec),
            "start": list(space.start),
        }
    elif isinstance(space, MultiBinary):
        encoded = {"type": "MultiBinary", "shape": list(space.shape)}
    elif isinstance(space, Tuple):
        encoded = {"type": "Tuple", "spaces": [encode_space(s) for s in space.spaces]}
    elif isinstance(space, Dict):
        encoded = {
            "type": "Dict",
            "spaces": {k: encode_space(s) for k, s in space.spaces.items()},
        }
    else:
        raise _NotRebuildable(
            f"{type(space).__qualname__} is not one of Lerax's spaces (Box, "
            "Discrete, MultiDiscrete, MultiBinary, Tuple, Dict)"
        )
    if decode_space(encoded) != space:
        raise _NotRebuildable(f"{space!r} does not survive its JSON form")
    return encoded


def decode_space(data: object) -> AbstractSpace[Any]:
    """The space ``encode_space`` described.

    Raises:
        ValueError: if ``data`` is not such a description.
    """
    if not isinstance(data, dict):
        raise ValueError(f"a space must be a JSON object, got {data!r}")
    kind = data.get("type")
    try:
        if kind == "Box":
            shape = tuple(int(n) for n in data["shape"])
            low = np.asarray([_from_number(v) for v in data["low"]])
            high = np.asarray([_from_number(v) for v in data["high"]])
            return Box(
                low if low.size == 1 else low.reshape(shape),
                high if high.size == 1 else high.reshape(shape),
                shape,
                np.dtype(str(data["dtype"])),
            )
        if kind == "Discrete":
            return Discrete(int(data["n"]), int(data["start"]))
        if kind == "MultiDiscrete":
            return MultiDiscrete(list(data["nvec"]), list(data["start"]))
        if kind == "MultiBinary":
            return MultiBinary([int(n) for n in data["shape"]])
        if kind == "Tuple":
            return Tuple([decode_space(s) for s in data["spaces"]])
        if kind == "Dict":
            parts = data["spaces"]
            if not isinstance(parts, dict):
                raise ValueError(f"Dict spaces must be an object, got {parts!r}")
            return Dict({str(k): decode_space(s) for k, s in parts.items()})
    except (KeyError, TypeError) as err:
        raise ValueError(f"malformed {kind} space {data!r} ({err!r})") from None
    raise ValueError(f"unknown space type {kind!r}")


@final
class _Spaces:
    """The observation and action spaces a policy is built for, standing in
    for the environment its constructor takes."""

    def __init__(
        self, observation_space: AbstractSpace[Any], action_space: AbstractSpace[Any]
    ):
        self.observation_space = observation_space
        self.action_space = action_space


# -- Lerax's policies -------------------------------------------------------------


def _activation(activation: object) -> str:
    name = function_name(activation)
    if name is None:
        raise _NotRebuildable(
            f"its activation {activation!r} is not a public function of jax.nn, "
            "jax.numpy or jax.lax"
        )
    return name


def _sizes(layers: Sequence[_Linear]) -> list[int]:
    return [int(layer.weight.shape[-1]) for layer in layers]


def _actor_critic_config(policy: MLPActorCriticPolicy[Any]) -> dict[str, object]:
    return {
        "hidden_sizes": _sizes(policy.actor_torso.layers),
        "activation": _activation(policy.actor_torso.activation),
        "shared": policy.shared,
    }


def _q_config(policy: MLPQPolicy[Any]) -> dict[str, object]:
    return {
        "hidden_sizes": _sizes(policy.torso.layers),
        "activation": _activation(policy.torso.activation),
        "dueling": policy.dueling,
    }


def _sac_config(policy: MLPSACPolicy[Any]) -> dict[str, object]:
    return {
        "hidden_sizes": _sizes(policy.actor.torso.layers),
        "activation": _activation(policy.actor.torso.activation),
        "log_std_min": policy.actor.log_std_min,
        "log_std_max": policy.actor.log_std_max,
    }


def _deterministic_config(policy: MLPDeterministicPolicy[Any]) -> dict[str, object]:
    return {
        "hidden_sizes": _sizes(policy.actor.mlp.torso.layers),
        "activation": _activation(policy.actor.mlp.torso.activation),
    }


#: Lerax's policies by public name: the class, what shapes it (from a
#: policy), and the types of those constructor arguments.
_POLICIES: Final[
    dict[str, tuple[type[Any], Callable[[Any], dict[str, object]], dict[str, type]]]
] = {
    "lerax.policy.MLPActorCriticPolicy": (
        MLPActorCriticPolicy,
        _actor_critic_config,
        {"hidden_sizes": list, "activation": str, "shared": bool},
    ),
    "lerax.policy.MLPQPolicy": (
        MLPQPolicy,
        _q_config,
        {"hidden_sizes": list, "activation": str, "dueling": bool},
    ),
    "lerax.policy.MLPSACPolicy": (
        MLPSACPolicy,
        _sac_config,
        {
            "hidden_sizes": list,
            "activation": str,
            "log_std_min": float,
            "log_std_max": float,
        },
    ),
    "lerax.policy.MLPDeterministicPolicy": (
        MLPDeterministicPolicy,
        _deterministic_config,
        {"hidden_sizes": list, "activation": str},
    ),
}


def _class_name(cls: type) -> str:
    """``"lerax.policy.MLPQPolicy"`` for Lerax's policies, else the class's
    module and qualified name."""
    for name, (known, _, _) in _POLICIES.items():
        if cls is known:
            return name
    return f"{cls.__module__}.{cls.__qualname__}"


def _build_skeleton(
    class_name: str,
    config: Mapping[str, object],
    observation_space: AbstractSpace[Any],
    action_space: AbstractSpace[Any],
    batch_shape: tuple[int, ...],
) -> AbstractPolicy[Any, Any]:
    """The policy the header describes, with ``jax.ShapeDtypeStruct`` leaves
    (nothing is computed), batch axes in front of every leaf.

    Raises:
        ValueError: if the description does not build a policy.
    """
    cls, _, types = _POLICIES[class_name]
    if set(config) != set(types):
        raise ValueError(
            f"the {class_name} configuration must have the entries "
            f"{sorted(types)}, got {sorted(config)}"
        )
    kwargs: dict[str, object] = {}
    for name, kind in types.items():
        value = config[name]
        ok = isinstance(value, kind) and not (
            kind is not bool and isinstance(value, bool)
        )
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            ok, value = True, float(value)
        if not ok:
            raise ValueError(f"the {class_name} configuration has {name}={value!r}")
        kwargs[name] = resolve_function(str(value)) if name == "activation" else value
    spaces = _Spaces(observation_space, action_space)
    try:
        skeleton: AbstractPolicy[Any, Any] = eqx.filter_eval_shape(
            cls, spaces, key=jr.key(0), **kwargs
        )
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"the configuration does not build a {class_name}: {err}"
        ) from err
    if batch_shape:
        skeleton = jax.tree.map(
            lambda s: jax.ShapeDtypeStruct(batch_shape + s.shape, s.dtype),  # type: ignore[no-untyped-call]  # jax leaves ShapeDtypeStruct.__init__ unannotated
            skeleton,
        )
    return skeleton


def _rebuild_info(
    policy: AbstractPolicy[Any, Any], structure: Structure
) -> dict[str, object]:
    """The header entries that rebuild ``policy`` (``config``, the spaces,
    ``batch_shape``), or ``rebuild_error`` saying why there are none."""
    name = _class_name(type(policy))
    try:
        if name not in _POLICIES:
            raise _NotRebuildable(f"{name} is not one of Lerax's policies")
        config = _POLICIES[name][1](policy)
        observation = encode_space(policy.observation_space)
        action = encode_space(policy.action_space)
        unbatched = _build_skeleton(
            name, config, policy.observation_space, policy.action_space, ()
        )
        batch_shape = _batch_shape(structure.leaves, describe(unbatched).leaves)
        rebuilt = _build_skeleton(
            name, config, policy.observation_space, policy.action_space, batch_shape
        )
        difference = first_difference(structure, describe(rebuilt))
        if difference is not None:
            raise _NotRebuildable(
                f"its constructor builds another structure: {difference}"
            )
    except _NotRebuildable as err:
        return {"rebuild_error": f"{name}: {err}"}
    return {
        "config": config,
        "observation_space": observation,
        "action_space": action,
        "batch_shape": list(batch_shape),
    }


def _batch_shape(
    leaves: Sequence[LeafInfo], unbatched: Sequence[LeafInfo]
) -> tuple[int, ...]:
    """The leading axes every leaf has in front of its unbatched shape."""
    if not leaves or len(leaves) != len(unbatched):
        return ()
    first, base = leaves[0], unbatched[0]
    batch = first.shape[: len(first.shape) - len(base.shape)]
    for leaf, one in zip(leaves, unbatched, strict=True):
        if leaf.shape != batch + one.shape:
            return ()
    return batch


# -- save and load --------------------------------------------------------------


def save(path: str | os.PathLike[str], policy: AbstractPolicy[Any, Any]) -> None:
    """Save a policy to one file: a JSON header line, then its leaves
    (``eqx.tree_serialise_leaves``).

    The header names the class, the constructor configuration that shapes
    it, its spaces, the Lerax, JAX and Equinox versions and every leaf's
    path, shape and dtype, so that [`lerax.load`][lerax.load] rebuilds
    Lerax's own policies from the file alone; a policy of another class (or
    with an activation that is not a public function of ``jax.nn``,
    ``jax.numpy`` or ``jax.lax``, or a space that is not Lerax's) is saved
    too, and loads with ``like=``. A vmapped batch of policies saves and
    loads as a batch. The file is written to a temporary file beside
    ``path`` and renamed over it, so ``path`` always holds a whole file.

    Example:
        ```python
        import lerax
        lerax.save("policy.lerax", policy)
        policy = lerax.load("policy.lerax")
        ```

    Args:
        path: the file to write (its directory must exist).
        policy: the policy; its leaves must be arrays (no PRNG keys).

    Raises:
        TypeError: if ``policy`` is not an ``AbstractPolicy``.
        ValueError: if a leaf is a PRNG key or not an array.
        OSError: if the file cannot be written.
    """
    if not isinstance(policy, AbstractPolicy):
        raise TypeError(
            f"lerax.save: policy must be an AbstractPolicy, got {type(policy).__name__}"
        )
    text = os.fspath(path)
    for leaf_path, leaf in paths_and_leaves(policy):
        if not isinstance(leaf, jax.Array | np.ndarray):
            raise ValueError(
                f"lerax.save: every leaf of the policy must be an array, got "
                f"{type(leaf).__name__} at {leaf_path}"
            )
        if is_key(leaf):
            raise ValueError(
                f"lerax.save: the policy holds a PRNG key at {leaf_path}, which a "
                "policy file cannot hold; keep keys out of policies"
            )
    structure = describe(policy)
    buffer = io.BytesIO()
    eqx.tree_serialise_leaves(buffer, policy)
    leaves = buffer.getvalue()
    header: dict[str, object] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "class": _class_name(type(policy)),
        **_rebuild_info(policy, structure),
        **versions(),
        "structure": structure.to_json(),
        "leaves_bytes": len(leaves),
        "leaves_sha256": hashlib.sha256(leaves).hexdigest(),
    }
    line = json.dumps(header, allow_nan=False).encode("utf-8") + b"\n"
    directory = os.path.dirname(os.path.abspath(text))
    temporary = os.path.join(
        directory, f".{os.path.basename(text)}.tmp-{os.getpid()}-{id(buffer)}"
    )
    try:
        with open(temporary, "wb") as f:
            f.write(line)
            f.write(leaves)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, text)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


@final
class _PolicyFile:
    """A policy file's header and leaf bytes, checked."""

    def __init__(self, path: str):
        self.path = path
        if not os.path.exists(path):
            raise FileNotFoundError(f"lerax.load: no file at path={path!r}")
        if os.path.isdir(path):
            raise ValueError(
                f"lerax.load: path={path!r} is a directory, not a policy file "
                "written by lerax.save (a checkpoint directory is read by "
                "lerax.checkpoint.load)"
            )
        with open(path, "rb") as f:
            first = f.readline(_MAX_HEADER_BYTES)
            rest = f.read()
        self.header = self._parse(first)
        self.leaves = rest
        expected = self.header.get("leaves_bytes")
        if len(rest) != expected:
            raise ValueError(
                f"lerax.load: {path!r} is corrupt: it holds {len(rest)} bytes of "
                f"leaves, its header says {expected} (a truncated or altered file)"
            )
        digest = hashlib.sha256(rest).hexdigest()
        if digest != self.header.get("leaves_sha256"):
            raise ValueError(
                f"lerax.load: {path!r} is corrupt: the check sum of its leaves "
                "does not match its header's (an altered file)"
            )
        try:
            self.structure = Structure.from_json(self.header.get("structure"))
        except ValueError as err:
            raise ValueError(
                f"lerax.load: {path!r} has a corrupt header: {err}"
            ) from None

    def _parse(self, first: bytes) -> dict[str, object]:
        problem = None
        header: object = None
        if not first.endswith(b"\n"):
            problem = "it has no header line"
        else:
            try:
                header = json.loads(first.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                problem = "its first line is not a JSON header"
        if problem is None and (
            not isinstance(header, dict) or header.get("format") != FORMAT
        ):
            problem = f"its header does not say format {FORMAT!r}"
        if problem is not None or not isinstance(header, dict):
            raise ValueError(
                f"lerax.load: {self.path!r} is not a policy file written by "
                f"lerax.save: {problem}"
            )
        version = header.get("format_version")
        if version != FORMAT_VERSION:
            raise ValueError(
                f"lerax.load: {self.path!r} has format version {version!r}; this "
                f"Lerax reads version {FORMAT_VERSION} (a newer Lerax wrote it?)"
            )
        return header

    def rebuild(self) -> AbstractPolicy[Any, Any]:
        """The policy the header describes, with ``ShapeDtypeStruct`` leaves."""
        header = self.header
        name = header.get("class")
        error = header.get("rebuild_error")
        if error is not None or name not in _POLICIES:
            reason = error if error is not None else f"{name} is not one of Lerax's"
            raise ValueError(
                f"lerax.load: {self.path!r} cannot be rebuilt from its header "
                f"({reason}); pass like= a policy of the same structure"
            )
        try:
            observation = decode_space(header.get("observation_space"))
            action = decode_space(header.get("action_space"))
            config = header.get("config")
            batch = header.get("batch_shape")
            if not isinstance(config, dict) or not isinstance(batch, list):
                raise ValueError("no configuration or batch shape")
            return _build_skeleton(
                str(name), config, observation, action, tuple(int(n) for n in batch)
            )
        except ValueError as err:
            raise ValueError(
                f"lerax.load: {self.path!r} has a corrupt header: {err}"
            ) from None


@overload
def load(
    path: str | os.PathLike[str], like: None = None
) -> AbstractPolicy[Any, Any]: ...


@overload
def load(path: str | os.PathLike[str], like: PolicyT) -> PolicyT: ...


def load(
    path: str | os.PathLike[str], like: AbstractPolicy[Any, Any] | None = None
) -> AbstractPolicy[Any, Any]:
    """Load a policy saved by [`lerax.save`][lerax.save].

    Without ``like``, Lerax's own policies are rebuilt from the file's
    header (class, configuration, spaces). With ``like``, the leaves are
    loaded into ``like``: a policy of the same structure (its parameter
    values do not matter; ``eqx.filter_eval_shape`` of its constructor will
    do), which a policy class of your own needs.

    Args:
        path: the file ``lerax.save`` wrote.
        like: a policy of the same class and structure, or None.

    Returns:
        The policy, its leaves JAX arrays.

    Raises:
        FileNotFoundError: if there is no file at ``path``.
        TypeError: if ``like`` is neither None nor an ``AbstractPolicy``.
        ValueError: if the file is not a policy file, is corrupt (truncated,
            altered: its header holds a check sum), cannot be rebuilt from its
            header without ``like``, or does not match ``like``: the message
            names the first differing class, static field, or leaf path with
            both shapes and dtypes.
    """
    if like is not None and not isinstance(like, AbstractPolicy):
        raise TypeError(
            f"lerax.load: like must be an AbstractPolicy or None, got "
            f"{type(like).__name__}"
        )
    text = os.fspath(path)
    file = _PolicyFile(text)
    if like is None:
        target = file.rebuild()
    else:
        target = like
        name, saved_name = _class_name(type(like)), file.header.get("class")
        if name != saved_name:
            raise ValueError(
                f"lerax.load: {text!r} holds a {saved_name}, like is a {name}"
            )
    difference = first_difference(file.structure, describe(target))
    if difference is not None:
        raise ValueError(
            f"lerax.load: {text!r} does not match "
            f"{'like' if like is not None else 'its own header'}: {difference}"
        )
    try:
        loaded: AbstractPolicy[Any, Any] = eqx.tree_deserialise_leaves(
            io.BytesIO(file.leaves), target
        )
    except Exception as err:  # what NumPy raises for a bad record varies
        raise ValueError(
            f"lerax.load: {text!r} is corrupt: its leaves cannot be read ({err!r})"
        ) from err
    got = describe(loaded)
    mismatch = first_difference(file.structure, got)
    if mismatch is not None:
        raise ValueError(f"lerax.load: {text!r} is corrupt: {mismatch}")
    return loaded


__all__ = ["save", "load"]
