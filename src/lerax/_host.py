"""Getting data out of the compiled training program: Lerax's one place for
host calls, run indices and the host-object registry.

Everything here is built on public JAX and Equinox API. Beyond JAX's covered
API it uses exactly three things, all from this module:
``jax.experimental.io_callback`` (an effectful host call, which XLA never
removes, even when the caller drops every output of the program),
``jax.custom_batching.custom_vmap`` (to see every vmapped axis) and
``equinox.internal.unvmap_any`` (an unbatched predicate, so a
host call inside ``lax.cond`` or ``lax.while_loop`` stays a real branch under
``vmap``).

- ``host_call`` calls a host function once per call site for all vmapped
  runs: a self-recursive ``custom_vmap`` adds one leading axis per vmap level,
  so the ``io_callback`` inside sees every run's row. Calls are ordered by a
  token that the caller threads from one call to the next (through its
  callback state), so no ordered effect is needed.
- [`run_index`][lerax.callback.run_index] and [`num_runs`][lerax.callback.num_runs]
  number the runs row-major over every vmapped axis that batches an anchor (again a
  self-recursive ``custom_vmap``).
- ``any_run`` turns per-run flags into one unbatched flag, ``select_runs``
  keeps the runs that stopped as they were, and
  ``poll`` asks the host for one unbatched number (a stop request).
- ``fail`` records a host object's failure by id; the training loop
  asks ``failures_of`` about the ids its callback declares.
- A Ctrl-C in a host call must not fail the program: the host functions
  catch ``KeyboardInterrupt`` (``_interrupt.caught``), and tell
  ``_interrupt`` which code runs only inside host calls (theirs, and the
  frames of the file that defines ``io_callback`` around them; also learned
  once by ``learn_host_frames``), where its SIGINT handler holds a Ctrl-C.
- ``register``/``lookup``/``release`` keep host objects (writers,
  consoles) out of the traced structure: a callback holds an integer id, so a
  new callback of the same configuration reuses the compiled program.
"""

import contextlib
import inspect
import itertools
import math
import threading
from collections.abc import Callable, Sequence
from types import CodeType, FrameType
from typing import Any, TypeVar

import jax
import jax.numpy as jnp
import numpy as np
import numpy.typing as npt
from equinox.internal import unvmap_any
from jax.custom_batching import custom_vmap
from jax.experimental import io_callback
from jaxtyping import Array, ArrayLike, Bool, Int, PyTree

from . import _interrupt

T = TypeVar("T")

#: ``fn(record, run_index, runs)``: ``record`` is one run's record (the pytree
#: given to ``host_call``, NumPy leaves), ``run_index`` that run's index
#: and ``runs`` how many runs there are in all. It may return an int, which
#: becomes that run's next token (else the token passes through unchanged).
HostFn = Callable[[Any, int, int], int | None]

#: The value a host call returns and the next one takes: it orders the calls.
Token = Int[Array, ""]


def new_token() -> Token:
    """A token to start a chain of host calls with."""
    return jnp.zeros((), jnp.int32)


# -- run indices -------------------------------------------------------------


def _strip(leaves: list[Array], batched: Sequence[bool]) -> list[Array]:
    """Row 0 of each batched leaf (custom_vmap puts the batch axis first)."""
    return [x[0] if b else x for x, b in zip(leaves, batched, strict=True)]


@custom_vmap
def _index(leaves: list[Array]) -> Int[Array, ""]:
    return jnp.zeros((), jnp.int32)


@_index.def_vmap
def _index_vmap(
    axis_size: int, in_batched: list[list[bool]], leaves: list[Array]
) -> tuple[Int[Array, " batch"], bool]:
    # The index over the vmaps outside this one (batched by them, or 0), then
    # this axis: row-major over every vmapped axis that batches some leaf.
    outer = jnp.asarray(_index(_strip(leaves, in_batched[0])))
    return outer * axis_size + jnp.arange(axis_size, dtype=jnp.int32), True


@custom_vmap
def _count(run_index: Int[Array, ""]) -> Int[Array, ""]:
    return jnp.ones((), jnp.int32)


