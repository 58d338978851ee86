"""Proximal Policy Optimization."""

from collections.abc import Callable
from typing import Any, ClassVar, final

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import optax
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, ArrayLike, Float, Int, PyTree, Shaped

from .._custom_types import ArrayTree, Key, OptState
from ..env import AbstractEnv
from ..policy import AbstractActorCriticPolicy, AbstractPolicy
from ._base import AbstractAlgorithm
from ._gae import generalized_advantage_estimate, next_state_values
from ._hyper import (
    NON_NEGATIVE,
    POSITIVE,
    POSITIVE_OR_INF,
    UNIT,
    Interval,
    check_flags,
    check_sizes,
    hyperparameters,
    policy_kind_error,
)
from ._optim import current_learning_rate
from ._rollout import Rollout

ActorCritic = AbstractActorCriticPolicy[Any, Any]


@final
class PPOBatch(eqx.Module):
    """A (mini)batch for [`PPO.loss`][lerax.algorithm.PPO.loss], leading axis ``batch``.

    Attributes:
        observations: observations the actions were taken on.
        actions: the actions taken.
        log_probs: the actions' log-probabilities when they were taken.
        advantages: GAE advantages.
        returns: value targets (advantages + values).
    """

    observations: ArrayTree
    actions: ArrayTree
    log_probs: Float[Array, " batch"]
    advantages: Float[Array, " batch"]
    returns: Float[Array, " batch"]


@final
class PPOState(eqx.Module):
    """[`PPO`][lerax.algorithm.PPO]'s state.

    Attributes:
        opt_state: the optimizer state over the policy's parameters as one
            flat vector (``jax.flatten_util.ravel_pytree`` of its floating-point
            arrays), which is what [`PPO.update`][lerax.algorithm.PPO.update]
            optimises; [`current_learning_rate`][lerax.algorithm.current_learning_rate]
            reads it.
        num_iterations: the iterations of the run (the annealing schedule's length).
    """

    opt_state: OptState
    num_iterations: int = eqx.field(static=True)


