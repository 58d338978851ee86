"""Episode statistics from raw environment rewards, kept per environment in a
callback's step state and summarised over the environments at recorded
iterations: shared by [`LoggingCallback`][lerax.callback.logging.LoggingCallback]
and [`HistoryCallback`][lerax.callback.history.HistoryCallback], so both report
the same ``rollout/...`` values under the same names."""

from typing import NamedTuple, final

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int


@final
class EpisodeStatistics(eqx.Module):
    """The step state of [`LoggingCallback`][lerax.callback.logging.LoggingCallback]
    and [`HistoryCallback`][lerax.callback.history.HistoryCallback]: one
    environment's episodes.

    Built from raw environment rewards; it persists across rollouts, so an
    episode may span several iterations. The ``window_*`` fields describe
    the episodes that ended since the last logged (recorded) iteration (the
    window that starts at iteration ``window_iteration``).
    With a leading axis (one row per environment) when read from a training
    result.

    Attributes:
        episode_return: the return of the episode in progress so far.
        episode_length: the length of the episode in progress so far.
        return_ema: EMA of completed episodes' returns, started at the first
            one (``ema = ema_alpha * ema + (1 - ema_alpha) * episode_return``).
        length_ema: the same for episode lengths (0 until an episode ended).
        window_iteration: the first iteration (0-based) of the logging window
            the window fields describe: the iterations since the last logged one.
        window_episodes: episodes that ended in that window.
        window_return_sum: the sum of their returns.
        window_return_min: the smallest of them (``inf`` if none).
        window_return_max: the largest of them (``-inf`` if none).
        window_length_sum: the sum of their lengths.
    """

    episode_return: Float[Array, "*envs"]
    episode_length: Int[Array, "*envs"]
    return_ema: Float[Array, "*envs"]
    length_ema: Float[Array, "*envs"]
    window_iteration: Int[Array, "*envs"]
    window_episodes: Int[Array, "*envs"]
    window_return_sum: Float[Array, "*envs"]
    window_return_min: Float[Array, "*envs"]
    window_return_max: Float[Array, "*envs"]
    window_length_sum: Int[Array, "*envs"]

    @property
    def completed(self) -> Bool[Array, "*envs"]:
        """At least one episode has ended (the EMAs are defined): episode
        lengths are at least 1, so the length EMA is positive from then on."""
        return self.length_ema > 0


ROLLOUT_NAMES = (
    "rollout/ep_return_ema",
    "rollout/ep_length_ema",
    "rollout/ep_return_mean",
    "rollout/ep_return_min",
    "rollout/ep_return_max",
    "rollout/ep_length_mean",
)
"""The summary's statistics, in the order ``summarize`` returns them."""
EMA_NAMES = frozenset(ROLLOUT_NAMES[:2])
"""Defined once an episode has ended (``EpisodeSummary.ema_valid``)."""
WINDOW_NAMES = frozenset(ROLLOUT_NAMES[2:])
"""Defined when an episode ended in the window (``EpisodeSummary.window_valid``)."""
EPISODES_NAME = "rollout/episodes"
"""The number of episodes that ended in the window."""


def initial_statistics() -> EpisodeStatistics:
    """One environment's statistics before its first step: no episode
    completed, no window."""
    zero_f = jnp.zeros((), jnp.float32)
    zero_i = jnp.zeros((), jnp.int32)
    return EpisodeStatistics(
        episode_return=zero_f,
        episode_length=zero_i,
        return_ema=zero_f,
        length_ema=zero_f,
        window_iteration=jnp.full((), -1, jnp.int32),
        window_episodes=zero_i,
        window_return_sum=zero_f,
        window_return_min=jnp.full((), jnp.inf, jnp.float32),
        window_return_max=jnp.full((), -jnp.inf, jnp.float32),
        window_length_sum=zero_i,
    )


