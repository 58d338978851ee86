"""SAC: its losses against hand computation, one update, acting, the
contract every algorithm keeps (determinism, seeds under vmap, per-seed stop),
errors before compiling, and a short learning check on Pendulum."""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jaxtyping import Array, Int, PRNGKeyArray

from lerax.algorithm import SAC, SACState
from lerax.env import CartPole
from lerax.evaluation import evaluate_policy
from lerax.policy import MLPActorCriticPolicy, MLPDeterministicPolicy, MLPSACPolicy

from .offpolicy_helpers import (
    PENDULUM,
    StopAt,
    assert_polyak,
    assert_same_arrays,
    check_same_key_same_parameters,
    check_vmapped_seeds,
    leaves,
    one_transition_rollout,
    pendulum_batch,
)

ENV = PENDULUM
SMALL = {"buffer_size": 64, "learning_starts": 16, "batch_size": 8}


def tiny_policy(seed: int = 0) -> MLPSACPolicy[Array]:
    return MLPSACPolicy(ENV, key=jr.key(seed), hidden_sizes=(16, 16))


def test_critic_target_matches_hand_computation() -> None:
    algo = SAC(gamma=0.9)
    policy = tiny_policy(0)
    target_critic = tiny_policy(1).critic  # not the policy's critic
    batch = pendulum_batch()
    alpha = jnp.asarray(0.3, jnp.float32)
    key = jr.key(5)
    got = np.asarray(algo.critic_target(policy, target_critic, alpha, batch, key=key))

    keys = jr.split(key, 4)
    expected = []
    for i in range(4):
        s_next = batch.next_observations[i]
        action, log_prob = policy.action_and_log_prob(s_next, key=keys[i])
        q1, q2 = target_critic(s_next, policy.unscale_action(action))
        soft = min(float(q1), float(q2)) - 0.3 * float(log_prob)
        done = bool(batch.terminated[i])
        expected.append(float(batch.rewards[i]) + (0.0 if done else 0.9 * soft))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    # Terminated: the reward alone; truncated: bootstraps like any other step.
    assert got[1] == np.float32(-2.5)
    assert got[2] != np.float32(-0.5)


