"""lerax.plot.learning_curves: the numbers it draws equal NumPy's, the PNG
it saves has the size asked for, and bad input is refused; no pyplot."""

import struct
import subprocess
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from matplotlib.collections import PolyCollection

from lerax.callback import HistoryState
from lerax.plot import BANDS, learning_curve_data, learning_curves

NAMES = ("train/loss", "rollout/ep_return_mean")
ROWS = 6
SPI = 64  # environment steps per iteration


def history(runs: tuple[int, ...], *, seed: int = 0) -> HistoryState:
    """A history of ``runs`` vmapped runs (recorded every iteration) with
    random values; the last run stops after 4 rows when there are several."""
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(*runs, ROWS, len(NAMES))).astype(np.float32)
    recorded = np.ones((*runs, ROWS), bool)
    if runs and np.prod(runs) > 1:
        flat = values.reshape(-1, ROWS, len(NAMES))
        flat[-1, 4:] = np.nan
        recorded.reshape(-1, ROWS)[-1, 4:] = False
    iteration = np.broadcast_to(np.arange(1, ROWS + 1, dtype=np.int32), recorded.shape)
    return HistoryState(
        names=NAMES,
        values=jnp.asarray(values),
        iteration=jnp.asarray(iteration),
        timesteps=jnp.asarray(iteration * SPI),
        recorded=jnp.asarray(recorded),
    )


