"""Twin Delayed Deep Deterministic policy gradient (TD3)."""

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
from ..policy import AbstractPolicy, AbstractTD3Policy, AbstractTwinQCritic
from ._base import AbstractAlgorithm
from ._hyper import (
    NON_NEGATIVE,
    POSITIVE,
    POSITIVE_OR_INF,
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

TD3Policy = AbstractTD3Policy[Any, Any]

_STATS = ("actor_loss", "critic_loss", "q_value")


@final
class TD3State(eqx.Module):
    """[`TD3`][lerax.algorithm.TD3]'s state.

    Attributes:
        buffer: the replay buffer.
        target_actor: the target actor, a Polyak average of the policy's
            ``actor`` (a copy of it at the start).
        target_critic: the target twin critic, a Polyak average of the
            policy's ``critic``, evaluated on its own:
            ``target_critic(flat_observation, normalized_action)``.
        actor_opt_state: Adam's state over the actor's floating-point arrays
            as one flat vector (``jax.flatten_util.ravel_pytree``).
        critic_opt_state: Adam's state over the critic's, likewise.
        critic_updates: critic updates so far (the actor and the targets are
            updated when it is a multiple of ``policy_delay``).
        actor_loss: the loss of the latest actor update (0 before the
            first), which the training log reports at the gradient steps
            that do not update the actor.
    """

    buffer: ReplayBuffer
    target_actor: eqx.Module
    target_critic: AbstractTwinQCritic
    actor_opt_state: OptState
    critic_opt_state: OptState
    critic_updates: Int[Array, ""]
    actor_loss: Float[Array, ""]


@final
class TD3(AbstractAlgorithm[TD3Policy, TD3State]):
    """Twin Delayed DDPG (Fujimoto et al. 2018), as Stable-Baselines3's
    ``TD3``; trains an [`AbstractTD3Policy`][lerax.policy.AbstractTD3Policy]
    such as [`MLPDeterministicPolicy`][lerax.policy.MLPDeterministicPolicy]
    on a ``Box`` action space.

    One iteration takes ``num_steps`` steps in each of ``num_envs``
    environments and adds the transitions to the replay buffer (the rollout
    flattened step by step), then, once the run has taken ``learning_starts``
    environment steps, makes ``gradient_steps`` critic updates, each on
    ``batch_size`` transitions drawn uniformly from the buffer (before that
    the updates are skipped by a ``lax.cond``).

    Acting: before ``learning_starts`` steps, uniform in the box; after, the
    actor's action with Gaussian noise in the normalized space:
    ``scale_action(clip(unscale_action(policy(s)) + exploration_noise * N(0,
    1), -1, 1))``. Actions therefore always lie in the box and the loop's clip
    never changes them.

    One critic update (``critic_updates`` counts them):

    1. target ([`critic_target`][lerax.algorithm.TD3.critic_target]): ``y = r
       + gamma * (1 - terminated) * min(Q1', Q2')(s', clip(mu'(s') + clip(
       target_noise * N(0, 1), -target_noise_clip, target_noise_clip), -1,
       1))`` (target policy smoothing in the normalized space), ``mu'`` the
       target actor, ``Q'`` the target critic and ``s'`` the true next
       observation (a truncated episode bootstraps from its final
       observation);
    2. critic: ``mean((Q1 - y)^2) + mean((Q2 - y)^2)`` (SB3's);
    3. every ``policy_delay``-th critic update (delayed policy updates): the
       actor on ``-mean(Q1(s, mu(s)))``
       ([`actor_loss`][lerax.algorithm.TD3.actor_loss]) with the critic just
       updated, then both targets: ``target <- tau * online + (1 - tau) *
       target``.

    Actor and critic have separate Adam optimizers with the same
    ``learning_rate``, after global-norm clipping at ``max_grad_norm``
    (``inf``: none).

    Defaults are rejax's tuned Pendulum config (keraJLi/rejax
    ``configs/gymnax/pendulum.yaml``, ``td3``: one environment, buffer
    10,000, 1,000 random steps, batch 100, learning rate 1e-3, one gradient
    step per environment step, gamma 0.99, Polyak 0.95 i.e. ``tau=0.05``,
    gradient clip 100, exploration noise 0.3, target noise 0.2 clipped at 0.5,
    policy delay 2); rejax uses 64x64 swish networks, which the example in
    the docs builds. Unlike rejax, both noises are in the normalized space
    ``[-1, 1]^a`` (as SB3), so they mean the same in every box.

    ``on_step`` and ``on_rollout`` callbacks see an empty ``ctx.locals``.
    The training log holds
    the means over the iteration's gradient steps of ``actor_loss`` (the loss
    of the actor update at that step or, at a step that does not update the
    actor, of the latest one before it, kept in the state as
    ``TD3State.actor_loss``), ``critic_loss`` and ``q_value``
    (the mean ``Q1`` of the sampled transitions before the critic update),
    and ``learning_rate/actor`` and ``learning_rate/critic``; zeros before
    ``learning_starts`` except the learning rates.

    Hyperparameters: ``num_envs``, ``num_steps``, ``buffer_size``,
    ``learning_starts``, ``batch_size``, ``gradient_steps`` and
    ``policy_delay`` are static (they choose shapes and code); the floats
    (``learning_rate``, ``gamma``, ``tau``, ``max_grad_norm``,
    ``exploration_noise``, ``target_noise``, ``target_noise_clip``) are
    float32 array leaves, so a batch of TD3s trains as one program (a sweep).

    Periodic host calls come every
    [`host_call_every`][lerax.algorithm.TD3.host_call_every] iterations.

    Attributes:
        num_envs: parallel environments.
        num_steps: steps per environment per iteration.
        buffer_size: the replay buffer's capacity.
        learning_starts: environment steps (over all environments) of random
            actions before learning; updates start in the iteration that
            reaches it.
        batch_size: transitions per gradient step.
        gradient_steps: critic updates per iteration.
        policy_delay: critic updates per actor (and target) update.
        learning_rate: Adam's learning rate (actor and critic).
        gamma: discount factor.
        tau: Polyak coefficient of the targets, in ``(0, 1]`` (1: copy; 0
            would never move them).
        max_grad_norm: global gradient norm clip (``inf``: none).
        exploration_noise: standard deviation of the acting noise (normalized
            space).
        target_noise: standard deviation of the target smoothing noise
            (normalized space).
        target_noise_clip: the target smoothing noise is clipped to
            ``[-target_noise_clip, target_noise_clip]``.
    """

    hyperparameter_ranges: ClassVar[dict[str, Interval]] = {
        "learning_rate": POSITIVE,
        "gamma": UNIT,
        "tau": UNIT_OPEN_LOW,
        "max_grad_norm": POSITIVE_OR_INF,
        "exploration_noise": NON_NEGATIVE,
        "target_noise": NON_NEGATIVE,
        "target_noise_clip": NON_NEGATIVE,
    }

    num_envs: int = eqx.field(static=True)
    num_steps: int = eqx.field(static=True)
    buffer_size: int = eqx.field(static=True)
    learning_starts: int = eqx.field(static=True)
    batch_size: int = eqx.field(static=True)
    gradient_steps: int = eqx.field(static=True)
    policy_delay: int = eqx.field(static=True)
    learning_rate: Float[Array, "*runs"]
    gamma: Float[Array, "*runs"]
    tau: Float[Array, "*runs"]
    max_grad_norm: Float[Array, "*runs"]
    exploration_noise: Float[Array, "*runs"]
    target_noise: Float[Array, "*runs"]
    target_noise_clip: Float[Array, "*runs"]

    def __init__(
        self,
        *,
        num_envs: int = 1,
        num_steps: int = 1,
        buffer_size: int = 10_000,
        learning_starts: int = 1000,
        batch_size: int = 100,
        gradient_steps: int = 1,
        policy_delay: int = 2,
        learning_rate: float | Float[ArrayLike, "*runs"] = 1e-3,
        gamma: float | Float[ArrayLike, "*runs"] = 0.99,
        tau: float | Float[ArrayLike, "*runs"] = 0.05,
        max_grad_norm: float | Float[ArrayLike, "*runs"] = 100.0,
        exploration_noise: float | Float[ArrayLike, "*runs"] = 0.3,
        target_noise: float | Float[ArrayLike, "*runs"] = 0.2,
        target_noise_clip: float | Float[ArrayLike, "*runs"] = 0.5,
    ):
        check_sizes(
            "TD3",
            num_envs=num_envs,
            num_steps=num_steps,
            buffer_size=buffer_size,
            batch_size=batch_size,
            gradient_steps=gradient_steps,
            policy_delay=policy_delay,
        )
        check_replay(
            "TD3",
            buffer_size=buffer_size,
            learning_starts=learning_starts,
            batch_size=batch_size,
            steps_per_iteration=num_envs * num_steps,
        )
        self.num_envs = num_envs
        self.num_steps = num_steps
        self.buffer_size = buffer_size
        self.learning_starts = learning_starts
        self.batch_size = batch_size
        self.gradient_steps = gradient_steps
        self.policy_delay = policy_delay
        hyperparameters(
            self,
            self.hyperparameter_ranges,
            learning_rate=learning_rate,
            gamma=gamma,
            tau=tau,
            max_grad_norm=max_grad_norm,
            exploration_noise=exploration_noise,
            target_noise=target_noise,
            target_noise_clip=target_noise_clip,
        )

    @property
    def host_call_every(self) -> int:
        """Iterations between periodic host calls: about every ``2**16``
        units of work, an iteration counting ``num_envs * num_steps +
        gradient_steps * batch_size`` (649 iterations for the defaults)."""
        return host_call_every(
            self.steps_per_iteration, self.gradient_steps, self.batch_size
        )

    @property
    def updates_per_iteration(self) -> int:
        """Critic updates per iteration: ``gradient_steps`` (the actor takes
        one every ``policy_delay``)."""
        return self.gradient_steps

    def optimizer(self) -> optax.GradientTransformation:
        """Global-norm clipping at ``max_grad_norm``, then Adam (optax's
        defaults) with ``learning_rate`` in its state; the actor and the
        critic each have one."""
        return adam(self.learning_rate, self.max_grad_norm)

    def init_state(
        self,
        env: AbstractEnv[Any, Any, Any],
        policy: AbstractPolicy[Any, Any],
        num_iterations: int,
        *,
        key: Key,
    ) -> TD3State:
        """An empty buffer, the targets as copies of the actor and the
        critic, and fresh optimizers.

        Raises:
            TypeError: ``env``'s action space is not a ``Box``, or ``policy``
                is not an ``AbstractTD3Policy``.
            ValueError: the run (``num_iterations`` iterations) is shorter
                than ``learning_starts`` or ``batch_size``. All raised at trace
                time, before anything compiles.
        """
        check_box_env("TD3", env)
        if not isinstance(policy, AbstractTD3Policy):
            raise policy_kind_error(
                "TD3", policy, AbstractTD3Policy, "MLPDeterministicPolicy"
            )
        check_run_length(
            "TD3",
            self.learning_starts,
            self.batch_size,
            num_iterations,
            self.steps_per_iteration,
        )
        optimizer = self.optimizer()
        return TD3State(
            buffer=empty_buffer(self.buffer_size, env, box_action(policy), key),
            target_actor=policy.actor,
            target_critic=policy.critic,
            actor_opt_state=optimizer.init(flat_parameters(policy.actor)[0]),
            critic_opt_state=optimizer.init(flat_parameters(policy.critic)[0]),
            critic_updates=jnp.zeros((), jnp.int32),
            actor_loss=jnp.zeros((), jnp.float32),
        )

    def act(
        self,
        policy: TD3Policy,
        state: TD3State,
        observation: ArrayTree,
        *,
        timestep: Int[Array, ""],
        key: Key,
    ) -> tuple[ArrayTree, dict[str, Shaped[Array, "..."]]]:
        """Before ``learning_starts`` steps, uniform in the box:
        ``policy.scale_action(jr.uniform(key, (a,), minval=-1, maxval=1))``;
        after, ``policy.scale_action(clip(policy.unscale_action(policy(
        observation)) + exploration_noise * jr.normal(key, (a,)), -1, 1))``."""
        size = policy.action_space.flat_size

        def uniform() -> Float[Array, "..."]:
            u = jr.uniform(key, (size,), minval=-1, maxval=1)
            action: Float[Array, "..."] = policy.scale_action(u)
            return action

        def explore() -> Float[Array, "..."]:
            action = policy.unscale_action(policy(observation))
            noise = self.exploration_noise * jr.normal(key, action.shape)
            noisy: Float[Array, "..."] = policy.scale_action(
                jnp.clip(action + noise, -1.0, 1.0)
            )
            return noisy

        action = jax.lax.cond(timestep < self.learning_starts, uniform, explore)
        return action, {}

    def initial_training_log(self) -> dict[str, Float[Array, ""]]:
        return zeros_log((*_STATS, "learning_rate/actor", "learning_rate/critic"))

    def critic_target(
        self,
        policy: TD3Policy,
        target_actor: eqx.Module,
        target_critic: AbstractTwinQCritic,
        batch: Transition,
        *,
        key: Key,
    ) -> Float[Array, " batch"]:
        """The clipped double-Q target with target policy smoothing, ``r +
        gamma * (1 - terminated) * min(Q1', Q2')(s', a')`` of each transition.

        ``a' = clip(mu'(s') + clip(target_noise * jr.normal(key, (batch,
        a)), -target_noise_clip, target_noise_clip), -1, 1)`` in the normalized
        space, ``mu'(s')`` the policy's normalized action with ``target_actor``
        as its actor; ``s'`` is ``batch.next_observations`` (so truncated
        transitions bootstrap); ``Q'`` is ``target_critic(flatten(s'), a')``.
        """
        target_policy = eqx.tree_at(lambda p: p.actor, policy, target_actor)
        actions = jax.vmap(lambda o: target_policy.unscale_action(target_policy(o)))(
            batch.next_observations
        )
        noise = jnp.clip(
            self.target_noise * jr.normal(key, actions.shape),
            -self.target_noise_clip,
            self.target_noise_clip,
        )
        smoothed = jnp.clip(actions + noise, -1.0, 1.0)
        flat_next = jax.vmap(policy.observation_space.flatten)(batch.next_observations)
        q1, q2 = jax.vmap(target_critic)(flat_next, smoothed)
        return batch.rewards + jnp.where(
            batch.terminated, 0.0, self.gamma * jnp.minimum(q1, q2)
        )

    def critic_loss(
        self,
        policy: TD3Policy,
        batch: Transition,
        target: Float[Array, " batch"],
    ) -> tuple[Float[Array, ""], Float[Array, ""]]:
        """``mean((Q1 - target)^2) + mean((Q2 - target)^2)`` of the policy's
        critic on the batch's observations and actions (SB3's), and the mean
        ``Q1``."""
        q1, q2 = jax.vmap(policy.q_values)(batch.observations, batch.actions)
        loss = jnp.mean((q1 - target) ** 2) + jnp.mean((q2 - target) ** 2)
        return loss, jnp.mean(q1)

    def actor_loss(
        self, policy: TD3Policy, observations: ArrayTree
    ) -> Float[Array, ""]:
        """``-mean(Q1(s, mu(s)))``: the policy's first critic at the policy's
        own (noise-free) actions."""

        def one(obs: ArrayTree) -> Float[Array, ""]:
            q1, _ = policy.q_values(obs, policy(obs))
            return q1

        return -jnp.mean(jax.vmap(one)(observations))

    def update(
        self,
        policy: TD3Policy,
        state: TD3State,
        rollout: Rollout,
        *,
        key: Key,
        need_log: bool,
    ) -> tuple[TD3Policy, TD3State, dict[str, Float[Array, ""]]]:
        """Add the rollout to the buffer, then ``gradient_steps`` critic
        updates with delayed actor and target updates (skipped before
        ``learning_starts``)."""
        policy, state, log, _ = self._update(
            policy, state, rollout, key=key, need_log=need_log, guard=False
        )
        return policy, state, log

    def guarded_update(
        self,
        policy: TD3Policy,
        state: TD3State,
        rollout: Rollout,
        *,
        key: Key,
        need_log: bool,
    ) -> tuple[TD3Policy, TD3State, dict[str, Float[Array, ""]], Bool[Array, ""]]:
        """[`update`][lerax.algorithm.TD3.update], guarded: each gradient step
        updates the critic (and counts it), then the actor and the targets,
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
        policy: TD3Policy,
        state: TD3State,
        rollout: Rollout,
        *,
        key: Key,
        need_log: bool,
        guard: bool,
    ) -> tuple[TD3Policy, TD3State, dict[str, Float[Array, ""]], Ok]:
        def step(
            policy: TD3Policy, state: TD3State, step_key: Key, ok: Ok
        ) -> tuple[TD3Policy, TD3State, Float[Array, " 3"], Ok]:
            return self._gradient_step(policy, state, key=step_key, ok=ok)

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
        log["learning_rate/actor"] = current_learning_rate(state.actor_opt_state)
        log["learning_rate/critic"] = current_learning_rate(state.critic_opt_state)
        return policy, state, log, ok

    def _gradient_step(
        self,
        policy: TD3Policy,
        state: TD3State,
        *,
        key: Key,
        ok: Ok,
    ) -> tuple[TD3Policy, TD3State, Float[Array, " 3"], Ok]:
        """One critic update and, every ``policy_delay``-th, the actor's and
        the targets' (see the class docstring); the statistics in the order of
        ``_STATS``; guarded by ``ok`` (see [`guarded_adam`][])."""
        k_sample, k_target = jr.split(key)
        optimizer = self.optimizer()
        batch = state.buffer.sample(self.batch_size, key=k_sample)

        target = self.critic_target(
            policy, state.target_actor, state.target_critic, batch, key=k_target
        )
        critic_params, rebuild_critic = flat_parameters(policy.critic)

        def critic_fn(
            params: Float[Array, " parameters"],
        ) -> tuple[Float[Array, ""], Float[Array, ""]]:
            critic = rebuild_critic(params)
            return self.critic_loss(
                eqx.tree_at(lambda p: p.critic, policy, critic), batch, target
            )

        (critic_loss, q_value), grads = jax.value_and_grad(critic_fn, has_aux=True)(
            critic_params
        )
        critic_params, critic_opt_state, ok = guarded_adam(
            optimizer, critic_loss, grads, state.critic_opt_state, critic_params, ok
        )
        critic = rebuild_critic(critic_params)
        policy = eqx.tree_at(lambda p: p.critic, policy, critic)
        critic_updates = guarded(ok, state.critic_updates + 1, state.critic_updates)

        actor_params, rebuild_actor = flat_parameters(policy.actor)

        def actor_fn(params: Float[Array, " parameters"]) -> Float[Array, ""]:
            return self.actor_loss(
                eqx.tree_at(lambda p: p.actor, policy, rebuild_actor(params)),
                batch.observations,
            )

        # What the delayed update changes, as arrays (lax.cond's operands).
        targets, targets_static = eqx.partition(
            (state.target_actor, state.target_critic), eqx.is_array
        )
        unchanged = (actor_params, state.actor_opt_state, targets)

        def update_actor() -> tuple[Any, Float[Array, ""], Ok]:
            actor_loss, grads = jax.value_and_grad(actor_fn)(actor_params)
            new_actor, actor_opt_state, actor_ok = guarded_adam(
                optimizer, actor_loss, grads, state.actor_opt_state, actor_params, ok
            )
            target_actor = polyak_update(
                rebuild_actor(new_actor), state.target_actor, self.tau
            )
            target_critic = polyak_update(critic, state.target_critic, self.tau)
            new_targets = guarded(
                actor_ok,
                eqx.filter((target_actor, target_critic), eqx.is_array),
                targets,
            )
            return (new_actor, actor_opt_state, new_targets), actor_loss, actor_ok

        def keep_actor() -> tuple[Any, Float[Array, ""], Ok]:
            # The latest actor update's loss: computing the unchanged actor's
            # for the log would cost a forward pass of both networks.
            return unchanged, state.actor_loss, ok

        delay_step = critic_updates % self.policy_delay == 0
        (actor_params, actor_opt_state, targets), actor_loss, ok = jax.lax.cond(
            delay_step, update_actor, keep_actor
        )
        policy = eqx.tree_at(lambda p: p.actor, policy, rebuild_actor(actor_params))
        target_actor, target_critic = eqx.combine(targets, targets_static)
        new_state = TD3State(
            buffer=state.buffer,
            target_actor=target_actor,
            target_critic=target_critic,
            actor_opt_state=actor_opt_state,
            critic_opt_state=critic_opt_state,
            critic_updates=critic_updates,
            actor_loss=actor_loss,
        )
        return policy, new_state, jnp.stack([actor_loss, critic_loss, q_value]), ok
