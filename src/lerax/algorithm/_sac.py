"""Soft Actor-Critic."""

from typing import Any, ClassVar, final

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import optax
from jaxtyping import Array, ArrayLike, Bool, Float, Int, Shaped

from .._custom_types import ArrayTree, Key, OptState
from ..buffer import ReplayBuffer, Transition
from ..env import AbstractEnv
from ..policy import AbstractPolicy, AbstractSACPolicy, AbstractTwinQCritic
from ._base import AbstractAlgorithm
from ._hyper import (
    FINITE,
    NON_NEGATIVE,
    POSITIVE,
    UNIT,
    UNIT_OPEN_LOW,
    Interval,
    check_sizes,
    hyperparameters,
    policy_kind_error,
)
from ._offpolicy import (
    Ok,
    adam,
    box_action,
    check_box_env,
    check_replay,
    check_run_length,
    empty_buffer,
    flat_parameters,
    guarded,
    guarded_adam,
    host_call_every,
    polyak_update,
    replay_update,
    zeros_log,
)
from ._optim import current_learning_rate
from ._rollout import Rollout

SACPolicy = AbstractSACPolicy[Any, Any]

_STATS = ("actor_loss", "critic_loss", "alpha_loss", "entropy")


@final
class SACState(eqx.Module):
    """[`SAC`][lerax.algorithm.SAC]'s state.

    Attributes:
        buffer: the replay buffer.
        target_critic: the target twin critic, a Polyak average of the
            policy's ``critic`` (a copy of it at the start), evaluated on its
            own: ``target_critic(flat_observation, normalized_action)``.
        log_alpha: the log of the entropy temperature: learned when
            ``ent_coef="auto"``, else ``log(ent_coef)`` throughout.
        actor_opt_state: Adam's state over the actor's floating-point arrays
            as one flat vector (``jax.flatten_util.ravel_pytree``).
        critic_opt_state: Adam's state over the critic's, likewise.
        alpha_opt_state: Adam's state over ``log_alpha`` (``optax.EmptyState()``
            for a fixed temperature).
    """

    buffer: ReplayBuffer
    target_critic: AbstractTwinQCritic
    log_alpha: Float[Array, ""]
    actor_opt_state: OptState
    critic_opt_state: OptState
    alpha_opt_state: OptState


