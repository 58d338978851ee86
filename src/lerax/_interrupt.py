"""Ctrl-C during training: a stop request the training loop polls.

While a compiled program runs, the main thread waits inside XLA, so a
Python signal handler cannot run before the program ends. Lerax therefore
listens twice:

- the C-level signal handler writes every signal's number to a wakeup
  socket (``signal.set_wakeup_fd``); the loop's poll, a host call on one of
  XLA's threads, reads it, so a Ctrl-C stops training at the next iteration
  boundary even while the main thread is blocked;
- a Python handler (installed once, chaining to the one before) covers the
  rest: it requests a stop when it runs during a run, lets the delayed
  delivery of a Ctrl-C that already stopped a run pass silently, and hands
  every other Ctrl-C (none of Lerax's runs active, or a second Ctrl-C during
  one) to the previous handler, which by default raises
  ``KeyboardInterrupt``. A stop request that no poll reported (it came
  after a run's last) goes to the previous handler too, once the program
  has returned.

Both can only be installed from the main thread (a Python rule); a process
that never calls ``train``/``learn`` on its main thread is not interruptible
by Ctrl-C. Bytes of other signals read from the socket are passed on to
the wakeup fd that was there before, if any.

A Ctrl-C in a host call. On the CPU, XLA runs a program's host calls on the
thread that started it, often the main thread, so the Python handler may run
inside one; an exception raised there fails the whole program (JAX reports
an internal error, not the exception). So the handler never raises there:
it knows the code of the host functions and of the frames JAX runs around
them (``add_host_codes``, learned by ``_host.learn_host_frames`` when the
handler is installed), and when it runs inside them, a Ctrl-C that would go
to the previous handler is held instead, and handed to it once the main
thread has left the program: by ``train`` right after the program when it
is called directly (``deliver``), else by the handler itself, which a helper
thread wakes every ``RESEND_SECONDS`` while a Ctrl-C is held. A stop request
needs no holding: it is only a flag. A ``KeyboardInterrupt`` raised in a
host function all the same (by a SIGINT handler that replaced Lerax's) is
caught there (``caught``): it is the stop request of the active interruptible
programs if they have none yet, else it is held and raised once the program
has returned.
"""

import _thread
import contextlib
import inspect
import os
import signal
import socket
import threading
import time
from collections.abc import Iterable
from types import CodeType, FrameType
from typing import Any

# Reentrant: the handler runs on the main thread, which may hold the lock in
# a host call when the signal comes.
_lock = threading.RLock()
_installed = False
_previous_handler: Any = None
_previous_fd = -1
_reader: socket.socket | None = None
_writer: socket.socket | None = None

_active = 0  # programs between their start and end host calls
_requested = False  # a Ctrl-C asked the active programs to stop
_reported = False  # and a poll has told them
_absorbed = 0  # Ctrl-Cs the poll saw whose Python handler has not run yet
_extra = 0  # further Ctrl-Cs the poll saw during the same stop

#: Seconds between two wake-ups of the handler while a Ctrl-C is held.
RESEND_SECONDS = 0.1

_NOTHING, _CHAIN, _RAISE = 0, 1, 2  # what a held Ctrl-C does once released
_held = _NOTHING  # a Ctrl-C that came while the main thread was in a host call
_resender: threading.Thread | None = None
_resent = False  # a wake-up is on its way to the handler
_own = 0  # wakeup bytes the wake-ups wrote that no one has read yet
_host_codes: set[CodeType] = set()  # code that runs only inside host calls


def install() -> bool:
    """Install the handler and wakeup socket once, if on the main thread.
    Returns whether Ctrl-C can stop training in this process."""
    global _installed, _previous_handler, _previous_fd, _reader, _writer
    with _lock:
        if _installed:
            return True
        if threading.current_thread() is not threading.main_thread():
            return False
        reader, writer = socket.socketpair()
        reader.setblocking(False)
        writer.setblocking(False)
        try:
            previous_fd = signal.set_wakeup_fd(
                writer.fileno(), warn_on_full_buffer=False
            )
        except ValueError:  # not the main interpreter
            reader.close()
            writer.close()
            return False
        _reader, _writer, _previous_fd = reader, writer, previous_fd
        _previous_handler = signal.getsignal(signal.SIGINT)
        signal.signal(signal.SIGINT, _handler)
        _installed = True
    from . import _host  # here: _host imports this module

    _host.learn_host_frames()
    return True


def add_host_codes(codes: Iterable[CodeType]) -> None:
    """Code that runs only inside host calls: a host function's, and that of
    the frames JAX runs around it (its frames on the main thread are where
    the handler must not raise)."""
    _host_codes.update(codes)


def _in_host_call(frame: FrameType | None) -> bool:
    """Whether ``frame`` (where the main thread was interrupted) is inside a
    host call."""
    while frame is not None:
        if frame.f_code in _host_codes:
            return True
        frame = frame.f_back
    return False


