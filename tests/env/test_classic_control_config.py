"""Classic-control configuration: spaces, limits, construction errors, edge cases."""

from collections.abc import Callable
from typing import Any

import gymnasium
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from gymnasium import spaces as gym_spaces

from lerax.env import (
    AbstractEnv,
    Acrobot,
    AcrobotState,
    CartPole,
    CartPoleState,
    ContinuousMountainCar,
    MountainCar,
    MountainCarState,
    Pendulum,
    PendulumState,
    TimeStep,
)
from lerax.space import Box, Discrete

Env = AbstractEnv[Any, Any, Any]

GYM_IDS: dict[str, tuple[Callable[[], Env], str]] = {
    "CartPole": (CartPole, "CartPole-v1"),
    "Acrobot": (Acrobot, "Acrobot-v1"),
    "MountainCar": (MountainCar, "MountainCar-v0"),
    "ContinuousMountainCar": (ContinuousMountainCar, "MountainCarContinuous-v0"),
    "Pendulum": (Pendulum, "Pendulum-v1"),
}

KEY = jr.key(0)


def f32(x: float) -> jax.Array:
    return jnp.asarray(x, jnp.float32)


def i32(x: int) -> jax.Array:
    return jnp.asarray(x, jnp.int32)


@pytest.mark.parametrize("name", list(GYM_IDS))
def test_spaces_and_time_limit_match_gymnasium(name: str) -> None:
    factory, gym_id = GYM_IDS[name]
    env = factory()
    gym_env = gymnasium.make(gym_id, disable_env_checker=True)
    assert env.name == name
    assert gym_env.spec is not None
    assert env.max_episode_steps == gym_env.spec.max_episode_steps
    gym_obs = gym_env.observation_space
    assert isinstance(gym_obs, gym_spaces.Box)
    assert isinstance(env.observation_space, Box)
    assert env.observation_space.shape == gym_obs.shape
    assert env.observation_space.dtype == gym_obs.dtype == np.float32
    np.testing.assert_array_equal(env.observation_space.low, gym_obs.low)
    np.testing.assert_array_equal(env.observation_space.high, gym_obs.high)
    gym_act = gym_env.action_space
    if isinstance(gym_act, gym_spaces.Discrete):
        assert isinstance(env.action_space, Discrete)
        assert env.action_space.n == int(gym_act.n)
        assert env.action_space.start == int(gym_act.start) == 0
    else:
        assert isinstance(gym_act, gym_spaces.Box)
        assert isinstance(env.action_space, Box)
        assert env.action_space.shape == gym_act.shape == (1,)
        np.testing.assert_array_equal(env.action_space.low, gym_act.low)
        np.testing.assert_array_equal(env.action_space.high, gym_act.high)


