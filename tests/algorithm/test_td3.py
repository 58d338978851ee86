"""TD3: the smoothed target and the losses against hand computation, delayed
actor and target updates, acting, the contract every algorithm keeps
(determinism, seeds under vmap, per-seed stop), errors before compiling, and
a short learning check on Pendulum."""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jaxtyping import Array, Int, PRNGKeyArray

from lerax.algorithm import TD3, TD3State
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


def tiny_policy(seed: int = 0) -> MLPDeterministicPolicy[Array]:
    return MLPDeterministicPolicy(ENV, key=jr.key(seed), hidden_sizes=(16, 16))


def test_smoothed_target_matches_hand_computation_with_noise_clips() -> None:
    # Wide noise clipped at 0.3; a target actor pushed to the edge of the box
    # so that the smoothed action is clipped to [-1, 1] too.
    algo = TD3(gamma=0.9, target_noise=1.0, target_noise_clip=0.3)
    policy = tiny_policy(0)
    other = tiny_policy(1)
    edge = eqx.tree_at(lambda p: p.actor.mlp.head.bias, other, jnp.array([3.0]))
    target_critic = tiny_policy(2).critic
    batch = pendulum_batch()
    key = jr.key(5)
    got = np.asarray(
        algo.critic_target(policy, edge.actor, target_critic, batch, key=key)
    )

    noise = np.clip(1.0 * np.asarray(jr.normal(key, (4, 1))), -0.3, 0.3)
    assert np.any(np.abs(noise) == np.float32(0.3))  # the clip is active
    expected = []
    for i in range(4):
        s_next = batch.next_observations[i]
        mu = np.asarray(edge.unscale_action(edge(s_next)))
        assert mu[0] > 0.99
        smoothed = np.clip(mu + noise[i], -1.0, 1.0)
        q1, q2 = target_critic(s_next, jnp.asarray(smoothed, jnp.float32))
        done = bool(batch.terminated[i])
        bootstrap = 0.0 if done else 0.9 * min(float(q1), float(q2))
        expected.append(float(batch.rewards[i]) + bootstrap)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert got[1] == np.float32(-2.5)  # terminated: the reward alone
    assert got[2] != np.float32(-0.5)  # truncated: bootstraps


def test_actor_and_critic_losses_match_hand_computation() -> None:
    algo = TD3()
    policy = tiny_policy(0)
    batch = pendulum_batch()
    q1s = [
        float(policy.q_values(batch.observations[i], policy(batch.observations[i]))[0])
        for i in range(4)
    ]
    got = algo.actor_loss(policy, batch.observations)
    np.testing.assert_allclose(float(got), -np.mean(q1s), rtol=1e-5, atol=1e-6)

    target = jnp.array([1.0, -2.0, 0.5, 3.0])
    q = np.array(
        [policy.q_values(batch.observations[i], batch.actions[i]) for i in range(4)]
    )
    loss, q_value = algo.critic_loss(policy, batch, target)
    expected = np.mean((q[:, 0] - target) ** 2) + np.mean((q[:, 1] - target) ** 2)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(float(q_value), np.mean(q[:, 0]), rtol=1e-5)


UPDATE_TD3 = TD3(buffer_size=8, learning_starts=3, batch_size=4, tau=0.25)
update_td3 = eqx.filter_jit(UPDATE_TD3.update)


