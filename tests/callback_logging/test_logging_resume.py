"""LoggingCallback resumes its runs: ``train(resume_from=state)`` with a new
logger built the same way writes, into the same JSONL file, TensorBoard
directory and W&B run, what an uninterrupted run writes; and what a process
that went on past the saved state wrote is superseded as each backend
documents.

Every single run shares one compiled program (and the resumed ones a second):
the stopper's iteration is an array leaf, and loggers differ only in their id.
"""

import math
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, final

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jaxtyping import Array, Bool, Int, PRNGKeyArray
from tensorboard.backend.event_processing import plugin_event_accumulator
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from typing_extensions import override

from lerax.algorithm import PPO, TrainResult, TrainState
from lerax.callback import (
    AbstractCallback,
    AbstractLoggingBackend,
    EmptyCallbackState,
    EmptyCallbackStepState,
    IterationContext,
    JSONLBackend,
    LoggingCallback,
    LoggingState,
    TensorBoardBackend,
    WandbBackend,
)
from lerax.env import AbstractEnv, CartPole
from lerax.policy import AbstractPolicy, MLPActorCriticPolicy

from .logging_helpers import ListBackend, read_jsonl, read_wandb_run

AnyEnv = AbstractEnv[Any, Any, Any]
AnyPolicy = AbstractPolicy[Any, Any]

ENV = CartPole()
POLICY = MLPActorCriticPolicy(env=ENV, key=jr.key(0))
ALGO = PPO(num_envs=2, num_steps=32, num_epochs=1, num_minibatches=1)
STEPS = ALGO.steps_per_iteration  # 64
N = 6  # iterations of the whole run
K = 2  # where the first process stops (the saved state)
CRASH = 4  # how far a process that went on past the saved state got
TOTAL = N * STEPS
KEY = jr.key(1)
NEVER = N + 1
RATE = "time/steps_per_second"  # wall clock: the one value that differs


@final
class StopAt(AbstractCallback[EmptyCallbackState, EmptyCallbackStepState]):
    """Stops training once ``iteration`` iterations have run (an array
    leaf: one compiled program for every value)."""

    iteration: Int[Array, ""]

    def __init__(self, iteration: int | Int[Array, ""]):
        self.iteration = jnp.asarray(iteration, jnp.int32)

    @override
    def continue_training(
        self,
        ctx: IterationContext[
            EmptyCallbackState, EmptyCallbackStepState, AnyEnv, AnyPolicy
        ],
        *,
        key: PRNGKeyArray,
    ) -> Bool[Array, ""]:
        return ctx.iteration_count < self.iteration


def make_logger(
    backends: Sequence[AbstractLoggingBackend], name: str | None = "exp"
) -> LoggingCallback:
    return LoggingCallback(list(backends), log_every=STEPS, name=name)


def train(
    logger: LoggingCallback, stop: int, resume: TrainState[Any, Any, Any, Any] | None
) -> TrainResult[Any, Any, Any, Any]:
    return ALGO.train(
        ENV,
        POLICY,
        TOTAL,
        key=KEY,
        callback=[logger, StopAt(stop)],
        resume_from=resume,
    )


def backends(root: Path, wandb: bool) -> list[AbstractLoggingBackend]:
    """JSONL, TensorBoard and (offline) W&B, all under ``root``."""
    out: list[AbstractLoggingBackend] = [
        JSONLBackend(root / "log.jsonl"),
        TensorBoardBackend(root / "tb"),
    ]
    if wandb:
        out.append(WandbBackend(project="lerax-test", mode="offline", dir=root))
    return out


def has_wandb() -> bool:
    try:
        import wandb  # noqa: F401
    except ImportError:
        return False
    return True


def logging_state(result: TrainResult[Any, Any, Any, Any]) -> LoggingState:
    state = result.train_state.callback_state[0]
    assert isinstance(state, LoggingState)
    return state


def without_rate(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != RATE}


