"""``CheckpointCallback``: checkpoints of the whole training state, saved from
a host call inside the compiled training program."""

import atexit
import os
import queue
import threading
import weakref
from typing import Any, final

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpy.typing as npt
from jaxtyping import Array, Bool, Int, PyTree
from typing_extensions import override

from .._host import any_run, fail, host_call, lookup, new_token, register
from ..algorithm import StopReason, TrainState
from ..callback import (
    AbstractCallback,
    EmptyCallbackState,
    EmptyCallbackStepState,
    TrainStateSaver,
)
from ..callback.control._gate import iterations_between
from ._keys import split_keys
from ._writer import CheckpointWriter


@final
class CheckpointCallback(AbstractCallback[EmptyCallbackState, EmptyCallbackStepState]):
    """Save the whole training state ([`TrainState`][lerax.algorithm.TrainState]:
    policy, algorithm state, every callback's state, environments, counters,
    loop key) every ``every`` environment steps, from inside the compiled
    program, so it works under your ``jit`` and ``vmap``, also with the
    seeds spread over several devices by ``shard_seeds`` (XLA gathers every
    seed's state to the first device for the call).

    ``every`` counts environment steps over all environments (like
    Stable-Baselines3's ``save_freq``), converted to iterations: every
    ``max(1, ceil(every / steps_per_iteration))``-th iteration, and the last
    one. At each save a host call copies the state to NumPy and hands it to a
    [`CheckpointWriter`][lerax.checkpoint.CheckpointWriter] (orbax-checkpoint's
    ``CheckpointManager``, keeping the newest ``keep_last``), which writes in
    the background, atomically (a temporary directory renamed when complete:
    a process killed mid-save leaves the previous checkpoint loadable); the
    program goes on once the copy is made (a thread of this callback hands it
    to the writer). The checkpoint's step is the iteration. When an eager
    ``train`` returns, every write has finished; under your own
    ``jit``/``vmap``, call [`wait`][lerax.checkpoint.CheckpointCallback.wait]
    (or ``close``) first; writes still queued when Python exits finish then.

    Under ``eqx.filter_vmap`` over seeds the batch is saved as one checkpoint
    (every run's state, with a leading batch axis; nested vmaps are saved
    flattened into one axis), whenever a run that took the iteration is due;
    a run that stopped keeps its last state in it. ``lerax.checkpoint.load``
    reads it back as the same batch, which resumes under
    ``eqx.filter_vmap(lambda s: algo.train(..., resume_from=s))``. A single
    run is saved without a batch axis (so is a vmapped batch of one).

    With ``save_on_stop`` (the default), a run that stops early (Ctrl-C, a
    logging backend's failure, a non-finite value, a callback) between two
    saves gets a last checkpoint of its state at the stop: for a non-finite
    value, the last good state (from before the failing iteration).

    A failure to write (a full disk) stops training like a logging
    backend's (status ``LOGGING_FAILED``) and is raised by an eager
    ``train``. Single process: several hosts writing one checkpoint is not
    supported. Needs the ``checkpoint`` extra (``pip install
    'lerax[checkpoint]'``).

    Resume with ``algo.train(..., resume_from=directory)`` (its latest
    checkpoint; called directly) or ``resume_from=lerax.checkpoint.load(path)``,
    with a ``CheckpointCallback`` on the same directory to go on saving there.

    Args:
        directory: the directory of checkpoints (created if needed).
        every: environment steps between saves, over all environments.
        keep_last: how many checkpoints to keep (the newest), or None for all.
        save_on_stop: save a last checkpoint when a run stops early.

    Raises:
        ValueError: if ``every`` is not a positive integer, ``keep_last`` not
            a positive integer or None, or ``directory`` cannot be written
            (naming it and why).
        TypeError: if ``save_on_stop`` is not a bool.
        ImportError: if orbax-checkpoint is not installed.
    """

    writer_id: Int[Array, ""]
    every: int = eqx.field(static=True)
    save_on_stop: bool = eqx.field(static=True)

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        every: int,
        keep_last: int | None = None,
        save_on_stop: bool = True,
    ):
        if (
            not isinstance(every, int | np.integer)
            or isinstance(every, bool)
            or every < 1
        ):
            raise ValueError(
                "CheckpointCallback: every must be a positive integer (environment "
                f"steps between saves), got every={every!r}"
            )
        if not isinstance(save_on_stop, bool):
            raise TypeError(
                "CheckpointCallback: save_on_stop must be a bool, got "
                f"save_on_stop={save_on_stop!r}"
            )
        host = _HostCheckpoints(CheckpointWriter(directory, keep_last=keep_last))
        host.ident = register(host)
        self.writer_id = jnp.asarray(host.ident, jnp.int32)
        self.every = int(every)
        self.save_on_stop = save_on_stop

    @property
    def writer(self) -> CheckpointWriter:
        """The writer (host side: needs a concrete ``writer_id``)."""
        return self._host().writer

    def _host(self) -> "_HostCheckpoints":
        return lookup(int(self.writer_id), _HostCheckpoints)

    @property
    def directory(self) -> str:
        """The directory of checkpoints."""
        return self.writer.directory

    def wait(self) -> None:
        """Block until every checkpoint saved so far is written. An eager
        ``train`` does before it returns; under your own ``jit``/``vmap``
        call it (or ``close``) before reading the checkpoints."""
        self._host().wait()

    def close(self) -> None:
        """Finish every write, then release the writer (idempotent)."""
        self._host().wait()
        self.writer.close()

    def __enter__(self) -> "CheckpointCallback":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @override
    def train_state_savers(self) -> tuple[TrainStateSaver, ...]:
        return (self,)

    @override
    def reads_training_log(self) -> bool:
        """No: it saves the loop's state, whatever its training log holds."""
        return False

    @override
    def host_ids(self) -> tuple[Int[Array, ""], ...]:
        return (self.writer_id,)

    def iterations_between(self, steps_per_iteration: int) -> int:
        """The iterations between saves: ``max(1, ceil(every /
        steps_per_iteration))``, as for every callback with a cadence."""
        return iterations_between(self.every, steps_per_iteration)

    def save_train_state(
        self,
        state: TrainState[Any, Any, Any, Any],
        *,
        run_index: Int[Array, ""],
        stepped: Bool[Array, ""],
        final: bool,
    ) -> None:
        """Save ``state`` when due (see the class): called by the training
        loop after every iteration and once after the loop (``final``)."""
        k = self.iterations_between(state.algorithm.steps_per_iteration)
        iteration = state.iteration
        on_cadence = jnp.logical_or(
            iteration % k == 0, iteration == state.num_iterations
        )
        if final:
            stopped = jnp.logical_and(
                state.status.code != StopReason.COMPLETED,
                jnp.logical_not(on_cadence),
            )
            due = jnp.logical_and(jnp.asarray(self.save_on_stop), stopped)
        else:
            due = jnp.logical_and(stepped, on_cadence)
        # A batch is saved whole: every run's row is sent when any is due.
        send = any_run(due)
        arrays, static = eqx.partition(state, eqx.is_array)
        data, key_impls = split_keys(arrays)
        save = _Save(static, key_impls)
        # Called only where some run is due, with every run's row.
        record = (self.writer_id, data)
        host_call(save, record, run_index, new_token(), when=send)


