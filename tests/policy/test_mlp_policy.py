"""MLPActorCriticPolicy: shapes, consistency, init, reference forward pass, jit/vmap."""

import math
import subprocess
import sys
from collections.abc import Sequence
from typing import Protocol, cast, final

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jaxtyping import Array, Bool, Float, PRNGKeyArray, Shaped

from lerax.policy import MLPActorCriticPolicy
from lerax.space import AbstractSpace, Box, Discrete

Policy = MLPActorCriticPolicy[Shaped[Array, "..."]]
Obs = Float[Array, " 4"]


@final
class _Spaces(eqx.Module):
    """A stand-in environment: just the two spaces a policy is built from."""

    observation_space: AbstractSpace[Shaped[Array, "..."]]
    action_space: AbstractSpace[Shaped[Array, "..."]]


@final
class _Bits(AbstractSpace[Bool[Array, " 2"]]):
    """Two independent bits: a space the MLP policy does not support."""

    @property
    def shape(self) -> tuple[int, ...]:
        return (2,)

    @property
    def dtype(self) -> np.dtype[np.generic]:
        return np.dtype(np.bool_)

    @property
    def flat_size(self) -> int:
        return 2

    def sample(self, *, key: PRNGKeyArray) -> Bool[Array, " 2"]:
        return jr.bernoulli(key, 0.5, (2,))

    def contains(self, x: object) -> Bool[Array, ""]:
        ok = isinstance(x, jax.Array) and x.shape == (2,) and x.dtype == jnp.bool_
        return jnp.array(ok)

    def flatten(self, x: Bool[Array, " 2"]) -> Float[Array, " size"]:
        return x.astype(jnp.float32)

    def unflatten(self, v: Float[Array, " size"]) -> Bool[Array, " 2"]:
        return v > 0.5


class _Layer(Protocol):
    @property
    def weight(self) -> Float[Array, "i o"]: ...

    @property
    def bias(self) -> Float[Array, " o"]: ...


def _index(policies: Policy, i: int) -> Policy:
    """The ``i``-th policy of a batch built with ``filter_vmap``."""

    def take(x: Array) -> Array:
        return x[i]

    return cast(Policy, jax.tree.map(take, policies))


OBS_SPACE = Box(-jnp.inf, jnp.inf, (4,))


def make_env(
    action_space: AbstractSpace[Shaped[Array, "..."]],
    observation_space: AbstractSpace[Shaped[Array, "..."]] = OBS_SPACE,
) -> _Spaces:
    return _Spaces(observation_space, action_space)


def _obs(seed: int, batch: tuple[int, ...] = ()) -> Float[Array, "..."]:
    return jr.normal(jr.key(seed), (*batch, 4))


def _np_forward(policy: Policy, obs: np.ndarray) -> tuple[np.ndarray, float]:
    """The policy's head outputs and value, computed in float64 numpy."""

    def torso(layers: tuple[tuple[np.ndarray, np.ndarray], ...]) -> np.ndarray:
        x = obs.astype(np.float64)
        for w, b in layers:
            x = np.tanh(w @ x + b)
        return x

    def params(layers: Sequence[_Layer]) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
        return tuple(
            (np.asarray(layer.weight, np.float64).T, np.asarray(layer.bias, np.float64))
            for layer in layers
        )

    actor = torso(params(policy.actor_torso.layers))
    critic_torso = policy.critic_torso
    critic = actor if critic_torso is None else torso(params(critic_torso.layers))
    # Weights are stored (in, out); the math below uses (out, in).
    w_pi = np.asarray(policy.action_head.weight, np.float64).T
    w_v = np.asarray(policy.value_head.weight, np.float64).T
    out = w_pi @ actor + np.asarray(policy.action_head.bias, np.float64)
    value = w_v @ critic + np.asarray(policy.value_head.bias, np.float64)
    return out, float(value[0])


def _log_softmax(x: np.ndarray) -> np.ndarray:
    m = float(np.max(x))
    return x - (m + math.log(float(np.sum(np.exp(x - m)))))