def scalars(log_dir: Path, purge: bool = True) -> dict[str, list[tuple[int, float]]]:
    """Every TensorBoard scalar by tag as ``(step, value)``, as TensorBoard
    reads them (``purge``: dropping orphaned events, its default)."""
    events = EventAccumulator(
        str(log_dir), size_guidance={"scalars": 0}, purge_orphaned_data=purge
    )
    events.Reload()
    return {
        tag: [(e.step, e.value) for e in events.Scalars(tag)]
        for tag in events.Tags()["scalars"]
        if tag != RATE
    }


def served_steps(log_dir: Path, tag: str) -> list[int]:
    """The steps of ``tag`` that TensorBoard's server reads (its own
    accumulator, which takes a run's first ``START`` event for its start)."""
    events = plugin_event_accumulator.EventAccumulator(
        str(log_dir), tensor_size_guidance={"scalars": 0}
    )
    events.Reload()
    return [e.step for e in events.Tensors(tag)]


def wandb_runs(root: Path, rows: Sequence[int], timeout: float = 60.0) -> list[Any]:
    """The offline W&B run files under ``root`` (in the order they were
    written), once each holds its expected number of ``rows``: per file its
    run id and its history."""
    deadline = time.monotonic() + timeout
    while True:
        files = sorted(root.rglob("offline-run-*/run-*.wandb"))
        runs = [
            (f.name.removeprefix("run-").removesuffix(".wandb"), read_wandb_run(f))
            for f in files
        ]
        counts = [len(run["history"]) for _, run in runs]
        if counts == list(rows) or time.monotonic() > deadline:
            return runs
        time.sleep(0.2)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The uninterrupted run of N iterations (and the one compilation of
    the fresh program)."""
    root = tmp_path_factory.mktemp("reference")
    with make_logger(backends(root, wandb=has_wandb())) as logger:
        result = train(logger, NEVER, None)
    assert int(result.train_state.iteration) == N
    yield root


def test_reference_logs_every_iteration(reference: Path) -> None:
    rows = read_jsonl(reference / "log.jsonl")
    assert [r["step"] for r in rows] == [STEPS * i for i in range(1, N + 1)]
    assert [r["time/iteration"] for r in rows] == list(range(1, N + 1))


def test_a_stopped_run_resumed_by_a_new_logger_writes_what_an_uninterrupted_run_writes(
    reference: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopped at K by a callback, resumed to N by a new logger built the same
    way: the same file, directory and W&B run, the same records."""
    monkeypatch.setenv("WANDB_SILENT", "true")
    wandb = has_wandb()
    with make_logger(backends(tmp_path, wandb)) as first:
        stopped = train(first, K, None)
    assert int(stopped.train_state.iteration) == K
    assert [r["step"] for r in read_jsonl(tmp_path / "log.jsonl")] == [
        STEPS * i for i in range(1, K + 1)
    ]
    with make_logger(backends(tmp_path, wandb)) as second:
        resumed = train(second, NEVER, stopped.train_state)
    assert int(resumed.train_state.iteration) == N

    # The state keeps the experiment and the offsets it started with.
    before, after = logging_state(stopped), logging_state(resumed)
    np.testing.assert_array_equal(after.experiment, before.experiment)
    assert np.asarray(before.experiment).any()
    np.testing.assert_array_equal(after.offsets, [0, 0])

    expected = read_jsonl(reference / "log.jsonl")
    rows = read_jsonl(tmp_path / "log.jsonl")
    assert [without_rate(r) for r in rows] == [without_rate(r) for r in expected]
    assert all(math.isfinite(r[RATE]) and r[RATE] > 0 for r in rows)
    assert scalars(tmp_path / "tb") == scalars(reference / "tb")
    # Without TensorBoard's purge too: nothing was written twice.
    assert scalars(tmp_path / "tb", purge=False) == scalars(reference / "tb")

    if wandb:
        runs = wandb_runs(tmp_path, [K, N - K])
        (reference_id, reference_run), *_ = wandb_runs(reference, [N])
        # One W&B run id (the experiment's), written by both processes.
        assert len({ident for ident, _ in runs}) == 1
        assert runs[0][0] != reference_id  # another experiment
        assert [run["name"] for _, run in runs] == ["exp", "exp"]
        history = [row for _, run in runs for row in run["history"]]
        assert [row["_step"] for row in history] == [r["step"] for r in expected]
        for row, want in zip(history, expected, strict=True):
            for name, value in without_rate(want).items():
                if name not in ("run", "step"):
                    assert row[name] == value, name
        # Recorded once, at the run's first start.
        assert runs[0][1]["config"]["algorithm/num_envs"] == ALGO.num_envs
        assert "algorithm/num_envs" not in runs[1][1]["config"]


