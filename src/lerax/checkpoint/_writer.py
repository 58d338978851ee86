"""CheckpointWriter: a training state to disk, through orbax-checkpoint."""

import atexit
import base64
import os
import tempfile
import threading
import weakref
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Final, final

import jax
import numpy as np
import numpy.typing as npt

from .._structure import (
    describe,
    is_key,
    pickle_skeleton,
    versions,
)
from ..algorithm import TrainState
from ._keys import key_layout
from ._metadata import CheckpointMetadata, ExtraValue, algorithm_config, to_json

#: The items of one checkpoint (subdirectories of its step directory).
ITEMS: Final = ("state", "metadata", "structure")

_open_writers: "weakref.WeakSet[CheckpointWriter]" = weakref.WeakSet()


def import_orbax(owner: str) -> None:
    """Import orbax-checkpoint, or say how to install it.

    Raises:
        ImportError: naming ``owner`` and the ``checkpoint`` extra.
    """
    try:
        import orbax.checkpoint  # noqa: F401
    except ImportError as err:
        raise ImportError(
            f"{owner} needs orbax-checkpoint, which is not installed: "
            "pip install 'lerax[checkpoint]'"
        ) from err


def leaf_name(index: int) -> str:
    """The name of the ``index``-th leaf in a checkpoint's ``state`` item."""
    return f"leaf_{index:05d}"


def _check_directory(directory: str) -> None:
    try:
        os.makedirs(directory, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".lerax-probe-"):
            pass
    except OSError as err:
        reason = err.strerror or str(err)
        raise ValueError(
            f"CheckpointWriter: directory={directory!r} cannot be written: {reason}"
            + (f" ({err.filename})" if err.filename not in (None, directory) else "")
        ) from err