@pytest.mark.parametrize("shared", [False, True])
def test_discrete_matches_numpy_reference(shared: bool) -> None:
    policy = MLPActorCriticPolicy(make_env(Discrete(3)), key=jr.key(0), shared=shared)
    obs = _obs(1)
    logits, value = _np_forward(policy, np.asarray(obs))
    logp = _log_softmax(logits)

    np.testing.assert_allclose(float(policy.value(obs)), value, rtol=1e-5, atol=1e-6)
    log_probs: list[float] = []
    for a in range(3):
        lp, ent, v = policy.evaluate_action(obs, jnp.array(a, jnp.int32))
        assert lp.shape == ent.shape == v.shape == ()
        assert lp.dtype == ent.dtype == v.dtype == jnp.float32
        np.testing.assert_allclose(float(lp), logp[a], atol=1e-6)
        np.testing.assert_allclose(
            float(ent), -float(np.sum(np.exp(logp) * logp)), rtol=1e-5
        )
        np.testing.assert_allclose(float(v), value, rtol=1e-5, atol=1e-6)
        log_probs.append(float(lp))
    np.testing.assert_allclose(sum(math.exp(x) for x in log_probs), 1.0, atol=1e-6)

    mode = policy(obs)
    assert mode.shape == () and mode.dtype == jnp.int32
    assert int(mode) == int(np.argmax(logits))

    action, lp, v = policy.action_and_value(obs, key=jr.key(2))
    assert action.shape == () and action.dtype == jnp.int32
    assert 0 <= int(action) < 3
    lp2, _, v2 = policy.evaluate_action(obs, action)
    assert float(lp) == float(lp2)
    assert float(v) == float(v2) == float(policy.value(obs))
    # __call__ with a key samples the same action as action_and_value.
    assert int(policy(obs, key=jr.key(2))) == int(action)


def test_discrete_start_offsets_actions() -> None:
    policy = MLPActorCriticPolicy(make_env(Discrete(3, start=5)), key=jr.key(0))
    obs = _obs(3)

    def sample(key: PRNGKeyArray) -> Shaped[Array, "..."]:
        return policy(obs, key=key)

    actions: Array = jax.vmap(sample)(jr.split(jr.key(4), 200))
    assert set(np.unique(np.asarray(actions)).tolist()) == {5, 6, 7}
    logits, _ = _np_forward(policy, np.asarray(obs))
    assert int(policy(obs)) == 5 + int(np.argmax(logits))
    lp, _, _ = policy.evaluate_action(obs, jnp.array(6, jnp.int32))
    np.testing.assert_allclose(float(lp), _log_softmax(logits)[1], atol=1e-6)


@pytest.mark.parametrize("shape", [(1,), (), (2, 3)])
def test_box_matches_numpy_reference(shape: tuple[int, ...]) -> None:
    space = Box(-1.0, 1.0, shape)
    policy = MLPActorCriticPolicy(make_env(space), key=jr.key(0), log_std_init=-0.5)
    n = space.flat_size
    log_std = policy.log_std
    assert log_std is not None
    np.testing.assert_array_equal(log_std, np.full(n, -0.5, np.float32))
    obs = _obs(5)
    mean, value = _np_forward(policy, np.asarray(obs))

    mode = policy(obs)
    assert mode.shape == shape and mode.dtype == jnp.float32
    np.testing.assert_allclose(np.ravel(mode), mean, rtol=1e-5, atol=1e-7)

    action, lp, v = policy.action_and_value(obs, key=jr.key(6))
    assert action.shape == shape and action.dtype == jnp.float32
    std = math.exp(-0.5)
    z = (np.ravel(np.asarray(action, np.float64)) - mean) / std
    expected = float(np.sum(-0.5 * z**2 - math.log(std) - 0.5 * math.log(2 * math.pi)))
    np.testing.assert_allclose(float(lp), expected, rtol=1e-5)
    np.testing.assert_allclose(float(v), value, rtol=1e-5, atol=1e-6)

    lp2, ent, v2 = policy.evaluate_action(obs, action)
    np.testing.assert_allclose(float(lp2), float(lp), rtol=1e-6)
    assert float(v2) == float(v) == float(policy.value(obs))
    entropy = n * (0.5 + 0.5 * math.log(2 * math.pi) - 0.5)
    np.testing.assert_allclose(float(ent), entropy, rtol=1e-6)
    # The density peaks at the deterministic action (the mode).
    peak, _, _ = policy.evaluate_action(obs, mode)
    np.testing.assert_allclose(
        float(peak), n * (0.5 - 0.5 * math.log(2 * math.pi)), rtol=1e-5
    )