@_count.def_vmap
def _count_vmap(
    axis_size: int, in_batched: list[bool], run_index: Int[Array, "..."]
) -> tuple[Int[Array, ""], bool]:
    if not in_batched[0]:
        return jnp.asarray(_count(run_index)), False
    return jnp.asarray(_count(run_index[0]) * axis_size, jnp.int32), False


def run_index(anchor: PyTree) -> Int[Array, ""]:
    """``0`` for a single run; under ``jax.vmap``/``eqx.filter_vmap``, the index
    of this run among the vmapped runs, counting every vmapped axis that
    batches some array leaf of ``anchor`` (row-major over nested vmaps: under
    ``vmap(vmap(f))`` over a 2 x 3 batch, run ``(i, j)`` has index ``3 * i + j``).

    The training loop computes it once from the key, policy, environment,
    callback and algorithm, and puts it in every callback context as
    ``ctx.run_index``, so host-side I/O can tell vmapped runs apart.
    """
    leaves = [
        jax.random.key_data(x)
        if jnp.issubdtype(x.dtype, jax.dtypes.prng_key)
        else jnp.asarray(x)
        for x in jax.tree.leaves(anchor)
        if isinstance(x, jax.Array)
    ]
    return jnp.asarray(_index(leaves))


def num_runs(run_index: Int[Array, ""]) -> Int[Array, ""]:
    """How many runs ``run_index`` (``ctx.run_index``) counts: 1 for a single
    run, else the product of the sizes of the vmapped axes that batch it (an
    unbatched value)."""
    return jnp.asarray(_count(run_index))


def any_run(flag: Bool[Array, ""]) -> Bool[Array, ""]:
    """``flag`` for a single run; under ``vmap``, whether it holds for any run
    (an unbatched value).

    A ``lax.while_loop`` on a batched predicate refuses host calls in its
    body; the training loop's predicate is ``any_run`` of each run's, and
    the body keeps stopped runs as they were (``select_runs``).
    """
    out: Bool[Array, ""] = jnp.asarray(unvmap_any(flag))
    return out


@custom_vmap
def _select(flag: Bool[Array, ""], new: PyTree, old: PyTree) -> PyTree:
    return new


@_select.def_vmap
def _select_vmap(
    axis_size: int,
    in_batched: list[Any],
    flag: Bool[Array, "..."],
    new: PyTree,
    old: PyTree,
) -> tuple[PyTree, PyTree]:
    flag_batched, new_batched, old_batched = in_batched

    def axis(x: Array, batched: bool) -> Array:
        return x if batched else jnp.broadcast_to(x, (axis_size, *x.shape))

    new = jax.tree.map(axis, new, new_batched)
    old = jax.tree.map(axis, old, old_batched)
    if flag_batched:
        out = jax.tree.map(
            lambda n, o: jnp.where(
                flag.reshape(flag.shape + (1,) * (n.ndim - 1)), n, o
            ),
            new,
            old,
        )
    else:  # the same for every run along this axis: the vmaps outside decide
        out = _select(flag, new, old)
    return out, jax.tree.map(lambda _: True, out)


def select_runs(flag: Bool[Array, ""], new: PyTree, old: PyTree) -> PyTree:
    """``new`` for a single run; under vmap, each run's ``new`` where its
    ``flag`` holds, else its ``old``.

    In the training loop's body, whose predicate is ``any_run`` of the runs'
    flags, this keeps stopped runs as they were. A single run's flag holds
    wherever the body runs, so it costs nothing there, nor under vmap for
    flags that no vmapped axis batches."""
    return _select(flag, new, old)


def _shape(shape: tuple[int, ...], dtype: Any) -> jax.ShapeDtypeStruct:
    """The shape and dtype of a host call's result."""
    return jax.ShapeDtypeStruct(shape, dtype)  # type: ignore[no-untyped-call]  # jax leaves ShapeDtypeStruct.__init__ unannotated


# -- host calls --------------------------------------------------------------


_HEADER = 4  # token, when, run index, number of runs: in front of the record