def test_actor_and_critic_losses_match_hand_computation() -> None:
    algo = SAC()
    policy = tiny_policy(0)
    batch = pendulum_batch()
    alpha = jnp.asarray(0.2, jnp.float32)
    key = jr.key(3)
    loss, log_probs = algo.actor_loss(policy, alpha, batch.observations, key=key)

    keys = jr.split(key, 4)
    terms, expected_log_probs = [], []
    for i in range(4):
        s = batch.observations[i]
        action, log_prob = policy.action_and_log_prob(s, key=keys[i])
        q1, q2 = policy.q_values(s, action)
        terms.append(0.2 * float(log_prob) - min(float(q1), float(q2)))
        expected_log_probs.append(float(log_prob))
    np.testing.assert_allclose(float(loss), np.mean(terms), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(log_probs, expected_log_probs, rtol=1e-5, atol=1e-6)

    target = jnp.array([1.0, -2.0, 0.5, 3.0])
    q = np.array(
        [policy.q_values(batch.observations[i], batch.actions[i]) for i in range(4)]
    )
    expected = 0.5 * (
        np.mean((q[:, 0] - target) ** 2) + np.mean((q[:, 1] - target) ** 2)
    )
    got = algo.critic_loss(policy, batch, target)
    np.testing.assert_allclose(float(got), expected, rtol=1e-5, atol=1e-6)


def test_alpha_loss_matches_hand_computation_without_gradient_to_log_probs() -> None:
    algo = SAC()
    log_alpha = jnp.asarray(np.log(0.5), jnp.float32)
    log_probs = jnp.array([0.3, -1.2, 0.8, -0.1])
    target_entropy = jnp.asarray(-1.0, jnp.float32)
    value, (g_alpha, g_log_probs) = jax.value_and_grad(algo.alpha_loss, argnums=(0, 1))(
        log_alpha, log_probs, target_entropy
    )
    lp = np.array([0.3, -1.2, 0.8, -0.1])
    np.testing.assert_allclose(
        float(value), -np.mean(np.log(0.5) * (lp - 1.0)), rtol=1e-6
    )
    np.testing.assert_allclose(float(g_alpha), -np.mean(lp - 1.0), rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(g_log_probs), np.zeros(4))


# One update program serves the tests below (learning_starts is static).
UPDATE_SAC = SAC(buffer_size=8, learning_starts=3, batch_size=4, tau=0.25)
update_sac = eqx.filter_jit(UPDATE_SAC.update)


def test_one_update_fills_the_buffer_averages_the_target_and_tunes_alpha() -> None:
    policy = tiny_policy(0)
    state = UPDATE_SAC.init_state(ENV, policy, 10, key=jr.key(0))
    # The rollout's step is the run's third: learning starts.
    new_policy, new_state, log = update_sac(
        policy, state, one_transition_rollout(2), key=jr.key(1), need_log=True
    )
    assert int(new_state.buffer.size) == 1
    np.testing.assert_array_equal(new_state.buffer.actions[0], [1.5])
    # Polyak: the target critic (a copy of the old critic) moved a quarter of
    # the way to the updated critic.
    for new, old in zip(leaves(new_policy.critic), leaves(policy.critic), strict=True):
        assert not np.array_equal(new, old)
    assert_polyak(new_state.target_critic, new_policy.critic, policy.critic, 0.25)
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(leaves(new_policy.actor), leaves(policy.actor), strict=True)
    )
    # Adam's first step on log_alpha (from 0) is -lr * sign(grad), with
    # grad = -mean(log_pi + target_entropy) = entropy - (-1).
    grad = float(log["entropy"]) + 1.0
    np.testing.assert_allclose(
        float(new_state.log_alpha), -1e-2 * np.sign(grad), rtol=1e-4
    )
    np.testing.assert_allclose(float(log["alpha"]), np.exp(float(new_state.log_alpha)))
    assert float(log["alpha_loss"]) == 0.0  # log_alpha was 0 at the step
    assert float(log["critic_loss"]) > 0.0
    for name in ("actor", "critic", "alpha"):
        np.testing.assert_allclose(float(log[f"learning_rate/{name}"]), 1e-2, rtol=1e-6)
    assert set(log) == set(UPDATE_SAC.initial_training_log())


def test_no_update_before_learning_starts() -> None:
    policy = tiny_policy(0)
    state = UPDATE_SAC.init_state(ENV, policy, 10, key=jr.key(0))
    # After this rollout the run has taken 2 steps (< 3): only the buffer grows.
    new_policy, new_state, log = update_sac(
        policy, state, one_transition_rollout(1), key=jr.key(1), need_log=True
    )
    assert int(new_state.buffer.size) == 1
    assert_same_arrays(new_policy, policy)
    assert_same_arrays(new_state.target_critic, state.target_critic)
    assert float(new_state.log_alpha) == 0.0
    assert float(log["critic_loss"]) == 0.0 and float(log["alpha"]) == 1.0


def test_a_fixed_temperature_is_not_learned() -> None:
    algo = SAC(buffer_size=8, learning_starts=0, batch_size=4, ent_coef=0.1)
    assert algo.learn_ent_coef is False
    policy = tiny_policy(0)
    state = algo.init_state(ENV, policy, 10, key=jr.key(0))
    _, new_state, log = eqx.filter_jit(algo.update)(
        policy, state, one_transition_rollout(0), key=jr.key(1), need_log=True
    )
    np.testing.assert_allclose(float(new_state.log_alpha), np.log(0.1), rtol=1e-6)
    np.testing.assert_allclose(float(log["alpha"]), 0.1, rtol=1e-6)
    assert float(log["critic_loss"]) > 0.0
    assert "alpha_loss" not in log and "learning_rate/alpha" not in log
    assert set(log) == set(algo.initial_training_log())