BAD_CONFIGS: list[tuple[Callable[..., Env], dict[str, Any], type[Exception], str]] = [
    (
        CartPole,
        {"masscart": 0.0},
        ValueError,
        "CartPole: masscart must be .* > 0, got masscart=0.0",
    ),
    (
        CartPole,
        {"masspole": -0.1},
        ValueError,
        "masspole must be .* > 0, got masspole=-0.1",
    ),
    (CartPole, {"length": 0}, ValueError, "length must be .* > 0, got length=0"),
    (CartPole, {"tau": -0.02}, ValueError, "tau must be .* > 0, got tau=-0.02"),
    (
        CartPole,
        {"force_mag": -1.0},
        ValueError,
        "force_mag must be .* >= 0, got force_mag=-1.0",
    ),
    (
        CartPole,
        {"gravity": float("nan")},
        ValueError,
        "gravity must be a finite number, got gravity=nan",
    ),
    (CartPole, {"x_threshold": 0.0}, ValueError, "x_threshold must be .* > 0"),
    (
        CartPole,
        {"max_episode_steps": 0},
        ValueError,
        "CartPole: max_episode_steps must be a positive int, got max_episode_steps=0",
    ),
    (CartPole, {"max_episode_steps": -5}, ValueError, "max_episode_steps=-5"),
    (
        CartPole,
        {"max_episode_steps": 2.5},
        TypeError,
        "max_episode_steps",
    ),
    (
        CartPole,
        {"gravity": True},
        TypeError,
        "CartPole: gravity must be a finite number, got True",
    ),
    (CartPole, {"gravity": jnp.ones(3)}, TypeError, "gravity"),
    (Acrobot, {"dt": 0.0}, ValueError, "Acrobot: dt must be .* > 0, got dt=0.0"),
    (Acrobot, {"link_mass_1": -1.0}, ValueError, "link_mass_1 must be .* > 0"),
    (Acrobot, {"link_length_1": 0.0}, ValueError, "link_length_1 must be .* > 0"),
    (Acrobot, {"link_moi": 0.0}, ValueError, "link_moi must be .* > 0"),
    (
        Acrobot,
        {"max_vel_2": float("inf")},
        ValueError,
        "max_vel_2 must be .* > 0, got max_vel_2=inf",
    ),
    (
        Acrobot,
        {"torque_noise_max": -0.1},
        ValueError,
        "torque_noise_max must be .* >= 0",
    ),
    (Acrobot, {"max_episode_steps": 0}, ValueError, "Acrobot: max_episode_steps"),
    (
        MountainCar,
        {"max_speed": 0.0},
        ValueError,
        "MountainCar: max_speed must be .* > 0",
    ),
    (
        MountainCar,
        {"min_position": 0.7},
        ValueError,
        "MountainCar: min_position must be < max_position, "
        "got min_position=0.7 and max_position=0.6",
    ),
    (MountainCar, {"force": -0.001}, ValueError, "force must be .* >= 0"),
    (
        ContinuousMountainCar,
        {"power": -1.0},
        ValueError,
        "ContinuousMountainCar: power must be .* >= 0",
    ),
    (
        ContinuousMountainCar,
        {"min_action": 1.0},
        ValueError,
        "min_action must be < max_action",
    ),
    (
        ContinuousMountainCar,
        {"max_episode_steps": 0},
        ValueError,
        "max_episode_steps=0",
    ),
    (
        Pendulum,
        {"mass": 0.0},
        ValueError,
        "Pendulum: mass must be .* > 0, got mass=0.0",
    ),
    (Pendulum, {"length": -1.0}, ValueError, "Pendulum: length must be .* > 0"),
    (Pendulum, {"dt": 0.0}, ValueError, "Pendulum: dt must be .* > 0"),
    (Pendulum, {"max_torque": 0.0}, ValueError, "Pendulum: max_torque must be .* > 0"),
    (Pendulum, {"max_speed": -8.0}, ValueError, "Pendulum: max_speed must be .* > 0"),
]


@pytest.mark.parametrize(
    ("factory", "kwargs", "error", "match"),
    BAD_CONFIGS,
    ids=[f"{f.__name__}-{next(iter(kw))}" for f, kw, _, _ in BAD_CONFIGS],
)
def test_bad_configuration_raises(
    factory: Callable[..., Env],
    kwargs: dict[str, Any],
    error: type[Exception],
    match: str,
) -> None:
    with pytest.raises(error, match=match):
        factory(**kwargs)


def test_python_values_are_checked_even_inside_jit() -> None:
    with pytest.raises(ValueError, match="CartPole: masscart must be"):
        jax.jit(lambda: CartPole(masscart=0.0).reset(key=KEY))()


def test_traced_space_bound_raises() -> None:
    """Space bounds are static: a traced threshold cannot define one."""
    with pytest.raises(
        TypeError, match="CartPole: x_threshold sets a bound of a space"
    ):
        jax.jit(lambda x: CartPole(x_threshold=x).reset(key=KEY))(f32(3.0))
    with pytest.raises(TypeError, match="Pendulum: max_torque sets a bound"):
        jax.jit(lambda x: Pendulum(max_torque=x).reset(key=KEY))(f32(3.0))


def test_cartpole_out_of_space_actions_push_left() -> None:
    env = CartPole()
    state, _ = env.reset(key=KEY)
    left = env.step(state, i32(0), key=KEY)
    right = env.step(state, i32(1), key=KEY)
    assert float(right.state.x_dot) > float(left.state.x_dot)
    for action in (-1, 2, 7):
        out = env.step(state, i32(action), key=KEY)
        np.testing.assert_array_equal(out.observation, left.observation)


@pytest.mark.parametrize("factory", [Acrobot, MountainCar])
def test_three_action_envs_clamp_out_of_space_actions(
    factory: Callable[[], Env],
) -> None:
    env = factory()
    state, _ = env.reset(key=KEY)
    outs = [env.step(state, i32(a), key=KEY).observation for a in (0, 1, 2)]
    assert not np.allclose(outs[0], outs[2])
    np.testing.assert_array_equal(
        env.step(state, i32(-3), key=KEY).observation, outs[0]
    )
    np.testing.assert_array_equal(env.step(state, i32(5), key=KEY).observation, outs[2])


