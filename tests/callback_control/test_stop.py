"""The stoppers stop each vmapped seed at the iteration its own threshold
says, read from the seeds' learning curves recorded without stopping."""

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from lerax.algorithm import StopReason, TrainResult

from .conftest import ITERATIONS, SEEDS, curve, run_seeds


def _first_reaching(values: npt.NDArray[Any], threshold: float) -> int:
    """The iteration (from 1) after which the run stops: the first whose
    value is >= threshold (NaN never is), else the last."""
    hits = np.flatnonzero(values >= threshold)  # NaN >= t is False
    return int(hits[0]) + 1 if hits.size else ITERATIONS


def _thresholds(values: npt.NDArray[Any]) -> list[float]:
    """One threshold per seed, each a new maximum of that seed's curve (so
    that it is reached exactly there), a later one for each later seed."""
    out = []
    for seed, row in enumerate(values):
        records = [
            j
            for j, v in enumerate(row)
            if not math.isnan(v) and all(not (u >= v) for u in row[:j])
        ]
        out.append(float(row[records[min(seed + 1, len(records) - 1)]]))
    return out


def _check_stops(result: TrainResult[Any, Any, Any, Any], expected: list[int]) -> None:
    codes = [
        StopReason.CALLBACK if stop < ITERATIONS else StopReason.COMPLETED
        for stop in expected
    ]
    assert np.asarray(result.iterations).tolist() == expected
    assert np.asarray(result.status.code).tolist() == codes
    assert np.asarray(result.status.iteration).tolist() == expected
    # The seeds stop at different iterations, some before the end.
    assert len(set(expected)) >= 2 and min(expected) < ITERATIONS


def test_reference_runs_every_iteration(
    reference: TrainResult[Any, Any, Any, Any],
) -> None:
    assert np.asarray(reference.iterations).tolist() == [ITERATIONS] * SEEDS
    assert np.asarray(reference.status.code).tolist() == [0] * SEEDS
    # An evaluation after every iteration (every = one iteration's steps).
    np.testing.assert_array_equal(
        curve(reference, "eval/last_iteration"),
        np.tile(np.arange(1, ITERATIONS + 1, dtype=np.float32), (SEEDS, 1)),
    )


def test_reward_threshold_on_the_evaluation_stops_each_seed(
    reference: TrainResult[Any, Any, Any, Any],
) -> None:
    returns = curve(reference, "eval/mean_return")
    thresholds = _thresholds(returns)
    expected = [_first_reaching(r, t) for r, t in zip(returns, thresholds, strict=True)]
    _check_stops(run_seeds(eval=thresholds), expected)


def test_reward_threshold_on_a_training_statistic_stops_each_seed(
    reference: TrainResult[Any, Any, Any, Any],
) -> None:
    for name, switch in (
        ("rollout/ep_return_mean", "mean"),
        ("rollout/ep_return_ema", "ema"),
    ):
        values = curve(reference, name)
        thresholds = _thresholds(values)
        expected = [
            _first_reaching(v, t) for v, t in zip(values, thresholds, strict=True)
        ]
        _check_stops(run_seeds(**{switch: thresholds}), expected)


def test_no_improvement_counts_evaluations_in_a_row(
    reference: TrainResult[Any, Any, Any, Any],
) -> None:
    returns = curve(reference, "eval/mean_return")

    def stop(row: npt.NDArray[Any], patience: int) -> int:
        best, stale = -math.inf, 0
        for j, value in enumerate(row, start=1):
            if value > best:  # min_delta=0
                best, stale = value, 0
            else:
                stale += 1
            if stale >= patience:
                return j
        return ITERATIONS

    patience = [1, 2, 3, 4]
    expected = [stop(r, p) for r, p in zip(returns, patience, strict=True)]
    _check_stops(run_seeds(patience=patience), expected)


def test_max_episodes_counts_every_environment(
    reference: TrainResult[Any, Any, Any, Any],
) -> None:
    total = np.cumsum(curve(reference, "rollout/episodes"), axis=1)
    limits = [int(total[seed, 2 + 2 * seed]) for seed in range(SEEDS)]
    expected = [_first_reaching(t, n) for t, n in zip(total, limits, strict=True)]
    result = run_seeds(episodes=limits)
    _check_stops(result, expected)
    episodes = np.asarray(result.callback_step_state[6].episodes).sum(axis=1)
    assert (episodes >= np.asarray(limits)).tolist() == [
        stop < ITERATIONS or total[i, -1] >= limits[i]
        for i, stop in enumerate(expected)
    ]
