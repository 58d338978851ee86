"""What is stored beside each checkpoint's leaves: ``CheckpointMetadata``."""

import dataclasses
import math
from collections.abc import Mapping
from typing import Final, final

import jax
import numpy as np

from .._structure import LeafInfo, describe_value

FORMAT: Final = "lerax-checkpoint"
FORMAT_VERSION: Final = 1

Scalar = bool | int | float | str | None
"""A JSON scalar."""

ConfigValue = Scalar | tuple[Scalar, ...]
"""A configuration entry: a static field's value, or a hyperparameter's value
(a tuple of every run's, row-major, for a vmapped batch of runs)."""

ExtraValue = bool | int | float | str
"""A value of the caller's own metadata."""


@final
@dataclasses.dataclass(frozen=True)
class CheckpointMetadata:
    """What a checkpoint says about itself (stored as JSON beside its leaves;
    read it with [`read_metadata`][lerax.checkpoint.read_metadata]).

    Attributes:
        path: the checkpoint's own directory (filled in when read).
        step: the step it was saved under (the caller's count, e.g. the
            iteration).
        algorithm: the algorithm's name (``"PPO"``).
        algorithm_config: every field of the algorithm: static fields by
            value (functions by name), hyperparameters (array leaves) by value;
            for a batch of runs, a tuple of every run's value, row-major.
        total_timesteps: the environment steps the run was asked for.
        num_iterations: the iterations ``total_timesteps`` buys.
        iteration: iterations completed, per run (row-major; one entry for a
            single run).
        timesteps: environment steps taken, per run.
        batch_shape: the leading axes of every leaf beyond a single run's
            structure: ``()`` for a single run, ``(4,)`` for 4 vmapped runs.
        lerax_version: the Lerax that wrote it.
        jax_version: the JAX that wrote it.
        equinox_version: the Equinox that wrote it.
        backend: JAX's default backend then (``"cpu"``, ``"gpu"``, ``"tpu"``).
        device_count: how many devices JAX saw.
        leaves: every leaf's path, shape (batch axes included) and dtype, in
            ``jax.tree.leaves`` order.
        key_impls: the PRNG implementation of each typed key leaf, by path
            (``{".key": "threefry2x32"}``).
        rebuildable: whether [`load`][lerax.checkpoint.load] can rebuild the
            structure from the checkpoint alone (else it needs ``like=``).
        structure_error: why not, or None.
        extra: the caller's own entries (``CheckpointWriter.save(extra=...)``).
    """

    path: str
    step: int
    algorithm: str
    algorithm_config: Mapping[str, ConfigValue]
    total_timesteps: int
    num_iterations: int
    iteration: tuple[int, ...]
    timesteps: tuple[int, ...]
    batch_shape: tuple[int, ...]
    lerax_version: str
    jax_version: str
    equinox_version: str
    backend: str
    device_count: int
    leaves: tuple[LeafInfo, ...]
    key_impls: Mapping[str, str]
    rebuildable: bool
    structure_error: str | None
    extra: Mapping[str, ExtraValue]

    @property
    def num_runs(self) -> int:
        """How many runs the checkpoint holds (1 for a single run)."""
        return math.prod(self.batch_shape)