class _HostCheckpoints:
    """The host side of a ``CheckpointCallback``: its writer, the rows of a
    vmapped batch gathered until every run's has arrived, and a thread that
    hands complete states to the writer.

    The host call only copies and queues: orbax may run JAX computations,
    which inside a host call would wait for devices that are busy running
    the program (with seeds over several devices, a deadlock at the next
    collective)."""

    def __init__(self, writer: CheckpointWriter):
        self.writer = writer
        self.rows: dict[int, PyTree] = {}
        self.lock = threading.Lock()
        self.queue: queue.Queue[tuple[int, Any, dict[str, str]]] = queue.Queue()
        self.thread: threading.Thread | None = None
        _open.add(self)

    def add(
        self,
        save: "_Save",
        data: PyTree,
        run_index: int,
        runs: int,
    ) -> None:
        with self.lock:
            self.rows[run_index] = data
            if len(self.rows) < runs:
                return
            rows = [self.rows.pop(i) for i in sorted(self.rows)]
            batch = rows[0] if runs == 1 else jax.tree.map(_stack, *rows)
            state = eqx.combine(batch, save.static)
            step = int(np.max(np.asarray(state.iteration)))
            self.queue.put((step, state, save.key_impls))
            if self.thread is None:
                self.thread = threading.Thread(
                    target=self._work, name="lerax-checkpoints", daemon=True
                )
                self.thread.start()

    def _work(self) -> None:
        while True:
            step, state, key_impls = self.queue.get()
            try:
                latest = self.writer.latest_step()
                # A batch whose runs had all stopped at a saved step.
                if latest is None or step > latest:
                    self.writer.save(step, state, key_impls=key_impls)
            except Exception as error:  # any failure to write is reported
                fail(self.ident, error)
            finally:
                self.queue.task_done()

    ident: int = -1

    def wait(self) -> None:
        """Block until every queued state is written."""
        self.queue.join()
        self.writer.wait()


_open: "weakref.WeakSet[_HostCheckpoints]" = weakref.WeakSet()


@atexit.register
def _finish_at_exit() -> None:
    """Write what is queued before Python exits (the thread is a daemon)."""
    for host in list(_open):
        host.queue.join()


def _stack(*xs: npt.NDArray[Any]) -> npt.NDArray[Any]:
    return np.stack(xs)


class _Save:
    """The host function of one save point: the static part of the state
    (its structure, found while tracing) and which leaves are keys."""

    def __init__(self, static: PyTree, key_impls: dict[str, str]):
        self.static = static
        self.key_impls = key_impls

    def __call__(self, record: Any, run_index: int, runs: int) -> None:
        writer_id, data = record
        host = lookup(int(writer_id), _HostCheckpoints)
        try:
            host.add(self, data, run_index, runs)
        except Exception as error:  # any failure to write stops the run
            fail(int(writer_id), error)