def update_statistics(
    s: EpisodeStatistics,
    reward: Float[Array, ""],
    done: Bool[Array, ""],
    iteration_count: Int[Array, ""],
    every: int,
    ema_alpha: float,
) -> EpisodeStatistics:
    """Add one step's raw reward; on ``done``, close the episode.

    ``iteration_count`` is the iterations completed before the step and
    ``every`` the iterations between recorded ones: the window restarts when
    a new period of ``every`` iterations begins (a hook can only update step
    state in ``on_step``).
    """
    start = (iteration_count // every) * every
    current = s.window_iteration == start
    episodes = jnp.where(current, s.window_episodes, 0)
    return_sum = jnp.where(current, s.window_return_sum, 0.0)
    length_sum = jnp.where(current, s.window_length_sum, 0)
    return_min = jnp.where(current, s.window_return_min, jnp.inf)
    return_max = jnp.where(current, s.window_return_max, -jnp.inf)

    ret = s.episode_return + jnp.asarray(reward, jnp.float32)
    length = s.episode_length + 1
    length_f = length.astype(jnp.float32)
    a = ema_alpha
    completed = s.completed
    return_ema = jnp.where(completed, a * s.return_ema + (1.0 - a) * ret, ret)
    length_ema = jnp.where(completed, a * s.length_ema + (1.0 - a) * length_f, length_f)
    return EpisodeStatistics(
        episode_return=jnp.where(done, 0.0, ret),
        episode_length=jnp.where(done, 0, length),
        return_ema=jnp.where(done, return_ema, s.return_ema),
        length_ema=jnp.where(done, length_ema, s.length_ema),
        window_iteration=jnp.asarray(start, jnp.int32),
        window_episodes=episodes + done.astype(jnp.int32),
        window_return_sum=return_sum + jnp.where(done, ret, 0.0),
        window_return_min=jnp.where(done, jnp.minimum(return_min, ret), return_min),
        window_return_max=jnp.where(done, jnp.maximum(return_max, ret), return_max),
        window_length_sum=length_sum + jnp.where(done, length, 0),
    )


class EpisodeSummary(NamedTuple):
    """The statistics of all environments at a recorded iteration.

    Attributes:
        scalars: the ``ROLLOUT_NAMES`` values, in that order (meaningless
            where not valid).
        episodes: episodes that ended in the window.
        ema_valid: an episode has ended (the EMAs are defined).
        window_valid: an episode ended in the window (its means are defined).
    """

    scalars: dict[str, Float[Array, ""]]
    episodes: Int[Array, ""]
    ema_valid: Bool[Array, ""]
    window_valid: Bool[Array, ""]


def summarize(
    st: EpisodeStatistics, iteration_count: Int[Array, ""], every: int
) -> EpisodeSummary:
    """Summarise the environments' statistics ``st`` (leading axis
    ``num_envs``) after iteration ``iteration_count`` (1-based), the window
    being the period of ``every`` iterations it ends: the EMAs averaged over
    the environments that completed an episode, the window's episodes
    pooled over all environments."""
    current = st.window_iteration == ((iteration_count - 1) // every) * every
    episodes_per_env = jnp.where(current, st.window_episodes, 0)
    episodes = jnp.sum(episodes_per_env)
    denom = jnp.maximum(episodes, 1).astype(jnp.float32)
    return_mean = jnp.sum(jnp.where(current, st.window_return_sum, 0.0)) / denom
    length_mean = (
        jnp.sum(jnp.where(current, st.window_length_sum, 0)).astype(jnp.float32) / denom
    )
    return_min = jnp.min(jnp.where(current, st.window_return_min, jnp.inf))
    return_max = jnp.max(jnp.where(current, st.window_return_max, -jnp.inf))
    n_completed = jnp.sum(st.completed.astype(jnp.int32))
    ema_denom = jnp.maximum(n_completed, 1).astype(jnp.float32)
    return_ema = jnp.sum(jnp.where(st.completed, st.return_ema, 0.0)) / ema_denom
    length_ema = jnp.sum(jnp.where(st.completed, st.length_ema, 0.0)) / ema_denom
    values = (return_ema, length_ema, return_mean, return_min, return_max)
    return EpisodeSummary(
        scalars=dict(zip(ROLLOUT_NAMES, (*values, length_mean), strict=True)),
        episodes=episodes.astype(jnp.int32),
        ema_valid=n_completed > 0,
        window_valid=episodes > 0,
    )
