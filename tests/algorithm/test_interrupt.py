"""Ctrl-C stops training at an iteration boundary, eagerly and under the
user's jit/vmap (subprocesses: SIGINT goes to the whole process)."""

import subprocess
import sys

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
    def open(self, run): pass
    def log_hparams(self, hparams, run_index): pass
    def log_scalars(self, scalars, step, run_index):
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
    with LoggingCallback(CtrlC(), log_every=1) as logger:
        try:
            result = algo.train(
                env, policy, total, key=jr.key(1), callback=logger,
                interruptible=False,
            )
        except TrainingInterrupted:
            raise AssertionError("interruptible=False must not poll")
        except KeyboardInterrupt:
            print("KeyboardInterrupt after the whole run")
"""


def _run(mode: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT, mode],
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
