"""Advantage Actor-Critic (synchronous, as Stable-Baselines3's A2C)."""

import math
from typing import Any, ClassVar, final

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, ArrayLike, Float, Int, Shaped

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
class A2CState(eqx.Module):
    """[`A2C`][lerax.algorithm.A2C]'s state.

    Attributes:
        opt_state: RMSprop's state over the policy's floating-point arrays.
        num_iterations: the iterations of the run (the annealing schedule's length).
    """

    opt_state: OptState
    num_iterations: int = eqx.field(static=True)


@final
class A2C(AbstractAlgorithm[ActorCritic, A2CState]):
    """Advantage Actor-Critic (Mnih et al. 2016, synchronous), as
    Stable-Baselines3's ``A2C``.

    One iteration collects ``num_steps`` steps from each of ``num_envs``
    environments and takes ONE gradient step on the whole rollout:
    ``loss = policy_loss + vf_coef * value_loss - ent_coef * entropy`` with
    ``policy_loss = -mean(A * log_prob(action))``, ``value_loss = mean((V -
    returns) ** 2)`` (no factor 1/2, as SB3) and GAE advantages ``A`` (with
    the default ``gae_lambda=1`` the n-step returns of the original A2C),
    bootstrapping truncated episodes from the value of their final
    observation. RMSprop (decay 0.99, ``eps`` added outside the square root,
    as PyTorch's, which SB3 uses), global gradient clipping at
    ``max_grad_norm``. It trains the same policies as PPO
    ([`MLPActorCriticPolicy`][lerax.policy.MLPActorCriticPolicy]).

    Defaults are SB3's A2C defaults with the SB3 zoo's 8 environments for
    CartPole. ``on_step`` callbacks see ``ctx.locals`` = ``{"log_prob",
    "value"}`` (``on_rollout``'s, the same for the whole rollout, leading
    axes ``(num_steps, num_envs)``). The training log holds ``loss``, ``policy_loss``,
    ``value_loss``, ``entropy``, ``explained_variance`` and ``learning_rate``.

    Hyperparameters: ``num_envs``, ``num_steps``, ``anneal_lr`` and
    ``normalize_advantages`` are static (they choose shapes and code); the
    floats (``learning_rate``, ``gamma``, ``gae_lambda``, ``ent_coef``,
    ``vf_coef``, ``max_grad_norm``, ``rms_prop_eps``) are float32 array leaves,
    so a batch of A2Cs trains as one program (a sweep) and a new value
    reuses the compiled program. ``max_grad_norm=inf`` means no clipping.

    Attributes:
        num_envs: parallel environments.
        num_steps: steps per environment per iteration.
        learning_rate: RMSprop's (initial) learning rate.
        gamma: discount factor.
        gae_lambda: GAE lambda (1: n-step returns).
        ent_coef: entropy bonus coefficient.
        vf_coef: value loss coefficient.
        max_grad_norm: global gradient norm clip (``inf``: none).
        rms_prop_eps: RMSprop's epsilon.
        anneal_lr: anneal the learning rate linearly to zero over training.
        normalize_advantages: normalise advantages over each rollout.
    """

    hyperparameter_ranges: ClassVar[dict[str, Interval]] = {
        "learning_rate": POSITIVE,
        "gamma": UNIT,
        "gae_lambda": UNIT,
        "ent_coef": NON_NEGATIVE,
        "vf_coef": NON_NEGATIVE,
        "max_grad_norm": POSITIVE_OR_INF,
        "rms_prop_eps": POSITIVE,
    }

    num_envs: int = eqx.field(static=True)
    num_steps: int = eqx.field(static=True)
    learning_rate: Float[Array, "*runs"]
    gamma: Float[Array, "*runs"]
    gae_lambda: Float[Array, "*runs"]
    ent_coef: Float[Array, "*runs"]
    vf_coef: Float[Array, "*runs"]
    max_grad_norm: Float[Array, "*runs"]
    rms_prop_eps: Float[Array, "*runs"]
    anneal_lr: bool = eqx.field(static=True)
    normalize_advantages: bool = eqx.field(static=True)

    def __init__(
        self,
        *,
        num_envs: int = 8,
        num_steps: int = 5,
        learning_rate: float | Float[ArrayLike, "*runs"] = 7e-4,
        gamma: float | Float[ArrayLike, "*runs"] = 0.99,
        gae_lambda: float | Float[ArrayLike, "*runs"] = 1.0,
        ent_coef: float | Float[ArrayLike, "*runs"] = 0.0,
        vf_coef: float | Float[ArrayLike, "*runs"] = 0.5,
        max_grad_norm: float | Float[ArrayLike, "*runs"] = 0.5,
        rms_prop_eps: float | Float[ArrayLike, "*runs"] = 1e-5,
        anneal_lr: bool = False,
        normalize_advantages: bool = False,
    ):
        check_sizes("A2C", num_envs=num_envs, num_steps=num_steps)
        check_flags(
            "A2C", anneal_lr=anneal_lr, normalize_advantages=normalize_advantages
        )
        self.num_envs = num_envs
        self.num_steps = num_steps
        hyperparameters(
            self,
            self.hyperparameter_ranges,
            learning_rate=learning_rate,
            gamma=gamma,
            gae_lambda=gae_lambda,
            ent_coef=ent_coef,
            vf_coef=vf_coef,
            max_grad_norm=max_grad_norm,
            rms_prop_eps=rms_prop_eps,
        )
        self.anneal_lr = anneal_lr
        self.normalize_advantages = normalize_advantages

    @property
    def host_call_every(self) -> int:
        """Iterations between periodic host calls: about every ``2**16``
        units of work, an iteration counting ``2 * num_envs * num_steps``
        (its steps and its one update over them)."""
        return max(1, math.ceil(2**16 / (2 * self.steps_per_iteration)))

    @property
    def updates_per_iteration(self) -> int:
        """RMSprop steps per iteration: one."""
        return 1

    def optimizer(self, num_iterations: int) -> optax.GradientTransformation:
        """Global-norm clipping, then RMSprop (decay 0.99, ``eps`` outside
        the square root) with the learning rate in its state."""
        lr: Float[Array, ""] | optax.Schedule = self.learning_rate
        if self.anneal_lr:
            lr = optax.linear_schedule(self.learning_rate, 0.0, num_iterations)
        rmsprop = optax.inject_hyperparams(optax.rmsprop)(
            learning_rate=lr, decay=0.99, eps=self.rms_prop_eps, eps_in_sqrt=False
        )
        return optax.chain(optax.clip_by_global_norm(self.max_grad_norm), rmsprop)

    def init_state(
        self,
        env: AbstractEnv[Any, Any, Any],
        policy: AbstractPolicy[Any, Any],
        num_iterations: int,
        *,
        key: Key,
    ) -> A2CState:
        """The optimizer initialised on the policy's parameters.

        Raises:
            TypeError: ``policy`` is not an ``AbstractActorCriticPolicy``.
        """
        if not isinstance(policy, AbstractActorCriticPolicy):
            raise policy_kind_error(
                "A2C", policy, AbstractActorCriticPolicy, "MLPActorCriticPolicy"
            )
        params = eqx.filter(policy, eqx.is_inexact_array)
        return A2CState(self.optimizer(num_iterations).init(params), num_iterations)

    def act(
        self,
        policy: ActorCritic,
        state: A2CState,
        observation: ArrayTree,
        *,
        timestep: Int[Array, ""],
        key: Key,
    ) -> tuple[ArrayTree, dict[str, Shaped[Array, "..."]]]:
        action, log_prob, value = policy.action_and_value(observation, key=key)
        return action, {"log_prob": log_prob, "value": value}

    def initial_training_log(self) -> dict[str, Float[Array, ""]]:
        names = (
            "loss",
            "policy_loss",
            "value_loss",
            "entropy",
            "explained_variance",
            "learning_rate",
        )
        return {n: jnp.zeros((), jnp.float32) for n in names}

    def update(
        self,
        policy: ActorCritic,
        state: A2CState,
        rollout: Rollout,
        *,
        key: Key,
        need_log: bool,
    ) -> tuple[ActorCritic, A2CState, dict[str, Float[Array, ""]]]:
        """GAE over the rollout, then one RMSprop step on the A2C loss."""
        values = rollout.extras["value"]
        advantages, returns = generalized_advantage_estimate(
            rollout.rewards,
            values,
            next_state_values(policy, rollout, values),
            rollout.terminated,
            rollout.truncated,
            gamma=self.gamma,
            gae_lambda=self.gae_lambda,
        )
        if self.normalize_advantages:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        params, static = eqx.partition(policy, eqx.is_inexact_array)

        def loss_fn(
            params: Any,
        ) -> tuple[Float[Array, ""], tuple[Float[Array, ""], ...]]:
            current = eqx.combine(params, static)
            log_probs, entropy, new_values = jax.vmap(
                jax.vmap(current.evaluate_action)
            )(rollout.observations, rollout.actions)
            policy_loss = -jnp.mean(advantages * log_probs)
            value_loss = jnp.mean((returns - new_values) ** 2)
            entropy_mean = jnp.mean(entropy)
            loss = (
                policy_loss + self.vf_coef * value_loss - self.ent_coef * entropy_mean
            )
            return loss, (loss, policy_loss, value_loss, entropy_mean)

        grads, stats = jax.grad(loss_fn, has_aux=True)(params)
        optimizer = self.optimizer(state.num_iterations)
        # optax mixes integer step counts with floats: allow its promotions
        # even when users run JAX with strict dtype promotion.
        with jax.numpy_dtype_promotion("standard"):
            updates, opt_state = optimizer.update(grads, state.opt_state, params)
        policy = eqx.combine(optax.apply_updates(params, updates), static)
        new_state = A2CState(opt_state, state.num_iterations)
        if not need_log:
            return policy, new_state, {}
        loss, policy_loss, value_loss, entropy_mean = stats
        variance = jnp.var(returns)
        explained = jnp.where(
            variance > 0, 1.0 - jnp.var(returns - values) / variance, jnp.nan
        )
        return (
            policy,
            new_state,
            {
                "loss": loss,
                "policy_loss": policy_loss,
                "value_loss": value_loss,
                "entropy": entropy_mean,
                "explained_variance": explained,
                "learning_rate": current_learning_rate(opt_state),
            },
        )
