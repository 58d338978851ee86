"""Every built-in callback with every algorithm: each logging backend, the
progress bar, ``EmptyCallback`` and ``CallbackList`` run with each algorithm,
write what they should, and change nothing that is learned."""

import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, final

import equinox as eqx
import jax
import jax.monitoring
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jaxtyping import Array, Bool, Int, PRNGKeyArray
from rich.console import Console
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lerax.algorithm import A2C, DQN, PPO, SAC, TD3, AbstractAlgorithm
from lerax.callback import (
    AbstractCallback,
    CallbackList,
    ConsoleBackend,
    EmptyCallback,
    EmptyCallbackState,
    EmptyCallbackStepState,
    IterationContext,
    JSONLBackend,
    LoggingCallback,
    ProgressBarCallback,
    TensorBoardBackend,
    WandbBackend,
)
from lerax.env import AbstractEnv, CartPole, Pendulum
from lerax.policy import (
    AbstractPolicy,
    MLPActorCriticPolicy,
    MLPDeterministicPolicy,
    MLPQPolicy,
    MLPSACPolicy,
)

from .logging_helpers import read_jsonl, read_wandb_run

ITERATIONS = 3


class Compilations:
    """XLA compilations in this process so far (JAX's monitoring events)."""

    def __init__(self) -> None:
        self.count = 0
        jax.monitoring.register_event_duration_secs_listener(self.record)

    def record(self, event: str, duration_secs: float, **kwargs: Any) -> None:
        if event == "/jax/core/compile/backend_compile_duration":
            self.count += 1


COMPILATIONS = Compilations()

Case = tuple[
    AbstractAlgorithm[Any, Any], AbstractEnv[Any, Any, Any], AbstractPolicy[Any, Any]
]


def ppo() -> Case:
    env = CartPole()
    algo = PPO(num_envs=2, num_steps=16, num_epochs=1, num_minibatches=2)
    return algo, env, MLPActorCriticPolicy(env, key=jr.key(0))


def a2c() -> Case:
    env = CartPole()
    return A2C(num_envs=2, num_steps=5), env, MLPActorCriticPolicy(env, key=jr.key(0))


def dqn() -> Case:
    env = CartPole()
    algo = DQN(
        num_envs=2,
        num_steps=4,
        buffer_size=64,
        learning_starts=8,
        batch_size=8,
        gradient_steps=2,
    )
    return algo, env, MLPQPolicy(env, key=jr.key(0), hidden_sizes=(16,))


def sac() -> Case:
    env = Pendulum()
    algo = SAC(num_steps=4, buffer_size=64, learning_starts=4, batch_size=8)
    return algo, env, MLPSACPolicy(env, key=jr.key(0), hidden_sizes=(16,))


def td3() -> Case:
    env = Pendulum()
    algo = TD3(num_steps=4, buffer_size=64, learning_starts=4, batch_size=8)
    return algo, env, MLPDeterministicPolicy(env, key=jr.key(0), hidden_sizes=(16,))


CASES: dict[str, Callable[[], Case]] = {
    "PPO": ppo,
    "A2C": a2c,
    "DQN": dqn,
    "SAC": sac,
    "TD3": td3,
}


def parameters(policy: Any) -> list[np.ndarray[Any, Any]]:
    return [np.asarray(x) for x in jax.tree.leaves(eqx.filter(policy, eqx.is_array))]


def wandb_history(directory: Path, rows: int, timeout: float = 60.0) -> list[Any]:
    """The history of the one offline W&B run under ``directory`` (wandb's
    service may still be writing it out when ``close()`` returns)."""
    deadline = time.monotonic() + timeout
    while True:
        files = sorted(directory.rglob("run-*.wandb"))
        history = read_wandb_run(files[0])["history"] if files else []
        if len(history) >= rows or time.monotonic() > deadline:
            return list(history)
        time.sleep(0.2)


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_builtin_callback_runs_with_the_algorithm(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("wandb", reason="wandb is the optional lerax[wandb] extra")
    monkeypatch.setenv("WANDB_SILENT", "true")
    algo, env, policy = CASES[name]()
    total = ITERATIONS * algo.steps_per_iteration
    key = jr.key(1)

    plain = algo.train(env, policy, total, key=key)
    empty = algo.train(env, policy, total, key=key, callback=EmptyCallback())

    console_out = io.StringIO()
    bar_out = io.StringIO()
    logger = LoggingCallback(
        [
            ConsoleBackend(console=Console(file=console_out, width=200)),
            JSONLBackend(tmp_path / "run.jsonl"),
            TensorBoardBackend(tmp_path / "tb"),
            WandbBackend(project="lerax-test", mode="offline", dir=tmp_path / "wandb"),
        ],
        name=name,
        log_every=1,
    )
    bar = ProgressBarCallback(console=Console(file=bar_out, width=200))
    with logger:
        logged = algo.train(
            env,
            policy,
            total,
            key=key,
            callback=CallbackList(logger, bar, EmptyCallback()),
        )

    # Nothing that is learned changes with callbacks that do not stop training
    # (SAC: see test_sac_learns_bitwise_the_same_with_a_logger).
    for result in (empty, logged):
        assert int(result.iterations) == ITERATIONS
        for a, b in zip(
            parameters(plain.policy), parameters(result.policy), strict=True
        ):
            if name == "SAC":
                np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-8)
            else:
                np.testing.assert_array_equal(a, b)

    # Every backend got every iteration with the algorithm's training log.
    train_keys = {f"train/{k}" for k in algo.initial_training_log()}
    rows = read_jsonl(tmp_path / "run.jsonl")
    scalars = [r for r in rows if "time/iteration" in r]
    assert [r["time/iteration"] for r in scalars] == list(range(1, ITERATIONS + 1))
    assert train_keys <= set(scalars[-1])
    assert scalars[-1]["time/timesteps"] == total
    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"scalars": 0})
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert train_keys <= tags
    assert [e.step for e in events.Scalars("time/iteration")] == [
        i * algo.steps_per_iteration for i in range(1, ITERATIONS + 1)
    ]
    history = wandb_history(tmp_path / "wandb", ITERATIONS)
    assert [row["time/iteration"] for row in history] == list(range(1, ITERATIONS + 1))
    assert f"{ITERATIONS}" in console_out.getvalue()
    assert f"{total}/{total}" in bar_out.getvalue().replace(" ", "")

    # Compiled once per configuration: another key, and new callbacks built
    # the same way (another backend, which the program does not hold), run
    # the programs compiled above.
    before = COMPILATIONS.count
    algo.train(env, policy, total, key=jr.key(2), callback=EmptyCallback())
    with LoggingCallback(
        [JSONLBackend(tmp_path / "again.jsonl")], log_every=1
    ) as again:
        algo.train(
            env,
            policy,
            total,
            key=jr.key(2),
            callback=CallbackList(
                again,
                ProgressBarCallback(console=Console(file=io.StringIO(), width=200)),
                EmptyCallback(),
            ),
        )
    assert COMPILATIONS.count == before


