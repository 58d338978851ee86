"""Spreading a batch of seeds over the available devices."""

from collections.abc import Sequence
from typing import Any, TypeAlias, TypeVar

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

T = TypeVar("T")
# `jax.Device` is a runtime alias of an extension type without stubs, which
# type checkers reject in annotations.
Device: TypeAlias = Any


def shard_seeds(tree: T, devices: Sequence[Device] | None = None) -> T:
    """Place every array of ``tree`` with its leading (seed) axis split over
    ``devices`` (default: all of ``jax.devices()``).

    Pass the result (keys, or a batch of policies) to a jitted, vmapped
    ``train``: XLA then runs each device's share of the seeds on that device, in
    parallel, and the results come back split the same way. On a CPU, JAX shows
    one device unless told otherwise before it starts, e.g.
    ``XLA_FLAGS=--xla_force_host_platform_device_count=2`` for two cores. With
    one device this only moves the arrays there.

    Raises:
        ValueError: if a leading axis does not divide evenly over the devices,
            or a leaf has no leading axis.
    """
    chosen = list(jax.devices() if devices is None else devices)
    if not chosen:
        raise ValueError("shard_seeds: devices must not be empty")
    mesh = Mesh(np.asarray(chosen), ("seeds",), axis_types=(AxisType.Auto,))
    spec = PartitionSpec("seeds")  # type: ignore[no-untyped-call]  # jax leaves PartitionSpec.__init__ unannotated
    sharding = NamedSharding(mesh, spec)

    def place(x: object) -> object:
        if not isinstance(x, jax.Array):
            return x
        if x.ndim == 0 or x.shape[0] % len(chosen) != 0:
            raise ValueError(
                f"shard_seeds: every array needs a leading seed axis divisible by "
                f"the number of devices ({len(chosen)}), got an array of shape "
                f"{x.shape}"
            )
        return jax.device_put(x, sharding)

    placed: T = jax.tree.map(place, tree)
    return placed


__all__ = ["shard_seeds"]
