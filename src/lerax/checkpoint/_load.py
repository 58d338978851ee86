"""Finding and loading checkpoints: ``load``, ``read_metadata``, ``latest``
and ``steps``."""

import base64
import binascii
import math
import os
import pathlib
from typing import Any, Final, TypeVar, overload

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PyTree

from .._structure import (
    LeafInfo,
    Structure,
    describe,
    first_difference,
    unpickle_skeleton,
)
from ..algorithm import TrainState
from ._keys import key_layout
from ._metadata import CheckpointMetadata, from_json
from ._writer import ITEMS, import_orbax, leaf_name

StateT = TypeVar("StateT", bound=TrainState[Any, Any, Any, Any])

#: The file orbax writes into a checkpoint once it is complete.
COMMIT_FILE: Final = "commit_success.txt"
#: What orbax appends to a checkpoint's name while it is being written.
TMP_MARK: Final = ".orbax-checkpoint-tmp"


def _is_complete(path: str) -> bool:
    return TMP_MARK not in os.path.basename(path) and os.path.isfile(
        os.path.join(path, COMMIT_FILE)
    )


def _existing_dir(owner: str, argument: str, path: str | os.PathLike[str]) -> str:
    text = os.path.abspath(os.fspath(path))
    if not os.path.exists(text):
        raise FileNotFoundError(
            f"{owner}: {argument}={os.fspath(path)!r} does not exist"
        )
    if not os.path.isdir(text):
        raise ValueError(
            f"{owner}: {argument}={os.fspath(path)!r} is a file, not a directory "
            "of checkpoints or a checkpoint"
        )
    return text


def steps(directory: str | os.PathLike[str]) -> tuple[int, ...]:
    """The steps of the complete checkpoints in ``directory``, ascending.

    A checkpoint is complete once orbax has renamed it from its temporary
    name and it holds orbax's commit file; a save that did not finish (a
    killed process) is not listed.

    Raises:
        FileNotFoundError: if ``directory`` does not exist.
        ValueError: if it is a file.
    """
    text = _existing_dir("lerax.checkpoint.steps", "directory", directory)
    found = [
        int(name)
        for name in os.listdir(text)
        if name.isdigit() and _is_complete(os.path.join(text, name))
    ]
    return tuple(sorted(found))


def latest(directory: str | os.PathLike[str]) -> pathlib.Path | None:
    """The newest complete checkpoint in ``directory`` (the one of the
    largest step), or None if there is none. See
    [`steps`][lerax.checkpoint.steps].

    Raises:
        FileNotFoundError: if ``directory`` does not exist.
        ValueError: if it is a file.
    """
    found = steps(directory)
    if not found:
        return None
    return pathlib.Path(os.path.abspath(os.fspath(directory))) / str(found[-1])


def _resolve(owner: str, path: str | os.PathLike[str]) -> str:
    """The checkpoint ``path`` means: itself if it is one, else the newest
    complete one in it; checked to hold every item."""
    text = _existing_dir(owner, "path", path)
    own = TMP_MARK in os.path.basename(text) or any(
        os.path.exists(os.path.join(text, item)) for item in (COMMIT_FILE, *ITEMS)
    )
    if own:
        if not _is_complete(text):
            raise ValueError(
                f"{owner}: {text!r} is an incomplete checkpoint (no {COMMIT_FILE} "
                "after a final rename): a save that did not finish"
            )
        found = text
    else:
        newest = latest(text)
        if newest is None:
            unfinished = sorted(n for n in os.listdir(text) if TMP_MARK in n)
            raise FileNotFoundError(
                f"{owner}: no complete checkpoint in {text!r}"
                + (
                    f" (only saves that did not finish: {unfinished})"
                    if unfinished
                    else ""
                )
            )
        found = str(newest)
    for item in ITEMS:
        item_path = os.path.join(found, item)
        if not os.path.isdir(item_path):
            raise FileNotFoundError(
                f"{owner}: the checkpoint {found!r} is damaged: its {item!r} item "
                f"({item_path}) is missing"
            )
    return found


