"""PPO: GAE against a numpy loop, configuration errors, learning."""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from lerax.algorithm import (
    PPO,
    PPOBatch,
    Rollout,
    current_learning_rate,
    generalized_advantage_estimate,
    next_state_values,
)
from lerax.callback import HistoryCallback
from lerax.env import CartPole, Pendulum
from lerax.policy import MLPActorCriticPolicy


def gae_numpy(
    rewards: np.ndarray,
    values: np.ndarray,
    next_values: np.ndarray,
    terminated: np.ndarray,
    truncated: np.ndarray,
    gamma: float,
    lam: float,
) -> tuple[np.ndarray, np.ndarray]:
    steps = rewards.shape[0]
    adv = np.zeros_like(rewards)
    last = np.zeros_like(rewards[0])
    for t in reversed(range(steps)):
        bootstrap = np.where(terminated[t], 0.0, next_values[t])
        delta = rewards[t] + gamma * bootstrap - values[t]
        done = np.logical_or(terminated[t], truncated[t])
        last = delta + gamma * lam * np.where(done, 0.0, last)
        adv[t] = last
    return adv, adv + values


def test_gae_matches_numpy_with_terminations_and_truncations() -> None:
    rng = np.random.default_rng(0)
    shape = (50, 3)
    rewards = rng.normal(size=shape).astype(np.float32)
    values = rng.normal(size=shape).astype(np.float32)
    next_values = rng.normal(size=shape).astype(np.float32)
    terminated = rng.random(shape) < 0.1
    truncated = (rng.random(shape) < 0.1) & ~terminated
    adv, ret = generalized_advantage_estimate(
        jnp.asarray(rewards),
        jnp.asarray(values),
        jnp.asarray(next_values),
        jnp.asarray(terminated),
        jnp.asarray(truncated),
        gamma=0.99,
        gae_lambda=0.95,
    )
    adv_np, ret_np = gae_numpy(
        rewards, values, next_values, terminated, truncated, 0.99, 0.95
    )
    np.testing.assert_allclose(np.asarray(adv), adv_np, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(ret), ret_np, rtol=1e-5, atol=1e-5)