@final
class SAC(AbstractAlgorithm[SACPolicy, SACState]):
    """Soft Actor-Critic (Haarnoja et al. 2018) with automatic entropy tuning,
    as Stable-Baselines3's ``SAC``; trains an
    [`AbstractSACPolicy`][lerax.policy.AbstractSACPolicy] such as
    [`MLPSACPolicy`][lerax.policy.MLPSACPolicy] on a ``Box`` action space.

    One iteration takes ``num_steps`` steps in each of ``num_envs``
    environments and adds the transitions to the replay buffer (the rollout
    flattened step by step), then, once the run has taken ``learning_starts``
    environment steps, makes ``gradient_steps`` updates, each on
    ``batch_size`` transitions drawn uniformly from the buffer (before that
    the updates are skipped by a ``lax.cond``). Before ``learning_starts``
    steps the actions are uniform in the box; after, samples of the policy.
    Actions always lie in the box, so the loop's clip never changes them.

    One update, ``alpha`` being the temperature before it:

    1. critic: ``0.5 * (mean((Q1 - y)^2) + mean((Q2 - y)^2))`` with the target
       ``y = r + gamma * (1 - terminated) * (min(Q1', Q2')(s', a') - alpha *
       log_pi(a'|s'))`` ([`critic_target`][lerax.algorithm.SAC.critic_target]),
       ``a' ~ pi(s')``, ``s'`` the true next observation (a truncated episode
       bootstraps from its final observation) and ``Q'`` the target critic;
    2. actor: ``mean(alpha * log_pi(a|s) - min(Q1, Q2)(s, a))``, ``a ~ pi(s)``
       reparameterised, with the critic just updated
       ([`actor_loss`][lerax.algorithm.SAC.actor_loss]);
    3. temperature (when learned): ``-mean(log_alpha * (log_pi(a|s) +
       target_entropy))`` on the actor's ``log_pi`` of step 2, without its
       gradient ([`alpha_loss`][lerax.algorithm.SAC.alpha_loss]);
    4. target critic: ``tau * critic + (1 - tau) * target_critic``.

    Actor, critic and ``log_alpha`` have separate Adam optimizers with the
    same ``learning_rate``. ``log_pi`` is the squashed action's log density in
    the normalized space ``[-1, 1]^a`` (see the policy), so the default
    target entropy ``-a`` (``a`` the action size) means the same in every box.

    Defaults are rejax's tuned Pendulum config (keraJLi/rejax
    ``configs/gymnax/pendulum.yaml``, ``sac``: one environment, buffer 10,000,
    256 random steps, batch 256, learning rate 0.01, one gradient step per
    environment step, gamma 0.99, Polyak 0.98, i.e. ``tau=0.02``); rejax uses
    a 64x64 swish network, which the example in the docs builds. The
    temperature starts at 1 (``log_alpha = 0``) as in SB3 and rejax.

    ``on_step`` and ``on_rollout`` callbacks see an empty ``ctx.locals``.
    The training log
    holds the means over the iteration's gradient steps of ``actor_loss``,
    ``critic_loss``, ``alpha_loss`` (when learned) and ``entropy`` (``-mean
    log_pi`` of the actor's samples), the temperature ``alpha`` after the
    update, and ``learning_rate/actor``, ``learning_rate/critic`` and
    ``learning_rate/alpha`` (when learned); zeros before ``learning_starts``
    except ``alpha`` and the learning rates.

    Hyperparameters: ``num_envs``, ``num_steps``, ``buffer_size``,
    ``learning_starts``, ``batch_size``, ``gradient_steps``, ``learn_ent_coef``
    and ``auto_target_entropy`` are static (they choose shapes and code); the
    floats (``learning_rate``, ``gamma``, ``tau``, ``ent_coef``,
    ``target_entropy``) are float32 array leaves, so a batch of SACs trains
    as one program (a sweep). ``ent_coef="auto"`` (the default) chooses a
    learned temperature (static ``learn_ent_coef=True``) starting at
    ``ent_coef=1``; a number fixes it. ``target_entropy="auto"`` (static
    ``auto_target_entropy=True``) means ``-a``, found when training starts;
    a number sets it (only read when the temperature is learned).

    Periodic host calls come every
    [`host_call_every`][lerax.algorithm.SAC.host_call_every] iterations.

    Attributes:
        num_envs: parallel environments.
        num_steps: steps per environment per iteration.
        buffer_size: the replay buffer's capacity.
        learning_starts: environment steps (over all environments) of random
            actions before learning; updates start in the iteration that
            reaches it.
        batch_size: transitions per gradient step.
        gradient_steps: gradient steps per iteration.
        learning_rate: Adam's learning rate (actor, critic and temperature).
        gamma: discount factor.
        tau: Polyak coefficient of the target critic, in ``(0, 1]`` (1: copy;
            0 would never move it).
        ent_coef: the fixed temperature, or the learned one's initial value.
        target_entropy: the entropy the learned temperature aims at (ignored
            when ``auto_target_entropy``).
        learn_ent_coef: the temperature is learned (``ent_coef="auto"``).
        auto_target_entropy: the target entropy is ``-a``.
    """

    hyperparameter_ranges: ClassVar[dict[str, Interval]] = {
        "learning_rate": POSITIVE,
        "gamma": UNIT,
        "tau": UNIT_OPEN_LOW,
        "ent_coef": NON_NEGATIVE,
        "target_entropy": FINITE,
    }

    num_envs: int = eqx.field(static=True)
    num_steps: int = eqx.field(static=True)
    buffer_size: int = eqx.field(static=True)
    learning_starts: int = eqx.field(static=True)
    batch_size: int = eqx.field(static=True)
    gradient_steps: int = eqx.field(static=True)
    learning_rate: Float[Array, "*runs"]
    gamma: Float[Array, "*runs"]
    tau: Float[Array, "*runs"]
    ent_coef: Float[Array, "*runs"]
    target_entropy: Float[Array, "*runs"]
    learn_ent_coef: bool = eqx.field(static=True)
    auto_target_entropy: bool = eqx.field(static=True)

    def __init__(
        self,
        *,
        num_envs: int = 1,
        num_steps: int = 1,
        buffer_size: int = 10_000,
        learning_starts: int = 256,
        batch_size: int = 256,
        gradient_steps: int = 1,
        learning_rate: float | Float[ArrayLike, "*runs"] = 1e-2,
        gamma: float | Float[ArrayLike, "*runs"] = 0.99,
        tau: float | Float[ArrayLike, "*runs"] = 0.02,
        ent_coef: str | float | Float[ArrayLike, "*runs"] = "auto",
        target_entropy: str | float | Float[ArrayLike, "*runs"] = "auto",
    ):
        check_sizes(
            "SAC",
            num_envs=num_envs,
            num_steps=num_steps,
            buffer_size=buffer_size,
            batch_size=batch_size,
            gradient_steps=gradient_steps,
        )
        check_replay(
            "SAC",
            buffer_size=buffer_size,
            learning_starts=learning_starts,
            batch_size=batch_size,
            steps_per_iteration=num_envs * num_steps,
        )
        learn_ent_coef = _is_auto("ent_coef", ent_coef)
        auto_target_entropy = _is_auto("target_entropy", target_entropy)
        self.num_envs = num_envs
        self.num_steps = num_steps
        self.buffer_size = buffer_size
        self.learning_starts = learning_starts
        self.batch_size = batch_size
        self.gradient_steps = gradient_steps
        hyperparameters(
            self,
            self.hyperparameter_ranges,
            learning_rate=learning_rate,
            gamma=gamma,
            tau=tau,
            ent_coef=1.0 if isinstance(ent_coef, str) else ent_coef,
            target_entropy=0.0 if isinstance(target_entropy, str) else target_entropy,
        )
        self.learn_ent_coef = learn_ent_coef
        self.auto_target_entropy = auto_target_entropy

    @property
    def host_call_every(self) -> int:
        """Iterations between periodic host calls: about every ``2**16``
        units of work, an iteration counting ``num_envs * num_steps +
        gradient_steps * batch_size`` (256 iterations for the defaults)."""
        return host_call_every(
            self.steps_per_iteration, self.gradient_steps, self.batch_size
        )

    @property
    def updates_per_iteration(self) -> int:
        """Gradient steps per iteration (of each of the critic, the actor and
        the temperature): ``gradient_steps``."""
        return self.gradient_steps

    def optimizer(self) -> optax.GradientTransformation:
        """Adam (optax's defaults) with ``learning_rate`` in its state; the
        actor, the critic and ``log_alpha`` each have one."""
        return adam(self.learning_rate)

    def init_state(
        self,
        env: AbstractEnv[Any, Any, Any],
        policy: AbstractPolicy[Any, Any],
        num_iterations: int,
        *,
        key: Key,
    ) -> SACState:
        """An empty buffer, the target critic as a copy of the critic, the
        temperature at ``ent_coef`` and fresh optimizers.

        Raises:
            TypeError: ``env``'s action space is not a ``Box``, or ``policy``
                is not an ``AbstractSACPolicy``.
            ValueError: the run (``num_iterations`` iterations) is shorter
                than ``learning_starts`` or ``batch_size``. All raised at trace
                time, before anything compiles.
        """
        check_box_env("SAC", env)
        if not isinstance(policy, AbstractSACPolicy):
            raise policy_kind_error("SAC", policy, AbstractSACPolicy, "MLPSACPolicy")
        check_run_length(
            "SAC",
            self.learning_starts,
            self.batch_size,
            num_iterations,
            self.steps_per_iteration,
        )
        buffer = empty_buffer(self.buffer_size, env, box_action(policy), key)
        optimizer = self.optimizer()
        log_alpha = jnp.log(self.ent_coef)
        return SACState(
            buffer=buffer,
            target_critic=policy.critic,
            log_alpha=log_alpha,
            actor_opt_state=optimizer.init(flat_parameters(policy.actor)[0]),
            critic_opt_state=optimizer.init(flat_parameters(policy.critic)[0]),
            alpha_opt_state=(
                optimizer.init(log_alpha) if self.learn_ent_coef else optax.EmptyState()
            ),
        )

    def act(
        self,
        policy: SACPolicy,
        state: SACState,
        observation: ArrayTree,
        *,
        timestep: Int[Array, ""],
        key: Key,
    ) -> tuple[ArrayTree, dict[str, Shaped[Array, "..."]]]:
        """Before ``learning_starts`` steps, uniform in the box:
        ``policy.scale_action(jr.uniform(key, (a,), minval=-1, maxval=1))``;
        after, a sample of the policy: ``policy(observation, key=key)``."""
        size = policy.action_space.flat_size

        def uniform() -> Float[Array, "..."]:
            u = jr.uniform(key, (size,), minval=-1, maxval=1)
            action: Float[Array, "..."] = policy.scale_action(u)
            return action

        def sample() -> Float[Array, "..."]:
            action: Float[Array, "..."] = policy(observation, key=key)
            return action

        action = jax.lax.cond(timestep < self.learning_starts, uniform, sample)
        return action, {}

    def initial_training_log(self) -> dict[str, Float[Array, ""]]:
        return zeros_log(self._log_names())

    def _log_names(self) -> tuple[str, ...]:
        if self.learn_ent_coef:
            return (
                *_STATS,
                "alpha",
                "learning_rate/actor",
                "learning_rate/critic",
                "learning_rate/alpha",
            )
        stats = tuple(n for n in _STATS if n != "alpha_loss")
        return (*stats, "alpha", "learning_rate/actor", "learning_rate/critic")

    def alpha(self, state: SACState) -> Float[Array, ""]:
        """The temperature: ``exp(log_alpha)`` when learned, else ``ent_coef``."""
        return jnp.exp(state.log_alpha) if self.learn_ent_coef else self.ent_coef

    def critic_target(
        self,
        policy: SACPolicy,
        target_critic: AbstractTwinQCritic,
        alpha: Float[Array, ""],
        batch: Transition,
        *,
        key: Key,
    ) -> Float[Array, " batch"]:
        """The soft Bellman target ``r + gamma * (1 - terminated) *
        (min(Q1', Q2')(s', a') - alpha * log_pi(a'|s'))`` of each transition.

        ``a', log_pi = policy.action_and_log_prob(s', key=k)`` with one key
        per transition, ``jr.split(key, batch_size)``; ``s'`` is
        ``batch.next_observations`` (so truncated transitions bootstrap);
        ``Q'`` is ``target_critic(flatten(s'), unscale_action(a'))``.
        """
        keys = jr.split(key, batch.rewards.shape[0])
        next_actions, next_log_probs = jax.vmap(
            lambda o, k: policy.action_and_log_prob(o, key=k)
        )(batch.next_observations, keys)
        flat_next = jax.vmap(policy.observation_space.flatten)(batch.next_observations)
        q1, q2 = jax.vmap(target_critic)(
            flat_next, jax.vmap(policy.unscale_action)(next_actions)
        )
        soft_value = jnp.minimum(q1, q2) - alpha * next_log_probs
        return batch.rewards + jnp.where(batch.terminated, 0.0, self.gamma * soft_value)

    def critic_loss(
        self,
        policy: SACPolicy,
        batch: Transition,
        target: Float[Array, " batch"],
    ) -> Float[Array, ""]:
        """``0.5 * (mean((Q1 - target)^2) + mean((Q2 - target)^2))`` of the
        policy's critic on the batch's observations and actions (SB3's)."""
        q1, q2 = jax.vmap(policy.q_values)(batch.observations, batch.actions)
        return 0.5 * (jnp.mean((q1 - target) ** 2) + jnp.mean((q2 - target) ** 2))

    def actor_loss(
        self,
        policy: SACPolicy,
        alpha: Float[Array, ""],
        observations: ArrayTree,
        *,
        key: Key,
    ) -> tuple[Float[Array, ""], Float[Array, " batch"]]:
        """``mean(alpha * log_pi(a|s) - min(Q1, Q2)(s, a))`` with ``a, log_pi
        = policy.action_and_log_prob(s, key=k)``, one key per observation
        (``jr.split(key, batch_size)``), and the policy's critic; also
        returns the ``log_pi``."""
        keys = jr.split(key, jax.tree.leaves(observations)[0].shape[0])

        def one(obs: ArrayTree, k: Key) -> tuple[Float[Array, ""], Float[Array, ""]]:
            action, log_prob = policy.action_and_log_prob(obs, key=k)
            q1, q2 = policy.q_values(obs, action)
            return alpha * log_prob - jnp.minimum(q1, q2), log_prob

        losses, log_probs = jax.vmap(one)(observations, keys)
        return jnp.mean(losses), log_probs

    def alpha_loss(
        self,
        log_alpha: Float[Array, ""],
        log_probs: Float[Array, " batch"],
        target_entropy: Float[Array, ""],
    ) -> Float[Array, ""]:
        """``-mean(log_alpha * (log_probs + target_entropy))``, without a
        gradient through ``log_probs``."""
        return -jnp.mean(
            log_alpha * (jax.lax.stop_gradient(log_probs) + target_entropy)
        )

    def update(
        self,
        policy: SACPolicy,
        state: SACState,
        rollout: Rollout,
        *,
        key: Key,
        need_log: bool,
    ) -> tuple[SACPolicy, SACState, dict[str, Float[Array, ""]]]:
        """Add the rollout to the buffer, then ``gradient_steps`` updates
        (skipped before ``learning_starts``)."""
        policy, state, log, _ = self._update(
            policy, state, rollout, key=key, need_log=need_log, guard=False
        )
        return policy, state, log

    def guarded_update(
        self,
        policy: SACPolicy,
        state: SACState,
        rollout: Rollout,
        *,
        key: Key,
        need_log: bool,
    ) -> tuple[SACPolicy, SACState, dict[str, Float[Array, ""]], Bool[Array, ""]]:
        """[`update`][lerax.algorithm.SAC.update], guarded: each gradient step
        updates the critic, the actor, the temperature and the target critic
        only while the rollout and every loss and gradient so far are finite
        (an update of the critic before a non-finite actor gradient in the
        same step is kept)."""
        policy, state, log, ok = self._update(
            policy, state, rollout, key=key, need_log=need_log, guard=True
        )
        assert ok is not None
        return policy, state, log, ok

    def _update(
        self,
        policy: SACPolicy,
        state: SACState,
        rollout: Rollout,
        *,
        key: Key,
        need_log: bool,
        guard: bool,
    ) -> tuple[SACPolicy, SACState, dict[str, Float[Array, ""]], Ok]:
        if self.auto_target_entropy:
            target_entropy = jnp.asarray(-policy.action_space.flat_size, jnp.float32)
        else:
            target_entropy = self.target_entropy

        def step(
            policy: SACPolicy, state: SACState, step_key: Key, ok: Ok
        ) -> tuple[SACPolicy, SACState, Float[Array, " 4"], Ok]:
            return self._gradient_step(
                policy, state, target_entropy, key=step_key, ok=ok
            )

        policy, state, stats, ok = replay_update(
            policy,
            state,
            rollout,
            step,
            key=key,
            num_stats=len(_STATS),
            gradient_steps=self.gradient_steps,
            steps_per_iteration=self.steps_per_iteration,
            learning_starts=self.learning_starts,
            guard=guard,
        )
        if not need_log:
            return policy, state, {}, ok
        log: dict[str, Float[Array, ""]] = dict(zip(_STATS, stats, strict=True))
        log["alpha"] = jnp.asarray(self.alpha(state), jnp.float32)
        log["learning_rate/actor"] = current_learning_rate(state.actor_opt_state)
        log["learning_rate/critic"] = current_learning_rate(state.critic_opt_state)
        if self.learn_ent_coef:
            log["learning_rate/alpha"] = current_learning_rate(state.alpha_opt_state)
        else:
            del log["alpha_loss"]
        return policy, state, log, ok

    def _gradient_step(
        self,
        policy: SACPolicy,
        state: SACState,
        target_entropy: Float[Array, ""],
        *,
        key: Key,
        ok: Ok,
    ) -> tuple[SACPolicy, SACState, Float[Array, " 4"], Ok]:
        """One update (see the class docstring) on one sampled batch; the
        statistics in the order of ``_STATS``; guarded by ``ok`` (see
        [`guarded_adam`][])."""
        k_sample, k_target, k_actor = jr.split(key, 3)
        optimizer = self.optimizer()
        batch = state.buffer.sample(self.batch_size, key=k_sample)
        alpha = self.alpha(state)

        target = self.critic_target(
            policy, state.target_critic, alpha, batch, key=k_target
        )
        critic_params, rebuild_critic = flat_parameters(policy.critic)

        def critic_fn(params: Float[Array, " parameters"]) -> Float[Array, ""]:
            critic = rebuild_critic(params)
            return self.critic_loss(
                eqx.tree_at(lambda p: p.critic, policy, critic), batch, target
            )

        critic_loss, grads = jax.value_and_grad(critic_fn)(critic_params)
        critic_params, critic_opt_state, ok = guarded_adam(
            optimizer, critic_loss, grads, state.critic_opt_state, critic_params, ok
        )
        critic = rebuild_critic(critic_params)
        policy = eqx.tree_at(lambda p: p.critic, policy, critic)

        actor_params, rebuild_actor = flat_parameters(policy.actor)

        def actor_fn(
            params: Float[Array, " parameters"],
        ) -> tuple[Float[Array, ""], Float[Array, " batch"]]:
            return self.actor_loss(
                eqx.tree_at(lambda p: p.actor, policy, rebuild_actor(params)),
                alpha,
                batch.observations,
                key=k_actor,
            )

        (actor_loss, log_probs), grads = jax.value_and_grad(actor_fn, has_aux=True)(
            actor_params
        )
        actor_params, actor_opt_state, ok = guarded_adam(
            optimizer, actor_loss, grads, state.actor_opt_state, actor_params, ok
        )
        policy = eqx.tree_at(lambda p: p.actor, policy, rebuild_actor(actor_params))

        log_alpha, alpha_opt_state = state.log_alpha, state.alpha_opt_state
        alpha_loss = jnp.zeros((), jnp.float32)
        if self.learn_ent_coef:
            alpha_loss, grad = jax.value_and_grad(self.alpha_loss)(
                log_alpha, log_probs, target_entropy
            )
            log_alpha, alpha_opt_state, ok = guarded_adam(
                optimizer, alpha_loss, grad, alpha_opt_state, log_alpha, ok
            )

        new_state = SACState(
            buffer=state.buffer,
            target_critic=guarded(
                ok,
                polyak_update(critic, state.target_critic, self.tau),
                state.target_critic,
            ),
            log_alpha=log_alpha,
            actor_opt_state=actor_opt_state,
            critic_opt_state=critic_opt_state,
            alpha_opt_state=alpha_opt_state,
        )
        stats = jnp.stack([actor_loss, critic_loss, alpha_loss, -jnp.mean(log_probs)])
        return policy, new_state, stats, ok


def _is_auto(name: str, value: object) -> bool:
    """Whether ``value`` is the string ``"auto"``; ``ValueError`` for any
    other string (numbers are checked as hyperparameters)."""
    if isinstance(value, str):
        if value != "auto":
            raise ValueError(
                f'SAC: {name} must be "auto" or a number, got {name}={value!r}'
            )
        return True
    return False