def _restore(owner: str, path: str, **items: Any) -> Any:
    """Restore ``items`` (orbax restore arguments) of the checkpoint ``path``."""
    import_orbax(owner)
    import orbax.checkpoint as ocp

    checkpointer = ocp.Checkpointer(ocp.CompositeCheckpointHandler())
    try:
        return checkpointer.restore(path, args=ocp.args.Composite(**items))
    except Exception as err:  # orbax and TensorStore raise many kinds
        names = ", ".join(repr(name) for name in items)
        raise ValueError(
            f"{owner}: the checkpoint {path!r} is corrupt: its {names} cannot be "
            f"read ({type(err).__name__}: {err})"
        ) from err
    finally:
        checkpointer.close()


def _metadata(owner: str, path: str) -> CheckpointMetadata:
    import_orbax(owner)
    import orbax.checkpoint as ocp

    data = _restore(owner, path, metadata=ocp.args.JsonRestore())["metadata"]
    try:
        return from_json(data, path)
    except ValueError as err:
        raise ValueError(
            f"{owner}: the checkpoint {path!r} has corrupt metadata: {err}"
        ) from None


def read_metadata(path: str | os.PathLike[str]) -> CheckpointMetadata:
    """The metadata of a checkpoint, without loading its leaves.

    Args:
        path: a directory of checkpoints (its newest complete checkpoint is
            read) or one checkpoint's own directory.

    Raises:
        FileNotFoundError: if ``path`` does not exist, holds no complete
            checkpoint, or the checkpoint lacks an item.
        ValueError: if the checkpoint is incomplete or its metadata corrupt.
        ImportError: if orbax-checkpoint is not installed.
    """
    owner = "lerax.checkpoint.read_metadata"
    return _metadata(owner, _resolve(owner, path))


@overload
def load(
    path: str | os.PathLike[str], *, like: None = None
) -> TrainState[Any, Any, Any, Any]: ...


@overload
def load(path: str | os.PathLike[str], *, like: StateT) -> StateT: ...


def load(
    path: str | os.PathLike[str], *, like: PyTree | None = None
) -> TrainState[Any, Any, Any, Any]:
    """Load a training state written by
    [`CheckpointWriter`][lerax.checkpoint.CheckpointWriter].

    Call it outside any JAX transform. The state comes back as it was saved:
    with its batch axes (a vmapped batch of runs loads as the same batch),
    its leaves JAX arrays (typed PRNG keys as typed keys), every leaf
    bitwise equal to the saved one.

    Without ``like`` the structure (the modules, their static fields: the
    policy, the algorithm's configuration, the callback's and environments'
    states) is rebuilt from the pickle stored in the checkpoint. Unpickling
    runs code the pickle names (the classes of the state's modules, which
    must be importable under the names they had): load checkpoints you trust
    only, or pass ``like``, which reads no pickle.

    With ``like`` the leaves are loaded into its structure: a ``TrainState``
    of the same structure, with arrays or ``jax.ShapeDtypeStruct`` leaves
    (``eqx.filter_eval_shape`` of what made it will do), with the
    checkpoint's batch axes. Its leaf values are not used.

    Either way the structure is compared with the one the checkpoint
    describes (every node's type, every static field, every leaf's path,
    shape and dtype): the first difference raises.

    Args:
        path: a directory given to ``CheckpointWriter`` (its newest complete
            checkpoint is loaded) or one checkpoint's own directory.
        like: the structure to load into, or None.

    Returns:
        The training state.

    Raises:
        FileNotFoundError: if ``path`` does not exist or holds no complete
            checkpoint, or the checkpoint lacks one of its items (naming it).
        ValueError: if the checkpoint is incomplete or corrupt (naming what
            is wrong), its structure cannot be rebuilt without ``like``, or
            differs from ``like`` (naming the first differing path, and both
            sides: type, static value, or shape and dtype).
        TypeError: if ``like`` is not a ``TrainState``.
        ImportError: if orbax-checkpoint is not installed.
    """
    owner = "lerax.checkpoint.load"
    if like is not None and not isinstance(like, TrainState):
        raise TypeError(
            f"{owner}: like must be a TrainState or None, got {type(like).__name__}"
        )
    found = _resolve(owner, path)
    meta = _metadata(owner, found)
    import orbax.checkpoint as ocp

    stored = _restore(owner, found, structure=ocp.args.JsonRestore())["structure"]
    try:
        assert isinstance(stored, dict)
        saved = Structure.from_json(stored["tree"])
        pickled = stored["pickle"]
    except (AssertionError, KeyError, ValueError) as err:
        raise ValueError(
            f"{owner}: the checkpoint {found!r} has a corrupt structure item ({err})"
        ) from None
    if like is None:
        target = _unpickle(owner, found, meta, pickled)
        against = "its own stored structure (a corrupt checkpoint)"
    else:
        target = like
        against = "like"
    difference = first_difference(saved, describe(target), batch_shape=meta.batch_shape)
    if difference is not None:
        raise ValueError(
            f"{owner}: the checkpoint {found!r} does not match {against}: {difference}"
        )
    restored = _restore(owner, found, state=ocp.args.PyTreeRestore())["state"]
    leaves = _leaves(owner, found, saved, meta, restored)
    state = jax.tree.unflatten(jax.tree.structure(target), leaves)
    if not isinstance(state, TrainState):
        raise ValueError(
            f"{owner}: the checkpoint {found!r} holds a {type(state).__name__}, "
            "not a TrainState"
        )
    return state