#: The most bytes one host-call operand holds. JAX copies each operand onto
#: the first CPU device before the host function sees it, and XLA's CPU
#: client makes a copy of 100 KiB or more asynchronously, on the thread pool
#: that also runs the devices' programs: in a program spread over several
#: CPU devices (``shard_seeds``) the other devices wait in a collective for
#: the one making the call, no thread is left for the copy, and the call
#: never returns. Smaller operands are copied in place; a record (a
#: checkpoint's state) travels in as many operands as it needs.
_OPERAND_BYTES = 64 * 1024


def _chunks(length: int, rows: int, itemsize: int) -> list[tuple[int, int]]:
    """The ``(start, stop)`` pieces of an operand's last axis (``length``
    elements of ``itemsize`` bytes, ``rows`` vmapped rows) that keep each
    piece within ``_OPERAND_BYTES`` (at least one element, and one piece for
    an empty axis)."""
    per = max(1, _OPERAND_BYTES // max(1, rows * itemsize))
    starts = range(0, length, per) if length else [0]
    return [(start, min(length, start + per)) for start in starts]


class _Wire:
    """How a record pytree travels: as few operands as possible, since each
    operand of a host call is one more device-to-host transfer, and inside a
    busy program each costs far more than its bytes. Leaves of 4-byte dtypes
    travel bit for bit in one int32 array (floats by
    ``lax.bitcast_convert_type``), booleans as int32 in it too; other dtypes
    in one array each; an array of more than ``_OPERAND_BYTES`` travels in
    pieces (see there why). The host rebuilds the pytree from its static
    structure.

    The packing ([`pack`][]) happens where the call is made, inside its
    branch: a record packed outside would be copied into the operands at
    every pass, called or not (a checkpoint's replay buffer, every
    iteration)."""

    def __init__(self, record: PyTree):
        leaves, self.treedef = jax.tree.flatten(record)
        self.leaves = [jnp.asarray(leaf) for leaf in leaves]
        # (group, start, stop, shape, dtype) of each leaf; group 0 is int32
        self.layout: list[tuple[int, int, int, tuple[int, ...], np.dtype[Any]]] = []
        self.dtypes: list[Any] = [jnp.dtype(jnp.int32)]
        sizes: dict[Any, int] = {jnp.dtype(jnp.int32): 0}
        for a in self.leaves:
            wire = jnp.dtype(jnp.int32) if _packed(a.dtype) else a.dtype
            if wire not in sizes:
                self.dtypes.append(wire)
                sizes[wire] = 0
            start = sizes[wire]
            sizes[wire] = start + a.size
            index = self.dtypes.index(wire)
            self.layout.append((index, start, start + a.size, a.shape, a.dtype))
        # each group's length on the wire (the header in front of group 0)
        self.lengths = [sizes[d] for d in self.dtypes]
        self.lengths[0] += _HEADER

    def pack(self, header: Array, leaves: Sequence[Array]) -> list[Array]:
        """The operands: ``header`` (its last axis) then the int32 group in
        the first array, one array per other dtype, each split along its last
        axis into pieces of at most ``_OPERAND_BYTES``; the leaves carry the
        same vmapped axes in front as ``header``."""
        batch = header.shape[:-1]
        groups: list[list[Array]] = [[header]] + [[] for _ in self.dtypes[1:]]
        for a, (index, *_) in zip(leaves, self.layout, strict=True):
            groups[index].append(_to_wire(a).reshape((*batch, -1)))
        joined = [
            jnp.concatenate(g, axis=-1) if g else jnp.zeros((*batch, 0), d)
            for d, g in zip(self.dtypes, groups, strict=True)
        ]
        rows = math.prod(batch)
        return [
            g[..., start:stop]
            for g in joined
            for start, stop in _chunks(g.shape[-1], rows, g.dtype.itemsize)
        ]

    def join(self, operands: Sequence[Array]) -> list[npt.NDArray[Any]]:
        """The inverse of [`pack`][]'s split on the host: one NumPy array per
        dtype group (views where a group came in one piece)."""
        arrays = [np.asarray(o) for o in operands]
        rows = math.prod(arrays[0].shape[:-1])
        out: list[npt.NDArray[Any]] = []
        at = 0
        for dtype, length in zip(self.dtypes, self.lengths, strict=True):
            count = len(_chunks(length, rows, jnp.dtype(dtype).itemsize))
            pieces = arrays[at : at + count]
            at += count
            out.append(pieces[0] if count == 1 else np.concatenate(pieces, axis=-1))
        return out

    def rebuild(self, operands: Sequence[npt.NDArray[Any]]) -> PyTree:
        """One run's record from its operands (copied: XLA reuses the buffers
        it hands to a host call once the call returns)."""
        owned = [np.array(o) for o in operands]
        leaves = [
            _from_wire(owned[i][start:stop], dtype).reshape(shape)
            for i, start, stop, shape, dtype in self.layout
        ]
        return jax.tree.unflatten(self.treedef, leaves)


def _packed(dtype: Any) -> bool:
    """Whether leaves of ``dtype`` travel in the int32 operand."""
    return bool(dtype == jnp.bool_ or jnp.dtype(dtype).itemsize == 4)


def _to_wire(a: Array) -> Array:
    if a.dtype == jnp.bool_:
        return a.astype(jnp.int32)
    if _packed(a.dtype) and a.dtype != jnp.int32:
        return jax.lax.bitcast_convert_type(a, jnp.int32)
    return a


def _from_wire(a: npt.NDArray[Any], dtype: np.dtype[Any]) -> npt.NDArray[Any]:
    if dtype == np.bool_:
        flags: npt.NDArray[np.bool_] = a != 0
        return flags
    if a.dtype != dtype:
        return a.view(dtype)
    return a


def _call_rows(
    fn: HostFn, wire: _Wire, arrays: Sequence[Array]
) -> npt.NDArray[np.int32]:
    """Call ``fn`` once per run whose ``when`` holds and return the next
    tokens. ``arrays`` are [`_Wire.pack`][]'s pieces; joined, the first is
    the int32 group, its last axis the header (token, when, run index, runs)
    then the record's int32 leaves; its other axes, and those in front of
    the other groups, are vmapped runs."""
    main, *others = wire.join(arrays)
    tokens = np.array(main[..., 0], np.int32)
    if main.ndim == 1:  # one run: no rows to split (the common case, kept cheap)
        token, when, index, total = main[:_HEADER].tolist()
        if when:
            out = fn(wire.rebuild([main[_HEADER:], *others]), index, total)
            if out is not None:
                tokens[...] = out
        return tokens
    batch = main.shape[:-1]
    rows = math.prod(batch)
    flat_main = main.reshape(rows, main.shape[-1])
    split = [o.reshape((rows, *o.shape[len(batch) :])) for o in others]
    header = flat_main[:, :_HEADER].tolist()
    flat = tokens.reshape(-1)
    for i, (_, when, run, runs) in enumerate(header):
        if when:
            record = wire.rebuild([flat_main[i, _HEADER:], *(o[i] for o in split)])
            out = fn(record, run, runs)
            if out is not None:
                flat[i] = out
    return tokens


def _gated(
    on_host: Callable[..., npt.NDArray[Any]],
    shape: tuple[int, ...],
    due: Bool[Array, ""],
    args: Sequence[Array],
    otherwise: Array,
    prepare: Callable[[Sequence[Array]], Sequence[Array]] = list,
) -> Array:
    """``io_callback(on_host, *prepare(args))`` (an int32 result of
    ``shape``) if ``due``, else ``otherwise``. Called only inside a
    ``custom_vmap`` that sees every vmapped axis, so the cond is never
    batched: JAX refuses to vmap a cond around a host call, even on an
    unbatched predicate."""

    def send() -> Array:
        out: Array = io_callback(on_host, _shape(shape, jnp.int32), *prepare(args))
        return out

    out: Array = jax.lax.cond(due, send, lambda: otherwise)
    return out


def _make_call(fn: HostFn, wire: _Wire) -> Callable[[list[Array]], Array]:
    """The custom_vmap'ed call of ``fn`` over ``[main, *others]`` (see
    :func:`_call_rows`)."""

    # io_callback hands over jax.Arrays on the CPU; np.asarray views them.
    def on_host(*arrays: Array) -> npt.NDArray[np.int32]:
        _enter(inspect.currentframe())
        try:
            return _call_rows(fn, wire, arrays)
        except KeyboardInterrupt:  # tokens as they came: the program goes on
            _interrupt.caught()
            return np.array(np.asarray(arrays[0])[..., 0], np.int32)  # header first

    def prepare(args: Sequence[Array]) -> list[Array]:
        return wire.pack(args[0], args[1:])

    @custom_vmap
    def call(args: list[Array]) -> Array:
        # Seen with every vmapped axis: the rule below calls it again with
        # them. args: the header, then the record's leaves (packed in the
        # branch that calls).
        header = args[0]
        token = header[..., 0]
        due = jnp.any(header[..., 1] != 0)
        return _gated(on_host, token.shape, due, args, token, prepare)

    @call.def_vmap
    def call_vmap(
        axis_size: int, in_batched: list[list[bool]], args: list[ArrayLike]
    ) -> tuple[Array, bool]:
        # Give every operand this axis and call again: an outer vmap adds its
        # own axis in front, so the one host call sees all runs.
        moved = [
            jnp.asarray(a) if b else jnp.broadcast_to(a, (axis_size, *jnp.shape(a)))
            for a, b in zip(args, in_batched[0], strict=True)
        ]
        return call(moved), True

    return call


def host_call(
    fn: HostFn,
    record: PyTree,
    run_index: Int[Array, ""],
    token: Token,
    *,
    when: Bool[Array, ""] | bool = True,
) -> Token:
    """Call ``fn(record, run_index, runs)`` on the host for each run whose
    ``when`` holds, when the compiled program gets here, in one host call for
    all vmapped runs, and return the token for the next call.

    ``record`` is a pytree of arrays; ``fn`` receives one run's record with
    the same structure, its leaves NumPy arrays it may keep. ``run_index`` is
    the context's ``run_index``: it travels with the record, so the call is
    batched along every vmapped axis that separates runs. Where ``when``
    holds for no run, the program skips the host call (a real branch under
    vmap too). ``token`` is what the previous call of the same chain
    returned (or ``new_token``): calls of one chain run in the order of
    their tokens. The call is an effect, so XLA keeps it even where nothing
    uses its result.
    """
    wire = _Wire(record)
    header = jnp.stack(
        [
            jnp.asarray(token, jnp.int32),
            jnp.asarray(when, jnp.int32),
            jnp.asarray(run_index, jnp.int32),
            num_runs(run_index),
        ]
    )
    return _make_call(fn, wire)([header, *wire.leaves])


def _make_poll(
    fn: Callable[[list[int]], int],
) -> Callable[[Bool[Array, "..."], Int[Array, "..."]], Array]:
    """The custom_vmap'ed poll of ``fn`` on a flag and ids of any shape."""

    def on_host(ids: Array) -> npt.NDArray[np.int32]:
        _enter(inspect.currentframe())
        try:
            return np.asarray(fn(np.asarray(ids).reshape(-1).tolist()), np.int32)
        except KeyboardInterrupt:  # 0 as if not due: the program goes on
            _interrupt.caught()
            return np.zeros((), np.int32)

    @custom_vmap
    def call(when: Bool[Array, "..."], ids: Int[Array, "..."]) -> Array:
        # Seen with every vmapped axis (the rule below passes them on): the
        # call happens if the flag holds for any run.
        return _gated(on_host, (), jnp.any(when), [ids], jnp.zeros((), jnp.int32))

    @call.def_vmap
    def call_vmap(
        axis_size: int,
        in_batched: list[bool],
        when: Bool[Array, "..."],
        ids: Int[Array, "..."],
    ) -> tuple[Array, bool]:
        return call(when, ids), False

    return call


def poll(
    fn: Callable[[list[int]], int],
    when: Bool[Array, ""],
    ids: Int[Array, " n"] | None = None,
) -> Int[Array, ""]:
    """``fn(ids)`` on the host if ``when`` holds for any run, else 0: one
    call per call site for all vmapped runs (``fn`` gets every run's ids),
    and an unbatched result."""
    ids = jnp.zeros((0,), jnp.int32) if ids is None else jnp.asarray(ids, jnp.int32)
    return jnp.asarray(_make_poll(fn)(jnp.asarray(when, jnp.bool_), ids))


# -- Ctrl-C in host calls -----------------------------------------------------

# The file of JAX's host-call machinery: the frames of it that JAX runs around
# a host function are where Lerax's SIGINT handler must not raise (see
# ``_interrupt``).
_JAX_CALLBACK_FILE: str | None = getattr(
    getattr(io_callback, "__code__", None), "co_filename", None
)
_WRAPPERS = 8  # frames (runtime type checks, say) skipped to reach JAX's
_known: set[CodeType] = set()  # host functions whose frames were learned


def _enter(frame: FrameType | None) -> None:
    """At the start of a host function (``frame``): learn its frames once."""
    if frame is not None and frame.f_code not in _known:
        _learn(frame)


def _learn(frame: FrameType) -> None:
    """Tell ``_interrupt`` the code of the host function running in ``frame``
    and of the frames of JAX's host-call machinery around it: the first run
    of them above it, within a few frames."""
    codes = [frame.f_code]
    outer = frame.f_back
    for _ in range(_WRAPPERS):
        if outer is None or outer.f_code.co_filename == _JAX_CALLBACK_FILE:
            break
        outer = outer.f_back
    while outer is not None and outer.f_code.co_filename == _JAX_CALLBACK_FILE:
        codes.append(outer.f_code)
        outer = outer.f_back
    _interrupt.add_host_codes(codes)
    _known.add(frame.f_code)


def learn_host_frames() -> None:
    """Make one host call, outside any trace (in a thread of its own), so that
    the frames JAX runs around every host function are known before a
    program runs. If it fails (no CPU device, say), the host functions
    learn them on their first call."""

    def probe() -> npt.NDArray[np.int32]:
        frame = inspect.currentframe()
        if frame is not None:
            _learn(frame)
        return np.zeros((), np.int32)

    def run() -> None:
        with contextlib.suppress(Exception):
            np.asarray(io_callback(probe, _shape((), jnp.int32)))  # waits

    thread = threading.Thread(target=run, name="lerax-host-frames", daemon=True)
    thread.start()
    thread.join()


# -- host objects --------------------------------------------------------------

_lock = threading.Lock()
_objects: dict[int, object] = {}
_ids = itertools.count(1)


def register(obj: object) -> int:
    """Keep ``obj`` under a fresh id and return the id."""
    with _lock:
        ident = next(_ids)
        _objects[ident] = obj
        return ident


def find(ident: int, cls: type[T]) -> T | None:
    """The object kept under ``ident`` if it is a ``cls``, else None."""
    obj = _objects.get(ident)  # one dict read: atomic, no lock needed
    return obj if isinstance(obj, cls) else None


def lookup(ident: int, cls: type[T]) -> T:
    """The object kept under ``ident``.

    Raises:
        RuntimeError: if there is none (it was closed) or it is not a ``cls``.
    """
    obj = find(ident, cls)
    if obj is None:
        raise RuntimeError(
            f"no open {cls.__name__} with id {ident}: the callback was closed (by "
            "close(), or because it was garbage-collected before this training "
            "program reached it); create a new one to train again"
        )
    return obj


def release(ident: int) -> object | None:
    """Forget the object kept under ``ident`` and return it (None if none)."""
    with _lock:
        return _objects.pop(ident, None)


def registered(cls: type[T]) -> list[T]:
    """Every object kept that is a ``cls``."""
    with _lock:
        return [obj for obj in _objects.values() if isinstance(obj, cls)]


# -- failures ----------------------------------------------------------------

_failures: dict[int, BaseException] = {}  # id -> its first failure


def fail(ident: int, error: BaseException) -> None:
    """Record that the host object ``ident`` failed with ``error`` (its first
    failure is kept until ``clear_failure``)."""
    with _lock:
        _failures.setdefault(ident, error)


def failures_of(idents: Sequence[int]) -> list[BaseException]:
    """The recorded failures of the objects ``idents``, in that order."""
    with _lock:
        return [_failures[i] for i in dict.fromkeys(idents) if i in _failures]


def clear_failure(ident: int) -> None:
    """Forget the failure of ``ident`` (it was closed)."""
    with _lock:
        _failures.pop(ident, None)
