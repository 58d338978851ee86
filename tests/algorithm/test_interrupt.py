"""Ctrl-C stops training at an iteration boundary, eagerly and under the
user's jit/vmap (subprocesses: SIGINT goes to the whole process). A Ctrl-C
that comes while the main thread runs a host call (on the CPU, XLA runs them
on the thread that started the program) never fails the program."""

import subprocess
import sys

import pytest

_SCRIPT = r"""
import os, signal, sys, threading, time
from collections.abc import Mapping

import equinox as eqx
import jax.random as jr
import numpy as np

from lerax.algorithm import PPO, StopReason, TrainingInterrupted
from lerax.callback import AbstractLoggingBackend, LoggingCallback
from lerax.env import CartPole
from lerax.policy import MLPActorCriticPolicy

ITERATIONS = 2000  # PPO polls every 512 iterations of this size


def ctrl_c():
    os.kill(os.getpid(), signal.SIGINT)


class CtrlC(AbstractLoggingBackend):
    # Presses Ctrl-C (SIGINT to this process) when iteration 2 is logged,
    # and with times=2 again half a second later.
    def __init__(self, times=1):
        self.times = times
        self.last = 0
    def open(self, run): pass
    def log_hparams(self, hparams, run_index): pass
    def log_scalars(self, scalars, step, run_index):
        self.last = max(self.last, int(scalars["time/iteration"]))
        if scalars["time/iteration"] == 2 and run_index == 0:
            ctrl_c()
            if self.times == 2:
                threading.Timer(0.5, ctrl_c).start()
    def finish(self, run_index): pass
    def flush(self): pass
    def close(self): pass


env = CartPole()
policy = MLPActorCriticPolicy(env=env, key=jr.key(0))
algo = PPO(num_envs=2, num_steps=32, num_epochs=1, num_minibatches=1)
total = ITERATIONS * algo.steps_per_iteration
mode = sys.argv[1]

if mode == "eager":
    with LoggingCallback(CtrlC(), log_every=1) as logger:
        try:
            algo.train(env, policy, total, key=jr.key(1), callback=logger)
        except TrainingInterrupted as e:
            assert isinstance(e, KeyboardInterrupt)
            status = e.result.status
            assert status.reasons() is StopReason.INTERRUPTED, status
            assert 2 <= int(status.iteration) < ITERATIONS, status
            assert int(e.result.iterations) == int(status.iteration)
            print("interrupted at", int(status.iteration))
        else:
            raise AssertionError("no TrainingInterrupted")
    # The handler is back to normal: a Ctrl-C outside training raises.
    try:
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(100):
            pass
    except TrainingInterrupted:
        raise AssertionError("a Ctrl-C outside training is not Lerax's")
    except KeyboardInterrupt:
        print("plain KeyboardInterrupt outside training")
elif mode == "jit_vmap":
    with LoggingCallback(CtrlC(), log_every=1) as logger:
        train = eqx.filter_jit(eqx.filter_vmap(
            lambda k: algo.train(env, policy, total, key=k, callback=logger)
        ))
        result = train(jr.split(jr.key(1), 3))
        codes = np.asarray(result.status.code)
    # Every run ends normally with its status; no KeyboardInterrupt follows.
    assert (codes == StopReason.INTERRUPTED).all(), codes
    iterations = np.asarray(result.status.iteration)
    assert ((2 <= iterations) & (iterations < ITERATIONS)).all(), iterations
    print("statuses", result.status.reasons())
elif mode == "twice":
    # A second Ctrl-C during the same run behaves like the previous handler.
    with LoggingCallback(CtrlC(times=2), log_every=1) as logger:
        try:
            try:
                algo.train(env, policy, total, key=jr.key(1), callback=logger)
            except TrainingInterrupted:
                time.sleep(5)  # the second Ctrl-C comes while waiting here
                raise AssertionError("the second Ctrl-C did nothing")
        except TrainingInterrupted:
            raise AssertionError("the second Ctrl-C must act as before Lerax")
        except KeyboardInterrupt:
            print("second Ctrl-C: KeyboardInterrupt")
elif mode == "not_interruptible":
    # Wherever the main thread is when the Ctrl-C comes (waiting inside the
    # program, or running one of its host calls), the run goes on to its end
    # and then train raises KeyboardInterrupt. The Ctrl-C always comes before
    # the program ends: the logger's last host call waits for the writer.
    backend = CtrlC()
    with LoggingCallback(backend, log_every=1) as logger:
        try:
            result = algo.train(
                env, policy, total, key=jr.key(1), callback=logger,
                interruptible=False,
            )
        except TrainingInterrupted:
            raise AssertionError("interruptible=False must not poll")
        except KeyboardInterrupt:
            assert backend.last == ITERATIONS, backend.last
            print("KeyboardInterrupt after the whole run")
"""


