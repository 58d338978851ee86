"""Ordered host calls that receive every vmapped run's data in one call.

``jax.debug.callback`` has two costs that matter to a callback called once per
training iteration: it turns each operand into a device array on the host
(``device_put``, which on a CPU backend hands the copy to another thread and
waits for it: 0.1-0.3 ms per call on the 2-core benchmark machine), and under
``vmap`` it calls the host once per run. ``host_call`` binds a primitive of
its own instead: the host function gets NumPy views of the operands as XLA
hands them over, and under ``vmap`` (nested or not) the compiled program
makes one host call for all runs, in which the host function is called once
per run with that run's row and ``ctx.run_index``. It carries an
ordered effect of its own, so calls keep their program order like
``jax.debug.callback(..., ordered=True)``; unlike that one, it is allowed in
programs over several devices (seeds split with ``shard_seeds``), where the
call runs once, on the first device, with every run's row.

XLA runs host calls on its own worker threads, which Python does not know:
each call would create a Python thread state for the thread and delete it
again (with the 16 KiB frame stack Python maps for it), about 1 % of a
default PPO run logged every iteration. The first host call on such a thread
keeps its thread state for good instead (one ``PyGILState_Ensure`` never
released: a thread state per XLA worker thread, as a Python thread has).

The primitive uses JAX internals (``jax._src``) that JAX does not promise to
keep. If they are missing (or ``LERAX_NO_JAX_INTERNALS=1`` is set when Lerax
is imported), ``host_call`` falls back to an ordered ``jax.debug.callback``,
one host call per run.
"""

import ctypes
import functools
import math
import threading
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpy.typing as npt
from jaxtyping import Array, Int

from ._run_index import jax_internals_allowed, num_runs

#: ``fn(row, run_index, runs)``: ``row`` holds one run's value of each operand,
#: ``run_index`` that run's index and ``runs`` how many runs there are in all.
HostFn = Callable[[tuple[npt.NDArray[Any], ...], int, int], None]


_thread_kept = threading.local()


def _keep_thread_state() -> None:
    """Keep the calling thread's Python thread state between host calls
    (see the module docstring); CPython only, once per thread."""
    if getattr(_thread_kept, "kept", False):
        return
    _thread_kept.kept = True
    ensure = getattr(getattr(ctypes, "pythonapi", None), "PyGILState_Ensure", None)
    if ensure is not None:
        ensure()  # the GIL is held: only raises the thread's state count


def _call_rows(fn: HostFn, nbatch: int, *arrays: npt.NDArray[Any]) -> None:
    """Call ``fn`` once per run: the ``nbatch`` leading (vmapped) axes are
    flattened into one row axis; the last two operands are the run index and
    the number of runs. Every host call, on every path, goes through here."""
    _keep_thread_state()
    if nbatch == 0:  # one run: no rows to split (the common case, kept cheap)
        *operands, index, total = arrays
        fn(tuple(operands), int(index), int(total))
        return
    rows = math.prod(arrays[0].shape[:nbatch])
    *operands, index, total = (
        np.asarray(a).reshape((rows, *a.shape[nbatch:])) for a in arrays
    )
    runs = int(total[0])
    for i, run_index in enumerate(index.tolist()):
        fn(tuple(a[i, ...] for a in operands), run_index, runs)  # arrays, 0-d too


def _portable_call(fn: HostFn, *args: jax.Array) -> None:
    _call_rows(fn, 0, *(np.asarray(a) for a in args))


def _portable(fn: HostFn, operands: Sequence[Array], run_index: Int[Array, ""]) -> None:
    jax.debug.callback(
        functools.partial(_portable_call, fn),
        *operands,
        run_index,
        num_runs(run_index),
        ordered=True,
    )


