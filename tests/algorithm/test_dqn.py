"""DQN: TD targets and loss against hand computation, the epsilon schedule, target
updates, the learning_starts gate, the buffer's final observations, determinism,
seeds under vmap, configuration errors and a short learning check."""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jaxtyping import Array, Int, PRNGKeyArray

from lerax.algorithm import DQN, DQNState, Rollout
from lerax.buffer import Transition
from lerax.env import CartPole, Pendulum
from lerax.evaluation import evaluate_policy
from lerax.policy import MLPActorCriticPolicy, MLPQPolicy

from .offpolicy_helpers import (
    StopAt,
    assert_polyak,
    assert_same_arrays,
    check_vmapped_seeds,
    leaves,
)

ENV = CartPole()


def small_dqn(**kwargs: Any) -> DQN:
    config: dict[str, Any] = {
        "num_envs": 2,
        "num_steps": 2,
        "buffer_size": 64,
        "learning_starts": 8,
        "batch_size": 8,
        "gradient_steps": 2,
    }
    return DQN(**(config | kwargs))


# ---------------------------------------------------------------- TD targets


def linear_q(weight: list[list[float]], bias: list[float]) -> MLPQPolicy[Any]:
    """A CartPole Q-policy ``Q(s) = s @ weight + bias`` (no hidden layer)."""
    policy = MLPQPolicy(ENV, key=jr.key(0), hidden_sizes=())
    linear: MLPQPolicy[Any] = eqx.tree_at(
        lambda p: (p.head.weight, p.head.bias),
        policy,
        (jnp.array(weight, jnp.float32), jnp.array(bias, jnp.float32)),
    )
    return linear


# Online Q(s) = (s_0, s_1) and target Q(s) = (s_0, 2 s_1 + 0.5): where they
# disagree on the argmax (row 0), double DQN and DQN differ.
ONLINE = ([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0], [0.0, 0.0]], [0.0, 0.0])
TARGET = ([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0], [0.0, 0.0]], [0.0, 0.5])
BATCH = Transition(
    observations=jnp.array(
        [[1.0, 0.0, 0, 0], [0.0, 2.0, 0, 0], [0.5, 0.5, 0, 0], [3.0, 1.0, 0, 0]],
        jnp.float32,
    ),
    actions=jnp.array([0, 1, 1, 0], jnp.int32),
    rewards=jnp.array([1.0, 0.5, 1.0, -1.0], jnp.float32),
    terminated=jnp.array([False, False, True, False]),
    truncated=jnp.array([False, True, False, False]),
    next_observations=jnp.array(
        [[1.0, 0.8, 0, 0], [2.0, 0.0, 0, 0], [9.0, 9.0, 0, 0], [0.4, 0.5, 0, 0]],
        jnp.float32,
    ),
)


def hand_td(double: bool, gamma: float) -> np.ndarray[Any, Any]:
    next_obs = np.asarray(BATCH.next_observations)[:, :2]
    q_online = next_obs @ np.array([[1.0, 0.0], [0.0, 1.0]])
    q_target = next_obs * [1.0, 2.0] + [0.0, 0.5]
    chooser = q_online if double else q_target
    best = chooser.argmax(axis=1)
    bootstrap = q_target[np.arange(4), best]
    # terminated: no bootstrap; truncated: bootstrap from the true next obs
    bootstrap = np.where(np.asarray(BATCH.terminated), 0.0, bootstrap)
    return np.asarray(BATCH.rewards) + gamma * bootstrap