@final
class CheckpointWriter:
    """Write training states ([`TrainState`][lerax.algorithm.TrainState]) to a
    directory of checkpoints, asynchronously and atomically, with
    orbax-checkpoint's ``CheckpointManager`` (the ``checkpoint`` extra:
    ``pip install 'lerax[checkpoint]'``).

    [`save`][lerax.checkpoint.CheckpointWriter.save] copies the state to host
    memory, hands the copy to orbax and returns; orbax writes it in a
    background thread into a temporary directory and renames it to the
    step's directory when complete, so a process killed mid-save leaves the
    checkpoints before it loadable (the temporary directory is ignored by
    [`load`][lerax.checkpoint.load] and removed by the next writer on the
    directory). Only ``keep_last`` checkpoints are kept: older ones are
    deleted after a newer one is complete.

    Made for a host call inside the compiled training program (that is how
    a checkpoint callback uses it) as well as for eager use; thread-safe.
    One process; several hosts writing one checkpoint is not supported.

    The directory holds one subdirectory per checkpoint, named by its step,
    each holding orbax's ``state`` (the leaves, in ``jax.tree.leaves``
    order), ``metadata`` (a JSON
    [`CheckpointMetadata`][lerax.checkpoint.CheckpointMetadata]) and
    ``structure`` (JSON: the state's structure, pickled, with
    ``jax.ShapeDtypeStruct`` leaves, so that ``load`` rebuilds it) items.

    Use it as a context manager, or call
    [`close`][lerax.checkpoint.CheckpointWriter.close]; writers still open
    when Python exits finish their writes then.

    Args:
        directory: the directory of checkpoints; created if needed. It may
            hold an earlier run's checkpoints (a resumed run continues it).
        keep_last: how many checkpoints to keep (the newest), or None to
            keep all.

    Raises:
        ValueError: if ``directory`` cannot be created or written (naming it
            and why), or ``keep_last`` is not a positive integer or None.
        ImportError: if orbax-checkpoint is not installed.
    """

    def __init__(
        self, directory: str | os.PathLike[str], *, keep_last: int | None = None
    ):
        if keep_last is not None and (
            not isinstance(keep_last, int | np.integer)
            or isinstance(keep_last, bool)
            or keep_last < 1
        ):
            raise ValueError(
                "CheckpointWriter: keep_last must be a positive integer or None, "
                f"got keep_last={keep_last!r}"
            )
        text = os.path.abspath(os.fspath(directory))
        _check_directory(text)
        import_orbax("CheckpointWriter")
        import orbax.checkpoint as ocp

        self.directory = text
        self.keep_last = None if keep_last is None else int(keep_last)
        self._lock = threading.RLock()
        self._manager: ocp.CheckpointManager | None = ocp.CheckpointManager(
            text,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=self.keep_last,
                enable_async_checkpointing=True,
                create=True,
                cleanup_tmp_directories=True,
            ),
            item_names=ITEMS,
        )
        _open_writers.add(self)

    def __repr__(self) -> str:
        return f"CheckpointWriter({self.directory!r}, keep_last={self.keep_last})"

    def save(
        self,
        step: int,
        state: TrainState[Any, Any, Any, Any],
        *,
        key_impls: Mapping[str, str] | None = None,
        extra: Mapping[str, ExtraValue] | None = None,
    ) -> None:
        """Start writing ``state`` as the checkpoint of ``step``; return once
        it is copied to host memory (the write goes on in the background:
        [`wait`][lerax.checkpoint.CheckpointWriter.wait] for it).

        A vmapped batch of runs is saved as one checkpoint: its batch shape
        is the shape of ``state.iteration`` (one counter per run), and every
        leaf must have those leading axes.

        Args:
            step: the checkpoint's step, a non-negative integer after the
                newest checkpoint's in the directory (e.g. the iteration).
            state: the training state. Its leaves are NumPy arrays (a copy
                from the device, as a host call receives them) or JAX arrays
                (copied here). A typed PRNG key is either a JAX key array, or
                its key data (``uint32``) named in ``key_impls``.
            key_impls: for leaves given as key data, the PRNG implementation
                of each by path (see
                [`split_keys`][lerax.checkpoint.split_keys]).
            extra: entries of your own for the metadata (JSON scalars).

        Raises:
            TypeError: if ``state`` is not a ``TrainState``, ``step`` is not
                an integer, or a leaf is not an array.
            ValueError: if ``step`` is negative or not after the newest
                checkpoint's; if a leaf lacks the batch axes; if
                ``key_impls`` names a leaf that is not key data of that
                implementation.
            RuntimeError: if the writer is closed, or orbax refuses the save.
        """
        self._open_manager()  # closed: refuse before copying anything
        if not isinstance(step, int | np.integer) or isinstance(step, bool):
            raise TypeError(f"CheckpointWriter.save: step must be an int, got {step!r}")
        if step < 0:
            raise ValueError(
                f"CheckpointWriter.save: step must be >= 0, got step={step}"
            )
        if not isinstance(state, TrainState):
            raise TypeError(
                "CheckpointWriter.save: state must be a TrainState, got "
                f"{type(state).__name__}"
            )
        extra = dict(extra or {})
        for name, value in extra.items():
            if not isinstance(name, str) or not isinstance(
                value, bool | int | float | str
            ):
                raise TypeError(
                    "CheckpointWriter.save: extra must map names to bool, int, float "
                    f"or str, got {name!r}: {value!r}"
                )
        impls = dict(key_impls or {})
        batch_shape = tuple(int(n) for n in np.shape(state.iteration))
        flat, treedef = jax.tree_util.tree_flatten_with_path(state)
        paths = [jax.tree_util.keystr(p) for p, _ in flat]
        unknown = sorted(set(impls) - set(paths))
        if unknown:
            raise ValueError(
                f"CheckpointWriter.save: key_impls names {unknown[0]}, which is not "
                "a leaf of the state"
            )
        arrays: dict[str, npt.NDArray[Any]] = {}
        shapes: list[jax.ShapeDtypeStruct] = []
        for index, (path, (_, leaf)) in enumerate(zip(paths, flat, strict=True)):
            data, shape = _host_leaf(path, leaf, impls)
            if shape.shape[: len(batch_shape)] != batch_shape:
                raise ValueError(
                    f"CheckpointWriter.save: the leaf {path} has shape {shape.shape}, "
                    f"which does not start with the batch shape {batch_shape} (the "
                    "shape of state.iteration)"
                )
            if data.size:  # orbax refuses empty arrays: their shape is enough
                arrays[leaf_name(index)] = data
            shapes.append(shape)
        skeleton = jax.tree.unflatten(treedef, shapes)
        structure = describe(skeleton)
        # load pairs the described leaves with the stored ones by position
        assert [leaf.path for leaf in structure.leaves] == paths
        try:
            pickled: str | None = base64.b64encode(pickle_skeleton(skeleton)).decode()
            error = None
        except Exception as err:  # pickle raises many kinds for what it cannot pickle
            pickled, error = None, f"the structure cannot be pickled: {err!r}"
        info = versions()
        meta = CheckpointMetadata(
            path="",
            step=int(step),
            algorithm=state.algorithm.name,
            algorithm_config=algorithm_config(state.algorithm),
            total_timesteps=state.total_timesteps,
            num_iterations=state.num_iterations,
            iteration=tuple(int(x) for x in np.asarray(state.iteration).ravel()),
            timesteps=tuple(int(x) for x in np.asarray(state.timesteps).ravel()),
            batch_shape=batch_shape,
            lerax_version=info["lerax_version"],
            jax_version=info["jax_version"],
            equinox_version=info["equinox_version"],
            backend=jax.default_backend(),
            device_count=jax.device_count(),
            leaves=structure.leaves,
            key_impls={
                path: _impl_of(path, leaf, impls)
                for path, (_, leaf) in zip(paths, flat, strict=True)
                if path in impls or is_key(leaf)
            },
            rebuildable=pickled is not None,
            structure_error=error,
            extra=extra,
        )
        import orbax.checkpoint as ocp

        with self._lock:
            manager = self._open_manager()
            latest = manager.latest_step()
            if latest is not None and step <= latest:
                raise ValueError(
                    f"CheckpointWriter.save: step={step} is not after the newest "
                    f"checkpoint's step {latest} in {self.directory!r}"
                )
            saved = manager.save(
                int(step),
                args=ocp.args.Composite(
                    state=ocp.args.PyTreeSave(arrays),
                    metadata=ocp.args.JsonSave(to_json(meta)),
                    structure=ocp.args.JsonSave(
                        {"pickle": pickled, "tree": structure.to_json()}
                    ),
                ),
            )
        if not saved:
            raise RuntimeError(
                f"CheckpointWriter.save: orbax did not save step {step} in "
                f"{self.directory!r}"
            )

    def latest_step(self) -> int | None:
        """The newest checkpoint's step in the directory (one being written
        included), or None if there is none."""
        with self._lock:
            step = self._open_manager().latest_step()
        return None if step is None else int(step)

    def wait(self) -> None:
        """Block until every write started has finished.

        Raises:
            Exception: what a background write raised.
        """
        with self._lock:
            if self._manager is not None:
                self._manager.wait_until_finished()

    def close(self) -> None:
        """Finish every write started, then release the writer (idempotent)."""
        with self._lock:
            manager, self._manager = self._manager, None
        if manager is not None:
            _open_writers.discard(self)
            try:
                manager.wait_until_finished()
            finally:
                manager.close()

    @property
    def closed(self) -> bool:
        """Whether [`close`][lerax.checkpoint.CheckpointWriter.close] was called."""
        return self._manager is None

    def __enter__(self) -> "CheckpointWriter":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _open_manager(self) -> Any:
        if self._manager is None:
            raise RuntimeError(f"{self!r} is closed")
        return self._manager


