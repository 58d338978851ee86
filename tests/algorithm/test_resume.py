"""``train(resume_from=...)``: a run stopped after some iterations and resumed
to the same length ends bitwise where the uninterrupted run ends, for every
algorithm, with and without callbacks and for a vmapped batch; a resume that
does not fit the run names the first difference."""

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from lerax.algorithm import (
    A2C,
    DQN,
    PPO,
    SAC,
    TD3,
    AbstractAlgorithm,
    StopReason,
    TrainState,
    current_learning_rate,
)
from lerax.env import AbstractEnv, CartPole, Pendulum
from lerax.policy import (
    AbstractPolicy,
    MLPActorCriticPolicy,
    MLPDeterministicPolicy,
    MLPQPolicy,
    MLPSACPolicy,
)

from .offpolicy_helpers import StopAt

CARTPOLE = CartPole()
PENDULUM = Pendulum()
NEVER = StopAt(jnp.asarray(10**6))


def arrays(tree: Any) -> list[np.ndarray[Any, Any]]:
    """Every array leaf as NumPy (a typed key as its key data)."""
    return [
        np.asarray(
            jr.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x
        )
        for x in jax.tree.leaves(eqx.filter(tree, eqx.is_array))
    ]


def assert_bitwise(a: Any, b: Any) -> None:
    left, right = arrays(a), arrays(b)
    assert len(left) == len(right)
    for i, (x, y) in enumerate(zip(left, right, strict=True)):
        assert x.dtype == y.dtype and x.shape == y.shape, i
        np.testing.assert_array_equal(x, y, err_msg=f"leaf {i}")


Case = tuple[
    Callable[[], AbstractAlgorithm[Any, Any]],
    AbstractEnv[Any, Any, Any],
    Callable[[AbstractEnv[Any, Any, Any]], AbstractPolicy[Any, Any]],
    int,
    int,
]

