"""EvalCallback: its numbers are evaluate_policy's with the key it documents,
in the same form (jitted, vmapped), for on- and off-policy algorithms; it
publishes them for LoggingCallback and keeps the best policy."""

import json
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.random as jr
import numpy as np
import pytest

from lerax.algorithm import DQN, TrainResult
from lerax.callback import JSONLBackend, LoggingCallback
from lerax.callback.control import EvalCallback, EvalState
from lerax.env import Acrobot, CartPole
from lerax.evaluation import evaluate_policy
from lerax.policy import AbstractPolicy, MLPActorCriticPolicy, MLPQPolicy

from .conftest import EVAL_EPISODES, ITERATIONS, SEEDS, curve
from .helpers import ALGO, ENV, POLICY, STEPS


def _evaluate(policy: AbstractPolicy[Any, Any], key: jax.Array, episodes: int) -> Any:
    return evaluate_policy(policy, ENV, key=key, num_episodes=episodes)


def test_vmapped_evaluations_equal_evaluate_policy_vmapped(
    reference: TrainResult[Any, Any, Any, Any],
) -> None:
    state: EvalState = reference.callback_state[0]
    assert np.asarray(state.evaluations).tolist() == [ITERATIONS] * SEEDS
    # The last evaluation: the trained policy after the last iteration.
    keys = jax.vmap(jr.fold_in, in_axes=(0, None))(state.key, ITERATIONS)
    expected = eqx.filter_jit(
        eqx.filter_vmap(lambda p, k: _evaluate(p, k, EVAL_EPISODES))
    )(reference.policy, keys)
    np.testing.assert_array_equal(
        reference.metrics["eval/mean_return"], expected.mean_return
    )
    np.testing.assert_array_equal(state.mean_return, expected.mean_return)
    np.testing.assert_array_equal(state.std_return, expected.std_return)
    # The best is the curve's maximum; the seeds' keys differ.
    returns = curve(reference, "eval/mean_return")
    np.testing.assert_array_equal(
        reference.metrics["eval/best_mean_return"], returns.max(1)
    )
    np.testing.assert_array_equal(state.best_iteration, returns.argmax(1) + 1)
    assert len({tuple(np.asarray(jr.key_data(k)).tolist()) for k in state.key}) == SEEDS


def test_one_run_evaluates_when_due_logs_and_keeps_the_best(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    # Every 2 iterations (rounded up from 1.5) and at the last: 2, 4, 5.
    evaluation = EvalCallback(
        ENV, every=STEPS + STEPS // 2, num_episodes=3, keep_best=True
    )
    with LoggingCallback(JSONLBackend(path), log_every=STEPS) as logger:
        result = ALGO.train(
            ENV, POLICY, 5 * STEPS, key=jr.key(5), callback=(evaluation, logger)
        )
    state: EvalState = result.callback_state[0]
    assert int(state.evaluations) == 3 and int(state.last_iteration) == 5
    evaluate = eqx.filter_jit(_evaluate)
    final = evaluate(result.policy, jr.fold_in(state.key, 5), 3)
    assert float(result.metrics["eval/mean_return"]) == float(final.mean_return)
    assert float(result.metrics["eval/last_iteration"]) == 5.0
    # The best policy's parameters, re-evaluated with that evaluation's key.
    best = eqx.combine(state.best_params, POLICY)
    assert isinstance(best, MLPActorCriticPolicy)
    again = evaluate(best, jr.fold_in(state.key, state.best_iteration), 3)
    assert float(again.mean_return) == float(state.best_mean_return)
    assert float(state.best_mean_return) == float(
        result.metrics["eval/best_mean_return"]
    )
    # LoggingCallback logs what was published: NaN before the first
    # evaluation (iteration 1), then the last evaluation's values.
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["time/iteration"] for r in rows] == [1, 2, 3, 4, 5]
    logged = [r["eval/last_iteration"] for r in rows]
    assert np.isnan(logged[0]) and logged[1:] == [2.0, 2.0, 4.0, 5.0]
    assert rows[-1]["eval/mean_return"] == float(final.mean_return)


def test_an_off_policy_algorithm_is_evaluated_too() -> None:
    dqn = DQN(num_envs=2, buffer_size=64, learning_starts=0, batch_size=8)
    policy = MLPQPolicy(ENV, key=jr.key(0), hidden_sizes=(16,))
    evaluation = EvalCallback(ENV, every=3 * dqn.steps_per_iteration, num_episodes=2)
    result = dqn.train(
        ENV, policy, 6 * dqn.steps_per_iteration, key=jr.key(2), callback=evaluation
    )
    state: EvalState = result.callback_state
    assert np.asarray(state.evaluations).tolist() == 2
    final = eqx.filter_jit(_evaluate)(result.policy, jr.fold_in(state.key, 6), 2)
    assert float(result.metrics["eval/mean_return"]) == float(final.mean_return)


def test_an_eval_env_with_other_spaces_is_refused_before_training() -> None:
    acrobot = Acrobot()
    with pytest.raises(
        ValueError, match="eval_env Acrobot has observation_space="
    ) as err:
        ALGO.train(
            ENV, POLICY, STEPS, key=jr.key(0), callback=EvalCallback(acrobot, every=8)
        )
    message = str(err.value)
    assert str(acrobot.observation_space) in message
    assert str(CartPole().observation_space) in message
