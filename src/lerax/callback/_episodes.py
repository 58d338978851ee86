"""Episode statistics from raw environment rewards, kept per environment in a
callback's step state and summarised over the environments at recorded
iterations: shared by [`LoggingCallback`][lerax.callback.logging.LoggingCallback]
and [`HistoryCallback`][lerax.callback.history.HistoryCallback], so both report
the same ``rollout/...`` values under the same names."""

from typing import NamedTuple, final

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

# Where each statistic lives in EpisodeStatistics' two arrays.
_RETURN, _RETURN_EMA, _LENGTH_EMA, _W_RETURN_SUM, _W_RETURN_MIN, _W_RETURN_MAX = range(
    6
)
_LENGTH, _W_ITERATION, _W_EPISODES, _W_LENGTH_SUM = range(4)


@final
class EpisodeStatistics(eqx.Module):
    """The step state of [`LoggingCallback`][lerax.callback.logging.LoggingCallback]
    and [`HistoryCallback`][lerax.callback.history.HistoryCallback]: one
    environment's episodes.

    Built from raw environment rewards; it persists across rollouts, so an
    episode may span several iterations. The ``window_*`` statistics
    describe the episodes that ended since the last logged (recorded)
    iteration (the window that starts at iteration ``window_iteration``).
    With a leading axis (one row per environment) when read from a training
    result.

    The statistics are kept in two arrays, one float and one integer, and
    read through properties: updated at every iteration (in ``on_rollout``),
    ten arrays would be ten kernels per iteration for XLA on a CPU, which
    costs several percent of an iteration of the algorithms whose iterations
    are short (SAC, TD3, A2C; BENCHMARKS.md).

    Attributes:
        values: ``episode_return``, ``return_ema``, ``length_ema``,
            ``window_return_sum``, ``window_return_min`` and
            ``window_return_max``, in that order along the last axis.
        counts: ``episode_length``, ``window_iteration``,
            ``window_episodes`` and ``window_length_sum``, in that order.
    """

    values: Float[Array, "*envs 6"]
    counts: Int[Array, "*envs 4"]

    @property
    def episode_return(self) -> Float[Array, "*envs"]:
        """The return of the episode in progress so far."""
        return self.values[..., _RETURN]

    @property
    def episode_length(self) -> Int[Array, "*envs"]:
        """The length of the episode in progress so far."""
        return self.counts[..., _LENGTH]

    @property
    def return_ema(self) -> Float[Array, "*envs"]:
        """EMA of completed episodes' returns, started at the first one
        (``ema = ema_alpha * ema + (1 - ema_alpha) * episode_return``)."""
        return self.values[..., _RETURN_EMA]

    @property
    def length_ema(self) -> Float[Array, "*envs"]:
        """The same for episode lengths (0 until an episode ended)."""
        return self.values[..., _LENGTH_EMA]

    @property
    def window_iteration(self) -> Int[Array, "*envs"]:
        """The first iteration (0-based) of the logging window the window
        statistics describe: the iterations since the last logged one."""
        return self.counts[..., _W_ITERATION]

    @property
    def window_episodes(self) -> Int[Array, "*envs"]:
        """Episodes that ended in that window."""
        return self.counts[..., _W_EPISODES]

    @property
    def window_return_sum(self) -> Float[Array, "*envs"]:
        """The sum of their returns."""
        return self.values[..., _W_RETURN_SUM]

    @property
    def window_return_min(self) -> Float[Array, "*envs"]:
        """The smallest of them (``inf`` if none)."""
        return self.values[..., _W_RETURN_MIN]

    @property
    def window_return_max(self) -> Float[Array, "*envs"]:
        """The largest of them (``-inf`` if none)."""
        return self.values[..., _W_RETURN_MAX]

    @property
    def window_length_sum(self) -> Int[Array, "*envs"]:
        """The sum of their lengths."""
        return self.counts[..., _W_LENGTH_SUM]

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
    values = [0.0] * 6
    values[_W_RETURN_MIN] = float("inf")
    values[_W_RETURN_MAX] = -float("inf")
    counts = [0] * 4
    counts[_W_ITERATION] = -1
    return EpisodeStatistics(
        values=jnp.asarray(values, jnp.float32),
        counts=jnp.asarray(counts, jnp.int32),
    )


def update_statistics(
    s: EpisodeStatistics,
    reward: Float[Array, "*envs"],
    done: Bool[Array, "*envs"],
    start: Int[Array, ""],
    ema_alpha: float,
) -> EpisodeStatistics:
    """Add one step's raw reward; on ``done``, close the episode (of one
    environment, or of several at once along a leading axis).

    ``start`` is the first iteration of the logging window the step belongs
    to: the window restarts when a new one begins (a hook can only update
    step states in ``on_step`` and ``on_rollout``). The new statistics are
    built as two stacked arrays, which XLA computes in one fused kernel each.
    """
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
    values = [
        jnp.where(done, 0.0, ret),
        jnp.where(done, return_ema, s.return_ema),
        jnp.where(done, length_ema, s.length_ema),
        return_sum + jnp.where(done, ret, 0.0),
        jnp.where(done, jnp.minimum(return_min, ret), return_min),
        jnp.where(done, jnp.maximum(return_max, ret), return_max),
    ]
    counts = [
        jnp.where(done, 0, length),
        jnp.broadcast_to(jnp.asarray(start, jnp.int32), length.shape),
        episodes + done.astype(jnp.int32),
        length_sum + jnp.where(done, length, 0),
    ]
    return EpisodeStatistics(
        values=jnp.stack(values, axis=-1).astype(jnp.float32),
        counts=jnp.stack(counts, axis=-1).astype(jnp.int32),
    )


def update_statistics_over(
    s: EpisodeStatistics,
    rewards: Float[Array, "steps envs"],
    dones: Bool[Array, "steps envs"],
    iteration_count: Int[Array, ""],
    every: int,
    ema_alpha: float,
) -> EpisodeStatistics:
    """``update_statistics`` for a whole rollout: the statistics ``s`` of
    every environment (leading axis ``num_envs``) after the steps
    ``rewards`` / ``dones``, in order.

    Each step is ``update_statistics`` over all environments at once; the
    steps are unrolled (by 16) so that XLA fuses them into a few kernels per
    iteration, where ``on_step`` costs a few kernels per step.
    """

    # The window the rollout belongs to starts at the last multiple of
    # ``every`` (``iteration_count`` itself when every iteration is logged).
    start = iteration_count if every == 1 else iteration_count - iteration_count % every

    def step(
        st: EpisodeStatistics, xs: tuple[Float[Array, " envs"], Bool[Array, " envs"]]
    ) -> tuple[EpisodeStatistics, None]:
        reward, done = xs
        return update_statistics(st, reward, done, start, ema_alpha), None

    steps = rewards.shape[0]
    out, _ = jax.lax.scan(step, s, (rewards, dones), unroll=min(steps, 16))
    return out


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