CASES: dict[str, Case] = {
    "ppo": (
        lambda: PPO(num_envs=2, num_steps=8, num_epochs=2, num_minibatches=2),
        CARTPOLE,
        lambda env: MLPActorCriticPolicy(env, key=jr.key(0), hidden_sizes=(16, 16)),
        5,
        2,
    ),
    "a2c": (
        lambda: A2C(num_envs=2, num_steps=4),
        CARTPOLE,
        lambda env: MLPActorCriticPolicy(env, key=jr.key(0), hidden_sizes=(16, 16)),
        5,
        3,
    ),
    "dqn": (
        lambda: DQN(
            buffer_size=64, learning_starts=8, batch_size=8, target_update_interval=4
        ),
        CARTPOLE,
        lambda env: MLPQPolicy(env, key=jr.key(0), hidden_sizes=(16, 16)),
        30,
        17,
    ),
    "sac": (
        lambda: SAC(buffer_size=64, learning_starts=8, batch_size=8),
        PENDULUM,
        lambda env: MLPSACPolicy(env, key=jr.key(0), hidden_sizes=(16, 16)),
        24,
        13,
    ),
    "td3": (
        lambda: TD3(buffer_size=64, learning_starts=8, batch_size=8),
        PENDULUM,
        lambda env: MLPDeterministicPolicy(env, key=jr.key(0), hidden_sizes=(16, 16)),
        24,
        13,
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_resumed_run_ends_bitwise_where_the_uninterrupted_one_ends(
    name: str,
) -> None:
    make, env, make_policy, iterations, stop = CASES[name]
    algo = make()
    policy = make_policy(env)
    total = iterations * algo.steps_per_iteration
    full = algo.train(env, policy, total, key=jr.key(1), callback=NEVER)
    # The same program (the stop is an array leaf), stopped early.
    part = algo.train(
        env, policy, total, key=jr.key(1), callback=StopAt(jnp.asarray(stop))
    )
    assert int(part.iterations) == stop
    assert part.status.reasons() is StopReason.CALLBACK
    state: TrainState[Any, Any, Any, Any] = part.train_state
    # The key and policy given only give the structure.
    resumed = algo.train(
        env,
        make_policy(env),
        total,
        key=jr.key(99),
        callback=NEVER,
        resume_from=state,
    )
    assert resumed.status.reasons() is StopReason.COMPLETED
    assert int(resumed.iterations) == iterations
    assert int(resumed.timesteps) == total
    assert_bitwise(resumed.train_state, full.train_state)


def test_without_callbacks_a_shorter_run_continues_to_the_longer_one() -> None:
    # A2C's learning rate is constant: a run of 3 iterations resumed to 7
    # ends where a run of 7 does.
    make, env, make_policy, _, _ = CASES["a2c"]
    algo, policy = make(), make_policy(CARTPOLE)
    spi = algo.steps_per_iteration
    full = algo.train(env, policy, 7 * spi, key=jr.key(1))
    short = algo.train(env, policy, 3 * spi, key=jr.key(1))
    assert short.status.reasons() is StopReason.COMPLETED
    resumed = algo.train(
        env, policy, 7 * spi, key=jr.key(1), resume_from=short.train_state
    )
    assert int(resumed.iterations) == 7
    assert_bitwise(resumed.train_state, full.train_state)
    # Resumed where it already ended: nothing more runs.
    again = algo.train(
        env, policy, 7 * spi, key=jr.key(1), resume_from=full.train_state
    )
    assert_bitwise(again.policy, full.policy)


def test_a_vmapped_batch_resumes_as_the_same_batch() -> None:
    make, env, make_policy, iterations, _ = CASES["ppo"]
    algo, policy = make(), make_policy(env)
    total = iterations * algo.steps_per_iteration
    keys = jr.split(jr.key(3), 3)

    def run(key: Any, stop: Any) -> Any:
        return algo.train(env, policy, total, key=key, callback=StopAt(stop))

    batch = eqx.filter_jit(eqx.filter_vmap(run))
    full = batch(keys, jnp.full((3,), 10**6))
    part = batch(keys, jnp.array([1, 3, 10**6]))
    np.testing.assert_array_equal(part.iterations, [1, 3, iterations])
    resumed = eqx.filter_jit(
        eqx.filter_vmap(
            lambda s: algo.train(
                env, policy, total, key=jr.key(0), callback=NEVER, resume_from=s
            )
        )
    )(part.train_state)
    np.testing.assert_array_equal(resumed.iterations, [iterations] * 3)
    assert resumed.status.reasons() == [StopReason.COMPLETED] * 3
    assert_bitwise(resumed.train_state, full.train_state)


def test_fine_tuning_with_another_hyperparameter_value_is_allowed() -> None:
    make, env, make_policy, _, _ = CASES["a2c"]
    algo, policy = make(), make_policy(CARTPOLE)
    spi = algo.steps_per_iteration
    short = algo.train(env, policy, 2 * spi, key=jr.key(1))
    tuned = A2C(num_envs=2, num_steps=4, learning_rate=1e-5)
    slow = tuned.train(
        env, policy, 4 * spi, key=jr.key(1), resume_from=short.train_state
    )
    fast = algo.train(
        env, policy, 4 * spi, key=jr.key(1), resume_from=short.train_state
    )
    assert int(slow.iterations) == 4
    moved = [
        np.abs(a - b).max()
        for a, b in zip(arrays(slow.policy), arrays(short.policy), strict=True)
    ]
    moved_fast = [
        np.abs(a - b).max()
        for a, b in zip(arrays(fast.policy), arrays(short.policy), strict=True)
    ]
    assert max(moved) < max(moved_fast)
    rate = current_learning_rate(slow.algorithm_state.opt_state)
    assert float(rate) == pytest.approx(1e-5)


@pytest.fixture(scope="module")
def saved() -> TrainState[Any, Any, Any, Any]:
    make, env, make_policy, _, _ = CASES["a2c"]
    algo = make()
    return algo.train(
        env, make_policy(env), 2 * algo.steps_per_iteration, key=jr.key(1)
    ).train_state


@pytest.mark.parametrize(
    ("algo", "policy", "callback", "match"),
    [
        (
            A2C(num_envs=4, num_steps=4),
            None,
            None,
            r"at algorithm\.num_envs the saved state has static 2 where this run has static 4",
        ),
        (
            A2C(num_envs=2, num_steps=4, normalize_advantages=True),
            None,
            None,
            r"at algorithm\.normalize_advantages the saved state has static False where this run has static True",
        ),
        (
            None,
            MLPActorCriticPolicy(CARTPOLE, key=jr.key(0), hidden_sizes=(8, 8)),
            None,
            r"at policy\.actor_torso\.layers\[0\]\.weight the saved state has shape \(4, 16\) dtype float32 where this run has shape \(4, 8\) dtype float32",
        ),
        (
            None,
            None,
            [NEVER, NEVER],
            r"at callback_state the saved state has type lerax\.callback\._base\.EmptyCallbackState where this run has type builtins\.tuple",
        ),
    ],
)
def test_a_resume_that_does_not_fit_names_the_first_difference(
    saved: TrainState[Any, Any, Any, Any],
    algo: Any,
    policy: Any,
    callback: Any,
    match: str,
) -> None:
    make, env, make_policy, _, _ = CASES["a2c"]
    algo = algo if algo is not None else make()
    policy = policy if policy is not None else make_policy(env)
    with pytest.raises(ValueError, match=match):
        algo.train(
            env, policy, 8 * 8, key=jr.key(1), callback=callback, resume_from=saved
        )


def test_resume_from_must_be_a_train_state_or_a_path(
    saved: TrainState[Any, Any, Any, Any],
) -> None:
    make, env, make_policy, _, _ = CASES["a2c"]
    with pytest.raises(TypeError, match="resume_from"):
        make().train(
            env,
            make_policy(env),
            64,
            key=jr.key(1),
            resume_from=3,  # type: ignore[call-overload]  # the wrong type on purpose
        )
