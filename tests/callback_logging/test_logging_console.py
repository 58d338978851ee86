"""ConsoleBackend: plain lines without a terminal, a live display with one."""

import io
import re

import jax.random as jr
import pytest
from rich.console import Console

from lerax.callback import ConsoleBackend, LoggingCallback

from .logging_helpers import ALGO, ITERATIONS, TOTAL, train

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