def config_value(value: object) -> ConfigValue:
    """A field of an algorithm as a ``ConfigValue``: a JSON scalar as is, an
    array by value (a tuple of its entries if it has more than one), a
    tuple of scalars as is, anything else as ``describe_value`` text."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, jax.Array | np.ndarray | np.generic):
        array = np.asarray(value).ravel()
        flat: list[Scalar]
        if array.dtype.kind == "f":
            # The shortest decimal that reads back as the same value in its
            # own precision (0.0025, not 0.0024999999441206455 for float32).
            flat = [float(str(x)) for x in array]
        else:
            flat = array.tolist()
        return flat[0] if len(flat) == 1 else tuple(flat)
    if isinstance(value, tuple) and all(
        v is None or isinstance(v, bool | int | float | str) for v in value
    ):
        return value
    return describe_value(value)


def algorithm_config(algorithm: object) -> dict[str, ConfigValue]:
    """Every dataclass field of ``algorithm`` (an Equinox module) by value."""
    if not dataclasses.is_dataclass(algorithm) or isinstance(algorithm, type):
        return {}
    return {
        f.name: config_value(getattr(algorithm, f.name, None))
        for f in dataclasses.fields(algorithm)
    }


def to_json(meta: CheckpointMetadata) -> dict[str, object]:
    """The stored form of ``meta`` (without its ``path``)."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "step": meta.step,
        "algorithm": meta.algorithm,
        "algorithm_config": {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in meta.algorithm_config.items()
        },
        "total_timesteps": meta.total_timesteps,
        "num_iterations": meta.num_iterations,
        "iteration": list(meta.iteration),
        "timesteps": list(meta.timesteps),
        "batch_shape": list(meta.batch_shape),
        "lerax_version": meta.lerax_version,
        "jax_version": meta.jax_version,
        "equinox_version": meta.equinox_version,
        "backend": meta.backend,
        "device_count": meta.device_count,
        "leaves": [[x.path, list(x.shape), x.dtype] for x in meta.leaves],
        "key_impls": dict(meta.key_impls),
        "rebuildable": meta.rebuildable,
        "structure_error": meta.structure_error,
        "extra": dict(meta.extra),
    }


def _ints(value: object, name: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        raise ValueError(f"{name} must be a list of integers, got {value!r}")
    return tuple(value)


def _int(data: Mapping[str, object], name: str) -> int:
    value = data.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    return value


def _str(data: Mapping[str, object], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {value!r}")
    return value


def _dict(data: Mapping[str, object], name: str) -> dict[str, object]:
    value = data.get(name)
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be an object, got {value!r}")
    return {str(k): v for k, v in value.items()}


def _config(value: object) -> ConfigValue:
    if isinstance(value, list):
        return tuple(_config_scalar(v) for v in value)
    return _config_scalar(value)


def _config_scalar(value: object) -> Scalar:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise ValueError(f"a configuration value must be a JSON scalar, got {value!r}")


def _extra(value: object) -> ExtraValue:
    if isinstance(value, bool | int | float | str):
        return value
    raise ValueError(f"an extra value must be a JSON scalar, got {value!r}")


def from_json(data: object, path: str) -> CheckpointMetadata:
    """Read ``to_json``'s form back.

    Raises:
        ValueError: if ``data`` is not that form (naming the entry), or of
            another format version.
    """
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"it does not say format {FORMAT!r}")
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(
            f"it has format version {version!r}; this Lerax reads version "
            f"{FORMAT_VERSION} (a newer Lerax wrote it?)"
        )
    leaves = data.get("leaves")
    if not isinstance(leaves, list):
        raise ValueError(f"leaves must be a list, got {leaves!r}")
    try:
        infos = tuple(
            LeafInfo(str(p), _ints(shape, "a leaf's shape"), str(dtype))
            for p, shape, dtype in leaves
        )
    except (TypeError, ValueError) as err:
        raise ValueError(f"malformed leaves ({err})") from None
    error = data.get("structure_error")
    rebuildable = data.get("rebuildable")
    if not isinstance(rebuildable, bool):
        raise ValueError(f"rebuildable must be a bool, got {rebuildable!r}")
    return CheckpointMetadata(
        path=path,
        step=_int(data, "step"),
        algorithm=_str(data, "algorithm"),
        algorithm_config={
            k: _config(v) for k, v in _dict(data, "algorithm_config").items()
        },
        total_timesteps=_int(data, "total_timesteps"),
        num_iterations=_int(data, "num_iterations"),
        iteration=_ints(data.get("iteration"), "iteration"),
        timesteps=_ints(data.get("timesteps"), "timesteps"),
        batch_shape=_ints(data.get("batch_shape"), "batch_shape"),
        lerax_version=_str(data, "lerax_version"),
        jax_version=_str(data, "jax_version"),
        equinox_version=_str(data, "equinox_version"),
        backend=_str(data, "backend"),
        device_count=_int(data, "device_count"),
        leaves=infos,
        key_impls={k: str(v) for k, v in _dict(data, "key_impls").items()},
        rebuildable=rebuildable,
        structure_error=None if error is None else str(error),
        extra={k: _extra(v) for k, v in _dict(data, "extra").items()},
    )