def test_box_actions_are_not_clipped() -> None:
    space = Box(-0.01, 0.01, (1,))
    policy = MLPActorCriticPolicy(make_env(space), key=jr.key(0), log_std_init=1.0)

    def sample(key: PRNGKeyArray) -> Shaped[Array, "..."]:
        return policy(_obs(7), key=key)

    actions: Array = jax.vmap(sample)(jr.split(jr.key(8), 100))
    assert float(jnp.max(jnp.abs(actions))) > 1.0


def test_initialisation_statistics() -> None:
    policy = MLPActorCriticPolicy(make_env(Discrete(2)), key=jr.key(0))
    assert policy.log_std is None
    critic_torso = policy.critic_torso
    assert critic_torso is not None
    for torso in (policy.actor_torso, critic_torso):
        # Stored (in, out); as (out, in) matrices they are (64, 4) and (64, 64).
        assert [layer.weight.shape for layer in torso.layers] == [(4, 64), (64, 64)]
        w1, w2 = (np.asarray(layer.weight, np.float64).T for layer in torso.layers)
        # (64, 4): orthonormal columns; (64, 64): orthogonal; gain sqrt(2).
        np.testing.assert_allclose(w1.T @ w1, 2.0 * np.eye(4), atol=1e-5)
        np.testing.assert_allclose(w2 @ w2.T, 2.0 * np.eye(64), atol=1e-5)
        for layer in torso.layers:
            np.testing.assert_array_equal(layer.bias, 0.0)
    w_pi = np.asarray(policy.action_head.weight, np.float64).T
    w_v = np.asarray(policy.value_head.weight, np.float64).T
    assert w_pi.shape == (2, 64) and w_v.shape == (1, 64)
    # (2, 64) and (1, 64): orthonormal rows with gains 0.01 and 1.
    np.testing.assert_allclose(w_pi @ w_pi.T, 1e-4 * np.eye(2), atol=1e-9)
    np.testing.assert_allclose(w_v @ w_v.T, np.eye(1), atol=1e-5)
    np.testing.assert_array_equal(policy.action_head.bias, 0.0)
    np.testing.assert_array_equal(policy.value_head.bias, 0.0)
    # The actor and the critic are initialised independently.
    assert not np.allclose(
        policy.actor_torso.layers[0].weight, critic_torso.layers[0].weight
    )
    # Small head weights: the initial policy is close to uniform.
    probs = [
        math.exp(float(policy.evaluate_action(_obs(9), jnp.array(a, jnp.int32))[0]))
        for a in range(2)
    ]
    np.testing.assert_allclose(probs, [0.5, 0.5], atol=0.02)


def test_hidden_sizes_activation_and_shared() -> None:
    env = make_env(Discrete(2))
    policy = MLPActorCriticPolicy(
        env, key=jr.key(0), hidden_sizes=(8,), activation=jax.nn.relu, shared=True
    )
    assert policy.critic_torso is None and policy.shared
    assert [layer.weight.shape for layer in policy.actor_torso.layers] == [(4, 8)]
    assert policy.action_head.weight.shape == (8, 2)
    assert policy.value_head.weight.shape == (8, 1)
    obs = _obs(10)
    w, b = policy.actor_torso.layers[0].weight, policy.actor_torso.layers[0].bias
    features = np.maximum(np.asarray(obs @ w + b, np.float64), 0.0)
    value = features @ np.asarray(policy.value_head.weight, np.float64)
    np.testing.assert_allclose(float(policy.value(obs)), value[0], rtol=1e-5, atol=1e-6)
    # No hidden layers: linear heads on the flat observation.
    linear = MLPActorCriticPolicy(env, key=jr.key(0), hidden_sizes=())
    assert linear.actor_torso.layers == ()
    assert linear.action_head.weight.shape == (4, 2)
    logits = np.asarray(obs, np.float64) @ np.asarray(
        linear.action_head.weight, np.float64
    )
    lp, _, _ = linear.evaluate_action(obs, jnp.array(0, jnp.int32))
    np.testing.assert_allclose(float(lp), _log_softmax(logits)[0], atol=1e-6)