def test_continuous_mountain_car_clips_force_but_penalises_raw_action() -> None:
    env = ContinuousMountainCar()
    state, _ = env.reset(key=KEY)
    at_bound = env.step(state, jnp.array([1.0], jnp.float32), key=KEY)
    beyond = env.step(state, jnp.array([3.0], jnp.float32), key=KEY)
    np.testing.assert_array_equal(beyond.observation, at_bound.observation)
    np.testing.assert_allclose(float(at_bound.reward), -0.1, rtol=1e-6)
    np.testing.assert_allclose(float(beyond.reward), -0.9, rtol=1e-6)
    # Gymnasium does the same.
    gym_env = gymnasium.make("MountainCarContinuous-v0", disable_env_checker=True)
    gym_env.reset(seed=0)
    start = np.array([float(state.position), float(state.velocity)])
    setattr(gym_env.unwrapped, "state", start)  # noqa: B010  foreign attribute
    obs, reward, _, _, _ = gym_env.step(np.array([3.0], np.float32))
    np.testing.assert_allclose(beyond.observation, obs, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(float(beyond.reward), float(reward), rtol=1e-5)


def test_pendulum_clips_torque_in_dynamics_and_reward() -> None:
    env = Pendulum()
    state, _ = env.reset(key=KEY)
    at_bound = env.step(state, jnp.array([-2.0], jnp.float32), key=KEY)
    beyond = env.step(state, jnp.array([-5.0], jnp.float32), key=KEY)
    np.testing.assert_array_equal(beyond.observation, at_bound.observation)
    np.testing.assert_array_equal(beyond.reward, at_bound.reward)


def test_terminating_last_step_is_terminated_not_truncated() -> None:
    env = CartPole()
    zero = f32(0.0)
    falling = CartPoleState(
        x=zero, x_dot=zero, theta=f32(0.3), theta_dot=zero, t=i32(499)
    )
    upright = CartPoleState(x=zero, x_dot=zero, theta=zero, theta_dot=zero, t=i32(499))
    early = CartPoleState(x=zero, x_dot=zero, theta=zero, theta_dot=zero, t=i32(498))
    out = env.step(falling, i32(0), key=KEY)
    assert bool(out.terminated) and not bool(out.truncated) and bool(out.done)
    out = env.step(upright, i32(0), key=KEY)
    assert not bool(out.terminated) and bool(out.truncated) and int(out.state.t) == 500
    out = env.step(early, i32(0), key=KEY)
    assert not bool(out.done)


@pytest.mark.parametrize(
    ("factory", "state", "action"),
    [
        (Acrobot, AcrobotState(*(f32(0.0),) * 4, t=i32(499)), i32(1)),
        (MountainCar, MountainCarState(f32(-0.5), f32(0.0), t=i32(199)), i32(1)),
        (
            ContinuousMountainCar,
            MountainCarState(f32(-0.5), f32(0.0), t=i32(998)),
            jnp.zeros(1, jnp.float32),
        ),
        (
            Pendulum,
            PendulumState(f32(1.0), f32(0.0), t=i32(199)),
            jnp.zeros(1, jnp.float32),
        ),
    ],
    ids=["Acrobot", "MountainCar", "ContinuousMountainCar", "Pendulum"],
)
def test_time_limit(factory: Callable[..., Env], state: Any, action: jax.Array) -> None:
    env = factory()
    out: TimeStep[Any, Any] = env.step(state, action, key=KEY)
    assert int(out.state.t) == env.max_episode_steps
    assert bool(out.truncated) and not bool(out.terminated)
    longer = factory(max_episode_steps=int(out.state.t) + 1)
    assert not bool(longer.step(state, action, key=KEY).truncated)


def test_acrobot_torque_noise_uses_the_step_key() -> None:
    noisy = Acrobot(torque_noise_max=0.5)
    state, _ = noisy.reset(key=KEY)
    a = noisy.step(state, i32(1), key=jr.key(1)).observation
    b = noisy.step(state, i32(1), key=jr.key(2)).observation
    np.testing.assert_array_equal(
        noisy.step(state, i32(1), key=jr.key(1)).observation, a
    )
    assert not np.allclose(a, b)
    quiet = Acrobot()
    np.testing.assert_array_equal(
        quiet.step(state, i32(1), key=jr.key(1)).observation,
        quiet.step(state, i32(1), key=jr.key(2)).observation,
    )


def test_runtime_checker_rejects_a_wrong_state_or_action() -> None:
    env = CartPole()
    with pytest.raises(TypeError):
        env.step(PendulumState(f32(0.0), f32(0.0), t=i32(0)), i32(0), key=KEY)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]  deliberate misuse
    state, _ = env.reset(key=KEY)
    with pytest.raises(TypeError):
        env.step(state, f32(1.0), key=KEY)  # a float action for a Discrete space