def test_actor_and_targets_update_every_policy_delay_critic_updates() -> None:
    policy = tiny_policy(0)
    state = UPDATE_TD3.init_state(ENV, policy, 10, key=jr.key(0))
    # Before learning_starts (2 steps < 3): only the buffer grows.
    p0, s0, log = update_td3(
        policy, state, one_transition_rollout(1), key=jr.key(1), need_log=True
    )
    assert_same_arrays(p0, policy)
    assert int(s0.buffer.size) == 1 and int(s0.critic_updates) == 0
    assert float(log["critic_loss"]) == 0.0

    # First critic update: not a delay step, the actor and targets stay.
    p1, s1, log1 = update_td3(
        p0, s0, one_transition_rollout(2), key=jr.key(2), need_log=True
    )
    assert int(s1.critic_updates) == 1
    assert not np.array_equal(leaves(p1.critic)[0], leaves(p0.critic)[0])
    assert_same_arrays(p1.actor, p0.actor)
    assert_same_arrays(s1.target_actor, s0.target_actor)
    assert_same_arrays(s1.target_critic, s0.target_critic)
    # No actor update yet: the log's actor loss is the state's, still 0.
    assert float(log1["actor_loss"]) == 0.0 == float(s1.actor_loss)

    # Second: the delay step. The actor moves; both targets move a quarter of
    # the way from their copies of the initial networks to the new networks.
    p2, s2, log2 = update_td3(
        p1, s1, one_transition_rollout(3), key=jr.key(3), need_log=True
    )
    assert int(s2.critic_updates) == 2
    for new, old in zip(leaves(p2.actor), leaves(p1.actor), strict=True):
        assert not np.array_equal(new, old)
    assert_polyak(s2.target_actor, p2.actor, policy.actor, 0.25)
    assert_polyak(s2.target_critic, p2.critic, policy.critic, 0.25)
    for name in ("actor", "critic"):
        np.testing.assert_allclose(
            float(log2[f"learning_rate/{name}"]), 1e-3, rtol=1e-6
        )
    assert set(log2) == set(UPDATE_TD3.initial_training_log())
    # The actor update's loss is logged and kept; the next step, which does
    # not update the actor, logs it again.
    assert float(log2["actor_loss"]) == float(s2.actor_loss) != 0.0
    _, s3, log3 = update_td3(
        p2, s2, one_transition_rollout(4), key=jr.key(4), need_log=True
    )
    assert int(s3.critic_updates) == 3
    assert float(log3["actor_loss"]) == float(s2.actor_loss) == float(s3.actor_loss)


def test_actions_lie_in_the_box_uniform_before_learning_starts_then_noisy() -> None:
    algo = TD3(**SMALL, exploration_noise=0.3)
    wide = TD3(**SMALL, exploration_noise=5.0)
    policy = tiny_policy(0)
    state = algo.init_state(ENV, policy, 100, key=jr.key(0))
    obs = jnp.array([0.6, 0.8, -1.0])
    keys = jr.split(jr.key(9), 2000)

    @eqx.filter_jit
    def act(a: TD3, t: Int[Array, ""]) -> Array:
        actions: Array = jax.vmap(
            lambda k: a.act(policy, state, obs, timestep=t, key=k)[0]
        )(keys)
        return actions

    before = np.asarray(act(algo, jnp.asarray(15, jnp.int32)))
    after = np.asarray(act(algo, jnp.asarray(16, jnp.int32)))
    very_noisy = np.asarray(act(wide, jnp.asarray(16, jnp.int32)))
    for actions in (before, after, very_noisy):
        assert actions.shape == (2000, 1)
        assert actions.min() >= -2.0 and actions.max() <= 2.0
    counts = np.histogram(before, bins=4, range=(-2.0, 2.0))[0]
    np.testing.assert_allclose(counts / 2000, 0.25, atol=0.04)
    # Noise in the normalized space, clipped there, then scaled onto [-2, 2].
    mu = float(policy.unscale_action(policy(obs))[0])
    noise = 0.3 * np.asarray(jax.vmap(lambda k: jr.normal(k, (1,)))(keys))
    expected = 2.0 * np.clip(mu + noise, -1.0, 1.0)
    np.testing.assert_allclose(after, expected, rtol=1e-5, atol=1e-6)
    assert np.mean(np.abs(very_noisy) == 2.0) > 0.5  # clipped at the bounds
    assert algo.act(policy, state, obs, timestep=jnp.int32(0), key=keys[0])[1] == {}


STEPS = 40
SMALL_TD3 = TD3(**SMALL)
TINY_POLICY = tiny_policy(0)


def train_small(key: PRNGKeyArray, stop: StopAt) -> Any:
    return SMALL_TD3.train(ENV, TINY_POLICY, STEPS, key=key, callback=stop)