def test_actions_lie_in_the_box_uniform_before_learning_starts_then_sampled() -> None:
    algo = SAC(**SMALL)
    policy = tiny_policy(0)
    # A wide policy: log_std at its upper clip, so most samples saturate tanh.
    policy = eqx.tree_at(lambda p: p.actor.log_std_head.bias, policy, jnp.array([5.0]))
    state = algo.init_state(ENV, policy, 100, key=jr.key(0))
    obs = jnp.array([0.6, 0.8, -1.0])
    keys = jr.split(jr.key(9), 2000)

    @eqx.filter_jit
    def act(t: Int[Array, ""]) -> Array:
        actions: Array = jax.vmap(
            lambda k: algo.act(policy, state, obs, timestep=t, key=k)[0]
        )(keys)
        return actions

    before = np.asarray(act(jnp.asarray(15, jnp.int32)))
    after = np.asarray(act(jnp.asarray(16, jnp.int32)))
    for actions in (before, after):
        assert actions.shape == (2000, 1)
        assert actions.min() >= -2.0 and actions.max() <= 2.0
    # Uniform on [-2, 2]: a quarter in each quarter of the box.
    counts = np.histogram(before, bins=4, range=(-2.0, 2.0))[0]
    np.testing.assert_allclose(counts / 2000, 0.25, atol=0.04)
    sampled = eqx.filter_jit(jax.vmap(lambda k: policy(obs, key=k)))(keys)
    # The same sample (up to float rounding: the two programs fuse differently).
    np.testing.assert_allclose(after, np.asarray(sampled), rtol=1e-6, atol=1e-6)
    assert np.mean(np.abs(after) > 1.9) > 0.5  # the policy's, not uniform
    assert algo.act(policy, state, obs, timestep=jnp.int32(0), key=keys[0])[1] == {}


STEPS = 40
SMALL_SAC = SAC(**SMALL)
TINY_POLICY = tiny_policy(0)


def train_small(key: PRNGKeyArray, stop: StopAt) -> Any:
    return SMALL_SAC.train(ENV, TINY_POLICY, STEPS, key=key, callback=stop)


def test_same_key_same_parameters_bitwise() -> None:
    check_same_key_same_parameters(train_small, STEPS)