def _run(mode: str) -> str:
    return _run_script(_SCRIPT, mode)


def _run_script(script: str, mode: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", script, mode],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={"JAX_PLATFORMS": "cpu", "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    return proc.stdout


def test_ctrl_c_stops_an_eager_run_with_its_result() -> None:
    out = _run("eager")
    assert "interrupted at" in out
    assert "plain KeyboardInterrupt outside training" in out


def test_ctrl_c_under_jit_and_vmap_ends_every_run_with_its_status() -> None:
    out = _run("jit_vmap")
    assert "statuses" in out


def test_a_second_ctrl_c_acts_like_the_previous_handler() -> None:
    assert "second Ctrl-C: KeyboardInterrupt" in _run("twice")


def test_not_interruptible_runs_to_the_end() -> None:
    assert "KeyboardInterrupt after the whole run" in _run("not_interruptible")


# A Ctrl-C pressed from inside host calls that run on the main thread, where
# its Python handler then runs: XLA runs a program on the thread that called it
# and moves to its own threads only after an operation large enough to split
# among them, so the programs here are tiny (the script reports the threads
# the host calls ran on). Pressed in a host call of your own callback during
# the loop (interruptible: the stop request; not: KeyboardInterrupt once the
# whole run has ended, called directly or under your jit), in one of Lerax's
# (the progress bar's last, drawing on a console that presses Ctrl-C), and
# with a handler that raises put in place of Lerax's (the host call catches
# its KeyboardInterrupt). Every scenario runs in one process, in turn.
_HOST_SCRIPT = r"""
import io, signal, threading, time

import jax
import jax.numpy as jnp
import jax.random as jr
from jax.experimental import io_callback
from rich.console import Console
from typing_extensions import override

from lerax.algorithm import PPO, TrainingInterrupted
from lerax.callback import (
    AbstractCallback,
    EmptyCallbackState,
    EmptyCallbackStepState,
    ProgressBarCallback,
)
from lerax.env import CartPole
from lerax.policy import MLPActorCriticPolicy

env = CartPole()
policy = MLPActorCriticPolicy(env=env, key=jr.key(0), hidden_sizes=(8,))
algo = PPO(num_envs=1, num_steps=4, num_epochs=1, num_minibatches=1)
EVERY = algo.host_call_every  # the loop polls for Ctrl-C every EVERY iterations
ITERATIONS = EVERY + 4
total = ITERATIONS * algo.steps_per_iteration
press_at = {"iteration": 2, "draw": False}  # where the next run presses Ctrl-C
seen = []  # the iterations the host call of PressAt saw
threads = set()  # the threads the pressing host calls ran on


def press():
    threads.add(threading.current_thread().name)
    signal.raise_signal(signal.SIGINT)  # its handler runs right here


def host(iteration):
    seen.append(int(iteration))
    if int(iteration) == press_at["iteration"]:
        press()


class PressAt(AbstractCallback[EmptyCallbackState, EmptyCallbackStepState]):
    # A host call of its own every iteration.
    @override
    def on_iteration(self, ctx, *, key):
        io_callback(host, None, ctx.iteration_count)
        return ctx.state


class PressingFile(io.StringIO):
    # A console's file: its first write presses Ctrl-C if press_at says so.
    def write(self, text):
        if press_at["draw"] and not self.getvalue():
            press()
        return super().write(text)


def train(interruptible):
    bar = ProgressBarCallback(console=Console(file=PressingFile(), width=80))
    return algo.train(
        env, policy, total, key=jr.key(1), callback=[PressAt(), bar],
        interruptible=interruptible,
    )


def report(name, outcome):
    print(f"{name}: {outcome}", flush=True)


def scenario(name, interruptible, iteration=-1, draw=False):
    press_at.update(iteration=iteration, draw=draw)
    seen.clear()
    threads.clear()
    try:
        train(interruptible)
        report(name, "no exception")
    except TrainingInterrupted as e:
        status = e.result.status
        report(name, f"{status.reasons().name} at {int(status.iteration) - EVERY:+} "
               f"seen {seen[-1] - EVERY:+}")
    except KeyboardInterrupt:
        report(name, f"KeyboardInterrupt seen {seen[-1] - ITERATIONS:+}")
    report(f"{name} threads", sorted(threads))


# Interruptible: the Ctrl-C is the stop request, seen at the next poll; after
# the last poll, KeyboardInterrupt once the run has ended.
scenario("interruptible", True, iteration=2)
scenario("after_last_poll", True, iteration=EVERY + 2)
# Not interruptible: the run goes on to its end, then KeyboardInterrupt.
scenario("not_interruptible", False, iteration=2)
# In one of Lerax's host calls (after the loop).
scenario("lerax_host_call", False, draw=True)
# A handler that raises at once, put in place of Lerax's: the host call
# catches its KeyboardInterrupt, and train raises it after the program.
lerax_handler = signal.signal(signal.SIGINT, signal.default_int_handler)
scenario("replaced_handler", False, draw=True)
signal.signal(signal.SIGINT, lerax_handler)

# Under your jit (no Lerax code runs after the program): the program returns
# (all 5 host calls ran), then KeyboardInterrupt.
calls = []
threads.clear()


def press_at_2(i):
    calls.append(int(i))
    if int(i) == 2:
        press()


@jax.jit
def count(i):
    def body(i):
        io_callback(press_at_2, None, i)
        return i + 1

    return jax.lax.while_loop(lambda i: i < 5, body, i)


try:
    jax.block_until_ready(count(jnp.int32(0)))
    for _ in range(500):  # a held Ctrl-C comes within a fraction of a second
        time.sleep(0.01)
    report("jit", "no exception")
except KeyboardInterrupt:
    report("jit", f"KeyboardInterrupt after calls {calls}")
report("jit threads", sorted(threads))

# Afterwards a Ctrl-C outside training raises as before.
try:
    signal.raise_signal(signal.SIGINT)
    for _ in range(100):
        pass
    report("outside", "nothing")
except KeyboardInterrupt as e:
    report("outside", type(e).__name__)
"""


@pytest.fixture(scope="module")
def host_outcomes() -> dict[str, str]:
    """Each scenario's outcome, by name. A Ctrl-C that failed a program
    (JaxRuntimeError) would end the script before its line."""
    lines = _run_script(_HOST_SCRIPT, "host").splitlines()
    return dict(line.split(": ", 1) for line in lines if ": " in line)


def _pressed_on_the_main_thread(outcomes: dict[str, str], *names: str) -> None:
    """The scenarios pressed Ctrl-C from host calls on the main thread (as XLA
    runs these tiny programs; elsewhere they would test nothing new)."""
    for name in names:
        assert outcomes[f"{name} threads"] == "['MainThread']", (name, outcomes)


def test_ctrl_c_in_a_host_call_is_the_stop_request_of_an_interruptible_run(
    host_outcomes: dict[str, str],
) -> None:
    # Pressed at iteration 2, the stop comes at the next poll, after which
    # no iteration ran.
    assert host_outcomes["interruptible"] == "INTERRUPTED at +0 seen +0"
    # Pressed after the last poll: the run ends, then KeyboardInterrupt.
    assert host_outcomes["after_last_poll"] == "KeyboardInterrupt seen +0"
    _pressed_on_the_main_thread(host_outcomes, "interruptible", "after_last_poll")


def test_ctrl_c_in_a_host_call_of_a_run_that_is_not_interruptible(
    host_outcomes: dict[str, str],
) -> None:
    # The run goes on to its end, then KeyboardInterrupt: called directly,
    # and under jit (once the main thread has left the program).
    assert host_outcomes["not_interruptible"] == "KeyboardInterrupt seen +0"
    assert host_outcomes["jit"] == "KeyboardInterrupt after calls [0, 1, 2, 3, 4]"
    _pressed_on_the_main_thread(host_outcomes, "not_interruptible", "jit")


def test_ctrl_c_in_a_lerax_host_call_and_with_a_replaced_handler(
    host_outcomes: dict[str, str],
) -> None:
    assert host_outcomes["lerax_host_call"] == "KeyboardInterrupt seen +0"
    assert host_outcomes["replaced_handler"] == "KeyboardInterrupt seen +0"
    _pressed_on_the_main_thread(host_outcomes, "lerax_host_call", "replaced_handler")
    assert host_outcomes["outside"] == "KeyboardInterrupt"
