"""Under eqx.filter_vmap over seeds every run is logged apart from the others."""

import io
import time
from pathlib import Path
from typing import Any, final

import equinox as eqx
import jax.random as jr
import numpy as np
import pytest
from jaxtyping import Array, Bool, PRNGKeyArray
from rich.console import Console
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lerax.algorithm import TrainResult
from lerax.callback import (
    AbstractCallback,
    EmptyCallbackState,
    EmptyCallbackStepState,
    IterationContext,
    JSONLBackend,
    LoggingCallback,
    ProgressBarCallback,
    TensorBoardBackend,
    WandbBackend,
)

from .logging_helpers import (
    ALGO,
    ENV,
    POLICY,
    AnyEnv,
    AnyPolicy,
    ListBackend,
    Recorder,
    assert_rollout_matches,
    by_iteration,
    expected_rollout_stats,
    read_jsonl,
    read_wandb_run,
)

SEEDS = 3
ITERATIONS = 5
TOTAL = ITERATIONS * ALGO.steps_per_iteration
LOG_EVERY = 2 * ALGO.steps_per_iteration  # environment steps: every 2nd iteration
LOGGED = [2, 4, 5]  # every second iteration, and always the last one


def test_each_seed_is_its_own_run(tmp_path: Path) -> None:
    jsonl, tb = tmp_path / "log.jsonl", tmp_path / "tb"
    memory = ListBackend()
    logger = LoggingCallback(
        [JSONLBackend(jsonl), TensorBoardBackend(tb), memory],
        log_every=LOG_EVERY,
        ema_alpha=0.8,
    )
    bars = io.StringIO()
    progress = ProgressBarCallback(console=Console(file=bars, width=100))
    recorder = Recorder(ITERATIONS * ALGO.num_steps)

    @eqx.filter_vmap
    def train_seeds(key: Array) -> TrainResult[Any, Any, Any]:
        return ALGO.train(
            ENV, POLICY, TOTAL, key=key, callback=[logger, recorder, progress]
        )

    result = train_seeds(jr.split(jr.key(0), SEEDS))
    logger.close()

    # JSONL: one line per logged iteration per seed, each with its run index,
    # each seed's in order.
    rows = by_iteration(read_jsonl(jsonl))
    assert [(r["run"], r["time/iteration"]) for r in rows] == [
        (run, it) for it in LOGGED for run in range(SEEDS)
    ]
    assert [r["step"] for r in rows] == [
        it * ALGO.steps_per_iteration for it in LOGGED for _ in range(SEEDS)
    ]

    # Each seed's values equal those recomputed from its own recorded rollout.
    recorded = result.callback_step_state[1]
    rewards, dones = np.asarray(recorded.rewards), np.asarray(recorded.dones)
    assert rewards.shape == (SEEDS, ALGO.num_envs, ITERATIONS * ALGO.num_steps)
    returns_by_seed = []
    for run in range(SEEDS):
        expected = expected_rollout_stats(
            rewards[run], dones[run], ALGO.num_steps, 0.8, LOGGED
        )
        mine = [r for r in rows if r["run"] == run]
        for row, it in zip(mine, LOGGED, strict=True):
            assert_rollout_matches(row, expected[it - 1])
        returns_by_seed.append([r.get("rollout/ep_return_mean") for r in mine])
    assert len({tuple(r) for r in returns_by_seed}) == SEEDS  # seeds differ

    # TensorBoard: one sub-directory per seed, holding exactly that seed's values.
    assert sorted(p.name for p in tb.iterdir()) == [f"run_{i}" for i in range(SEEDS)]
    for run in range(SEEDS):
        acc = EventAccumulator(str(tb / f"run_{run}"), size_guidance={"scalars": 0})
        acc.Reload()
        mine = [r for r in rows if r["run"] == run]
        for key in ("train/loss", "rollout/episodes", "time/iteration"):
            events = acc.Scalars(key)
            assert [e.step for e in events] == [r["step"] for r in mine]
            np.testing.assert_allclose(
                [e.value for e in events], [r[key] for r in mine], rtol=1e-6
            )
        assert "_hparams_/session_start_info" in acc.PluginTagToContent("hparams")

    # Backends were told the layout once, and each run's start and end.
    (open_call,) = [c[1] for c in memory.calls if c[0] == "open"]
    assert open_call.num_runs == SEEDS and open_call.total_timesteps == TOTAL
    assert sorted(c[1][0] for c in memory.calls if c[0] == "hparams") == [0, 1, 2]
    assert sorted(c[1] for c in memory.calls if c[0] == "finish") == [0, 1, 2]

    # The progress bar: one complete bar per seed, closed at the end.
    shown = bars.getvalue()
    for run in range(SEEDS):
        assert f"run {run}" in shown
    assert shown.count(f"{TOTAL}/{TOTAL}") == SEEDS


@final
class StopAt(AbstractCallback[EmptyCallbackState, EmptyCallbackStepState]):
    """Stops run ``i`` after iteration ``2 + i``."""

    def continue_training(
        self,
        ctx: IterationContext[
            EmptyCallbackState, EmptyCallbackStepState, AnyEnv, AnyPolicy
        ],
        *,
        key: PRNGKeyArray,
    ) -> Bool[Array, ""]:
        return ctx.iteration_count < 2 + ctx.run_index