def test_gae_hand_computed_single_env() -> None:
    # r = 1 each step, V = 0 except V(final obs of the truncated step) = 10
    rewards = jnp.ones(3, jnp.float32)
    values = jnp.zeros(3, jnp.float32)
    next_values = jnp.array([0.0, 10.0, 0.0], jnp.float32)
    terminated = jnp.array([False, False, True])
    truncated = jnp.array([False, True, False])
    adv, _ = generalized_advantage_estimate(
        rewards, values, next_values, terminated, truncated, gamma=0.5, gae_lambda=1.0
    )
    # step 2 terminates: 1; step 1 truncates: 1 + 0.5 * 10 = 6; step 0: 1 + 0.5 * 6 = 4
    np.testing.assert_allclose(np.asarray(adv), [4.0, 6.0, 1.0])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_envs": 0}, "num_envs must be a positive int, got num_envs=0"),
        ({"num_minibatches": 3}, "num_minibatches=3 must divide"),
        ({"gamma": 1.5}, r"gamma must be in \[0, 1\], got gamma=1.5"),
        ({"clip_coef": 0.0}, r"clip_coef must be in \(0, inf\), got clip_coef=0.0"),
        (
            {"learning_rate": float("inf")},
            r"learning_rate must be in \(0, inf\), got learning_rate=inf",
        ),
        ({"vf_coef": float("nan")}, r"vf_coef must be in \[0, inf\)"),
    ],
)
def test_bad_configuration(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PPO(**kwargs)


def test_policy_for_another_env_is_rejected_before_training() -> None:
    policy = MLPActorCriticPolicy(env=Pendulum(), key=jr.key(0))
    with pytest.raises(ValueError, match="was built for observation_space"):
        PPO().train(CartPole(), policy, 2**12, key=jr.key(0))


def test_learning_rate_is_annealed_and_readable() -> None:
    algo = PPO(
        num_envs=2, num_steps=32, num_epochs=1, num_minibatches=1, learning_rate=1e-3
    )
    env = CartPole()
    policy = MLPActorCriticPolicy(env=env, key=jr.key(0))
    result = algo.train(env, policy, 4 * 64, key=jr.key(1))
    # 4 iterations x 1 update each, linear from 1e-3 to 0 over 4 updates: the
    # updates used 1e-3, 7.5e-4, 5e-4 and 2.5e-4; the state holds the last one
    assert float(
        current_learning_rate(result.algorithm_state.opt_state)
    ) == pytest.approx(2.5e-4)
    # ... and the training log reports the rate of the last update.
    # (a callback that reads the training log, so the update computes it)
    history = HistoryCallback(["train/learning_rate"])
    logged = algo.train(env, policy, 4 * 64, key=jr.key(1), callback=history)
    assert float(logged.train_state.training_log["learning_rate"]) == pytest.approx(
        2.5e-4
    )
    const = PPO(
        num_envs=2, num_steps=32, num_epochs=1, num_minibatches=1, anneal_lr=False
    )
    result = const.train(env, policy, 64, key=jr.key(1))
    assert float(current_learning_rate(result.algorithm_state.opt_state)) == (
        pytest.approx(const.learning_rate)
    )


def test_ppo_learns_cartpole() -> None:
    """A fixed seed: after 2**15 steps the deterministic policy clearly beats a
    random one (random play averages about 22 steps)."""
    env = CartPole()
    policy = MLPActorCriticPolicy(env=env, key=jr.key(0))
    result = PPO().train(env, policy, 2**15, key=jr.key(1))
    trained = result.policy

    def episode(key: jax.Array) -> jax.Array:
        state, obs = env.reset(key=key)

        def body(
            carry: tuple[Any, jax.Array, jax.Array, jax.Array], _: None
        ) -> tuple[tuple[Any, jax.Array, jax.Array, jax.Array], None]:
            state, obs, ret, done = carry
            ts = env.step(state, trained(obs), key=key)
            ret = ret + jnp.where(done, 0.0, ts.reward)
            return (ts.state, ts.observation, ret, done | ts.done), None

        init = (state, obs, jnp.zeros((), jnp.float32), jnp.array(False))
        (_, _, ret, _), _ = jax.lax.scan(body, init, None, length=500)
        return ret

    returns = jax.jit(jax.vmap(episode))(jr.split(jr.key(2), 10))
    assert float(returns.mean()) > 150.0
    assert int(result.timesteps) == 2**15


def test_loss_terms_match_hand_computation() -> None:
    env = CartPole()
    policy = MLPActorCriticPolicy(env=env, key=jr.key(3))
    rng = np.random.default_rng(1)
    n = 16
    obs = rng.normal(size=(n, 4)).astype(np.float32)
    actions = rng.integers(0, 2, size=n).astype(np.int32)
    evaluated = jax.vmap(policy.evaluate_action)(jnp.asarray(obs), jnp.asarray(actions))
    new_lp, entropy, values = (np.asarray(x, np.float64) for x in evaluated)
    # old log-probs spread so that some ratios are clipped on each side
    old_lp = new_lp + rng.uniform(-0.5, 0.5, size=n)
    adv = rng.normal(size=n)
    ret = rng.normal(size=n)
    algo = PPO(clip_coef=0.2, vf_coef=0.7, ent_coef=0.05, normalize_advantages=True)
    batch = PPOBatch(
        observations=jnp.asarray(obs),
        actions=jnp.asarray(actions),
        log_probs=jnp.asarray(old_lp, jnp.float32),
        advantages=jnp.asarray(adv, jnp.float32),
        returns=jnp.asarray(ret, jnp.float32),
    )
    loss, stats = algo.loss(policy, batch)

    ratio = np.exp(new_lp - old_lp)
    a = (adv - adv.mean()) / (adv.std() + 1e-8)
    policy_loss = np.mean(np.maximum(-a * ratio, -a * np.clip(ratio, 0.8, 1.2)))
    value_loss = 0.5 * np.mean((values - ret) ** 2)
    expected = policy_loss + 0.7 * value_loss - 0.05 * entropy.mean()
    assert np.any(ratio > 1.2) and np.any(ratio < 0.8)
    np.testing.assert_allclose(float(stats["policy_loss"]), policy_loss, rtol=1e-4)
    np.testing.assert_allclose(float(stats["value_loss"]), value_loss, rtol=1e-4)
    np.testing.assert_allclose(float(stats["entropy"]), entropy.mean(), rtol=1e-5)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(
        float(stats["clip_fraction"]), np.mean(np.abs(ratio - 1) > 0.2), rtol=1e-6
    )
    np.testing.assert_allclose(
        float(stats["approx_kl"]), np.mean(ratio - 1 - np.log(ratio)), rtol=1e-3
    )


def test_train_vmaps_over_a_batch_of_policies() -> None:
    env = CartPole()
    algo = PPO(num_envs=2, num_steps=32, num_epochs=1, num_minibatches=1)
    keys = jr.split(jr.key(4), 3)
    policies = eqx.filter_vmap(lambda k: MLPActorCriticPolicy(env=env, key=k))(keys)
    out = eqx.filter_vmap(
        lambda p: algo.train(env, p, 128, key=jr.key(5)), in_axes=(eqx.if_array(0),)
    )(policies)
    np.testing.assert_array_equal(out.iterations, [2, 2, 2])
    for i in range(3):
        single_policy = MLPActorCriticPolicy(env=env, key=keys[i])
        single = algo.train(env, single_policy, 128, key=jr.key(5))
        got = jax.tree.leaves(eqx.filter(out.policy, eqx.is_array))
        want = jax.tree.leaves(eqx.filter(single.policy, eqx.is_array))
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(
                np.asarray(g)[i], np.asarray(w), rtol=1e-5, atol=1e-6
            )


def test_raw_uint32_key_trains_like_the_typed_key() -> None:
    env = CartPole()
    policy = MLPActorCriticPolicy(env=env, key=jr.key(0))
    algo = PPO(num_envs=2, num_steps=16, num_epochs=1, num_minibatches=1)
    raw = jr.PRNGKey(7)
    a = algo.train(env, policy, 64, key=raw)
    b = algo.train(env, policy, 64, key=jr.wrap_key_data(raw))
    assert int(a.iterations) == 2
    for x, y in zip(
        jax.tree.leaves(eqx.filter(a.policy, eqx.is_array)),
        jax.tree.leaves(eqx.filter(b.policy, eqx.is_array)),
        strict=True,
    ):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_infinite_max_grad_norm_skips_clipping_without_changing_updates() -> None:
    """``max_grad_norm=inf`` drops the clip (no norm is computed); the updates
    equal those of a finite bound that never triggers (up to float rounding:
    the two programs are compiled, and fused, differently)."""
    env = CartPole()
    policy = MLPActorCriticPolicy(env=env, key=jr.key(0))
    kwargs: dict[str, Any] = dict(
        num_envs=2, num_steps=16, num_epochs=2, num_minibatches=2
    )
    unclipped = PPO(max_grad_norm=float("inf"), **kwargs)
    never_triggers = PPO(max_grad_norm=1e30, **kwargs)
    a = unclipped.train(env, policy, 64, key=jr.key(3))
    b = never_triggers.train(env, policy, 64, key=jr.key(3))
    for x, y in zip(
        jax.tree.leaves(eqx.filter(a.policy, eqx.is_array)),
        jax.tree.leaves(eqx.filter(b.policy, eqx.is_array)),
        strict=True,
    ):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6)
    # Same optimizer-state structure either way (the clip has an empty state).
    assert str(jax.tree.structure(a.algorithm_state)) == str(
        jax.tree.structure(b.algorithm_state)
    )


