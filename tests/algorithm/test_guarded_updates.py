"""Algorithms that guard their own updates (DQN, SAC, TD3): with the
non-finite check on, an update stops changing the policy and the algorithm
state at the first non-finite reward, observation, loss or gradient, so the
loop keeps what the update returns instead of a copy from before it."""

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from lerax.algorithm import (
    A2C,
    DQN,
    SAC,
    TD3,
    AbstractAlgorithm,
    NonFiniteError,
    StopReason,
)
from lerax.callback import AbstractCallback, JSONLBackend, LoggingCallback
from lerax.env import AbstractEnv, CartPole, Pendulum
from lerax.policy import MLPDeterministicPolicy, MLPQPolicy, MLPSACPolicy

from .offpolicy_helpers import StopAt, leaves
from .test_non_finite import Poisoned

KEY = jr.key(3)
STEPS = 48
AT = 30  # the poisoned step: after learning starts (step 16), before the end

Case = tuple[
    AbstractAlgorithm[Any, Any],
    Callable[[], AbstractEnv[Any, Any, Any]],
    Callable[[AbstractEnv[Any, Any, Any]], Any],
    str,
]
CASES: dict[str, Case] = {
    "sac": (
        SAC(buffer_size=64, learning_starts=16, batch_size=8),  # 1 gradient step
        Pendulum,
        lambda env: MLPSACPolicy(env, key=jr.key(0), hidden_sizes=(8, 8)),
        "critic_loss",
    ),
    "td3": (
        TD3(buffer_size=64, learning_starts=16, batch_size=8, gradient_steps=3),
        Pendulum,
        lambda env: MLPDeterministicPolicy(env, key=jr.key(0), hidden_sizes=(8, 8)),
        "critic_loss",
    ),
    "dqn": (
        DQN(
            num_envs=1,
            buffer_size=64,
            learning_starts=16,
            batch_size=8,
            gradient_steps=2,
            target_update_interval=2,
        ),
        CartPole,
        lambda env: MLPQPolicy(env, key=jr.key(0), hidden_sizes=(8,)),
        "loss",
    ),
}


def learning(state: Any) -> list[np.ndarray[Any, Any]]:
    """The arrays of an algorithm state other than its replay buffer."""
    return leaves(eqx.tree_at(lambda s: s.buffer, state, None))


def assert_close(got: list[Any], want: list[Any]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", CASES)
def test_a_finite_run_matches_the_unguarded_run(name: str) -> None:
    # Two different programs: XLA fuses (and rounds) the guarded update
    # differently, so they agree to float rounding, not bit for bit (SAC's
    # critic differs by 1 ulp here); each is bitwise reproducible.
    algo, make_env, make_policy, _ = CASES[name]
    env = make_env()
    policy = make_policy(env)
    guarded = algo.train(env, policy, STEPS, key=KEY)
    again = algo.train(env, policy, STEPS, key=KEY)
    unguarded = algo.train(env, policy, STEPS, key=KEY, check_finite=False)
    assert guarded.status.reasons() == StopReason.COMPLETED
    got = [*leaves(guarded.policy), *leaves(guarded.algorithm_state)]
    for a, b in zip(
        got, [*leaves(again.policy), *leaves(again.algorithm_state)], strict=True
    ):
        np.testing.assert_array_equal(a, b)
    want = [*leaves(unguarded.policy), *leaves(unguarded.algorithm_state)]
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_only_the_off_policy_algorithms_guard_their_updates() -> None:
    # A2C (like PPO) keeps the base class's None: the loop keeps a copy of
    # its policy and state from before each update instead.
    assert A2C.guarded_update is AbstractAlgorithm.guarded_update
    for algo, *_ in CASES.values():
        assert type(algo).guarded_update is not AbstractAlgorithm.guarded_update


@pytest.mark.parametrize(
    ("name", "what"),
    [("sac", "reward"), ("td3", "observation"), ("dqn", "reward")],
)
def test_a_non_finite_rollout_changes_nothing_but_the_buffer(
    name: str, what: str
) -> None:
    algo, make_env, make_policy, _ = CASES[name]
    env = Poisoned(make_env(), AT, what=what)
    policy = make_policy(env)
    with pytest.raises(NonFiniteError) as caught:
        algo.train(env, policy, STEPS, key=KEY)
    result = caught.value.result
    assert caught.value.quantity == what
    assert int(result.status.iteration) == AT  # one step per iteration
    assert int(result.iterations) == AT - 1
    assert int(result.algorithm_state.buffer.size) == AT
    # The run stopped after AT - 1 iterations by a callback, unchecked.
    before = algo.train(
        env,
        policy,
        STEPS,
        key=KEY,
        check_finite=False,
        callback=StopAt(jnp.asarray(AT - 1)),
    )
    assert int(before.iterations) == AT - 1
    assert_close(leaves(result.policy), leaves(before.policy))
    assert_close(learning(result.algorithm_state), learning(before.algorithm_state))
    assert all(np.isfinite(p).all() for p in leaves(result.policy))


@pytest.mark.parametrize("logged", [False, True])
@pytest.mark.parametrize("name", CASES)
def test_a_loss_that_overflows_stops_before_its_update(
    name: str, logged: bool, tmp_path: Any
) -> None:
    # A finite reward that overflows the critic's (or Q-network's) squared
    # error once a batch samples it: the rollout check passes it, the
    # update's guard catches the loss. Unlogged, the update computes no log,
    # and the quantity is the guard's.
    algo, make_env, make_policy, loss = CASES[name]
    env = Poisoned(make_env(), AT, 3e38)
    policy = make_policy(env)
    callback: AbstractCallback[Any, Any] | None = (
        LoggingCallback([JSONLBackend(tmp_path / "log.jsonl")]) if logged else None
    )
    with pytest.raises(NonFiniteError) as caught:
        algo.train(env, policy, 4 * STEPS, key=KEY, callback=callback)
    if isinstance(callback, LoggingCallback):
        callback.close()
    result = caught.value.result
    k = int(result.status.iteration)
    assert k >= AT
    want = f"training_log[{loss!r}]" if logged else "loss or gradient"
    assert caught.value.quantity == want
    assert int(result.iterations) == k - 1
    before = algo.train(
        env,
        policy,
        4 * STEPS,
        key=KEY,
        check_finite=False,
        callback=StopAt(jnp.asarray(k - 1)),
    )
    assert_close(leaves(result.policy), leaves(before.policy))
    assert_close(learning(result.algorithm_state), learning(before.algorithm_state))
    assert all(np.isfinite(p).all() for p in leaves(result.policy))
