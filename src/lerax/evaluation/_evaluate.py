"""Running whole episodes of a policy and summarising their returns."""

from typing import Any, TypeAlias, TypeVar, final

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Bool, Float, Int

from .._custom_types import ArrayTree, Key
from ..env import AbstractEnv
from ..policy import AbstractPolicy
from ..space import Box

ObsT = TypeVar("ObsT")
ActT = TypeVar("ActT")

# The loop's carry: step count, env states, observations, returns, lengths, done.
_Carry: TypeAlias = tuple[
    Int[Array, ""],
    ArrayTree,
    ArrayTree,
    Float[Array, " episodes"],
    Int[Array, " episodes"],
    Bool[Array, " episodes"],
]


@final
class EvaluationResult(eqx.Module):
    """What [`evaluate_policy`][lerax.evaluation.evaluate_policy] returns.

    Under ``eqx.filter_vmap`` every field gains a leading axis.

    Attributes:
        mean_return: the mean of ``returns``.
        std_return: the population standard deviation of ``returns`` (``ddof=0``,
            numpy's default).
        returns: each episode's undiscounted return, the float32 sum of its raw
            rewards in step order.
        lengths: each episode's number of steps, the step that ended it included.
    """

    mean_return: Float[Array, ""]
    std_return: Float[Array, ""]
    returns: Float[Array, " episodes"]
    lengths: Int[Array, " episodes"]


def evaluate_policy(
    policy: AbstractPolicy[ObsT, ActT],
    env: AbstractEnv[Any, ObsT, ActT],
    *,
    key: Key,
    num_episodes: int = 10,
    deterministic: bool = True,
    max_episode_steps: int | None = None,
) -> EvaluationResult:
    """Run ``num_episodes`` episodes of ``policy`` in ``env`` side by side and
    return their returns and lengths.

    An episode runs until ``env.step`` reports it done (``terminated`` or
    ``truncated``) or it has taken ``max_episode_steps`` steps, whichever comes
    first; the step that ends it counts, later steps do not. Box actions are
    clipped to the action space's bounds before ``env.step``, as in training.

    Keys: ``jr.split(key, num_episodes)`` gives one key per episode; each is
    split into ``reset_key, loop_key = jr.split(episode_key)``; ``env.reset``
    gets ``reset_key``, and step ``t`` (from 0) uses
    ``act_key, step_key = jr.split(jr.fold_in(loop_key, t))``: ``act_key``
    samples the action (unused when ``deterministic``) and ``step_key`` goes to
    ``env.step``. A Python loop over episodes and steps that splits keys the
    same way reproduces the result.

    Jittable (``eqx.filter_jit``) and vmappable (``eqx.filter_vmap`` over keys,
    or over a batch of policies or environments).

    Args:
        policy: the policy to act with.
        env: the environment to evaluate in.
        key: the key all randomness comes from.
        num_episodes: how many episodes to run, a positive int.
        deterministic: act with the policy's deterministic action
            (``policy.deterministic_action(obs)``) if ``True``, sample
            (``policy(obs, key=act_key)``) if ``False``.
        max_episode_steps: the most steps an episode may take, a positive int;
            ``None`` means ``env.max_episode_steps``.

    Returns:
        The per-episode returns and lengths with their mean and standard deviation.

    Raises:
        TypeError: if ``num_episodes`` or ``max_episode_steps`` is not an int (a
            bool is not one), or ``deterministic`` is not a bool.
        ValueError: if ``num_episodes`` or ``max_episode_steps`` is not positive,
            or both ``max_episode_steps`` and ``env.max_episode_steps`` are
            ``None``.
    """
    _check_positive_int("num_episodes", num_episodes)
    if max_episode_steps is not None:
        _check_positive_int("max_episode_steps", max_episode_steps)
    if not isinstance(deterministic, bool):
        raise TypeError(f"deterministic must be a bool, got {deterministic!r}")
    limit = env.max_episode_steps if max_episode_steps is None else max_episode_steps
    if limit is None:
        raise ValueError(
            f"max_episode_steps=None and {env.name} has no time limit "
            "(its max_episode_steps is None): pass max_episode_steps, a positive "
            "int, so that every episode ends"
        )

    episode_keys = jr.split(key, num_episodes)
    split = jax.vmap(jr.split)(episode_keys)
    reset_keys, loop_keys = split[:, 0], split[:, 1]
    states, observations = jax.vmap(lambda k: env.reset(key=k))(reset_keys)

    def one_step(
        state: ArrayTree, observation: ObsT, loop_key: Key, t: Int[Array, ""]
    ) -> tuple[ArrayTree, ObsT, Float[Array, ""], Bool[Array, ""]]:
        act_key, step_key = jr.split(jr.fold_in(loop_key, t))
        action = (
            policy.deterministic_action(observation)
            if deterministic
            else policy(observation, key=act_key)
        )
        ts = env.step(state, _env_action(env.action_space, action), key=step_key)
        return ts.state, ts.observation, ts.reward, ts.done

    # A while_loop rather than a scan of `limit` steps: it stops when every
    # episode has ended, so short episodes do not pay for the limit.
    def cond(carry: _Carry) -> Bool[Array, ""]:
        t, _, _, _, _, done = carry
        return jnp.logical_and(t < limit, jnp.logical_not(jnp.all(done)))

    def body(carry: _Carry) -> _Carry:
        t, states, observations, returns, lengths, done = carry
        new_states, new_observations, rewards, ended = jax.vmap(
            one_step, in_axes=(0, 0, 0, None)
        )(states, observations, loop_keys, t)
        active = jnp.logical_not(done)
        returns = returns + jnp.where(active, rewards.astype(jnp.float32), 0.0)
        lengths = lengths + active.astype(jnp.int32)
        # Finished episodes keep their last state: stepping past `done` has no
        # meaning, and repeating it could drift into non-finite values.
        states = _where_batched(active, new_states, states)
        observations = _where_batched(active, new_observations, observations)
        done = jnp.logical_or(done, ended)
        return t + 1, states, observations, returns, lengths, done

    init: _Carry = (
        jnp.zeros((), jnp.int32),
        states,
        observations,
        jnp.zeros((num_episodes,), jnp.float32),
        jnp.zeros((num_episodes,), jnp.int32),
        jnp.zeros((num_episodes,), jnp.bool_),
    )
    _, _, _, returns, lengths, _ = jax.lax.while_loop(cond, body, init)
    return EvaluationResult(
        mean_return=jnp.mean(returns),
        std_return=jnp.std(returns),
        returns=returns,
        lengths=lengths,
    )


def _check_positive_int(name: str, value: int) -> None:
    """Raise unless ``value`` is a positive Python int (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a positive int, got {name}={value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be a positive int, got {name}={value!r}")


def _env_action(space: object, action: ArrayTree) -> ArrayTree:
    """The action the environment receives: Box actions are clipped to bounds."""
    if isinstance(space, Box):
        return jnp.clip(action, jnp.asarray(space.low), jnp.asarray(space.high))
    return action


def _where_batched(
    pred: Bool[Array, " batch"], a: ArrayTree, b: ArrayTree
) -> ArrayTree:
    """``a`` where ``pred`` else ``b``, per element of the leading axis."""

    def pick(x: Array, y: Array) -> Array:
        return jnp.where(pred.reshape(pred.shape + (1,) * (x.ndim - 1)), x, y)

    return jax.tree.map(pick, a, b)


__all__ = ["EvaluationResult", "evaluate_policy"]
