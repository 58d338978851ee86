"""next_state_values equals evaluating every next observation (where it is used)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jaxtyping import Array, Bool, Float

from lerax.algorithm import Rollout, next_state_values
from lerax.env import CartPole
from lerax.policy import MLPActorCriticPolicy

STEPS, ENVS = 6, 3
ENV = CartPole()
POLICY = MLPActorCriticPolicy(env=ENV, key=jr.key(0))


def make_rollout(
    seed: int, terminated: np.ndarray, truncated: np.ndarray
) -> tuple[Rollout, Float[Array, "steps envs"]]:
    """A rollout whose observations follow its next observations, as the loop
    records them: step t + 1 starts where step t ended unless t ended the
    episode (then from a fresh reset observation)."""
    k_next, k_reset = jr.split(jr.key(seed))
    next_obs = np.asarray(jr.normal(k_next, (STEPS, ENVS, 4)))
    resets = np.asarray(jr.normal(k_reset, (STEPS + 1, ENVS, 4)))
    done = terminated | truncated
    obs = np.empty((STEPS + 1, ENVS, 4), np.float32)
    obs[0] = resets[0]
    for t in range(STEPS):
        obs[t + 1] = np.where(done[t][:, None], resets[t + 1], next_obs[t])
    observations = jnp.asarray(obs[:STEPS])
    values = jax.vmap(jax.vmap(POLICY.value))(observations)
    rollout = Rollout(
        observations=observations,
        actions=jnp.zeros((STEPS, ENVS), jnp.int32),
        rewards=jnp.ones((STEPS, ENVS), jnp.float32),
        terminated=jnp.asarray(terminated),
        truncated=jnp.asarray(truncated),
        next_observations=jnp.asarray(next_obs, jnp.float32),
        extras={"value": values},
        last_observations=jnp.asarray(obs[STEPS]),
        timesteps=jnp.array(0, jnp.int32),
    )
    return rollout, values


def flags(positions: list[tuple[int, int]]) -> np.ndarray:
    out = np.zeros((STEPS, ENVS), bool)
    for t, e in positions:
        out[t, e] = True
    return out


TERMINATED = flags([(1, 0), (4, 2)])
CASES = {
    "no truncation": flags([]),
    "one per env at most": flags([(0, 1), (3, 0), (5, 2)]),  # 3 = ENVS: gathered
    "more than num_envs": flags([(0, 0), (2, 1), (3, 0), (5, 1), (5, 2)]),  # all
}


def reference(rollout: Rollout) -> np.ndarray:
    every = jax.vmap(jax.vmap(POLICY.value))(rollout.next_observations)
    return np.asarray(every)


def check(
    got: Float[Array, "steps envs"], rollout: Rollout, terminated: Bool[Array, "..."]
) -> None:
    used = ~np.asarray(terminated)
    np.testing.assert_allclose(
        np.asarray(got)[used], reference(rollout)[used], rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("case", list(CASES))
def test_matches_every_next_observation_eager_and_jit(case: str) -> None:
    rollout, values = make_rollout(1, TERMINATED, CASES[case])
    eager = next_state_values(POLICY, rollout, values)
    assert eager.shape == (STEPS, ENVS) and eager.dtype == jnp.float32
    check(eager, rollout, rollout.terminated)
    jitted = eqx.filter_jit(next_state_values)(POLICY, rollout, values)
    check(jitted, rollout, rollout.terminated)
    # Where a step truncated, the value is the final observation's, not the
    # reset observation's that the next step started from.
    trunc = np.asarray(rollout.truncated)
    if trunc.any():
        t, e = np.argwhere(trunc)[0]
        final = float(POLICY.value(rollout.next_observations[t, e]))
        np.testing.assert_allclose(float(eager[t, e]), final, rtol=1e-5, atol=1e-6)


def test_vmap_over_rollouts_with_different_truncation_counts() -> None:
    pairs = [make_rollout(2 + i, TERMINATED, CASES[c]) for i, c in enumerate(CASES)]
    rollouts = jax.tree.map(lambda *xs: jnp.stack(xs), *[r for r, _ in pairs])
    values = jnp.stack([v for _, v in pairs])
    batched = eqx.filter_vmap(next_state_values, in_axes=(None, 0, 0))(
        POLICY, rollouts, values
    )
    assert batched.shape == (len(CASES), STEPS, ENVS)
    for i, (rollout, _) in enumerate(pairs):
        check(batched[i], rollout, rollout.terminated)