def _build_primitive() -> Callable[[HostFn, Sequence[Array]], None] | None:
    """The host-call primitive, or None where this JAX lacks what it needs."""
    if not jax_internals_allowed():
        return None
    try:
        from jax._src import callback as jax_callback
        from jax._src import core, effects
        from jax._src.interpreters import ad, batching, mlir

        emit = jax_callback.emit_python_callback
        op_sharding = jax_callback._callback_op_sharding
        # Any: these internals are partly unannotated.
        primitive: Any = core.Primitive("lerax_host_call")
    except (ImportError, AttributeError):
        return None
    primitive.multiple_results = True

    # An ordered effect of our own: like jax.debug.callback's, allowed in
    # control flow and under vmap, and like io_callback's, allowed in programs
    # over several devices (JAX refuses the debug one there and io_callback's
    # under vmap of a loop).
    class HostCallEffect(effects.Effect):
        __str__ = lambda self: "LeraxHostCall"  # noqa: E731

    effect = HostCallEffect()
    needed = (
        "ordered_effects",
        "shardable_ordered_effects",
        "lowerable_effects",
        "control_flow_allowed_effects",
    )
    optional = (  # not in every JAX version
        "remat_allowed_effects",
        "custom_derivatives_allowed_effects",
        "partial_eval_kept_effects",
    )
    if not all(hasattr(effects, name) for name in needed):
        return None
    for name in needed + optional:
        kinds = getattr(effects, name, None)
        if kinds is not None:
            kinds.add_type(HostCallEffect)

    def impl(*args: Any, callback: HostFn, nbatch: int) -> list[Any]:
        _call_rows(callback, nbatch, *args)
        return []

    def abstract_eval(
        *avals: Any, callback: HostFn, nbatch: int
    ) -> tuple[list[Any], set[Any]]:
        return [], {effect}

    def batch(
        args: Sequence[Any], dims: Sequence[int | None], **params: Any
    ) -> tuple[list[Any], list[Any]]:
        size = next(
            a.shape[d] for a, d in zip(args, dims, strict=True) if d is not None
        )
        moved = [
            jnp.broadcast_to(a, (size, *a.shape))
            if d is None
            else jnp.moveaxis(a, d, 0)
            for a, d in zip(args, dims, strict=True)
        ]
        primitive.bind(*moved, callback=params["callback"], nbatch=params["nbatch"] + 1)
        return [], []

    def jvp(
        primals: Sequence[Any], tangents: Sequence[Any], **params: Any
    ) -> tuple[list[Any], list[Any]]:
        primitive.bind(*primals, **params)
        return [], []

    def lower(ctx: Any, *args: Any, callback: HostFn, nbatch: int) -> Any:
        def on_host(*arrays: npt.NDArray[Any]) -> tuple[()]:
            _call_rows(callback, nbatch, *arrays)
            return ()

        token = ctx.tokens_in.get(effect)
        result, token, _ = emit(
            ctx,
            on_host,
            token,
            list(args),
            ctx.avals_in,
            ctx.avals_out,
            has_side_effect=True,
            # Over several devices: one call, on the first, with all rows.
            sharding=op_sharding(ctx.module_context.axis_context, None, []),
        )
        tokens = mlir.TokenSet({effect: token})
        update = getattr(ctx.tokens_in, "update_tokens", None)
        ctx.set_tokens_out(update(tokens) if update is not None else tokens)
        return result

    try:
        primitive.def_impl(impl)
        primitive.def_effectful_abstract_eval(abstract_eval)
        batching.primitive_batchers[primitive] = batch
        ad.primitive_jvps[primitive] = jvp
        mlir.register_lowering(primitive, lower, platform="cpu")
        mlir.register_lowering(primitive, lower, platform="cuda")
        mlir.register_lowering(primitive, lower, platform="rocm")
    except (AttributeError, TypeError, NotImplementedError):
        return None

    def bind(fn: HostFn, operands: Sequence[Array]) -> None:
        primitive.bind(*operands, callback=fn, nbatch=0)

    return bind


_bind = _build_primitive()


def host_call(fn: HostFn, operands: Sequence[Array], run_index: Int[Array, ""]) -> None:
    """Call ``fn(row, run_index, runs)`` for each run on the host, ordered, when the
    compiled program gets here; see the module docstring. ``run_index`` is
    the context's ``run_index``: it travels with the operands, so the call is
    batched along every vmapped axis that separates runs."""
    if _bind is not None and jax.default_backend() in ("cpu", "gpu"):
        _bind(fn, [*operands, run_index, num_runs(run_index)])
    else:
        _portable(fn, operands, run_index)