@pytest.mark.parametrize("double", [True, False])
def test_td_targets_and_loss_match_hand_computation(double: bool) -> None:
    algo = DQN(double_dqn=double, gamma=0.9, td_loss="huber")
    online, target = linear_q(*ONLINE), linear_q(*TARGET)
    targets = hand_td(double, 0.9)
    # Row 0, s' = (1, 0.8): online Q (1, 0.8) picks 0, target Q (1, 2.1) picks
    # 1: y = 1 + 0.9 * Q_target(s', 0) with double DQN, 1 + 0.9 * 2.1 without.
    assert targets[0] == pytest.approx(1 + 0.9 * (1.0 if double else 2.1))
    # Row 1 is truncated (bootstraps), row 2 terminated (does not).
    assert targets[1] == pytest.approx(0.5 + 0.9 * 2.0) and targets[2] == 1.0
    np.testing.assert_allclose(
        np.asarray(algo.td_targets(online, target, BATCH)), targets, rtol=1e-6
    )

    q_taken = np.array([1.0, 2.0, 0.5, 3.0])  # Q(s, a) of the online network
    errors = q_taken - targets
    huber = np.where(np.abs(errors) <= 1.0, 0.5 * errors**2, np.abs(errors) - 0.5)
    assert (np.abs(errors) > 1).any() and (np.abs(errors) <= 1).any()
    loss, q_value = algo.loss(online, target, BATCH)
    assert float(loss) == pytest.approx(huber.mean(), rel=1e-6)
    assert float(q_value) == pytest.approx(q_taken.mean(), rel=1e-6)

    # The targets are held constant: d loss / d bias_a is the mean over the
    # batch of the clipped error of the transitions that took action a.
    grads = eqx.filter_grad(lambda p: algo.loss(p, target, BATCH)[0])(online)
    clipped = np.clip(errors, -1.0, 1.0)
    actions = np.asarray(BATCH.actions)
    expected = [clipped[actions == a].sum() / 4 for a in (0, 1)]
    np.testing.assert_allclose(np.asarray(grads.head.bias), expected, rtol=1e-5)


def test_squared_error_loss_matches_hand_computation() -> None:
    """``td_loss="mse"`` (the default): half the squared TD error (rejax's
    loss), gradient the unclipped error."""
    algo = DQN(gamma=0.9)
    assert algo.td_loss == "mse"
    online, target = linear_q(*ONLINE), linear_q(*TARGET)
    errors = np.array([1.0, 2.0, 0.5, 3.0]) - hand_td(True, 0.9)
    loss, _ = algo.loss(online, target, BATCH)
    assert float(loss) == pytest.approx((0.5 * errors**2).mean(), rel=1e-6)
    grads = eqx.filter_grad(lambda p: algo.loss(p, target, BATCH)[0])(online)
    actions = np.asarray(BATCH.actions)
    expected = [errors[actions == a].sum() / 4 for a in (0, 1)]
    np.testing.assert_allclose(np.asarray(grads.head.bias), expected, rtol=1e-5)


def test_bad_td_loss_is_named() -> None:
    with pytest.raises(
        ValueError, match=r"DQN: td_loss must be 'huber' or 'mse', got td_loss='l1'"
    ):
        DQN(td_loss="l1")


def test_annealed_learning_rate_reaches_zero_at_the_last_gradient_step() -> None:
    """``anneal_lr``: the rate falls linearly over the run's gradient steps,
    which start with the first iteration that has ``learning_starts`` steps."""
    algo = small_dqn(learning_rate=1e-3)
    assert algo.anneal_lr
    # 2 x 2 = 4 steps per iteration; learning_starts 8: iterations 1.. learn
    # (0-based; iteration 1 ends with 8 steps collected), so 10 iterations
    # hold 9 learning ones of 2 gradient steps.
    assert algo.total_gradient_steps(40) == 18
    assert small_dqn(learning_starts=0).total_gradient_steps(40) == 20
    assert small_dqn(learning_starts=9).total_gradient_steps(40) == 16

    def last_rate(algo: DQN, stop: int) -> float:
        # A callback makes the loop compute the training log; StopAt ends the
        # 10-iteration run early (the schedule stays that of the whole run).
        callback = StopAt(jnp.asarray(stop))
        result = algo.train(
            ENV, linear_q(*ONLINE), 40, key=jr.key(3), callback=callback
        )
        return float(result.train_state.training_log["learning_rate"])

    # The log reports the rate of the iteration's last gradient step, the
    # schedule at that step's count (from 0): after 3 iterations, of which 2
    # learned, the 4th step's, count 3.
    assert last_rate(algo, 3) == pytest.approx(1e-3 * (1 - 3 / 18), rel=1e-5)
    assert last_rate(algo, 10) == pytest.approx(1e-3 * (1 - 17 / 18), rel=1e-5)
    constant = small_dqn(learning_rate=1e-3, anneal_lr=False)
    assert last_rate(constant, 10) == pytest.approx(1e-3)


# ---------------------------------------------------------------- epsilon


def test_epsilon_schedule_values() -> None:
    algo = DQN(
        learning_starts=100,
        buffer_size=1000,
        eps_start=1.0,
        eps_end=0.1,
        exploration_fraction=0.5,
    )
    total = 1000  # the schedule reaches eps_end at step 500
    expected = {0: 1.0, 99: 1.0, 100: 0.82, 250: 0.55, 499: 0.1018, 500: 0.1, 900: 0.1}
    for t, eps in expected.items():
        assert float(algo.epsilon(jnp.asarray(t), total)) == pytest.approx(
            eps, abs=1e-6
        )
    flat = DQN(learning_starts=0, eps_end=0.2, exploration_fraction=0.0)
    for t in (0, 10, 999):
        assert float(flat.epsilon(jnp.asarray(t), total)) == pytest.approx(0.2)


