"""Hyperparameter sweeps in one program: float hyperparameters are array
leaves, validated at construction when concrete and in the program when traced."""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jaxtyping import Array, Float

from lerax.algorithm import A2C, PPO, SAC
from lerax.env import CartPole, Pendulum
from lerax.policy import MLPActorCriticPolicy, MLPSACPolicy

from .offpolicy_helpers import StopAt

ENV = CartPole()
POLICY = MLPActorCriticPolicy(ENV, key=jr.key(0))


def small_ppo(**floats: Any) -> PPO:
    return PPO(num_envs=2, num_steps=16, num_epochs=2, num_minibatches=2, **floats)


LEARNING_RATES = jnp.array([1e-4, 3e-4, 1e-3, 2e-3, 3e-3, 5e-3, 1e-2, 3e-2])
GAMMAS = jnp.array([0.5, 0.8, 0.9, 0.95, 0.97, 0.99, 0.995, 1.0])


def parameters(policy: Any) -> list[np.ndarray[Any, Any]]:
    return [np.asarray(x) for x in jax.tree.leaves(eqx.filter(policy, eqx.is_array))]


def assert_member_matches(batched: Any, i: int, single: Any) -> None:
    for b, s in zip(parameters(batched), parameters(single), strict=True):
        np.testing.assert_allclose(b[i], s, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("field", ["learning_rate", "gamma"])
def test_a_sweep_trains_every_member_like_its_own_run_and_compiles_once(
    field: str,
) -> None:
    values = LEARNING_RATES if field == "learning_rate" else GAMMAS
    traces = 0

    def train(algo: PPO, iterations: int) -> Any:
        nonlocal traces
        traces += 1
        return algo.learn(
            ENV, POLICY, iterations * algo.steps_per_iteration, key=jr.key(1)
        )

    # Built inside filter_vmap (traced values, checked in the program).
    sweep = eqx.filter_vmap(lambda v: small_ppo(**{field: v}))(values)
    assert getattr(sweep, field).shape == (8,)
    run_sweep = eqx.filter_jit(eqx.filter_vmap(train, in_axes=(0, None)))
    run_one = eqx.filter_jit(train)
    for iterations in (1, 3):
        before = traces
        batched = run_sweep(sweep, iterations)
        assert traces == before + 1  # the 8 members: one program
        for i, v in enumerate(values):
            single = run_one(small_ppo(**{field: float(v)}), iterations)
            assert_member_matches(batched, i, single)
    # Each single run above had its own value, yet one program per length:
    # the values are array leaves, not part of the compiled program.
    assert traces == 2 + 2


def test_stacked_concrete_algorithms_sweep_and_each_member_stops_on_its_own() -> None:
    members = [
        A2C(num_envs=2, num_steps=4, learning_rate=float(v)) for v in LEARNING_RATES[:4]
    ]
    sweep = jax.tree.map(lambda *xs: jnp.stack(xs), *members)
    thresholds = jnp.array([1, 5, 3, 8])
    stop = StopAt(thresholds)

    def train(algo: A2C, cb: StopAt) -> Any:
        return algo.train(
            ENV, POLICY, 8 * algo.steps_per_iteration, key=jr.key(2), callback=cb
        )

    result = eqx.filter_jit(eqx.filter_vmap(train))(sweep, stop)
    np.testing.assert_array_equal(np.asarray(result.iterations), [1, 5, 3, 8])
    np.testing.assert_array_equal(np.asarray(result.timesteps), [8, 40, 24, 64])
    for i, member in enumerate(members):
        single = member.train(
            ENV, POLICY, 8 * 8, key=jr.key(2), callback=StopAt(thresholds[i])
        )
        assert_member_matches(result.policy, i, single.policy)


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        (
            "learning_rate",
            float("inf"),
            r"PPO: learning_rate must be in \(0, inf\), got learning_rate=inf",
        ),
        ("learning_rate", -1.0, r"learning_rate must be in \(0, inf\)"),
        ("gamma", float("nan"), r"gamma must be in \[0, 1\], got gamma=nan"),
        ("ent_coef", -0.1, r"ent_coef must be in \[0, inf\)"),
    ],
)
def test_a_concrete_value_out_of_range_raises_before_compiling(
    field: str, value: float, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        small_ppo(**{field: value})


def test_a_batch_of_concrete_values_is_checked_elementwise() -> None:
    with pytest.raises(
        ValueError, match=r"learning_rate must be .*out of range: \[inf\]"
    ):
        PPO(learning_rate=np.array([1e-3, np.inf, 2e-3], np.float32))
    with pytest.raises(ValueError, match=r"gamma must be in \[0, 1\]"):
        A2C(gamma=jnp.array([0.9, 1.5]))


def test_max_grad_norm_inf_means_no_clipping() -> None:
    algo = small_ppo(max_grad_norm=float("inf"))
    assert float(algo.max_grad_norm) == float("inf")


def test_a_traced_value_out_of_range_stops_the_program_naming_the_field() -> None:
    sweep = eqx.filter_vmap(lambda v: small_ppo(learning_rate=v))(
        jnp.array([1e-3, -1.0])
    )
    run = eqx.filter_jit(
        eqx.filter_vmap(lambda a: a.learn(ENV, POLICY, 32, key=jr.key(0)))
    )
    with pytest.raises(Exception, match=r"PPO: learning_rate must be in \(0, inf\)"):
        parameters(run(sweep))


def error_checks(program: Any) -> int:
    """How many ``eqx.error_if`` checks a jaxpr (with its nested ones) holds."""
    return str(program).count("_error.<locals>.raises")


def test_concrete_values_are_checked_before_compiling_and_add_nothing_to_it() -> None:
    algo = small_ppo()
    closed_over = jax.make_jaxpr(lambda k: algo.learn(ENV, POLICY, 32, key=k))(
        jr.key(0)
    )
    assert error_checks(closed_over) == 0
    # Passed into the caller's jit, the values are traced: each is checked in
    # the program.
    passed = jax.make_jaxpr(lambda a, k: a.learn(ENV, POLICY, 32, key=k))(
        algo, jr.key(0)
    )
    assert error_checks(passed) == len(PPO.hyperparameter_ranges)
    # A concrete value replaced after construction is checked when training
    # starts, before anything is traced.
    replaced = eqx.tree_at(lambda a: a.gamma, algo, jnp.asarray(1.5, jnp.float32))
    with pytest.raises(ValueError, match=r"PPO: gamma must be in \[0, 1\], got gamma="):
        replaced.learn(ENV, POLICY, 32, key=jr.key(0))


def test_float_hyperparameters_are_float32_arrays_and_flags_stay_static() -> None:
    algo = PPO()
    for name in PPO.hyperparameter_ranges:
        value: Float[Array, ""] = getattr(algo, name)
        assert value.dtype == jnp.float32 and value.shape == ()
    assert float(algo.learning_rate) == pytest.approx(2.5e-3)
    assert algo.anneal_lr is True
    # Under the suite beartype rejects it first; without it, check_flags does.
    with pytest.raises(TypeError, match="anneal_lr"):
        PPO(anneal_lr=1)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]  # the error path