def test_same_key_same_parameters_bitwise() -> None:
    a = check_same_key_same_parameters(train_small, STEPS)
    # 25 critic updates (iterations 16..40), 12 of them with the actor.
    assert int(a.algorithm_state.critic_updates) == 25


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
    np.testing.assert_array_equal(
        np.asarray(batched.algorithm_state.critic_updates), [25, 10, 25]
    )
    for i, single in enumerate(singles):
        state_b, state_s = batched.algorithm_state, single.algorithm_state
        assert isinstance(state_s, TD3State)
        for b, s in zip(
            leaves(state_b.target_actor), leaves(state_s.target_actor), strict=True
        ):
            np.testing.assert_allclose(b[i], s, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"buffer_size": 100, "learning_starts": 101},
            r"TD3: learning_starts=101 is larger than buffer_size=100",
        ),
        (
            {"buffer_size": 100, "learning_starts": 10, "batch_size": 101},
            r"TD3: batch_size=101 is larger than buffer_size=100",
        ),
        (
            {
                "buffer_size": 100,
                "learning_starts": 10,
                "num_envs": 101,
            },
            r"TD3: one iteration adds num_envs \* num_steps = 101 transitions, more "
            r"than buffer_size=100",
        ),
        ({"policy_delay": 0}, r"TD3: policy_delay must be a positive int"),
        (
            {"gradient_steps": 0},
            r"TD3: gradient_steps must be a positive int, got gradient_steps=0",
        ),
        (
            {"exploration_noise": -0.1},
            r"TD3: exploration_noise must be in \[0, inf\), got exploration_noise=-0.1",
        ),
        ({"target_noise_clip": float("nan")}, r"target_noise_clip must be in \[0"),
        ({"max_grad_norm": 0.0}, r"TD3: max_grad_norm must be in \(0, inf\]"),
        ({"gamma": 1.01}, r"TD3: gamma must be in \[0, 1\], got gamma=1.01"),
        ({"tau": 0.0}, r"TD3: tau must be in \(0, 1\], got tau=0.0"),
    ],
)
def test_bad_configuration(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TD3(**kwargs)


def test_bad_environment_policy_or_run_length_raises_before_compiling() -> None:
    cartpole = CartPole()
    with pytest.raises(
        TypeError, match=r"TD3: env.action_space must be a Box .*got Discrete"
    ):
        TD3().learn(
            cartpole,
            MLPActorCriticPolicy(cartpole, key=jr.key(0), hidden_sizes=()),
            2000,
            key=jr.key(0),
        )
    with pytest.raises(
        TypeError,
        match=r"TD3: policy must be an instance of AbstractTD3Policy .*got policy of "
        r"type MLPSACPolicy",
    ):
        TD3().learn(
            ENV, MLPSACPolicy(ENV, key=jr.key(0), hidden_sizes=()), 2000, key=jr.key(0)
        )
    with pytest.raises(
        ValueError,
        match=r"TD3: learning_starts=1000 is larger than the run: 999 iterations",
    ):
        TD3().learn(ENV, tiny_policy(0), 999, key=jr.key(0))
    with pytest.raises(
        ValueError,
        match=r"TD3: batch_size=100 is larger than the run: 50 iterations of 1 "
        r"steps = 50 environment steps",
    ):
        TD3(learning_starts=0).learn(ENV, tiny_policy(0), 50, key=jr.key(0))


def test_float_hyperparameters_are_float32_leaves_and_sizes_are_static() -> None:
    algo = TD3()
    for name in TD3.hyperparameter_ranges:
        value = getattr(algo, name)
        assert value.dtype == jnp.float32 and value.shape == ()
    assert algo.policy_delay == 2 and algo.learning_starts == 1000
    assert float(TD3(max_grad_norm=float("inf")).max_grad_norm) == float("inf")
    assert algo.host_call_every == 649  # 2**16 / (1 + 100), rounded up


def test_td3_learns_pendulum() -> None:
    policy = MLPDeterministicPolicy(
        ENV, key=jr.key(0), hidden_sizes=(64, 64), activation=jax.nn.swish
    )
    trained = TD3().learn(ENV, policy, 4000, key=jr.key(100))
    evaluate = eqx.filter_jit(evaluate_policy)
    before = evaluate(policy, ENV, key=jr.key(7), num_episodes=10)
    after = evaluate(trained, ENV, key=jr.key(7), num_episodes=10)
    # Measured: about -1300 before and -142 after.
    assert float(before.mean_return) < -900
    assert float(after.mean_return) > -400