def test_act_is_random_before_learning_starts_and_greedy_at_epsilon_zero() -> None:
    algo = DQN(
        num_envs=1,
        buffer_size=100,
        learning_starts=10,
        batch_size=8,
        eps_end=0.0,
        exploration_fraction=0.5,
    )
    policy = MLPQPolicy(ENV, key=jr.key(3))
    state = algo.init_state(ENV, policy, 100, key=jr.key(4))
    obs = jnp.array([0.01, 0.2, -0.03, 0.1], jnp.float32)
    keys = jr.split(jr.key(5), 400)

    @jax.jit
    def act_all(t: Int[Array, ""]) -> tuple[Array, Array]:
        action, extras = jax.vmap(
            lambda k: algo.act(policy, state, obs, timestep=t, key=k)
        )(keys)
        return action, extras["epsilon"]

    def act(t: int) -> tuple[Array, Array]:
        actions, eps = act_all(jnp.asarray(t, jnp.int32))
        return actions, eps

    actions, eps = act(5)  # before learning_starts: uniformly random
    np.testing.assert_array_equal(np.asarray(eps), 1.0)
    assert actions.dtype == jnp.int32
    assert 0.4 < float(actions.mean()) < 0.6
    actions, eps = act(25)  # epsilon 0.5: half random, half greedy
    np.testing.assert_allclose(np.asarray(eps), 0.5)
    greedy = int(policy(obs))
    assert 0.65 < float((actions == greedy).mean()) < 0.85  # 0.5 + 0.5 / 2
    actions, eps = act(50)  # epsilon 0: greedy
    np.testing.assert_array_equal(np.asarray(eps), 0.0)
    np.testing.assert_array_equal(np.asarray(actions), greedy)


# ---------------------------------------------------------------- target updates


def rollout(num_steps: int, num_envs: int, timesteps: int, seed: int) -> Rollout:
    rng = np.random.default_rng(seed)
    shape = (num_steps, num_envs)
    return Rollout(
        observations=jnp.asarray(rng.normal(size=(*shape, 4)), jnp.float32),
        actions=jnp.asarray(rng.integers(0, 2, size=shape), jnp.int32),
        rewards=jnp.ones(shape, jnp.float32),
        terminated=jnp.zeros(shape, bool).at[0, 0].set(True),
        truncated=jnp.zeros(shape, bool),
        next_observations=jnp.asarray(rng.normal(size=(*shape, 4)), jnp.float32),
        extras={"epsilon": jnp.full(shape, 0.5, jnp.float32)},
        last_observations=jnp.zeros((num_envs, 4), jnp.float32),
        timesteps=jnp.asarray(timesteps, jnp.int32),
    )


def run_updates(algo: DQN, times: int) -> tuple[list[Any], list[DQNState]]:
    """``times`` updates from the initial policy; the policies and states after each
    (index 0: before any)."""
    policy: Any = MLPQPolicy(ENV, key=jr.key(6))
    state = algo.init_state(ENV, policy, 10, key=jr.key(7))
    policies, states = [policy], [state]
    update = eqx.filter_jit(algo.update)
    for i in range(times):
        data = rollout(algo.num_steps, algo.num_envs, i * algo.steps_per_iteration, i)
        policy, state, _ = update(
            policy, state, data, key=jr.key(100 + i), need_log=False
        )
        policies.append(policy)
        states.append(state)
    return policies, states


def test_polyak_target_update_after_each_gradient_step() -> None:
    algo = small_dqn(
        learning_starts=0, gradient_steps=1, tau=0.25, target_update_interval=1
    )
    policies, states = run_updates(algo, 2)
    for i in (1, 2):
        assert_polyak(states[i].target, policies[i], states[i - 1].target, 0.25)
    assert int(states[2].gradient_steps) == 2