def assert_superseded(
    root: Path, reference: Path, first_rewritten: int, resent: int, wandb: bool
) -> None:
    """What the backends under ``root`` hold after a process wrote iterations
    1 .. CRASH and a new logger resumed the run to N from a state whose
    logger writes again from iteration ``first_rewritten`` (the first
    ``resent`` iterations' records from the state's buffer).

    JSONL: the superseded lines (and a last line cut short) are dropped, so
    the file is the uninterrupted run's. TensorBoard: its purge of orphaned
    data (also its server's) shows the uninterrupted run; the files hold the
    superseded steps too. W&B offline: each process's run file keeps what it
    logged, under one run id."""
    expected = read_jsonl(reference / "log.jsonl")
    rows = read_jsonl(root / "log.jsonl")
    assert [without_rate(r) for r in rows] == [without_rate(r) for r in expected]
    # Records sent again from the saved buffer were taken before the save.
    rates = [math.isnan(r[RATE]) for r in rows]
    assert rates == [i <= resent for i in range(1, N + 1)]

    assert scalars(root / "tb") == scalars(reference / "tb")
    assert served_steps(root / "tb", "train/loss") == [
        STEPS * i for i in range(1, N + 1)
    ]
    twice = range(first_rewritten, CRASH + 1)
    unpurged = scalars(root / "tb", purge=False)["train/loss"]
    assert sorted(step for step, _ in unpurged) == sorted(
        STEPS * i for i in [*range(1, N + 1), *twice]
    )

    if wandb:
        runs = wandb_runs(root, [CRASH, N - first_rewritten + 1])
        assert len({ident for ident, _ in runs}) == 1
        steps = [[row["_step"] for row in run["history"]] for _, run in runs]
        assert steps == [
            [STEPS * i for i in range(1, CRASH + 1)],
            [STEPS * i for i in range(first_rewritten, N + 1)],
        ]


def cut_short(path: Path) -> None:
    """A line the killed process was writing."""
    with open(path, "a", encoding="utf-8") as f:
        f.write('{"run": 0, "step": 3')