def _chain(signum: int, frame: FrameType | None) -> None:
    previous = _previous_handler
    if callable(previous):
        previous(signum, frame)
    elif previous == signal.SIG_DFL or previous is None:
        signal.default_int_handler(signum, frame)
    # SIG_IGN: ignore


def _release(held: int, signum: int, frame: FrameType | None) -> None:
    """Do what a released Ctrl-C does."""
    if held == _RAISE:
        raise KeyboardInterrupt
    if held == _CHAIN:
        _chain(signum, frame)


def _handler(signum: int, frame: FrameType | None) -> None:
    """The Python-level SIGINT handler (main thread). Signals that arrive
    together reach it once, so it counts them from the socket."""
    global _requested, _absorbed, _extra, _resent, _held
    seen = _drain_socket()
    inside = _in_host_call(frame)
    with _lock:
        resent, _resent = _resent, False
        if resent and not seen and not _absorbed:
            chain = False  # a wake-up, no new Ctrl-C: only a held one acts
        elif _absorbed:  # the poll already acted on one Ctrl-C
            chain = _extra + seen > 0  # and more came after it
            _absorbed = 0
            _extra = 0
        elif _active and not _requested:
            _requested = True
            chain = seen >= 2
        else:
            chain = True
        if inside:
            if chain:
                _hold(_CHAIN)
            return
        held, _held = _held, _NOTHING
    _release(held or (_CHAIN if chain else _NOTHING), signum, frame)


def _hold(kind: int) -> None:
    """Hold a Ctrl-C until the main thread has left the program (with the
    lock held); wake the handler until then."""
    global _held, _resender
    if _held == _NOTHING:
        _held = kind
    if _resender is None:
        _resender = threading.Thread(
            target=_wake_handler, name="lerax-ctrl-c", daemon=True
        )
        _resender.start()


def _wake_handler() -> None:
    """While a Ctrl-C is held, make the handler run every ``RESEND_SECONDS``
    (it releases the Ctrl-C once it runs outside a host call). A handler put
    in place of Lerax's is woken once and then decides alone."""
    global _resender, _resent, _own, _held
    while True:
        time.sleep(RESEND_SECONDS)
        with _lock:
            if _held == _NOTHING:
                _resender = None
                return
            handler = signal.getsignal(signal.SIGINT)
            if not callable(handler):  # SIG_DFL, SIG_IGN: nothing to wake
                _held = _NOTHING
                continue
            if handler is _handler:
                _resent = True
            else:
                _held = _NOTHING
            _own += 1
        _thread.interrupt_main(signal.SIGINT)


def deliver() -> None:
    """Release a held Ctrl-C now (``train`` called directly, once its program
    has returned; main thread only): by default ``KeyboardInterrupt``."""
    global _held
    if threading.current_thread() is not threading.main_thread():
        return
    with _lock:
        held, _held = _held, _NOTHING
    _release(held, signal.SIGINT, inspect.currentframe())


def caught() -> None:
    """A ``KeyboardInterrupt`` was raised in a host function, which then
    returned as usual: the stop request of the active interruptible
    programs if they have none, else held, to be raised once the program has
    returned."""
    global _requested
    with _lock:
        if _active and not _requested:
            _requested = True
        else:
            _hold(_RAISE)


def _drain_socket() -> int:
    """Read the wakeup socket; return how many SIGINTs it held (not counting
    the handler's wake-ups) and pass the other bytes on to the previous
    wakeup fd."""
    global _own
    if _reader is None:
        return 0
    sigints = 0
    while True:
        try:
            data = _reader.recv(512)
        except (BlockingIOError, InterruptedError):
            break
        except OSError:
            break
        if not data:
            break
        sigints += data.count(signal.SIGINT)
        if _previous_fd >= 0:
            with contextlib.suppress(OSError):
                os.write(_previous_fd, data)
    if sigints and _own:
        with _lock:
            own = min(_own, sigints)
            _own -= own
            sigints -= own
    return sigints


def begin(_: list[int]) -> int:
    """A program starts (host call at its start). Ctrl-Cs read from the
    socket now came before it: their Python handlers decide (no run was
    active), so they are dropped here."""
    global _active
    _drain_socket()
    with _lock:
        _active += 1
    return 0


def end(_: list[int]) -> int:
    """A program ends (host call at its end). A stop request that no poll
    told the programs about (it came after their last) acts as a Ctrl-C that
    comes once the program has returned."""
    global _active, _requested, _reported, _extra
    seen = _drain_socket()
    with _lock:
        if seen and _absorbed:  # more Ctrl-Cs while the run was stopping
            _extra += seen
        _active = _active - 1 if _active > 0 else 0
        if not _active:
            if _requested and not _reported:
                _hold(_CHAIN)
            _requested = False
            _reported = False
    return 0


def requested() -> bool:
    """Whether a Ctrl-C asks the active programs to stop (the poll)."""
    global _requested, _reported, _absorbed, _extra
    seen = _drain_socket()
    with _lock:
        if seen:
            if _active and not _requested:
                _requested = True
                _absorbed = 1
                _extra += seen - 1
            elif _absorbed:
                _extra += seen
        _reported = _reported or _requested
        return _requested