def test_seeds_under_vmap_match_single_runs_and_a_stopped_seed_keeps_its_counters() -> (
    None
):
    batched, singles = check_vmapped_seeds(
        train_small,
        jr.split(jr.key(3), 3),
        [10**6, 25, 10**6],
        iterations=[STEPS, 25, STEPS],
        timesteps=[STEPS, 25, STEPS],
    )
    for i, single in enumerate(singles):
        state_b, state_s = batched.algorithm_state, single.algorithm_state
        assert isinstance(state_s, SACState)
        np.testing.assert_array_equal(state_b.buffer.size[i], state_s.buffer.size)
        np.testing.assert_allclose(
            state_b.log_alpha[i], state_s.log_alpha, rtol=1e-5, atol=1e-6
        )


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"buffer_size": 100, "learning_starts": 101},
            ValueError,
            r"SAC: learning_starts=101 is larger than buffer_size=100",
        ),
        (
            {"buffer_size": 100, "learning_starts": 10, "batch_size": 101},
            ValueError,
            r"SAC: batch_size=101 is larger than buffer_size=100",
        ),
        (
            {
                "buffer_size": 100,
                "learning_starts": 10,
                "batch_size": 10,
                "num_envs": 11,
                "num_steps": 10,
            },
            ValueError,
            r"SAC: one iteration adds num_envs \* num_steps = 110 transitions, more "
            r"than buffer_size=100",
        ),
        (
            {"learning_starts": -1},
            ValueError,
            r"learning_starts must be a non-negative int, got learning_starts=-1",
        ),
        (
            {"batch_size": 0},
            ValueError,
            r"SAC: batch_size must be a positive int, got batch_size=0",
        ),
        (
            {"ent_coef": "automatic"},
            ValueError,
            r"SAC: ent_coef must be \"auto\" or a number, got ent_coef='automatic'",
        ),
        (
            {"ent_coef": -0.1},
            ValueError,
            r"SAC: ent_coef must be in \[0, inf\), got ent_coef=-0.1",
        ),
        (
            {"target_entropy": float("inf")},
            ValueError,
            r"target_entropy must be in \(-inf, inf\)",
        ),
        ({"tau": 1.5}, ValueError, r"SAC: tau must be in \(0, 1\], got tau=1.5"),
        ({"tau": 0.0}, ValueError, r"SAC: tau must be in \(0, 1\], got tau=0.0"),
        (
            {"learning_rate": float("nan")},
            ValueError,
            r"learning_rate must be in \(0, inf\)",
        ),
    ],
)
def test_bad_configuration(kwargs: dict[str, Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        SAC(**kwargs)


def test_bad_environment_policy_or_run_length_raises_before_compiling() -> None:
    cartpole = CartPole()
    with pytest.raises(
        TypeError, match=r"SAC: env.action_space must be a Box .*got Discrete"
    ):
        SAC().learn(
            cartpole,
            MLPActorCriticPolicy(cartpole, key=jr.key(0), hidden_sizes=()),
            512,
            key=jr.key(0),
        )
    with pytest.raises(
        TypeError,
        match=r"SAC: policy must be an instance of AbstractSACPolicy .*got policy of "
        r"type MLPDeterministicPolicy",
    ):
        SAC().learn(
            ENV,
            MLPDeterministicPolicy(ENV, key=jr.key(0), hidden_sizes=()),
            512,
            key=jr.key(0),
        )
    with pytest.raises(
        ValueError,
        match=r"SAC: learning_starts=256 is larger than the run: 200 iterations of 1 "
        r"steps = 200 environment steps",
    ):
        SAC().learn(ENV, tiny_policy(0), 200, key=jr.key(0))
    with pytest.raises(
        ValueError,
        match=r"SAC: batch_size=256 is larger than the run: 200 iterations of 1 "
        r"steps = 200 environment steps",
    ):
        SAC(learning_starts=0).learn(ENV, tiny_policy(0), 200, key=jr.key(0))


def test_float_hyperparameters_are_float32_leaves_and_choices_are_static() -> None:
    algo = SAC()
    for name in SAC.hyperparameter_ranges:
        value = getattr(algo, name)
        assert value.dtype == jnp.float32 and value.shape == ()
    assert algo.learn_ent_coef is True and algo.auto_target_entropy is True
    assert float(algo.ent_coef) == 1.0  # the learned temperature starts at 1
    fixed = SAC(ent_coef=0.05, target_entropy=-3.0)
    assert fixed.learn_ent_coef is False and fixed.auto_target_entropy is False
    assert float(fixed.target_entropy) == -3.0
    assert algo.host_call_every == 256  # 2**16 / (1 + 256), rounded up


def test_sac_learns_pendulum() -> None:
    # Four seeds in one program, at least three of which learn: after 1,500
    # steps one seed's return depends on float rounding (guarded and
    # unguarded updates, which differ by an ulp, each left one of 8 seeds
    # below -400: -560 and -778), so one seed alone tests the rounding.
    policy = MLPSACPolicy(
        ENV, key=jr.key(0), hidden_sizes=(64, 64), activation=jax.nn.swish
    )
    keys = jnp.stack([jr.key(100 + i) for i in range(4)])
    trained = eqx.filter_jit(
        eqx.filter_vmap(lambda k: SAC().train(ENV, policy, 1500, key=k).policy)
    )(keys)
    evaluate = eqx.filter_jit(
        eqx.filter_vmap(
            lambda p: evaluate_policy(p, ENV, key=jr.key(7), num_episodes=10)
        )
    )
    before = eqx.filter_jit(evaluate_policy)(
        policy, ENV, key=jr.key(7), num_episodes=10
    )
    after = np.asarray(evaluate(trained).mean_return)
    # Measured: about -1200 before; after, -560, -238, -213 and -238.
    assert float(before.mean_return) < -900
    assert (after > -400).sum() >= 3, after