def test_records_a_process_wrote_past_a_stopped_state_are_superseded(
    reference: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The state is from a run stopped at K (its records all sent); the same
    logger then went on from it to CRASH before its process died."""
    monkeypatch.setenv("WANDB_SILENT", "true")
    wandb = has_wandb()
    with make_logger(backends(tmp_path, wandb)) as crashed:
        saved = train(crashed, K, None).train_state
        went_on = train(crashed, CRASH, saved)
    assert int(went_on.train_state.iteration) == CRASH
    assert [r["time/iteration"] for r in read_jsonl(tmp_path / "log.jsonl")] == list(
        range(1, CRASH + 1)
    )
    cut_short(tmp_path / "log.jsonl")
    with make_logger(backends(tmp_path, wandb)) as second:
        resumed = train(second, NEVER, saved)
    assert int(resumed.train_state.iteration) == N
    assert_superseded(tmp_path, reference, K + 1, 0, wandb)


def test_a_run_resumes_from_a_checkpoint_saved_inside_the_program(
    reference: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CheckpointCallback saves at iteration K from inside the program, which
    goes on to CRASH and then ends (as if killed; this configuration sends
    its records only at the end, so the checkpoint holds K records buffered
    and unsent). A new logger resumes from that checkpoint and sends them
    again; the records of the first process from iteration 1 on are
    superseded."""
    pytest.importorskip("orbax.checkpoint", reason="the optional checkpoint extra")
    from lerax.checkpoint import CheckpointCallback, load, steps

    monkeypatch.setenv("WANDB_SILENT", "true")
    wandb = has_wandb()
    assert ALGO.host_call_every >= N  # the records go out at the end only

    def train_saving(
        logger: LoggingCallback,
        stop: int,
        directory: Path,
        resume: TrainState[Any, Any, Any, Any] | None,
    ) -> TrainResult[Any, Any, Any, Any]:
        saver = CheckpointCallback(directory, every=K * STEPS, keep_last=None)
        return ALGO.train(
            ENV,
            POLICY,
            TOTAL,
            key=KEY,
            callback=[logger, StopAt(stop), saver],
            resume_from=resume,
        )

    with make_logger(backends(tmp_path, wandb)) as crashed:
        train_saving(crashed, CRASH, tmp_path / "checkpoints", None)
    assert steps(tmp_path / "checkpoints") == (K, CRASH)
    saved = load(tmp_path / "checkpoints" / str(K))
    logged = saved.callback_state[0]
    assert isinstance(logged, LoggingState)
    assert int(logged.count) == K
    cut_short(tmp_path / "log.jsonl")
    with make_logger(backends(tmp_path, wandb)) as second:
        resumed = train_saving(second, NEVER, tmp_path / "more", saved)
    assert int(resumed.train_state.iteration) == N
    assert_superseded(tmp_path, reference, 1, K, wandb)


def test_the_default_directory_is_found_by_the_experiment(
    reference: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TensorBoard's default directory: a new logger resumes into the one the
    first chose, ``runs/exp_1``, and not into ``runs/exp``, which another
    experiment of the same name took before."""
    monkeypatch.chdir(tmp_path)
    with make_logger([TensorBoardBackend()]) as other:
        train(other, 1, None)
    board = TensorBoardBackend()
    with make_logger([board]) as first:
        stopped = train(first, K, None)
    assert board.location == str(Path("runs", "exp_1"))
    board = TensorBoardBackend()
    with make_logger([board]) as second:
        train(second, NEVER, stopped.train_state)
    assert board.location == str(Path("runs", "exp_1"))
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["exp", "exp_1"]
    assert scalars(tmp_path / "runs" / "exp_1") == scalars(reference / "tb")
    assert {len(v) for v in scalars(tmp_path / "runs" / "exp").values()} == {1}


def test_the_default_name_is_the_first_loggers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default name holds the time the experiment's first logger was
    created: a logger created a second later resumes under it, with its
    experiment id, and tells the backends where the run writes again."""
    monkeypatch.chdir(tmp_path)
    opened = ListBackend()
    with make_logger([opened], name=None) as first:
        stopped = train(first, K, None)
    run = opened.calls[0][1]
    assert run.name.startswith("PPO_CartPole_")
    assert run.resumed_from == ()
    start = time.time()
    time.sleep(math.ceil(start) - start + 0.01)  # the next second
    reopened = ListBackend()
    with make_logger([reopened], name=None) as second:
        train(second, NEVER, stopped.train_state)
    again = reopened.calls[0][1]
    assert (again.name, again.experiment_id) == (run.name, run.experiment_id)
    assert again.step_offsets == (0,)
    assert again.resumed_from == (K * STEPS + 1,)
    assert [c[0] for c in reopened.calls].count("hparams") == 0
    assert [step for _, step, _ in reopened.records] == [
        STEPS * i for i in range(K + 1, N + 1)
    ]


def test_steps_go_on_from_an_earlier_learn_call_of_the_saved_logger(
    tmp_path: Path,
) -> None:
    """The saved run had been trained in two learn calls of one logger (the
    second continuing its steps); a new logger resumes it at the logged
    steps and iterations of that second call, which the state carries."""
    path = tmp_path / "log.jsonl"
    with make_logger([JSONLBackend(path)]) as first:
        train(first, NEVER, None)
        stopped = train(first, K, None)  # logs steps N + 1 .. N + K
    np.testing.assert_array_equal(logging_state(stopped).offsets, [N * STEPS, N])
    with make_logger([JSONLBackend(path)]) as second:
        resumed = train(second, NEVER, stopped.train_state)
    np.testing.assert_array_equal(logging_state(resumed).offsets, [N * STEPS, N])
    rows = read_jsonl(path)
    assert [r["step"] for r in rows] == [STEPS * i for i in range(1, 2 * N + 1)]
    assert [r["time/iteration"] for r in rows] == list(range(1, 2 * N + 1))


def test_a_logger_refuses_the_runs_of_another_experiment(tmp_path: Path) -> None:
    """A logger that has logged one experiment does not take another's runs:
    the start host call raises (JAX reports it as a runtime error)."""
    with make_logger([ListBackend()]) as first:
        stopped = train(first, K, None)
    with make_logger([ListBackend()]) as other:
        train(other, K, None)
        with pytest.raises(Exception, match="resume_from holds runs of the experiment"):
            train(other, NEVER, stopped.train_state)


SEEDS = 2
KEYS = jr.split(jr.key(3), SEEDS)


def train_seeds(
    logger: LoggingCallback,
    stops: Int[Array, " seeds"],
    resume: TrainState[Any, Any, Any, Any] | None,
) -> TrainResult[Any, Any, Any, Any]:
    def one(
        key: PRNGKeyArray,
        stop: Int[Array, ""],
        state: TrainState[Any, Any, Any, Any] | None,
    ) -> TrainResult[Any, Any, Any, Any]:
        return ALGO.train(
            ENV,
            POLICY,
            TOTAL,
            key=key,
            callback=[logger, StopAt(stop)],
            resume_from=state,
        )

    result: TrainResult[Any, Any, Any, Any] = eqx.filter_vmap(one)(KEYS, stops, resume)
    return result


def test_a_vmapped_batch_resumes_each_run_where_it_stopped(tmp_path: Path) -> None:
    """Two seeds stopped at different iterations, resumed as one batch under
    filter_vmap by a new logger: each run's lines and TensorBoard directory
    are the uninterrupted batch's."""

    def loggers(root: Path, opened: ListBackend) -> LoggingCallback:
        return make_logger(
            [JSONLBackend(root / "log.jsonl"), TensorBoardBackend(root / "tb"), opened]
        )

    reference = tmp_path / "reference"
    with loggers(reference, ListBackend()) as whole:
        train_seeds(whole, jnp.full((SEEDS,), NEVER), None)
    with loggers(tmp_path, ListBackend()) as first:
        stopped = train_seeds(first, jnp.asarray([K, K + 1]), None)
    np.testing.assert_array_equal(stopped.train_state.iteration, [K, K + 1])
    opened = ListBackend()
    with loggers(tmp_path, opened) as second:
        resumed = train_seeds(second, jnp.full((SEEDS,), NEVER), stopped.train_state)
    np.testing.assert_array_equal(resumed.train_state.iteration, [N, N])
    run = opened.calls[0][1]
    assert run.resumed_from == (K * STEPS + 1, (K + 1) * STEPS + 1)
    assert run.step_offsets == (0, 0)

    def ordered(path: Path) -> list[dict[str, Any]]:
        rows = [without_rate(r) for r in read_jsonl(path)]
        return sorted(rows, key=lambda r: (r["run"], r["step"]))

    expected = ordered(reference / "log.jsonl")
    assert len(expected) == SEEDS * N
    assert ordered(tmp_path / "log.jsonl") == expected
    for i in range(SEEDS):
        run_dir = f"run_{i}"
        assert scalars(tmp_path / "tb" / run_dir) == scalars(reference / "tb" / run_dir)
