"""ConsoleBackend: a live progress bar and metrics table, or plain lines."""

import math
import statistics
import time
from collections.abc import Mapping
from typing import final

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from typing_extensions import override

from ._backend import AbstractLoggingBackend, HParamValue, RunInfo


@final
class ConsoleBackend(AbstractLoggingBackend):
    """Show training in the terminal.

    When the console is a terminal: a Rich live display with one progress bar
    per run (steps done/total, steps per second, ETA) and a metrics table with
    one column per run (plus ``mean ± std`` over runs when there are several).
    Otherwise (CI logs, pipes, files) it prints one plain line per logged
    iteration per run, without escape codes, for example::

        step 1,024/65,536 (1.6%) | iter 2 | 9,876 steps/s | ETA 0:00:06 | ...

    prefixed with ``[run <i>]`` when several runs train at once, and a
    closing line per run when its ``learn`` call ends.

    Args:
        console: the Rich console to draw on; default: a console on standard
            output (looked up when training starts). Whether it is a terminal
            picks the mode.
        refresh_per_second: how often the live display redraws.

    Raises:
        ValueError: if ``refresh_per_second`` is not positive.
    """

    def __init__(
        self, *, console: Console | None = None, refresh_per_second: float = 4.0
    ):
        if not (
            isinstance(refresh_per_second, int | float)
            and not isinstance(refresh_per_second, bool)
            and refresh_per_second > 0
        ):
            raise ValueError(
                "ConsoleBackend: refresh_per_second must be a positive number, got "
                f"refresh_per_second={refresh_per_second!r}"
            )
        self._given_console = console
        self.refresh_per_second = float(refresh_per_second)
        self._console: Console | None = None
        self._run: RunInfo | None = None
        self._live: Live | None = None
        self._progress: Progress | None = None
        self._tasks: dict[int, TaskID] = {}
        self._latest: dict[int, dict[str, float]] = {}
        self._started_at = 0.0
        self._finished: set[int] = set()

    # -- the backend interface ------------------------------------------------

    @override
    def open(self, run: RunInfo) -> None:
        self._stop_live()
        console = self._given_console or Console()
        self._console = console
        self._run = run
        self._latest = {}
        self._finished = set()
        self._started_at = time.perf_counter()
        if console.is_terminal:
            progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}", justify="right"),
                TimeRemainingColumn(),
                console=console,
            )
            self._tasks = {
                i: progress.add_task(
                    _run_label(i, run.num_runs), total=run.total_timesteps, rate=""
                )
                for i in range(run.num_runs)
            }
            self._progress = progress
            self._live = Live(
                _Display(self),
                console=console,
                refresh_per_second=self.refresh_per_second,
                transient=False,
            )
            self._live.start()

    @override
    def log_hparams(self, hparams: Mapping[str, HParamValue], run_index: int) -> None:
        """Not shown: the console shows progress and metrics only."""

    @override
    def log_scalars(
        self, scalars: Mapping[str, float], step: int, run_index: int
    ) -> None:
        run = self._opened()
        self._latest[run_index] = dict(scalars)
        done = step - _offset(run, run_index)
        rate = scalars.get("time/steps_per_second", math.nan)
        if self._progress is not None:
            task = self._tasks.get(run_index)
            if task is not None:
                self._progress.update(
                    task, completed=done, rate=f"{_fmt_count(rate)} steps/s"
                )
            return
        line = _plain_line(scalars, done, run.total_timesteps, rate)
        self._print(_prefix(run_index, run.num_runs) + line)

    @override
    def finish(self, run_index: int) -> None:
        run = self._opened()
        self._finished.add(run_index)
        if self._live is not None:
            if self._finished >= set(range(run.num_runs)):
                self._stop_live()
            return
        elapsed = time.perf_counter() - self._started_at
        latest = self._latest.get(run_index, {})
        steps = latest.get("time/timesteps", math.nan)
        self._print(
            _prefix(run_index, run.num_runs)
            + f"done: {_fmt_count(steps)} steps, {elapsed:.1f} s"
        )

    @override
    def flush(self) -> None:
        if self._console is not None and self._live is None:
            self._console.file.flush()

    @override
    def close(self) -> None:
        self._stop_live()

    # -- helpers --------------------------------------------------------------

    def _opened(self) -> RunInfo:
        if self._run is None:
            raise RuntimeError("ConsoleBackend used before open")
        return self._run

    def _print(self, line: str) -> None:
        console = self._console
        if console is None:
            raise RuntimeError("ConsoleBackend used before open")
        if console.quiet:
            return
        if console.record:  # keep what Rich records for export
            console.print(line, markup=False, highlight=False, soft_wrap=True)
        else:
            # A plain line needs none of Rich's rendering, which costs several
            # times the formatting (and holds the GIL the training loop's host
            # calls wait for).
            console.file.write(line + "\n")

    def _stop_live(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
        self._progress = None
        self._tasks = {}

    def render(self) -> RenderableType:
        """The live display: the progress bars and the metrics table."""
        run = self._opened()
        parts: list[RenderableType] = []
        if self._progress is not None:
            parts.append(self._progress)
        parts.append(_metrics_table(self._latest, run.num_runs))
        return Group(*parts)


@final
class _Display:
    """A renderable that redraws from the backend's latest values."""

    def __init__(self, backend: ConsoleBackend):
        self.backend = backend

    def __rich__(self) -> RenderableType:
        return self.backend.render()


def _metrics_table(latest: Mapping[int, Mapping[str, float]], num_runs: int) -> Table:
    table = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
    table.add_column("metric")
    runs = list(range(num_runs))
    for i in runs:
        table.add_column("value" if num_runs == 1 else f"run {i}", justify="right")
    if num_runs > 1:
        table.add_column("mean ± std", justify="right")
    names: list[str] = []
    for i in runs:
        for name in latest.get(i, {}):
            if name not in names:
                names.append(name)
    for name in names:
        values = [latest.get(i, {}).get(name) for i in runs]
        cells = ["" if v is None else _fmt(v) for v in values]
        if num_runs > 1:
            present = [v for v in values if v is not None and math.isfinite(v)]
            if len(present) >= 2:
                mean = statistics.fmean(present)
                std = statistics.pstdev(present)
                cells.append(f"{_fmt(mean)} ± {_fmt(std)}")
            else:
                cells.append("")
        table.add_row(name, *cells)
    return table


def _plain_line(
    scalars: Mapping[str, float], done: int, total: int, rate: float
) -> str:
    pct = 100.0 * done / total if total > 0 else 100.0
    parts = [f"step {done:,}/{total:,} ({pct:.1f}%)"]
    iteration = scalars.get("time/iteration")
    if iteration is not None:
        parts.append(f"iter {int(iteration)}")
    parts.append(f"{_fmt_count(rate)} steps/s")
    if math.isfinite(rate) and rate > 0:
        parts.append(f"ETA {_fmt_duration(max(total - done, 0) / rate)}")
    for name, value in scalars.items():
        if name.startswith("time/"):
            continue
        short = name.split("/", 1)[1] if "/" in name else name
        parts.append(f"{short} {_fmt(value)}")
    return " | ".join(parts)


def _offset(run: RunInfo, run_index: int) -> int:
    if 0 <= run_index < len(run.step_offsets):
        return run.step_offsets[run_index]
    return 0


def _run_label(run_index: int, num_runs: int) -> str:
    return "training" if num_runs == 1 else f"run {run_index}"


def _prefix(run_index: int, num_runs: int) -> str:
    return "" if num_runs == 1 else f"[run {run_index}] "


def _fmt(value: float) -> str:
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == int(value) and abs(value) < 1e9:
        return f"{int(value):,}"
    return f"{value:.4g}"


def _fmt_count(value: float) -> str:
    if not math.isfinite(value):
        return _fmt(value)
    return f"{round(value):,}"


def _fmt_duration(seconds: float) -> str:
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"