def test_discrete_observations_are_one_hot() -> None:
    env = _Spaces(Discrete(5), Discrete(2))
    policy = MLPActorCriticPolicy(env, key=jr.key(0), hidden_sizes=(3,))
    critic = policy.critic_torso
    assert critic is not None
    assert critic.layers[0].weight.shape == (5, 3)
    # Observation 2 flattens to the one-hot e_2, which selects row 2.
    features = np.tanh(np.asarray(critic.layers[0].weight, np.float64)[2])
    value = features @ np.asarray(policy.value_head.weight, np.float64)
    np.testing.assert_allclose(
        float(policy.value(jnp.array(2, jnp.int32))), value[0], rtol=1e-5, atol=1e-6
    )


def test_configuration_errors() -> None:
    with pytest.raises(TypeError, match="_Bits"):
        MLPActorCriticPolicy(make_env(_Bits()), key=jr.key(0))
    int_box = Box(0, 3, (2,), dtype=np.int32)
    with pytest.raises(TypeError, match="floating dtype"):
        MLPActorCriticPolicy(make_env(int_box), key=jr.key(0))
    with pytest.raises(ValueError, match="hidden_sizes"):
        MLPActorCriticPolicy(make_env(Discrete(2)), key=jr.key(0), hidden_sizes=(8, 0))
    with pytest.raises(ValueError, match="log_std_init"):
        MLPActorCriticPolicy(
            make_env(Discrete(2)), key=jr.key(0), log_std_init=math.nan
        )


def test_wrong_observation_shape_raises() -> None:
    policy = MLPActorCriticPolicy(make_env(Discrete(2)), key=jr.key(0))
    with pytest.raises(ValueError, match=r"shape \(3,\), expected \(4,\)"):
        policy.value(jnp.zeros(3, jnp.float32))
    with pytest.raises(ValueError, match="flattens to shape"):
        eqx.filter_jit(policy.value)(jnp.zeros((2, 4), jnp.float32))


def test_jit_matches_eager_and_does_not_retrace() -> None:
    env = make_env(Box(-1.0, 1.0, (1,)))

    @eqx.filter_jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def step(
        policy: Policy, obs: Obs, key: PRNGKeyArray
    ) -> tuple[
        Shaped[Array, "..."],
        Float[Array, ""],
        Float[Array, ""],
        tuple[Float[Array, ""], Float[Array, ""], Float[Array, ""]],
        Shaped[Array, "..."],
    ]:
        action, lp, v = policy.action_and_value(obs, key=key)
        return action, lp, v, policy.evaluate_action(obs, action), policy(obs)

    for seed in range(2):
        # A fresh policy (new weights) and observation: same trace.
        policy = MLPActorCriticPolicy(env, key=jr.key(seed))
        obs, key = _obs(seed), jr.key(100 + seed)
        jitted = step(policy, obs, key)
        action, lp, v = policy.action_and_value(obs, key=key)
        eager = (action, lp, v, policy.evaluate_action(obs, action), policy(obs))
        for j, e in zip(jax.tree.leaves(jitted), jax.tree.leaves(eager), strict=True):
            np.testing.assert_allclose(j, e, rtol=1e-5, atol=1e-6)


def _act(
    policy: Policy, obs: Obs, key: PRNGKeyArray
) -> tuple[Shaped[Array, "..."], Float[Array, ""], Float[Array, ""]]:
    return policy.action_and_value(obs, key=key)