def _unpickle(
    owner: str, path: str, meta: CheckpointMetadata, pickled: object
) -> PyTree:
    if not isinstance(pickled, str):
        raise ValueError(
            f"{owner}: the checkpoint {path!r} was saved without its structure "
            f"({meta.structure_error}); pass like= a TrainState of the same "
            "structure"
        )
    try:
        return unpickle_skeleton(base64.b64decode(pickled.encode(), validate=True))
    except binascii.Error as err:
        raise ValueError(
            f"{owner}: the checkpoint {path!r} has a corrupt structure pickle ({err})"
        ) from None
    except Exception as err:  # unpickling raises whatever the named code raises
        raise ValueError(
            f"{owner}: the structure of the checkpoint {path!r} cannot be rebuilt "
            f"({type(err).__name__}: {err}); the classes it names must be "
            "importable under the same names, or pass like= a TrainState of the "
            "same structure"
        ) from err


def _stored(info: LeafInfo, meta: CheckpointMetadata) -> tuple[tuple[int, ...], str]:
    """The shape and dtype a leaf is stored with (a typed key's as its key
    data)."""
    impl = meta.key_impls.get(info.path)
    if impl is None:
        return info.shape, info.dtype
    return info.shape + key_layout(impl)[1], "uint32"


def _leaves(
    owner: str,
    path: str,
    saved: Structure,
    meta: CheckpointMetadata,
    restored: object,
) -> list[jax.Array]:
    """The restored leaves as JAX arrays (typed keys rebuilt), each checked
    against the structure."""
    infos = saved.leaves
    shapes = [_stored(info, meta) for info in infos]
    # empty leaves are not stored: their shape and dtype say everything
    names = [leaf_name(i) for i, (shape, _) in enumerate(shapes) if math.prod(shape)]
    if not isinstance(restored, dict) or sorted(restored) != names:
        got = (
            sorted(restored) if isinstance(restored, dict) else type(restored).__name__
        )
        raise ValueError(
            f"{owner}: the checkpoint {path!r} is corrupt: its state item holds "
            f"{got if len(str(got)) < 200 else 'other entries'}, expected "
            f"{len(names)} leaves"
        )
    out: list[jax.Array] = []
    for i, (info, (shape, dtype)) in enumerate(zip(infos, shapes, strict=True)):
        if math.prod(shape):
            data = np.asarray(restored[leaf_name(i)])
        else:
            data = np.zeros(shape, jnp.dtype(dtype))
        impl = meta.key_impls.get(info.path)
        if data.shape != shape or str(data.dtype) != dtype:
            raise ValueError(
                f"{owner}: the checkpoint {path!r} is corrupt: the leaf {info.path} "
                f"holds {data.dtype} of shape {data.shape}, its structure says "
                f"{dtype} of shape {shape}"
            )
        if impl is None:
            out.append(jnp.asarray(data))
        else:
            out.append(jax.random.wrap_key_data(jnp.asarray(data), impl=impl))
    return out