def test_target_update_every_interval_gradient_steps() -> None:
    # Two gradient steps per update, a target update after every second one
    # (the count goes on across updates): one per update, after its last step.
    def interval_dqn(tau: float) -> DQN:
        return small_dqn(learning_starts=0, tau=tau, target_update_interval=2)

    policies, states = run_updates(interval_dqn(0.5), 2)
    for i in (1, 2):
        assert_polyak(states[i].target, policies[i], states[i - 1].target, 0.5)
    assert int(states[2].gradient_steps) == 4
    # tau = 1: a hard copy (the same compiled update: tau is an array leaf).
    policies, states = run_updates(interval_dqn(1.0), 2)
    for i in (1, 2):
        assert_same_arrays(states[i].target, policies[i])


# ---------------------------------------------------------------- the training loop


def train_small(
    algo: DQN, policy: MLPQPolicy[Any], key: PRNGKeyArray, stop: int = 100
) -> Any:
    """40 steps (10 iterations of ``small_dqn``), stopping after ``stop``
    iterations: with the same configuration, one compiled program serves all."""
    return algo.train(ENV, policy, 40, key=key, callback=StopAt(jnp.asarray(stop)))


def test_no_gradient_step_before_learning_starts_but_the_buffer_fills() -> None:
    # 4 steps an iteration; learning starts once 8 are collected: iteration 2.
    algo = small_dqn()
    policy = MLPQPolicy(ENV, key=jr.key(8))
    stopped = train_small(algo, policy, jr.key(9), stop=1)
    state = stopped.algorithm_state
    assert int(stopped.iterations) == 1
    assert int(state.buffer.size) == 4 and int(state.gradient_steps) == 0
    assert_same_arrays(stopped.policy, policy)
    assert_same_arrays(state.target, policy)
    two = train_small(algo, policy, jr.key(9), stop=2)
    assert int(two.algorithm_state.gradient_steps) == 2
    assert int(two.algorithm_state.buffer.size) == 8
    assert not np.array_equal(leaves(two.policy)[0], leaves(policy)[0])


def test_buffer_holds_the_true_final_observation_of_a_truncated_episode() -> None:
    env = CartPole(max_episode_steps=5)
    algo = DQN(
        num_envs=1, num_steps=1, buffer_size=16, batch_size=4, learning_starts=12
    )
    policy = MLPQPolicy(env, key=jr.key(10))
    buffer = algo.train(env, policy, 12, key=jr.key(11)).algorithm_state.buffer
    obs, next_obs = (
        np.asarray(buffer.observations),
        np.asarray(buffer.next_observations),
    )
    truncated = np.asarray(buffer.truncated)[:12]
    np.testing.assert_array_equal(np.flatnonzero(truncated), [4, 9])
    assert not np.asarray(buffer.terminated).any()
    for i in range(11):
        if truncated[i]:
            # The next episode starts from a reset observation, ...
            assert not np.allclose(next_obs[i], obs[i + 1])
            assert np.abs(obs[i + 1]).max() <= 0.05
            # ... while the stored next observation continues this one (Euler:
            # x' = x + tau * x_dot, theta' = theta + tau * theta_dot).
            np.testing.assert_allclose(
                next_obs[i][[0, 2]],
                obs[i][[0, 2]] + 0.02 * obs[i][[1, 3]],
                rtol=1e-5,
                atol=1e-7,
            )
        else:
            np.testing.assert_array_equal(next_obs[i], obs[i + 1])