def test_vmap_over_observations_matches_loop() -> None:
    policy = MLPActorCriticPolicy(make_env(Discrete(2)), key=jr.key(0))
    obs = _obs(11, (5,))
    keys = jr.split(jr.key(12), 5)
    actions, lps, values = jax.vmap(_act, in_axes=(None, 0, 0))(policy, obs, keys)
    assert actions.shape == lps.shape == values.shape == (5,)
    for i in range(5):
        a, lp, v = policy.action_and_value(obs[i], key=keys[i])
        assert int(actions[i]) == int(a)
        np.testing.assert_allclose(lps[i], lp, rtol=1e-5)
        np.testing.assert_allclose(values[i], v, rtol=1e-5, atol=1e-6)


def test_vmap_over_a_batch_of_policies() -> None:
    env = make_env(Box(-1.0, 1.0, (1,)))
    keys = jr.split(jr.key(13), 3)

    def build(key: PRNGKeyArray) -> Policy:
        return MLPActorCriticPolicy(env, key=key)

    policies = eqx.filter_vmap(build)(keys)
    log_std = policies.log_std
    assert log_std is not None and log_std.shape == (3, 1)
    assert policies.actor_torso.layers[0].weight.shape == (3, 4, 64)
    # Every leaf is an array, so plain jax.vmap maps over the batch of policies.
    assert all(isinstance(x, jax.Array) for x in jax.tree.leaves(policies))
    obs = _obs(14, (3,))
    act_keys = jr.split(jr.key(15), 3)
    actions, lps, values = jax.vmap(_act)(policies, obs, act_keys)
    assert actions.shape == (3, 1)
    for i in range(3):
        single = build(keys[i])
        sliced = _index(policies, i)
        for a, b in zip(jax.tree.leaves(single), jax.tree.leaves(sliced), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-6)
        a, lp, v = single.action_and_value(obs[i], key=act_keys[i])
        np.testing.assert_allclose(actions[i], a, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(lps[i], lp, rtol=1e-5)
        np.testing.assert_allclose(values[i], v, rtol=1e-5, atol=1e-6)


def test_gradients_reach_every_parameter() -> None:
    policy = MLPActorCriticPolicy(make_env(Box(-1.0, 1.0, (2,))), key=jr.key(0))
    obs = _obs(16)
    action = jnp.array([0.3, -0.2], jnp.float32)

    def loss(p: Policy) -> Float[Array, ""]:
        lp, ent, v = p.evaluate_action(obs, action)
        return lp + ent + v

    grads = cast(Policy, eqx.filter_grad(loss)(policy))
    leaves = jax.tree.leaves(grads)
    assert len(leaves) == len(jax.tree.leaves(policy))
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
    g_log_std = grads.log_std
    assert g_log_std is not None
    # d/dlog_std of (log_prob + entropy) = z^2 - 1 + 1 = z^2 per component.
    mean = np.ravel(np.asarray(policy(obs), np.float64))
    z = np.asarray(action, np.float64) - mean
    np.testing.assert_allclose(g_log_std, z**2, rtol=1e-4, atol=1e-7)


JIT_VMAP_BUILD = """
import equinox as eqx, jax, jax.random as jr, numpy as np
from lerax.env import CartPole
from lerax.policy import MLPActorCriticPolicy

env = CartPole()
build = eqx.filter_jit(eqx.filter_vmap(lambda k: MLPActorCriticPolicy(env, key=k)))
for i in range(100):
    keys = jr.split(jr.key(i), 8)
    batch = jax.block_until_ready(build(keys))
single = MLPActorCriticPolicy(env, key=keys[5])
for a, b in zip(
    jax.tree.leaves(eqx.filter(batch, eqx.is_array)),
    jax.tree.leaves(eqx.filter(single, eqx.is_array)),
    strict=True,
):
    np.testing.assert_allclose(np.asarray(a)[5], np.asarray(b), rtol=1e-5, atol=1e-7)
print("OK")
"""


def test_building_under_jit_and_vmap_repeatedly() -> None:
    # jaxlib 0.10.2 on CPU could hang in jit(vmap(...)) of two orthogonal
    # initialisations; the policy's single batched QR must not. A subprocess
    # turns a hang into a failure instead of a stuck test run.
    out = subprocess.run(
        [sys.executable, "-c", JIT_VMAP_BUILD],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "OK"
