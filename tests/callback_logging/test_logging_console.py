"""ConsoleBackend: plain lines without a terminal, a live display with one."""

import io
import re
from typing import Any

import jax.random as jr
import pytest
from rich.console import Console

from lerax.algorithm import A2C, DQN, PPO, SAC, TD3
from lerax.callback import ConsoleBackend, LoggingCallback, ProgressBarCallback

from .logging_helpers import ALGO, ENV, ITERATIONS, POLICY, TOTAL, train

ESCAPE = "\x1b"


def test_plain_lines_without_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    with LoggingCallback([ConsoleBackend()], log_every=1) as logger:
        train(logger, jr.key(0))
    out = capsys.readouterr().out
    assert ESCAPE not in out
    lines = out.strip().splitlines()
    assert len(lines) == ITERATIONS + 1
    per = ALGO.steps_per_iteration
    for i, line in enumerate(lines[:-1], start=1):
        pct = 100 * i * per / TOTAL
        assert line.startswith(f"step {i * per:,}/{TOTAL:,} ({pct:.1f}%) | iter {i} | ")
        assert re.search(r"\| [\d,]+ steps/s \|", line)
        assert "| ETA 0:00:" in line
        for name in ("episodes", "loss", "learning_rate", "entropy"):
            assert f"| {name} " in line
    assert "| ep_return_ema " in lines[-2]  # episodes have ended by then
    assert lines[-1].startswith(f"done: {TOTAL:,} steps, ")


def test_live_display_on_a_terminal() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=120)
    with LoggingCallback([ConsoleBackend(console=console)], log_every=1) as logger:
        train(logger, jr.key(0))
    out = buffer.getvalue()
    assert ESCAPE in out  # a live display, not plain lines
    assert f"{TOTAL}/{TOTAL}" in out  # the bar ends complete
    assert "steps/s" in out
    for name in ("rollout/ep_return_ema", "train/loss", "time/iteration"):
        assert name in out  # the metrics table
    assert "step 128/512" not in out  # no plain lines


@pytest.mark.parametrize(
    ("algo", "iterations"),
    [
        # 2048 default steps over each default iteration's steps, rounded
        # down, or the algorithm's host-call cadence if that is longer.
        (PPO(), 12),  # 512 steps per iteration: 4, but host_call_every is 12
        (A2C(), 820),  # 40 steps: 51, but host_call_every is 820
        (DQN(), 204),  # 10 steps: 204 (host_call_every is 51)
        (SAC(), 2048),  # 1 step: 2048 (host_call_every is 256)
        (TD3(), 2048),  # 1 step: 2048 (host_call_every is 649)
    ],
    ids=["PPO", "A2C", "DQN", "SAC", "TD3"],
)
def test_progress_bar_cadence_is_counted_in_environment_steps(
    algo: Any, iterations: int
) -> None:
    assert ProgressBarCallback.DEFAULT_UPDATE_EVERY == 2048
    assert ProgressBarCallback().iterations_between_updates(algo) == iterations
    per = algo.steps_per_iteration
    assert iterations == max(2048 // per, algo.host_call_every)
    # A cadence the user gives is theirs, however short.
    assert ProgressBarCallback(update_every=2048).iterations_between_updates(
        algo
    ) == max(1, 2048 // per)
    # Fewer steps than one iteration: every iteration.
    assert ProgressBarCallback(update_every=1).iterations_between_updates(algo) == 1
    every_third = ProgressBarCallback(update_every=3 * per + per // 2)
    assert every_third.iterations_between_updates(algo) == 3


@pytest.mark.parametrize("bad", [0, -5])
def test_progress_bar_rejects_a_bad_update_every(bad: int) -> None:
    with pytest.raises(
        ValueError,
        match=r"ProgressBarCallback: update_every must be a positive int "
        rf"\(environment steps\) or None, got update_every={bad}",
    ):
        ProgressBarCallback(update_every=bad)


def test_progress_bar_rejects_an_update_every_of_another_type() -> None:
    # bool is an int to Python but not a step count; the runtime checker the
    # suite runs under rejects other types before the constructor's own check.
    with pytest.raises(TypeError, match=r"update_every=True"):
        ProgressBarCallback(update_every=True)


def test_progress_bar_with_a_sparse_cadence_still_ends_complete() -> None:
    """Updated only every 4th iteration, the bar still shows every step at the
    end (the last iteration and ``on_training_end`` always update it)."""
    bars = io.StringIO()
    progress = ProgressBarCallback(
        console=Console(file=bars, width=100),
        update_every=4 * ALGO.steps_per_iteration,
    )
    ALGO.train(ENV, POLICY, TOTAL, key=jr.key(0), callback=progress)
    assert f"{TOTAL}/{TOTAL}" in bars.getvalue()
