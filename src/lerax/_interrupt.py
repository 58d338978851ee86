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
  ``KeyboardInterrupt``.

Both can only be installed from the main thread (a Python rule); a process
that never calls ``train``/``learn`` on its main thread is not interruptible
by Ctrl-C. Bytes of other signals read from the socket are passed on to
the wakeup fd that was there before, if any.
"""

import contextlib
import os
import signal
import socket
import threading
from types import FrameType
from typing import Any

_lock = threading.Lock()
_installed = False
_previous_handler: Any = None
_previous_fd = -1
_reader: socket.socket | None = None
_writer: socket.socket | None = None

_active = 0  # programs between their start and end host calls
_requested = False  # a Ctrl-C asked the active programs to stop
_absorbed = 0  # Ctrl-Cs the poll saw whose Python handler has not run yet
_extra = 0  # further Ctrl-Cs the poll saw during the same stop


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
        return True


def _chain(signum: int, frame: FrameType | None) -> None:
    previous = _previous_handler
    if callable(previous):
        previous(signum, frame)
    elif previous == signal.SIG_DFL or previous is None:
        signal.default_int_handler(signum, frame)
    # SIG_IGN: ignore


def _handler(signum: int, frame: FrameType | None) -> None:
    """The Python-level SIGINT handler (main thread). Signals that arrive
    together reach it once, so it counts them from the socket."""
    global _requested, _absorbed, _extra
    seen = _drain_socket()
    with _lock:
        if _absorbed:  # the poll already acted on one Ctrl-C
            chain = _extra + seen > 0  # and more came after it
            _absorbed = 0
            _extra = 0
        elif _active and not _requested:
            _requested = True
            chain = seen >= 2
        else:
            chain = True
    if chain:
        _chain(signum, frame)


def _drain_socket() -> int:
    """Read the wakeup socket; return how many SIGINTs it held and pass the
    other bytes on to the previous wakeup fd."""
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
    """A program ends (host call at its end)."""
    global _active, _requested, _extra
    seen = _drain_socket()
    with _lock:
        if seen and _absorbed:  # more Ctrl-Cs while the run was stopping
            _extra += seen
        _active = max(_active - 1, 0)
        if not _active:
            _requested = False
    return 0


def requested() -> bool:
    """Whether a Ctrl-C asks the active programs to stop (the poll)."""
    global _requested, _absorbed, _extra
    seen = _drain_socket()
    with _lock:
        if seen:
            if _active and not _requested:
                _requested = True
                _absorbed = 1
                _extra += seen - 1
            elif _absorbed:
                _extra += seen
        return _requested