def _impl_of(path: str, leaf: object, impls: Mapping[str, str]) -> str:
    if path in impls:
        return impls[path]
    assert isinstance(leaf, jax.Array)
    return str(jax.random.key_impl(leaf))


def _host_leaf(
    path: str, leaf: object, impls: Mapping[str, str]
) -> tuple[npt.NDArray[Any], jax.ShapeDtypeStruct]:
    """A leaf's data as an owned NumPy array, and its shape and dtype in the
    state (a typed key's dtype for key leaves)."""
    if is_key(leaf):
        assert isinstance(leaf, jax.Array)
        data = np.array(jax.random.key_data(leaf))
        return data, jax.ShapeDtypeStruct(leaf.shape, leaf.dtype)  # type: ignore[no-untyped-call]  # jax leaves ShapeDtypeStruct.__init__ unannotated
    if not isinstance(leaf, jax.Array | np.ndarray | np.generic):
        raise TypeError(
            f"CheckpointWriter.save: every leaf must be an array, got "
            f"{type(leaf).__name__} at {path}"
        )
    data = np.array(leaf)
    if path not in impls:
        return data, jax.ShapeDtypeStruct(data.shape, data.dtype)  # type: ignore[no-untyped-call]  # jax leaves ShapeDtypeStruct.__init__ unannotated
    dtype, trailing = key_layout(impls[path])
    n = len(trailing)
    if data.dtype != np.uint32 or data.shape[data.ndim - n :] != trailing:
        raise ValueError(
            f"CheckpointWriter.save: key_impls names {path} as {impls[path]} key "
            f"data, which is uint32 with trailing shape {trailing}; got "
            f"{data.dtype} of shape {data.shape}"
        )
    return data, jax.ShapeDtypeStruct(data.shape[: data.ndim - n], dtype)  # type: ignore[no-untyped-call]  # jax leaves ShapeDtypeStruct.__init__ unannotated


@atexit.register
def _close_all() -> None:
    """Finish the writes of every writer still open when Python exits;
    failures are dropped: at exit there is no one left to tell."""
    for writer in list(_open_writers):
        try:
            writer.close()
        except Exception:  # noqa: S110
            pass


__all__ = ["CheckpointWriter"]