def numpy_band(
    data: np.ndarray, band: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, lower and upper edge over axis 0, on rows without NaN."""
    mean = np.mean(data, axis=0)
    if band == "std":
        std = np.std(data, axis=0)
        return mean, mean - std, mean + std
    if band == "minmax":
        return mean, np.min(data, axis=0), np.max(data, axis=0)
    return mean, np.percentile(data, 25, axis=0), np.percentile(data, 75, axis=0)


@pytest.mark.parametrize("band", BANDS)
def test_band_arithmetic_equals_numpy(band: str) -> None:
    h = history((5,))
    values = np.asarray(h.values, np.float64)
    curves = learning_curve_data(h, band=band)
    assert list(curves) == list(NAMES)
    for i, name in enumerate(NAMES):
        curve = curves[name]
        assert curve.runs == 5
        np.testing.assert_array_equal(curve.timesteps, np.arange(1, ROWS + 1) * SPI)
        assert curve.lower is not None and curve.upper is not None
        # Rows 0-3: all five runs; rows 4-5: the four that did not stop.
        for rows, runs in ((slice(0, 4), slice(None)), (slice(4, None), slice(0, 4))):
            mean, lower, upper = numpy_band(values[runs, rows, i], band)
            np.testing.assert_allclose(curve.mean[rows], mean, rtol=1e-12)
            np.testing.assert_allclose(curve.lower[rows], lower, rtol=1e-12)
            np.testing.assert_allclose(curve.upper[rows], upper, rtol=1e-12)


def test_vmapped_axes_are_flattened_and_an_empty_row_is_nan() -> None:
    h = history((2, 3))
    values = np.array(h.values, np.float64).reshape(6, ROWS, len(NAMES))
    curve = learning_curve_data(h, "train/loss", band="minmax")["train/loss"]
    assert curve.runs == 6
    np.testing.assert_allclose(curve.mean[:4], values[:, :4, 0].mean(axis=0))
    # A row no run has a value in is NaN (no warning: warnings are errors).
    values_nan = np.array(h.values)
    values_nan[..., 5, :] = np.nan
    h_nan = HistoryState(
        NAMES, jnp.asarray(values_nan), h.iteration, h.timesteps, h.recorded
    )
    curve = learning_curve_data(h_nan, "train/loss", band="iqr")["train/loss"]
    assert np.isnan(curve.mean[5]) and curve.lower is not None
    assert np.isnan(curve.lower[5]) and not np.isnan(curve.mean[:5]).any()


def test_a_single_run_is_just_the_line(tmp_path: Path) -> None:
    h = history(())
    curve = learning_curve_data(h)["train/loss"]
    assert curve.runs == 1 and curve.lower is None and curve.upper is None
    np.testing.assert_array_equal(curve.mean, np.asarray(h.curve("train/loss")))
    figure = learning_curves(h, "train/loss")
    (ax,) = figure.axes
    assert not [c for c in ax.collections if isinstance(c, PolyCollection)]
    (line,) = ax.lines
    np.testing.assert_array_equal(line.get_xdata(), curve.timesteps)
    np.testing.assert_array_equal(line.get_ydata(), curve.mean)


def test_the_figure_draws_the_data_and_saves_a_png_of_the_size_asked(
    tmp_path: Path,
) -> None:
    h = history((4,))
    path = tmp_path / "curves.png"
    figure = learning_curves(
        h, band="minmax", path=path, figsize=(6.0, 2.5), dpi=80, title="PPO"
    )
    # One subplot per name, each with its mean line and its band.
    assert [ax.get_title() for ax in figure.axes] == list(NAMES)
    curves = learning_curve_data(h, band="minmax")
    for ax, name in zip(figure.axes, NAMES, strict=True):
        curve = curves[name]
        (line,) = ax.lines
        np.testing.assert_array_equal(line.get_xdata(), curve.timesteps)
        np.testing.assert_array_equal(line.get_ydata(), curve.mean)
        (fill,) = [c for c in ax.collections if isinstance(c, PolyCollection)]
        ys = np.concatenate([np.asarray(p.vertices)[:, 1] for p in fill.get_paths()])
        assert curve.lower is not None and curve.upper is not None
        for edge in (curve.lower, curve.upper):
            assert np.isclose(ys[:, None], edge[None, :]).any(axis=0).all()
        assert ys.min() == pytest.approx(curve.lower.min())
        assert ys.max() == pytest.approx(curve.upper.max())
    # The PNG: its header's width and height are figsize x dpi.
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (480, 200)


def test_layout_of_many_subplots() -> None:
    names = tuple(f"m{i}" for i in range(5))
    h = HistoryState(
        names=names,
        values=jnp.zeros((2, 3, 5), jnp.float32),
        iteration=jnp.ones((2, 3), jnp.int32),
        timesteps=jnp.ones((2, 3), jnp.int32),
        recorded=jnp.ones((2, 3), jnp.bool_),
    )
    figure = learning_curves(h)  # 3 per row: 2 rows, the 6th slot removed
    assert len(figure.axes) == 5
    assert tuple(figure.get_size_inches()) == (12.0, 6.0)
    figure = learning_curves(h, ["m3", "m1"], ncols=1)
    assert [ax.get_title() for ax in figure.axes] == ["m3", "m1"]
    assert tuple(figure.get_size_inches()) == (4.0, 6.0)


def test_bad_input() -> None:
    h = history((3,))
    with pytest.raises(ValueError, match="band must be one of .*band='sem'"):
        learning_curves(h, band="sem")
    with pytest.raises(ValueError, match="'train/los'.*recorded: 'train/loss'"):
        learning_curve_data(h, ["train/los"])
    with pytest.raises(ValueError, match="at least one"):
        learning_curves(h, [])
    with pytest.raises(ValueError, match="ncols=0"):
        learning_curves(h, ncols=0)
    with pytest.raises(TypeError, match="HistoryState"):
        learning_curves((h,))  # type: ignore[arg-type]  # the mistake under test


def test_lerax_does_not_import_matplotlib_nor_plot_pyplot(tmp_path: Path) -> None:
    """``import lerax`` works without matplotlib; drawing never imports
    pyplot (whose global state belongs to the user)."""
    code = (
        "import sys\n"
        "import jax.numpy as jnp\n"
        "import lerax\n"
        "from lerax.callback import HistoryState\n"
        "assert 'matplotlib' not in sys.modules\n"
        "from lerax.plot import learning_curves\n"
        "h = HistoryState(('a',), jnp.zeros((2, 3, 1)), jnp.ones((2, 3), jnp.int32),"
        " jnp.ones((2, 3), jnp.int32), jnp.ones((2, 3), bool))\n"
        "learning_curves(h, path=sys.argv[1])\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "a.png")], check=True)
    assert (tmp_path / "a.png").exists()
