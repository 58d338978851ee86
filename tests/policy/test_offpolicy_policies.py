"""MLPQPolicy, MLPSACPolicy and MLPDeterministicPolicy: shapes, numpy references,
bounds, scaling, standalone critics, vmap, gradients and argument errors."""

import math
from collections.abc import Callable
from typing import Protocol, TypeVar, cast, final

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jaxtyping import Array, Float, Int, PRNGKeyArray, Shaped

from lerax.env import CartPole, Pendulum
from lerax.policy import (
    AbstractActorCriticPolicy,
    AbstractPolicy,
    AbstractQPolicy,
    AbstractSACPolicy,
    AbstractTD3Policy,
    AbstractTwinQCritic,
    MLPActorCriticPolicy,
    MLPDeterministicPolicy,
    MLPQPolicy,
    MLPSACPolicy,
)
from lerax.space import AbstractSpace, Box, Discrete

QPolicy = MLPQPolicy[Shaped[Array, "..."]]
SACPolicy = MLPSACPolicy[Shaped[Array, "..."]]
TD3Policy = MLPDeterministicPolicy[Shaped[Array, "..."]]
Obs = Float[Array, " 4"]
M = TypeVar("M")

OBS_SPACE = Box(-jnp.inf, jnp.inf, (4,))
# Asymmetric, unequal bounds of a non-flat shape: scaling must be per entry.
ACTION_BOX = Box(np.array([[-2.0], [0.1], [-0.5]]), np.array([[1.0], [0.7], [3.0]]))
SMALL = (16, 16)
# One discrete action space for the stand-in Q policies (one architecture, so
# one compilation of the initialisation).
Q_SPACE = Discrete(4, start=-2)


@final
class _Spaces(eqx.Module):
    """A stand-in environment: just the two spaces a policy is built from."""

    observation_space: AbstractSpace[Shaped[Array, "..."]]
    action_space: AbstractSpace[Shaped[Array, "..."]]


class _Layer(Protocol):
    @property
    def weight(self) -> Float[Array, "i o"]: ...

    @property
    def bias(self) -> Float[Array, " o"]: ...


def make_env(
    action_space: AbstractSpace[Shaped[Array, "..."]],
    observation_space: AbstractSpace[Shaped[Array, "..."]] = OBS_SPACE,
) -> _Spaces:
    return _Spaces(observation_space, action_space)


def _obs(seed: int, batch: tuple[int, ...] = ()) -> Float[Array, "..."]:
    return jr.normal(jr.key(seed), (*batch, 4))


def _np(x: Array) -> np.ndarray:
    return np.asarray(x, np.float64)


def _np_dense(layer: _Layer, x: np.ndarray) -> np.ndarray:
    # Weights are stored (in, out).
    return np.asarray(x @ _np(layer.weight) + _np(layer.bias), np.float64)


def _np_relu_mlp(layers: tuple[_Layer, ...], head: _Layer, x: np.ndarray) -> np.ndarray:
    for layer in layers:
        x = np.maximum(_np_dense(layer, x), 0.0)
    return _np_dense(head, x)


def _np_scale(space: Box, a: np.ndarray) -> np.ndarray:
    low = space.low.astype(np.float64).ravel()
    high = space.high.astype(np.float64).ravel()
    return (low + (a + 1.0) / 2.0 * (high - low)).reshape(space.shape)


def _np_squashed_log_prob(
    u: np.ndarray, mean: np.ndarray, log_std: np.ndarray
) -> float:
    """Normal log density of ``u`` minus ``sum(log(1 - tanh(u)^2))``, where
    ``1 - tanh(u)^2 = sech(u)^2 = (2 / (e^u + e^-u))^2``."""
    std = np.exp(log_std)
    normal = -0.5 * ((u - mean) / std) ** 2 - log_std - 0.5 * math.log(2 * math.pi)
    log_det = 2.0 * (math.log(2.0) - np.logaddexp(u, -u))
    return float(np.sum(normal) - np.sum(log_det))


def _index(tree: M, i: int) -> M:
    def take(x: Array) -> Array:
        return x[i]

    return cast(M, jax.tree.map(take, tree))