def test_training_log() -> None:
    algo = small_dqn(learning_rate=3e-3, anneal_lr=False)
    result = train_small(algo, MLPQPolicy(ENV, key=jr.key(12)), jr.key(13))
    log = result.train_state.training_log
    assert set(log) == {"loss", "q_value", "epsilon", "learning_rate"}
    assert float(log["learning_rate"]) == pytest.approx(3e-3)
    # the last rollout acted at step 36 of 40
    assert float(log["epsilon"]) == pytest.approx(
        float(algo.epsilon(jnp.asarray(36), 40))
    )
    assert float(log["loss"]) > 0 and np.isfinite(float(log["q_value"]))
    assert algo.host_call_every == -(-(2**16) // (4 + 2 * 8))
    assert DQN().host_call_every == 51  # 2**16 / (10 + 5 * 256), rounded up


def test_same_key_gives_bitwise_equal_parameters() -> None:
    algo = small_dqn()
    policy = MLPQPolicy(ENV, key=jr.key(14))
    first = train_small(algo, policy, jr.key(15)).policy
    second = train_small(algo, policy, jr.key(15)).policy
    assert_same_arrays(first, second)
    assert not np.array_equal(leaves(first)[0], leaves(policy)[0])


def test_vmapped_seeds_match_single_runs_and_a_stopped_seed_keeps_its_counters() -> (
    None
):
    algo = small_dqn()
    policy = MLPQPolicy(ENV, key=jr.key(16))

    def train(key: PRNGKeyArray, stop: StopAt) -> Any:
        return algo.train(ENV, policy, 40, key=key, callback=stop)

    # Seed 1 stops after 4 of the 10 iterations; the others run to the end.
    batched, singles = check_vmapped_seeds(
        train,
        jr.split(jr.key(17), 3),
        [100, 4, 100],
        iterations=[10, 4, 10],
        timesteps=[40, 16, 40],
    )
    state = batched.algorithm_state
    # learning starts with the iteration that reaches 8 steps: iterations 2..
    np.testing.assert_array_equal(np.asarray(state.gradient_steps), [18, 6, 18])
    np.testing.assert_array_equal(np.asarray(state.buffer.size), [40, 16, 40])
    for i, one in enumerate(singles):
        assert int(one.algorithm_state.gradient_steps) == int(state.gradient_steps[i])


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"learning_starts": 101, "buffer_size": 100},
            r"DQN: learning_starts=101 is larger than buffer_size=100",
        ),
        (
            {"batch_size": 200, "buffer_size": 100, "learning_starts": 10},
            r"DQN: batch_size=200 is larger than buffer_size=100",
        ),
        (
            {
                "num_envs": 8,
                "num_steps": 16,
                "buffer_size": 100,
                "learning_starts": 0,
                "batch_size": 32,
            },
            r"num_envs \* num_steps = 8 \* 16 = 128 transitions, more than "
            r"buffer_size=100",
        ),
        (
            {"learning_starts": -1},
            r"learning_starts must be a non-negative int, got learning_starts=-1",
        ),
        ({"gradient_steps": 0}, r"gradient_steps must be a positive int, got .*=0"),
        ({"tau": 0.0}, r"DQN: tau must be in \(0, 1\], got tau=0.0"),
        ({"eps_end": 1.5}, r"DQN: eps_end must be in \[0, 1\]"),
    ],
)
def test_bad_configuration_raises_at_construction(
    kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        DQN(**kwargs)


def test_learning_starts_beyond_the_run_raises_before_compiling() -> None:
    algo = small_dqn(learning_starts=50)
    with pytest.raises(
        ValueError,
        match=r"DQN: learning_starts=50 is larger than the run: 10 iterations of 4 "
        r"steps = 40 environment steps",
    ):
        algo.train(ENV, MLPQPolicy(ENV, key=jr.key(0)), 40, key=jr.key(1))


def test_batch_size_beyond_the_run_raises_before_compiling() -> None:
    algo = small_dqn(learning_starts=0, batch_size=48)
    with pytest.raises(
        ValueError,
        match=r"DQN: batch_size=48 is larger than the run: 10 iterations of 4 steps "
        r"= 40 environment steps, .*batch_size must be at most",
    ):
        algo.train(ENV, MLPQPolicy(ENV, key=jr.key(0)), 40, key=jr.key(1))


def test_box_actions_and_other_policies_are_rejected() -> None:
    pendulum = Pendulum()
    with pytest.raises(
        TypeError,
        match=r"DQN: the env's action_space must be Discrete, got action_space=Box",
    ):
        small_dqn().train(
            pendulum, MLPActorCriticPolicy(pendulum, key=jr.key(0)), 40, key=jr.key(1)
        )
    with pytest.raises(
        TypeError,
        match=r"DQN: policy must be an instance of AbstractQPolicy \(e.g. MLPQPolicy\), "
        r"got policy of type MLPActorCriticPolicy",
    ):
        small_dqn().train(
            ENV, MLPActorCriticPolicy(ENV, key=jr.key(0)), 40, key=jr.key(1)
        )


# ---------------------------------------------------------------- learning


def test_dqn_learns_cartpole() -> None:
    # 10,000 steps, learning from step 1,000, the target averaged after every
    # gradient step (faster early on), the rest DQN()'s defaults: policy and
    # training keys (i, i + 1) for i = 0..3 measured 194, 231, 200 and 174; a
    # random policy keeps the pole up for about 22 steps.
    algo = DQN(learning_starts=1_000, buffer_size=10_000, target_update_interval=1)
    policy = MLPQPolicy(ENV, key=jr.key(0))
    trained = algo.learn(ENV, policy, 10_000, key=jr.key(1))
    result = evaluate_policy(trained, ENV, key=jr.key(2), num_episodes=10)
    assert float(result.mean_return) > 100