@final
class PPO(AbstractAlgorithm[ActorCritic, PPOState]):
    """Proximal Policy Optimization with clipped surrogate objective (Schulman et al.).

    Each iteration collects ``num_steps`` steps from each of ``num_envs``
    environments, computes GAE advantages (bootstrapping truncated episodes from
    the value of their final observation), then runs ``num_epochs`` passes of
    ``num_minibatches`` minibatch gradient steps with Adam, gradient clipping at
    ``max_grad_norm`` and an optionally linearly annealed learning rate. The
    current learning rate is in the optimizer state
    ([`current_learning_rate`][lerax.algorithm.current_learning_rate]).

    Defaults: Lerax's own, tuned to solve CartPole within ``2**16`` steps
    (BENCHMARKS.md). They keep the common layout of CleanRL's classic-control
    PPO (4 environments x 128 steps, gamma 0.99, GAE lambda 0.95, clip 0.2,
    value coefficient 0.5, clipping at 0.5, annealed learning rate) with a
    larger learning rate (2.5e-3), 10 epochs of 8 minibatches and no entropy
    bonus.

    ``on_step`` callbacks see ``ctx.locals`` = ``{"log_prob", "value"}`` (the
    action's log-probability and the state value; ``on_rollout``'s
    ``ctx.locals`` holds them for the whole rollout, leading axes
    ``(num_steps, num_envs)``). The training log holds ``loss``,
    ``policy_loss``, ``value_loss``, ``entropy``, ``approx_kl``,
    ``clip_fraction``, ``explained_variance`` and ``learning_rate``.

    Hyperparameters: ``num_envs``, ``num_steps``, ``num_epochs``,
    ``num_minibatches``, ``anneal_lr`` and ``normalize_advantages`` are
    static (they choose shapes and code); the floats (``learning_rate``,
    ``gamma``, ``gae_lambda``, ``clip_coef``, ``ent_coef``, ``vf_coef``,
    ``max_grad_norm``) are float32 array leaves, so a batch of PPOs trains
    as one program (a sweep) and a new value reuses the compiled program.
    ``max_grad_norm=inf`` means no clipping.

    Periodic host calls (the Ctrl-C poll, sending buffered log records) come
    every [`host_call_every`][lerax.algorithm.PPO.host_call_every]
    iterations: about every ``2**16`` units of work, counting an iteration
    as ``num_envs * num_steps * (1 + num_epochs)`` (12 iterations for the
    defaults), so that they stay a small part of the time and Ctrl-C still
    stops training within a fraction of a second (BENCHMARKS.md).

    Attributes:
        num_envs: parallel environments.
        num_steps: steps per environment per iteration.
        num_epochs: passes over each rollout.
        num_minibatches: minibatches per pass (must divide num_envs * num_steps).
        gamma: discount factor.
        gae_lambda: GAE lambda.
        clip_coef: the PPO clip range epsilon.
        ent_coef: entropy bonus coefficient.
        vf_coef: value loss coefficient.
        max_grad_norm: global gradient norm clip.
        learning_rate: Adam's (initial) learning rate.
        anneal_lr: anneal the learning rate linearly to zero over training.
        normalize_advantages: normalise advantages per minibatch.
    """

    hyperparameter_ranges: ClassVar[dict[str, Interval]] = {
        "gamma": UNIT,
        "gae_lambda": UNIT,
        "clip_coef": POSITIVE,
        "ent_coef": NON_NEGATIVE,
        "vf_coef": NON_NEGATIVE,
        "max_grad_norm": POSITIVE_OR_INF,
        "learning_rate": POSITIVE,
    }

    num_envs: int = eqx.field(static=True)
    num_steps: int = eqx.field(static=True)
    num_epochs: int = eqx.field(static=True)
    num_minibatches: int = eqx.field(static=True)
    gamma: Float[Array, "*runs"]
    gae_lambda: Float[Array, "*runs"]
    clip_coef: Float[Array, "*runs"]
    ent_coef: Float[Array, "*runs"]
    vf_coef: Float[Array, "*runs"]
    max_grad_norm: Float[Array, "*runs"]
    learning_rate: Float[Array, "*runs"]
    anneal_lr: bool = eqx.field(static=True)
    normalize_advantages: bool = eqx.field(static=True)

    def __init__(
        self,
        *,
        num_envs: int = 4,
        num_steps: int = 128,
        num_epochs: int = 10,
        num_minibatches: int = 8,
        gamma: float | Float[ArrayLike, "*runs"] = 0.99,
        gae_lambda: float | Float[ArrayLike, "*runs"] = 0.95,
        clip_coef: float | Float[ArrayLike, "*runs"] = 0.2,
        ent_coef: float | Float[ArrayLike, "*runs"] = 0.0,
        vf_coef: float | Float[ArrayLike, "*runs"] = 0.5,
        max_grad_norm: float | Float[ArrayLike, "*runs"] = 0.5,
        learning_rate: float | Float[ArrayLike, "*runs"] = 2.5e-3,
        anneal_lr: bool = True,
        normalize_advantages: bool = True,
    ):
        check_sizes(
            "PPO",
            num_envs=num_envs,
            num_steps=num_steps,
            num_epochs=num_epochs,
            num_minibatches=num_minibatches,
        )
        batch = num_envs * num_steps
        if batch % num_minibatches != 0:
            raise ValueError(
                f"PPO: num_minibatches={num_minibatches} must divide "
                f"num_envs * num_steps = {batch}"
            )
        check_flags(
            "PPO", anneal_lr=anneal_lr, normalize_advantages=normalize_advantages
        )
        self.num_envs = num_envs
        self.num_steps = num_steps
        self.num_epochs = num_epochs
        self.num_minibatches = num_minibatches
        hyperparameters(
            self,
            self.hyperparameter_ranges,
            gamma=gamma,
            gae_lambda=gae_lambda,
            clip_coef=clip_coef,
            ent_coef=ent_coef,
            vf_coef=vf_coef,
            max_grad_norm=max_grad_norm,
            learning_rate=learning_rate,
        )
        self.anneal_lr = anneal_lr
        self.normalize_advantages = normalize_advantages

    @property
    def host_call_every(self) -> int:
        """Iterations between two Ctrl-C polls (see the class docstring)."""
        work = self.steps_per_iteration * (1 + self.num_epochs)
        return max(1, -(-(2**16) // work))

    @property
    def updates_per_iteration(self) -> int:
        """Adam steps per iteration: ``num_epochs * num_minibatches``."""
        return self.num_epochs * self.num_minibatches

    def optimizer(self, num_iterations: int) -> optax.GradientTransformation:
        """Global-norm clipping at ``max_grad_norm`` (``inf`` lets every
        gradient through), then Adam (``eps=1e-5``) with the learning rate
        in its state, annealed over ``num_iterations`` if ``anneal_lr``."""
        lr: Float[Array, ""] | optax.Schedule = self.learning_rate
        if self.anneal_lr:
            lr = optax.linear_schedule(
                self.learning_rate, 0.0, num_iterations * self.updates_per_iteration
            )
        return optax.chain(
            optax.clip_by_global_norm(self.max_grad_norm),
            optax.inject_hyperparams(optax.adam)(learning_rate=lr, eps=1e-5),
        )

    def init_state(
        self,
        env: AbstractEnv[Any, Any, Any],
        policy: AbstractPolicy[Any, Any],
        num_iterations: int,
        *,
        key: Key,
    ) -> PPOState:
        """The optimizer initialised on the policy's parameters as one flat
        vector, which is what [`update`][lerax.algorithm.PPO.update] optimises.

        Raises:
            TypeError: ``policy`` is not an ``AbstractActorCriticPolicy``.
        """
        if not isinstance(policy, AbstractActorCriticPolicy):
            raise policy_kind_error(
                "PPO", policy, AbstractActorCriticPolicy, "MLPActorCriticPolicy"
            )
        params, _, _ = _flat_parameters(policy)
        opt_state = self.optimizer(num_iterations).init(params)
        return PPOState(opt_state=opt_state, num_iterations=num_iterations)

    def act(
        self,
        policy: ActorCritic,
        state: PPOState,
        observation: ArrayTree,
        *,
        timestep: Int[Array, ""],
        key: Key,
    ) -> tuple[ArrayTree, dict[str, Shaped[Array, "..."]]]:
        action, log_prob, value = policy.action_and_value(observation, key=key)
        return action, {"log_prob": log_prob, "value": value}

    def initial_training_log(self) -> dict[str, Float[Array, ""]]:
        names = (*_STAT_NAMES, "explained_variance", "learning_rate")
        return {n: jnp.zeros((), jnp.float32) for n in names}

    def loss(
        self, policy: ActorCritic, batch: "PPOBatch"
    ) -> tuple[Float[Array, ""], dict[str, Float[Array, ""]]]:
        """The PPO loss of one minibatch and its statistics.

        ``loss = policy_loss + vf_coef * value_loss - ent_coef * entropy`` with
        the clipped surrogate ``policy_loss = mean(max(-A r, -A clip(r, 1 - eps,
        1 + eps)))``, ``r = exp(log_prob - old_log_prob)``, advantages ``A``
        normalised over the minibatch when ``normalize_advantages``, and
        ``value_loss = 0.5 * mean((V - returns) ** 2)``.
        """
        loss, stats = self._loss(policy, batch)
        return loss, dict(zip(_STAT_NAMES, stats, strict=True))

    def _loss(
        self, policy: ActorCritic, batch: "PPOBatch"
    ) -> tuple[Float[Array, ""], Float[Array, " 6"]]:
        """[`loss`][lerax.algorithm.PPO.loss] with its statistics as one vector
        (``_STAT_NAMES``): the per-sample terms are averaged in one reduction, and the
        update's scan stacks one vector per minibatch, which keeps the statistics cheap
        when a callback reads them (cheaper than six separate means)."""
        log_probs, entropy, new_values = jax.vmap(policy.evaluate_action)(
            batch.observations, batch.actions
        )
        adv = batch.advantages
        log_ratio = log_probs - batch.log_probs
        ratio = jnp.exp(log_ratio)
        if self.normalize_advantages:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        pg1 = -adv * ratio
        pg2 = -adv * jnp.clip(ratio, 1.0 - self.clip_coef, 1.0 + self.clip_coef)
        terms = jnp.stack(
            [
                jnp.maximum(pg1, pg2),
                0.5 * (new_values - batch.returns) ** 2,
                entropy,
                (ratio - 1.0) - log_ratio,
                (jnp.abs(ratio - 1.0) > self.clip_coef).astype(ratio.dtype),
            ]
        )
        means = terms.mean(axis=1)
        policy_loss, value_loss, entropy_mean = means[0], means[1], means[2]
        loss = policy_loss + self.vf_coef * value_loss - self.ent_coef * entropy_mean
        return loss, jnp.concatenate([loss[None], means])

    def update(
        self,
        policy: ActorCritic,
        state: PPOState,
        rollout: Rollout,
        *,
        key: Key,
        need_log: bool,
    ) -> tuple[ActorCritic, PPOState, dict[str, Float[Array, ""]]]:
        """GAE, then ``num_epochs`` passes of ``num_minibatches`` Adam steps.

        With ``need_log`` the loss statistics of the log are the means over the
        last epoch's minibatches, computed in that epoch only: it is a loop of
        its own, so the other epochs' minibatch steps skip them. Without it all
        epochs are one loop (the same parameters, less to compile)."""
        optimizer = self.optimizer(state.num_iterations)
        policy, opt_state, log = self._update(
            policy, optimizer, state.opt_state, rollout, key=key, with_log=need_log
        )
        return policy, PPOState(opt_state, state.num_iterations), log

    def _update(
        self,
        policy: ActorCritic,
        optimizer: optax.GradientTransformation,
        opt_state: OptState,
        rollout: Rollout,
        *,
        key: Key,
        with_log: bool,
    ) -> tuple[ActorCritic, OptState, dict[str, Float[Array, ""]]]:
        """The update; the log is empty unless ``with_log``."""
        values = rollout.extras["value"]
        next_values = next_state_values(policy, rollout, values)
        advantages, returns = generalized_advantage_estimate(
            rollout.rewards,
            values,
            next_values,
            rollout.terminated,
            rollout.truncated,
            gamma=self.gamma,
            gae_lambda=self.gae_lambda,
        )
        batch = self.num_envs * self.num_steps
        flat = jax.tree.map(
            lambda x: x.reshape((batch, *x.shape[2:])),
            (
                rollout.observations,
                rollout.actions,
                rollout.extras["log_prob"],
                advantages,
                returns,
            ),
        )
        # The optimizer works on one flat parameter vector: a few fused
        # kernels per step instead of several per parameter array.
        params, unravel, static = _flat_parameters(policy)
        minibatch = batch // self.num_minibatches

        def loss_fn(
            params: Float[Array, " parameters"], data: tuple[Any, ...]
        ) -> tuple[Float[Array, ""], Float[Array, " 6"]]:
            return self._loss(eqx.combine(unravel(params), static), PPOBatch(*data))

        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

        def minibatch_step(
            carry: tuple[Float[Array, " parameters"], OptState], idx: Array
        ) -> tuple[tuple[Float[Array, " parameters"], OptState], Float[Array, " 6"]]:
            params, opt_state = carry
            data = jax.tree.map(lambda x: x[idx], flat)
            (_, stats), grads = grad_fn(params, data)
            # optax mixes integer step counts with floats: allow its promotions
            # even when users run JAX with strict dtype promotion.
            with jax.numpy_dtype_promotion("standard"):
                updates, opt_state = optimizer.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
            return (params, opt_state), stats

        def epoch(
            carry: tuple[Float[Array, " parameters"], OptState], key: Key
        ) -> tuple[
            tuple[Float[Array, " parameters"], OptState],
            Float[Array, "minibatches 6"],
        ]:
            perm = jr.permutation(key, batch).reshape(self.num_minibatches, minibatch)
            return jax.lax.scan(minibatch_step, carry, perm)

        def quiet_epoch(
            carry: tuple[Float[Array, " parameters"], OptState], key: Key
        ) -> tuple[tuple[Float[Array, " parameters"], OptState], None]:
            return epoch(carry, key)[0], None  # XLA drops the unread statistics

        epoch_keys = jr.split(key, self.num_epochs)
        if not with_log:
            (params, opt_state), _ = jax.lax.scan(
                quiet_epoch, (params, opt_state), epoch_keys
            )
            return eqx.combine(unravel(params), static), opt_state, {}
        carry = (params, opt_state)
        if self.num_epochs > 1:
            carry, _ = jax.lax.scan(quiet_epoch, carry, epoch_keys[:-1])
        (params, opt_state), stats = epoch(carry, epoch_keys[-1])
        log = dict(zip(_STAT_NAMES, stats.mean(axis=0), strict=True))
        variance = jnp.var(returns)
        log["explained_variance"] = jnp.where(
            variance > 0, 1.0 - jnp.var(returns - values) / variance, jnp.nan
        )
        log["learning_rate"] = current_learning_rate(opt_state)
        return eqx.combine(unravel(params), static), opt_state, log


_STAT_NAMES: tuple[str, ...] = (
    "loss",
    "policy_loss",
    "value_loss",
    "entropy",
    "approx_kl",
    "clip_fraction",
)


def _flat_parameters(
    policy: ActorCritic,
) -> tuple[
    Float[Array, " parameters"], Callable[[Float[Array, " parameters"]], PyTree], PyTree
]:
    """The policy's floating-point arrays as one vector, the function that
    turns such a vector back into those arrays, and the rest of the policy."""
    params, static = eqx.partition(policy, eqx.is_inexact_array)
    flat, unravel = ravel_pytree(params)
    return flat, unravel, static