def test_seeds_that_stop_early_log_only_their_real_iterations(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    logger = LoggingCallback([JSONLBackend(path)], log_every=1)
    bars = io.StringIO()
    progress = ProgressBarCallback(
        console=Console(file=bars, width=100), aggregate=True
    )

    @eqx.filter_vmap
    def train_seeds(key: Array) -> TrainResult[Any, Any, Any]:
        return ALGO.train(
            ENV, POLICY, TOTAL, key=key, callback=[logger, StopAt(), progress]
        )

    result = train_seeds(jr.split(jr.key(1), SEEDS))
    logger.close()
    assert np.asarray(result.iterations).tolist() == [2, 3, 4]
    # one aggregated bar: the steps all runs actually took, of all they planned
    done = (2 + 3 + 4) * ALGO.steps_per_iteration
    shown = bars.getvalue()
    assert f"training ({SEEDS} runs)" in shown
    assert f"{done}/{SEEDS * TOTAL}" in shown
    assert "run 0" not in shown
    rows = read_jsonl(path)
    for run in range(SEEDS):
        its = [r["time/iteration"] for r in rows if r["run"] == run]
        stop = 2 + run
        # Every real iteration once, in order, and nothing after the stop:
        # while the other seeds go on, vmap still evaluates the loop body of a
        # stopped seed (and discards it), but the seed is inactive then.
        assert its == list(range(1, stop + 1))


def test_wandb_offline_one_run_per_seed_in_one_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real wandb in offline mode: each vmapped seed is its own W&B run, all in
    one group, with its own history and the hyperparameters as config."""
    pytest.importorskip("wandb", reason="wandb is the optional lerax[wandb] extra")
    monkeypatch.setenv("WANDB_SILENT", "true")
    backend = WandbBackend(project="lerax-test", mode="offline", dir=tmp_path)
    logger = LoggingCallback([backend], name="exp", log_every=LOG_EVERY, ema_alpha=0.8)
    recorder = Recorder(ITERATIONS * ALGO.num_steps)

    @eqx.filter_vmap
    def train_seeds(key: Array) -> TrainResult[Any, Any, Any]:
        return ALGO.train(ENV, POLICY, TOTAL, key=key, callback=[logger, recorder])

    train_seeds(jr.split(jr.key(0), SEEDS))
    logger.close()

    files = sorted(tmp_path.rglob("run-*.wandb"))
    assert len(files) == SEEDS
    runs = sorted((_complete_wandb_run(f) for f in files), key=lambda r: r["name"])
    assert [r["name"] for r in runs] == [f"exp-run{i}" for i in range(SEEDS)]
    assert {r["group"] for r in runs} == {"exp"}
    for run in runs:
        assert [row["time/iteration"] for row in run["history"]] == LOGGED
        assert [row["_step"] for row in run["history"]] == [
            it * ALGO.steps_per_iteration for it in LOGGED
        ]
        assert run["config"]["algorithm/num_envs"] == ALGO.num_envs


def _complete_wandb_run(path: Path, timeout: float = 60.0) -> dict[str, Any]:
    """Read an offline run file once wandb's service has written it out.

    ``run.finish()`` returns before wandb's separate service process has
    necessarily flushed the run file to disk (seen with wandb 0.31: an empty
    file read right after ``close()``), so wait for the run record and all
    history rows, up to ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        run = read_wandb_run(path)
        if ("name" in run and len(run["history"]) == len(LOGGED)) or (
            time.monotonic() > deadline
        ):
            return run
        time.sleep(0.2)


def test_nested_vmap_runs_are_numbered_row_major(tmp_path: Path) -> None:
    """vmap(vmap) over a 2 x 2 grid of keys: four runs, numbered row-major,
    each logging the values of its own rollout."""
    path = tmp_path / "log.jsonl"
    logger = LoggingCallback([JSONLBackend(path)], log_every=LOG_EVERY, ema_alpha=0.8)
    recorder = Recorder(ITERATIONS * ALGO.num_steps)

    def train_one(key: Array) -> TrainResult[Any, Any, Any]:
        return ALGO.train(ENV, POLICY, TOTAL, key=key, callback=[logger, recorder])

    keys = jr.split(jr.key(4), 4).reshape(2, 2)
    result = eqx.filter_vmap(eqx.filter_vmap(train_one))(keys)
    logger.close()

    rows = by_iteration(read_jsonl(path))
    assert [(r["run"], r["time/iteration"]) for r in rows] == [
        (run, it) for it in LOGGED for run in range(4)
    ]
    recorded = result.callback_step_state[1]
    rewards, dones = np.asarray(recorded.rewards), np.asarray(recorded.dones)
    assert rewards.shape[:2] == (2, 2)
    for outer in range(2):
        for inner in range(2):
            expected = expected_rollout_stats(
                rewards[outer, inner], dones[outer, inner], ALGO.num_steps, 0.8, LOGGED
            )
            mine = [r for r in rows if r["run"] == 2 * outer + inner]
            for row, it in zip(mine, LOGGED, strict=True):
                assert_rollout_matches(row, expected[it - 1])