@final
class StopAt(AbstractCallback[EmptyCallbackState, EmptyCallbackStepState]):
    """Stops once ``iterations`` iterations have run, recording on the host
    what every ``on_iteration`` call saw (also those of stopped runs)."""

    iterations: Int[Array, ""]

    def on_iteration(
        self,
        ctx: IterationContext[EmptyCallbackState, EmptyCallbackStepState],
        *,
        key: PRNGKeyArray,
    ) -> EmptyCallbackState:
        jax.debug.callback(
            _seen, ctx.run_index, ctx.active, ctx.iteration_count, ctx.num_timesteps
        )
        return ctx.state

    def continue_training(
        self,
        ctx: IterationContext[EmptyCallbackState, EmptyCallbackStepState],
        *,
        key: PRNGKeyArray,
    ) -> Bool[Array, ""]:
        return ctx.iteration_count < self.iterations


SEEN: list[tuple[int, bool, int, int]] = []


def _seen(run: Any, active: Any, iteration: Any, timesteps: Any) -> None:
    SEEN.append((int(run), bool(active), int(iteration), int(timesteps)))


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_stopped_seed_keeps_its_counters_and_its_hooks_see_them(name: str) -> None:
    algo, env, policy = CASES[name]()
    per = algo.steps_per_iteration
    stops = jnp.array([1, 3])
    SEEN.clear()

    def train(key: Array, stop: StopAt) -> Any:
        return algo.train(env, policy, 4 * per, key=key, callback=stop)

    result = eqx.filter_jit(eqx.filter_vmap(train))(
        jr.split(jr.key(2), 2), StopAt(stops)
    )
    np.testing.assert_array_equal(np.asarray(result.iterations), [1, 3])
    np.testing.assert_array_equal(np.asarray(result.timesteps), [per, 3 * per])
    np.testing.assert_array_equal(np.asarray(result.status.iteration), [1, 3])
    # Run 0 stopped after iteration 1: the loop still runs its body while
    # run 1 goes on, and its hooks see its own frozen counters (one more
    # iteration than it completed, like every call after an update), marked
    # inactive.
    run0 = sorted(s for s in SEEN if s[0] == 0)
    assert run0 == [(0, False, 2, 2 * per)] * 2 + [(0, True, 1, per)]
    run1 = sorted(s for s in SEEN if s[0] == 1)
    assert run1 == [(1, True, i, i * per) for i in (1, 2, 3)]


@final
class LogReader(AbstractCallback[EmptyCallbackState, EmptyCallbackStepState]):
    """No hooks; reads the training log by default (so the update computes
    it), and adds nothing else to the program."""


def test_sac_learns_bitwise_the_same_with_a_logger(tmp_path: Path) -> None:
    algo, env, policy = sac()
    total = ITERATIONS * algo.steps_per_iteration
    plain = algo.train(env, policy, total, key=jr.key(1))
    reader = algo.train(env, policy, total, key=jr.key(1), callback=[LogReader()])
    for a, b in zip(parameters(plain.policy), parameters(reader.policy), strict=True):
        np.testing.assert_array_equal(a, b)  # a callback reading the log: same
    with LoggingCallback([JSONLBackend(tmp_path / "log.jsonl")], log_every=1) as log:
        logged = algo.train(env, policy, total, key=jr.key(1), callback=log)
    for a, b in zip(parameters(plain.policy), parameters(logged.policy), strict=True):
        np.testing.assert_array_equal(a, b)