def _assert_trees_close(a: object, b: object) -> None:
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(leaves_a) == len(leaves_b)
    for x, y in zip(leaves_a, leaves_b, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------- kinds


def test_kinds_and_deterministic_action_default() -> None:
    cartpole, pendulum = CartPole(), Pendulum()
    q = MLPQPolicy(cartpole, key=jr.key(0), hidden_sizes=SMALL)
    sac = MLPSACPolicy(pendulum, key=jr.key(0), hidden_sizes=SMALL)
    td3 = MLPDeterministicPolicy(pendulum, key=jr.key(0), hidden_sizes=SMALL)
    ac = MLPActorCriticPolicy(cartpole, key=jr.key(0), hidden_sizes=SMALL)
    kinds = (AbstractQPolicy, AbstractSACPolicy, AbstractTD3Policy)
    pairs = ((q, AbstractQPolicy), (sac, AbstractSACPolicy), (td3, AbstractTD3Policy))
    for policy, kind in pairs:
        assert isinstance(policy, AbstractPolicy) and isinstance(policy, kind)
        assert [isinstance(policy, k) for k in kinds].count(True) == 1
    assert not isinstance(ac, kinds) and isinstance(ac, AbstractActorCriticPolicy)
    assert isinstance(sac.critic, AbstractTwinQCritic)
    assert isinstance(td3.critic, AbstractTwinQCritic)

    _, obs = cartpole.reset(key=jr.key(1))
    # The default deterministic action is policy(obs, key=None): the mode.
    assert int(ac.deterministic_action(obs)) == int(ac(obs))
    assert int(q.deterministic_action(obs)) == int(q(obs))
    _, obs = pendulum.reset(key=jr.key(1))
    np.testing.assert_array_equal(sac.deterministic_action(obs), sac(obs))
    np.testing.assert_array_equal(td3.deterministic_action(obs), td3(obs))


# ----------------------------------------------------------------- MLPQPolicy


@pytest.mark.parametrize("dueling", [False, True])
def test_q_policy_shapes_and_greedy_action(dueling: bool) -> None:
    env = CartPole()
    policy = MLPQPolicy(env, key=jr.key(0), hidden_sizes=SMALL, dueling=dueling)
    assert policy.dueling is dueling
    _, obs = env.reset(key=jr.key(1))
    q = policy.q_values(obs)
    assert q.shape == (2,) and q.dtype == jnp.float32
    action = policy(obs)
    assert action.shape == () and action.dtype == jnp.int32
    assert int(action) == int(jnp.argmax(q))
    # The key is ignored: acting is greedy.
    assert int(policy(obs, key=jr.key(2))) == int(action)


def test_q_policy_start_offsets_the_greedy_action() -> None:
    policy: QPolicy = MLPQPolicy(make_env(Q_SPACE), key=jr.key(3), hidden_sizes=SMALL)
    obs = _obs(4, (32,))
    q = jax.vmap(policy.q_values)(obs)
    actions = jax.vmap(policy)(obs)
    assert q.shape == (32, 4) and actions.dtype == jnp.int32
    np.testing.assert_array_equal(actions, np.argmax(np.asarray(q), axis=1) - 2)
    assert len(set(np.asarray(actions).tolist())) > 1  # not a constant policy


def test_q_values_match_numpy_reference() -> None:
    policy: QPolicy = MLPQPolicy(make_env(Q_SPACE), key=jr.key(5), hidden_sizes=SMALL)
    assert policy.value_head is None
    obs = _obs(6)
    expected = _np_relu_mlp(policy.torso.layers, policy.head, _np(obs))
    np.testing.assert_allclose(policy.q_values(obs), expected, rtol=1e-5, atol=1e-6)


def test_dueling_combines_value_and_mean_centred_advantages() -> None:
    policy: QPolicy = MLPQPolicy(
        make_env(Q_SPACE), key=jr.key(7), hidden_sizes=SMALL, dueling=True
    )
    value_head = policy.value_head
    assert value_head is not None
    # Non-zero biases, so that a wrong combination cannot cancel out.
    policy = eqx.tree_at(
        lambda p: (p.head.bias, p.value_head.bias),
        policy,
        (jnp.array([0.5, -1.0, 2.0, 0.25]), jnp.array([3.0])),
    )
    obs = _obs(8)
    features = policy.torso(obs)
    advantage = _np(policy.head(features))
    value = _np(value_head(features))[0] + 3.0  # the bias set above
    expected = value + advantage - advantage.mean()
    np.testing.assert_allclose(policy.q_values(obs), expected, rtol=1e-5, atol=1e-5)


def test_q_policy_initialisation() -> None:
    policy: QPolicy = MLPQPolicy(
        make_env(Q_SPACE), key=jr.key(9), hidden_sizes=SMALL, dueling=True
    )
    value_head = policy.value_head
    assert value_head is not None
    first, second = (_np(layer.weight) for layer in policy.torso.layers)
    # Orthogonal with gain sqrt(2): the (in, out) = (4, 16) weight has
    # orthonormal rows times sqrt(2), the (16, 16) one is orthogonal times it.
    np.testing.assert_allclose(first @ first.T, 2.0 * np.eye(4), atol=1e-5)
    np.testing.assert_allclose(second @ second.T, 2.0 * np.eye(16), atol=1e-5)
    head = _np(policy.head.weight)  # (16, 4): orthonormal columns, gain 1
    np.testing.assert_allclose(head.T @ head, np.eye(4), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(_np(value_head.weight)), 1.0, rtol=1e-5)
    for layer in (*policy.torso.layers, policy.head, value_head):
        assert not np.any(np.asarray(layer.bias))


# --------------------------------------------------------------- MLPSACPolicy


def _sac(seed: int = 0, space: Box = ACTION_BOX) -> SACPolicy:
    return MLPSACPolicy(make_env(space), key=jr.key(seed), hidden_sizes=SMALL)


def _with_actor_biases(policy: SACPolicy, mean: float, log_std: float) -> SACPolicy:
    """The policy with its mean and log_std head biases set (extreme means)."""
    size = policy.action_space.flat_size
    biases = (jnp.full((size,), mean), jnp.full((size,), log_std))
    return cast(
        SACPolicy,
        eqx.tree_at(
            lambda p: (p.actor.mean_head.bias, p.actor.log_std_head.bias),
            policy,
            biases,
        ),
    )


def test_sac_shapes_and_dtypes() -> None:
    policy = _sac()
    obs = _obs(10)
    action, log_prob = policy.action_and_log_prob(obs, key=jr.key(11))
    assert action.shape == (3, 1) and action.dtype == jnp.float32
    assert log_prob.shape == () and log_prob.dtype == jnp.float32
    np.testing.assert_array_equal(policy(obs, key=jr.key(11)), action)
    assert policy(obs).shape == (3, 1)
    q1, q2 = policy.q_values(obs, action)
    assert q1.shape == q2.shape == () and q1.dtype == q2.dtype == jnp.float32
    mean, log_std = policy.actor(obs)
    assert mean.shape == log_std.shape == (3,)


def test_sac_actor_matches_numpy_reference_and_clips_log_std() -> None:
    policy = MLPSACPolicy(
        make_env(ACTION_BOX),
        key=jr.key(12),
        hidden_sizes=SMALL,
        log_std_min=-3.0,
        log_std_max=0.5,
    )
    obs = _obs(13)
    actor = policy.actor
    mean, log_std = actor(obs)
    x = _np(obs)
    np.testing.assert_allclose(
        mean, _np_relu_mlp(actor.torso.layers, actor.mean_head, x), atol=1e-6
    )
    expected = np.clip(_np_relu_mlp(actor.torso.layers, actor.log_std_head, x), -3, 0.5)
    np.testing.assert_allclose(log_std, expected, atol=1e-6)
    _, high = _with_actor_biases(policy, 0.0, 100.0).actor(obs)
    _, low = _with_actor_biases(policy, 0.0, -100.0).actor(obs)
    np.testing.assert_array_equal(high, 0.5)
    np.testing.assert_array_equal(low, -3.0)


@pytest.mark.parametrize("mean_bias", [0.0, 4.0, -30.0])
def test_sac_log_prob_matches_numpy_reference(mean_bias: float) -> None:
    policy = _with_actor_biases(_sac(14), mean_bias, -0.5)
    for seed in range(4):
        obs, key = _obs(100 + seed), jr.key(200 + seed)
        action, log_prob = policy.action_and_log_prob(obs, key=key)
        mean, log_std = policy.actor(obs)
        # The documented draw: u = mean + exp(log_std) * normal(key, mean.shape).
        u = mean + jnp.exp(log_std) * jr.normal(key, mean.shape)
        u64 = _np(u)
        expected = _np_squashed_log_prob(u64, _np(mean), _np(log_std))
        assert math.isfinite(float(log_prob))
        np.testing.assert_allclose(float(log_prob), expected, rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(
            action, _np_scale(ACTION_BOX, np.tanh(u64)), rtol=1e-5, atol=1e-6
        )


def test_sac_actions_stay_in_bounds() -> None:
    base = _sac(15)
    obs = 10.0 * _obs(16, (64,))
    keys = jr.split(jr.key(17), 64)
    low, high = ACTION_BOX.low, ACTION_BOX.high
    for mean, log_std in ((0.0, 0.0), (1e4, 2.0), (-1e4, 2.0), (50.0, -20.0)):
        policy = _with_actor_biases(base, mean, log_std)

        def act(
            o: Obs, k: PRNGKeyArray, p: SACPolicy = policy
        ) -> tuple[Float[Array, "3 1"], Float[Array, ""]]:
            return p.action_and_log_prob(o, key=k)

        actions, log_probs = jax.vmap(act)(obs, keys)
        deterministic = jax.vmap(policy.deterministic_action)(obs)
        for a in (actions, deterministic):
            assert a.shape == (64, 3, 1)
            assert np.all((np.asarray(a) >= low) & (np.asarray(a) <= high))
            # The training loop's clip never changes a SAC action.
            np.testing.assert_array_equal(np.clip(a, low, high), a)
            assert bool(jax.vmap(ACTION_BOX.contains)(a).all())
        assert np.all(np.isfinite(np.asarray(log_probs)))
    # With extreme means the actions are the bounds themselves.
    saturated = _with_actor_biases(base, 1e4, 0.0)
    np.testing.assert_array_equal(saturated(obs[0], key=keys[0]), high)


def test_sac_deterministic_action_is_scaled_tanh_of_mean() -> None:
    policy = _with_actor_biases(_sac(18), 0.7, 0.0)
    obs = _obs(19)
    mean, _ = policy.actor(obs)
    expected = _np_scale(ACTION_BOX, np.tanh(_np(mean)))
    np.testing.assert_allclose(policy(obs), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        policy.deterministic_action(obs), expected, rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("kind", ["sac", "td3"])
def test_scale_and_unscale_round_trip(kind: str) -> None:
    env = make_env(ACTION_BOX)
    policy: SACPolicy | TD3Policy = (
        _sac(20)
        if kind == "sac"
        else MLPDeterministicPolicy(env, key=jr.key(20), hidden_sizes=SMALL)
    )
    normalized = jr.uniform(jr.key(21), (50, 3), minval=-1.0, maxval=1.0)
    actions = jax.vmap(policy.scale_action)(normalized)
    assert actions.shape == (50, 3, 1)
    expected = np.stack([_np_scale(ACTION_BOX, _np(n)) for n in normalized])
    np.testing.assert_allclose(actions, expected, rtol=1e-5, atol=1e-6)
    back = jax.vmap(policy.unscale_action)(actions)
    assert back.shape == (50, 3)
    np.testing.assert_allclose(back, normalized, atol=1e-5)
    # The corners map to the bounds exactly.
    np.testing.assert_array_equal(policy.scale_action(-jnp.ones(3)), ACTION_BOX.low)
    np.testing.assert_array_equal(policy.scale_action(jnp.ones(3)), ACTION_BOX.high)
    np.testing.assert_allclose(policy.unscale_action(jnp.asarray(ACTION_BOX.high)), 1.0)
    with pytest.raises(ValueError, match=r"normalized_action must have shape \(3,\)"):
        policy.scale_action(jnp.zeros(2))
    with pytest.raises(ValueError, match="must have 3 elements"):
        policy.unscale_action(jnp.zeros(4))


def test_scaling_huge_bounds_does_not_overflow() -> None:
    big = float(np.finfo(np.float32).max)
    policy = _sac(22, Box(-big, big, (3, 1)))
    corners = jnp.array([-1.0, 1.0, 0.0])
    action = policy.scale_action(corners)
    np.testing.assert_array_equal(action, [[-big], [big], [0.0]])
    np.testing.assert_allclose(policy.unscale_action(action), corners)


# ----------------------------------------------------- MLPDeterministicPolicy


def test_td3_actions_are_deterministic_and_in_bounds() -> None:
    env = make_env(ACTION_BOX)
    policy: TD3Policy = MLPDeterministicPolicy(env, key=jr.key(23), hidden_sizes=SMALL)
    obs = _obs(24)
    action = policy(obs)
    assert action.shape == (3, 1) and action.dtype == jnp.float32
    np.testing.assert_array_equal(policy(obs, key=jr.key(25)), action)
    mlp = policy.actor.mlp
    expected = _np_scale(
        ACTION_BOX, np.tanh(_np_relu_mlp(mlp.torso.layers, mlp.head, _np(obs)))
    )
    np.testing.assert_allclose(action, expected, rtol=1e-5, atol=1e-6)
    normalized = policy.actor(obs)
    assert normalized.shape == (3,)
    np.testing.assert_allclose(policy.unscale_action(action), normalized, atol=1e-6)

    low, high = ACTION_BOX.low, ACTION_BOX.high
    many = 10.0 * _obs(26, (64,))
    for bias in (0.0, 1e4, -1e4):
        extreme = eqx.tree_at(
            lambda p: p.actor.mlp.head.bias, policy, jnp.full(3, bias)
        )
        actions = np.asarray(jax.vmap(extreme)(many))
        assert np.all((actions >= low) & (actions <= high))
    np.testing.assert_array_equal(
        eqx.tree_at(lambda p: p.actor.mlp.head.bias, policy, jnp.full(3, 1e4))(obs),
        high,
    )


# -------------------------------------------------------------- twin critics


@pytest.mark.parametrize("kind", ["sac", "td3"])
def test_critic_on_its_own_equals_q_values(kind: str) -> None:
    env = Pendulum()
    policy: SACPolicy | TD3Policy = (
        MLPSACPolicy(env, key=jr.key(27), hidden_sizes=SMALL)
        if kind == "sac"
        else MLPDeterministicPolicy(env, key=jr.key(27), hidden_sizes=SMALL)
    )
    _, obs = env.reset(key=jr.key(28))
    action = jnp.array([1.5], jnp.float32)
    q1, q2 = policy.q_values(obs, action)
    flat = env.observation_space.flatten(obs)
    normalized = policy.unscale_action(action)
    np.testing.assert_allclose(normalized, [0.75])
    c1, c2 = policy.critic(flat, normalized)
    assert float(c1) == float(q1) and float(c2) == float(q2)
    # A critic kept apart from the policy (as a target critic) still works.
    target = jax.tree.map(lambda x: x, policy.critic)
    t1, _ = eqx.filter_jit(lambda c, o, a: c(o, a))(target, flat, normalized)
    np.testing.assert_allclose(t1, q1, rtol=1e-5)
    # Reference: two independent MLPs of concat(flat_obs, normalized_action).
    x = np.concatenate([_np(flat), _np(normalized)])
    critic = policy.critic
    for q, net in ((q1, critic.q1), (q2, critic.q2)):
        expected = _np_relu_mlp(net.torso.layers, net.head, x)[0]
        np.testing.assert_allclose(float(q), expected, rtol=1e-5, atol=1e-6)
    assert float(q1) != float(q2)  # independent initialisations


def test_linear_networks_without_hidden_layers() -> None:
    policy = MLPSACPolicy(make_env(ACTION_BOX), key=jr.key(30), hidden_sizes=())
    assert policy.actor.torso.layers == () and policy.critic.q2.torso.layers == ()
    obs, action = _obs(31), jnp.asarray(ACTION_BOX.low)
    x = np.concatenate([_np(obs), -np.ones(3)])
    q1, q2 = policy.q_values(obs, action)
    np.testing.assert_allclose(
        float(q1), _np_dense(policy.critic.q1.head, x)[0], rtol=1e-5
    )
    np.testing.assert_allclose(
        float(q2), _np_dense(policy.critic.q2.head, x)[0], rtol=1e-5
    )
    mean, _ = policy.actor(obs)
    np.testing.assert_allclose(
        mean, _np_dense(policy.actor.mean_head, _np(obs)), atol=1e-6
    )


# ----------------------------------------------------------- vmap and build


def test_vmap_over_observations_matches_per_item() -> None:
    obs = _obs(29, (5,))
    keys = jr.split(jr.key(30), 5)
    q_policy: QPolicy = MLPQPolicy(
        make_env(Q_SPACE), key=jr.key(31), hidden_sizes=SMALL, dueling=True
    )
    sac = _sac(32)
    td3: TD3Policy = MLPDeterministicPolicy(
        make_env(ACTION_BOX), key=jr.key(33), hidden_sizes=SMALL
    )

    def sac_step(
        o: Obs, k: PRNGKeyArray
    ) -> tuple[Float[Array, "3 1"], Float[Array, ""], Float[Array, ""]]:
        a, lp = sac.action_and_log_prob(o, key=k)
        return a, lp, sac.q_values(o, a)[0]

    def td3_step(o: Obs) -> tuple[Float[Array, "3 1"], Float[Array, ""]]:
        a = td3(o)
        return a, td3.q_values(o, a)[1]

    def q_step(o: Obs) -> tuple[Float[Array, " 3"], Int[Array, ""]]:
        return q_policy.q_values(o), q_policy(o)

    batched = (
        jax.vmap(sac_step)(obs, keys),
        jax.vmap(td3_step)(obs),
        jax.vmap(q_step)(obs),
    )
    jitted = (
        eqx.filter_jit(sac_step),
        eqx.filter_jit(td3_step),
        eqx.filter_jit(q_step),
    )
    for i in range(5):
        single = (jitted[0](obs[i], keys[i]), jitted[1](obs[i]), jitted[2](obs[i]))
        _assert_trees_close(_index(batched, i), single)


Builder = Callable[[PRNGKeyArray], eqx.Module]


@pytest.mark.parametrize("kind", ["q", "sac", "td3"])
def test_filter_vmap_over_keys_at_construction(kind: str) -> None:
    builders: dict[str, Builder] = {
        "q": lambda k: MLPQPolicy(CartPole(), key=k, hidden_sizes=SMALL, dueling=True),
        "sac": lambda k: MLPSACPolicy(Pendulum(), key=k, hidden_sizes=SMALL),
        "td3": lambda k: MLPDeterministicPolicy(Pendulum(), key=k, hidden_sizes=SMALL),
    }
    build = builders[kind]
    keys = jr.split(jr.key(34), 3)
    batch = eqx.filter_vmap(build)(keys)
    assert all(isinstance(x, jax.Array) for x in jax.tree.leaves(batch))
    obs = jr.normal(jr.key(35), (3, 4 if kind == "q" else 3))
    act_keys = jr.split(jr.key(36), 3)

    def act(
        p: AbstractPolicy[Shaped[Array, "..."], Shaped[Array, "..."]],
        o: Float[Array, " o"],
        k: PRNGKeyArray,
    ) -> Shaped[Array, "..."]:
        return p(o, key=k)

    actions = jax.vmap(act)(batch, obs, act_keys)
    for i in range(3):
        single = build(keys[i])
        _assert_trees_close(single, _index(batch, i))
        policy = cast(
            AbstractPolicy[Shaped[Array, "..."], Shaped[Array, "..."]], single
        )
        _assert_trees_close(actions[i], policy(obs[i], key=act_keys[i]))


def test_default_architectures() -> None:
    # Shapes only: eval_shape traces the construction without running it.
    key = jr.key(37)
    sac = eqx.filter_eval_shape(lambda k: MLPSACPolicy(Pendulum(), key=k), key)
    td3 = eqx.filter_eval_shape(
        lambda k: MLPDeterministicPolicy(Pendulum(), key=k), key
    )
    q = eqx.filter_eval_shape(lambda k: MLPQPolicy(CartPole(), key=k), key)
    assert [layer.weight.shape for layer in sac.actor.torso.layers] == [
        (3, 256),
        (256, 256),
    ]
    assert sac.actor.mean_head.weight.shape == (256, 1)
    assert [layer.weight.shape for layer in td3.critic.q2.torso.layers] == [
        (4, 256),
        (256, 256),
    ]
    assert td3.actor.mlp.head.weight.shape == (256, 1)
    assert [layer.weight.shape for layer in q.torso.layers] == [(4, 64), (64, 64)]
    assert q.head.weight.shape == (64, 2) and q.value_head is None
    assert sac.actor.log_std_min == -20.0 and sac.actor.log_std_max == 2.0
    assert sac.actor.torso.activation is jax.nn.relu


# ------------------------------------------------------------------ gradients


def test_sac_actor_loss_gradients_are_finite() -> None:
    obs = _obs(38, (8,))
    keys = jr.split(jr.key(39), 8)
    alpha = 0.2

    def actor_loss(policy: SACPolicy) -> Float[Array, ""]:
        def one(o: Obs, k: PRNGKeyArray) -> Float[Array, ""]:
            action, log_prob = policy.action_and_log_prob(o, key=k)
            q1, q2 = policy.q_values(o, action)
            return alpha * log_prob - jnp.minimum(q1, q2)

        return jnp.mean(jax.vmap(one)(obs, keys))

    grad = eqx.filter_jit(eqx.filter_grad(actor_loss))
    for mean, log_std in ((0.0, 0.0), (30.0, 2.0)):  # ordinary and saturated
        policy = _with_actor_biases(_sac(40), mean, log_std)
        grads = cast(SACPolicy, grad(policy))
        leaves = jax.tree.leaves(grads.actor)
        assert len(leaves) == len(jax.tree.leaves(policy.actor))
        assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
        assert any(bool(jnp.any(g != 0)) for g in leaves)
    # The log_std head is reached through the reparameterised sample and the
    # Gaussian term (when not clipped).
    policy = _sac(40)
    grads = cast(SACPolicy, grad(policy))
    assert bool(jnp.any(grads.actor.log_std_head.weight != 0))


def test_jit_matches_eager_and_does_not_retrace() -> None:
    @eqx.filter_jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def step(
        policy: SACPolicy, obs: Obs, key: PRNGKeyArray
    ) -> tuple[Float[Array, "3 1"], Float[Array, ""], Float[Array, "3 1"]]:
        action, log_prob = policy.action_and_log_prob(obs, key=key)
        return action, log_prob, policy(obs)

    for seed in range(2):
        policy, obs, key = _sac(41 + seed), _obs(43 + seed), jr.key(45 + seed)
        action, log_prob = policy.action_and_log_prob(obs, key=key)
        _assert_trees_close(step(policy, obs, key), (action, log_prob, policy(obs)))


# --------------------------------------------------------------------- errors


def test_configuration_errors() -> None:
    box_env, discrete_env = make_env(Box(-1.0, 1.0, (2,))), make_env(Discrete(2))
    with pytest.raises(
        TypeError, match=r"MLPQPolicy: action_space must be Discrete.*Box"
    ):
        MLPQPolicy(box_env, key=jr.key(0))
    with pytest.raises(TypeError, match=r"must be a Box, got Discrete"):
        MLPSACPolicy(discrete_env, key=jr.key(0))
    with pytest.raises(TypeError, match=r"MLPDeterministicPolicy: .*Box, got Discrete"):
        MLPDeterministicPolicy(discrete_env, key=jr.key(0))
    unbounded = make_env(Box(np.array([-1.0, -np.inf]), np.array([1.0, 1.0])))
    for cls in (MLPSACPolicy, MLPDeterministicPolicy):
        with pytest.raises(ValueError, match=r"finite bounds.*Box\(\[-1.0, -inf\]"):
            cls(unbounded, key=jr.key(0))
        with pytest.raises(ValueError, match="low < high"):
            cls(
                make_env(Box(np.array([0.0, 1.0]), np.array([1.0, 1.0]))), key=jr.key(0)
            )
        with pytest.raises(TypeError, match="floating dtype"):
            cls(make_env(Box(0, 3, (2,), dtype=np.int32)), key=jr.key(0))
        with pytest.raises(
            ValueError, match=r"hidden_sizes must be positive.*\(8, 0\)"
        ):
            cls(box_env, key=jr.key(0), hidden_sizes=(8, 0))
    with pytest.raises(ValueError, match=r"MLPQPolicy: hidden_sizes.*\[-4\]"):
        MLPQPolicy(discrete_env, key=jr.key(0), hidden_sizes=[-4])
    with pytest.raises(ValueError, match="hidden_sizes"):
        MLPQPolicy(discrete_env, key=jr.key(0), hidden_sizes=(True,))
    with pytest.raises(ValueError, match="log_std_min=2.0 and log_std_max=2.0"):
        MLPSACPolicy(box_env, key=jr.key(0), log_std_min=2.0)
    with pytest.raises(ValueError, match="log_std_max must be finite"):
        MLPSACPolicy(box_env, key=jr.key(0), log_std_max=math.inf)


def test_wrong_observation_shape_raises() -> None:
    policy = _sac()
    with pytest.raises(
        ValueError, match=r"MLPSACPolicy: .*shape \(3,\), expected \(4,\)"
    ):
        policy(jnp.zeros(3, jnp.float32))
    q_policy: QPolicy = MLPQPolicy(make_env(Q_SPACE), key=jr.key(0), hidden_sizes=SMALL)
    with pytest.raises(ValueError, match="MLPQPolicy: the observation flattens"):
        q_policy.q_values(jnp.zeros((2, 4), jnp.float32))
