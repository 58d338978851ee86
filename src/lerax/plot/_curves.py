"""learning_curves: a history's curves drawn with matplotlib, without pyplot."""

import dataclasses
import math
import os
import warnings
from collections.abc import Sequence
from typing import final

import numpy as np
from jaxtyping import Float, Int
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..callback.history import HistoryState

BANDS = ("std", "minmax", "iqr")
"""The bands across runs that [`learning_curves`][lerax.plot.learning_curves]
draws: ``"std"`` (mean ± standard deviation), ``"minmax"`` (smallest to
largest) and ``"iqr"`` (25th to 75th percentile)."""

_BAND_LABELS = {"std": "± std", "minmax": "min-max", "iqr": "25-75th percentile"}


@final
@dataclasses.dataclass(frozen=True)
class CurveData:
    """One recorded name's curve over the runs of a history, as
    [`learning_curves`][lerax.plot.learning_curves] draws it.

    Each statistic is taken at each row over the runs that have a value
    there (a run that stopped early, or a NaN value, drops out); NaN where
    none has.

    Attributes:
        name: the recorded name.
        timesteps: the environment steps of each row (the x axis).
        mean: the mean over runs.
        lower: the band's lower edge (``mean - std``, the minimum, or the
            25th percentile); ``None`` for a single run.
        upper: its upper edge (``mean + std``, the maximum, or the 75th
            percentile); ``None`` for a single run.
        runs: the number of runs (1 without vmapped axes; all vmapped axes
            flattened).
    """

    name: str
    timesteps: Int[np.ndarray, " rows"]
    mean: Float[np.ndarray, " rows"]
    lower: Float[np.ndarray, " rows"] | None
    upper: Float[np.ndarray, " rows"] | None
    runs: int


def learning_curve_data(
    history: HistoryState,
    metrics: str | Sequence[str] | None = None,
    *,
    band: str = "std",
) -> dict[str, CurveData]:
    """The curves [`learning_curves`][lerax.plot.learning_curves] draws, by
    name, as NumPy arrays (float64): the mean over runs and the band.

    Args:
        history: a [`HistoryState`][lerax.callback.history.HistoryState], with
            any leading vmapped axes (runs).
        metrics: the recorded names to take, in order; ``None`` for all.
        band: one of [`BANDS`][lerax.plot.BANDS].

    Raises:
        TypeError: if ``history`` is not a ``HistoryState``.
        ValueError: if ``band`` is not one of ``BANDS`` or a name was not
            recorded.
    """
    if not isinstance(history, HistoryState):
        raise TypeError(
            "history must be a HistoryState (a HistoryCallback's state: "
            "result.callback_state, or its entry when the callbacks are a "
            f"tuple or list), got history={history!r}"
        )
    if band not in BANDS:
        raise ValueError(f"band must be one of {BANDS}, got band={band!r}")
    names = _check_names(history, metrics)
    values = np.asarray(history.values, np.float64)
    rows = values.shape[-2]
    values = values.reshape(-1, rows, len(history.names))
    timesteps = np.asarray(history.timesteps).reshape(-1, rows)[0]
    runs = values.shape[0]
    out: dict[str, CurveData] = {}
    for name in names:
        data = values[:, :, history.names.index(name)]
        # An all-NaN row (no run has a value) is NaN, without NumPy's warning.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(data, axis=0)
            lower: np.ndarray | None = None
            upper: np.ndarray | None = None
            if runs > 1 and band == "std":
                std = np.nanstd(data, axis=0)
                lower, upper = mean - std, mean + std
            elif runs > 1 and band == "minmax":
                lower, upper = np.nanmin(data, axis=0), np.nanmax(data, axis=0)
            elif runs > 1:
                lower, upper = np.nanpercentile(data, [25.0, 75.0], axis=0)
        out[name] = CurveData(name, timesteps, mean, lower, upper, runs)
    return out


def learning_curves(
    history: HistoryState,
    metrics: str | Sequence[str] | None = None,
    *,
    band: str = "std",
    path: str | os.PathLike[str] | None = None,
    ncols: int | None = None,
    figsize: tuple[float, float] | None = None,
    dpi: int = 100,
    title: str | None = None,
) -> Figure:
    """Draw learning curves: one subplot per recorded name, its mean over runs
    against environment steps and a band across runs (for a single run, just
    the line); see [`learning_curve_data`][lerax.plot.learning_curve_data]
    for the numbers.

    The figure is a ``matplotlib.figure.Figure`` on an Agg canvas, made
    without ``pyplot``: no window opens and matplotlib's global state (its
    backend, the current figure) is left alone. In a notebook, the returned
    figure displays itself.

    Example::

        history = result.callback_state  # a HistoryCallback's, vmapped over seeds
        learning_curves(history, band="iqr", path="curves.png")

    Args:
        history: a [`HistoryState`][lerax.callback.history.HistoryState], with
            any leading vmapped axes (runs).
        metrics: the recorded names to draw, in order; ``None`` for all.
        band: one of [`BANDS`][lerax.plot.BANDS].
        path: if given, the figure is saved there, in the format of its suffix
            (PNG for ``.png`` or no suffix), ``figsize`` times ``dpi`` pixels.
        ncols: subplots per row (default: up to 3).
        figsize: the figure's size in inches (default: 4 x 3 per subplot).
        dpi: pixels per inch.
        title: a title over all subplots.

    Returns:
        The figure.

    Raises:
        TypeError: if ``history`` is not a ``HistoryState``.
        ValueError: if ``band`` is not one of ``BANDS``, a name was not
            recorded, or ``ncols`` or ``dpi`` is not a positive int.
    """
    curves = learning_curve_data(history, metrics, band=band)
    count = len(curves)
    for argument, value in (("ncols", ncols), ("dpi", dpi)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise ValueError(
                f"{argument} must be a positive int, got {argument}={value!r}"
            )
    columns = min(count, 3) if ncols is None else min(ncols, count)
    rows = math.ceil(count / columns)
    size = (4.0 * columns, 3.0 * rows) if figsize is None else figsize
    figure = Figure(figsize=size, dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, squeeze=False).reshape(-1)
    for ax in axes[count:]:
        figure.delaxes(ax)
    for ax, curve in zip(axes, curves.values(), strict=False):
        # Isolated values between NaNs show only as markers.
        marker = "." if curve.timesteps.shape[0] <= 100 else None
        label = "mean" if curve.runs == 1 else f"mean of {curve.runs} runs"
        ax.plot(curve.timesteps, curve.mean, color="C0", marker=marker, label=label)
        if curve.lower is not None and curve.upper is not None:
            ax.fill_between(
                curve.timesteps,
                curve.lower,
                curve.upper,
                color="C0",
                alpha=0.25,
                linewidth=0,
                label=_BAND_LABELS[band],
            )
        ax.set_title(curve.name)
        ax.set_xlabel("environment steps")
        ax.grid(alpha=0.3)
    if count and curves[next(iter(curves))].runs > 1:
        axes[0].legend(loc="best", fontsize="small")
    if title is not None:
        figure.suptitle(title)
    if path is not None:
        figure.savefig(os.fspath(path))
    return figure


def _check_names(
    history: HistoryState, metrics: str | Sequence[str] | None
) -> tuple[str, ...]:
    if metrics is None:
        return history.names
    names = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    if not names:
        raise ValueError("metrics must name at least one recorded name, or be None")
    for name in names:
        if name not in history.names:
            raise ValueError(
                f"metrics names {name!r}, which the history did not record; "
                f"recorded: {', '.join(map(repr, history.names))}"
            )
    return names