def synthetic_rollout(algo: PPO, key: jax.Array) -> Rollout:
    """A CartPole-shaped rollout with random values, a termination and a
    truncation."""
    t, n = algo.num_steps, algo.num_envs
    k = jr.split(key, 5)
    terminated = jnp.zeros((t, n), bool).at[3, 0].set(True)
    truncated = jnp.zeros((t, n), bool).at[9, 1].set(True)
    return Rollout(
        observations=jr.normal(k[0], (t, n, 4)) * 0.1,
        actions=jr.bernoulli(k[1], 0.5, (t, n)).astype(jnp.int32),
        rewards=jnp.ones((t, n)),
        terminated=terminated,
        truncated=truncated,
        next_observations=jr.normal(k[2], (t, n, 4)) * 0.1,
        extras={
            "log_prob": jnp.full((t, n), jnp.log(0.5)) + 0.1 * jr.normal(k[3], (t, n)),
            "value": jr.normal(k[4], (t, n)),
        },
        last_observations=jnp.zeros((n, 4)),
        timesteps=jnp.array(0, jnp.int32),
    )


def test_without_need_log_updates_alike_and_the_log_is_the_last_epoch() -> None:
    """Three epochs: ``update`` with ``need_log`` (the last epoch a loop of its
    own, for the statistics) and without (one loop) give bitwise the same
    parameters and optimizer state; the statistics are the means over the
    last epoch's minibatches, recomputed here step by step with ``PPO.loss``."""
    env = CartPole()
    policy = MLPActorCriticPolicy(env=env, key=jr.key(0))
    algo = PPO(num_envs=2, num_steps=16, num_epochs=3, num_minibatches=4)
    rollout = synthetic_rollout(algo, jr.key(1))
    optimizer = algo.optimizer(5)
    ppo_state = algo.init_state(env, policy, 5, key=jr.key(9))
    opt_state = ppo_state.opt_state
    key = jr.key(2)

    update = eqx.filter_jit(algo.update)
    with_log = update(policy, ppo_state, rollout, key=key, need_log=True)
    without_log = update(policy, ppo_state, rollout, key=key, need_log=False)
    assert without_log[2] == {}
    for x, y in zip(
        jax.tree.leaves(eqx.filter(with_log[:2], eqx.is_array)),
        jax.tree.leaves(eqx.filter(without_log[:2], eqx.is_array)),
        strict=True,
    ):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))

    # The reference: the same epochs and minibatches, one eager step at a time.
    values = rollout.extras["value"]
    adv, ret = generalized_advantage_estimate(
        rollout.rewards,
        values,
        next_state_values(policy, rollout, values),
        rollout.terminated,
        rollout.truncated,
        gamma=algo.gamma,
        gae_lambda=algo.gae_lambda,
    )
    batch = algo.num_envs * algo.num_steps
    data = [
        x.reshape((batch, *x.shape[2:]))
        for x in (
            rollout.observations,
            rollout.actions,
            rollout.extras["log_prob"],
            adv,
            ret,
        )
    ]
    params, static = eqx.partition(policy, eqx.is_inexact_array)
    flat, unravel = ravel_pytree(params)

    def loss(p: jax.Array, idx: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
        mb = PPOBatch(*(x[idx] for x in data))
        return algo.loss(eqx.combine(unravel(p), static), mb)

    state = opt_state
    last_epoch: list[dict[str, jax.Array]] = []
    for e, k in enumerate(jr.split(key, algo.num_epochs)):
        perm = jr.permutation(k, batch).reshape(algo.num_minibatches, -1)
        for idx in perm:
            (_, stats), grads = jax.value_and_grad(loss, has_aux=True)(flat, idx)
            with jax.numpy_dtype_promotion("standard"):
                updates, state = optimizer.update(grads, state, flat)
            flat = flat + updates
            if e == algo.num_epochs - 1:
                last_epoch.append(stats)
    log = with_log[2]
    for name in ("loss", "policy_loss", "value_loss", "entropy", "approx_kl"):
        want = np.mean([float(s[name]) for s in last_epoch])
        np.testing.assert_allclose(float(log[name]), want, rtol=1e-4, atol=1e-6)
    want_clip = np.mean([float(s["clip_fraction"]) for s in last_epoch])
    assert float(log["clip_fraction"]) == pytest.approx(want_clip, abs=1e-6)
    got = jax.tree.leaves(eqx.filter(with_log[0], eqx.is_array))
    want_params = jax.tree.leaves(unravel(flat))
    for g, w in zip(got, want_params, strict=True):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-4, atol=1e-6)