def test_an_algorithm_built_inside_jit_from_python_floats() -> None:
    """Concrete values are checked with NumPy, so building inside ``jax.jit``
    works (jnp would be staged into the trace there)."""

    @jax.jit
    def rate() -> jax.Array:
        return small_ppo(learning_rate=1e-3).learning_rate * 2

    assert float(rate()) == pytest.approx(2e-3)


PENDULUM = Pendulum()
SAC_POLICY = MLPSACPolicy(PENDULUM, key=jr.key(0), hidden_sizes=(16,))


def small_sac(**floats: Any) -> SAC:
    return SAC(num_steps=4, buffer_size=64, learning_starts=4, batch_size=8, **floats)


@eqx.filter_jit
def train_sac(algo: SAC) -> Any:
    """16 environment steps: 4 iterations, the last 3 with 4 gradient steps."""
    return algo.learn(PENDULUM, SAC_POLICY, 16, key=jr.key(3))


run_sac_sweep = eqx.filter_jit(eqx.filter_vmap(train_sac))


def test_an_offpolicy_sweep_built_in_filter_vmap_trains_each_member_alike() -> None:
    """SAC with a replay buffer and three optimizers: a sweep of fixed
    temperatures (``ent_coef`` traced: a number, not ``"auto"``) and
    learning rates trains each member as its own run does."""
    temperatures = jnp.array([0.05, 0.1, 0.2])
    rates = jnp.array([1e-3, 3e-3, 1e-2])
    sweep = eqx.filter_vmap(lambda t, r: small_sac(ent_coef=t, learning_rate=r))(
        temperatures, rates
    )
    assert sweep.learn_ent_coef is False and sweep.ent_coef.shape == (3,)
    batched = run_sac_sweep(sweep)
    for i in range(3):
        single = train_sac(
            small_sac(ent_coef=float(temperatures[i]), learning_rate=float(rates[i]))
        )
        assert_member_matches(batched, i, single)


def test_a_traced_offpolicy_value_out_of_range_stops_naming_the_field() -> None:
    sweep = eqx.filter_vmap(lambda tau: small_sac(ent_coef=0.1, tau=tau))(
        jnp.array([0.02, 0.5, 0.0])
    )
    with pytest.raises(Exception, match=r"SAC: tau must be in \(0, 1\]"):
        parameters(run_sac_sweep(sweep))
