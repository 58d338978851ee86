"""Deep Q-Network (Mnih et al. 2015) with double-DQN targets and Polyak or hard
target updates, trained from a replay buffer."""

from typing import Any, ClassVar, TypeAlias, final

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import optax
from jaxtyping import Array, ArrayLike, Bool, Float, Int, PyTree, Shaped

from .._custom_types import ArrayTree, Key, OptState
from ..buffer import ReplayBuffer, Transition
from ..env import AbstractEnv
from ..policy import AbstractPolicy, AbstractQPolicy
from ..space import Discrete
from ._base import AbstractAlgorithm
from ._hyper import (
    POSITIVE,
    POSITIVE_OR_INF,
    UNIT,
    UNIT_OPEN_LOW,
    Interval,
    check_flags,
    check_sizes,
    hyperparameters,
    policy_kind_error,
)
from ._offpolicy import (
    Ok,
    adam,
    add_rollout,
    check_replay,
    check_run_length,
    empty_buffer,
    guarded,
    guarded_adam,
    host_call_every,
    polyak_update,
    ready_to_learn,
    restore_iteration,
    rollout_ok,
    zeros_log,
)
from ._optim import current_learning_rate
from ._rollout import Rollout

QPolicy = AbstractQPolicy[Any, Any]
# What the gradient steps carry: parameters, optimizer state, target
# parameters, gradient-step count, and the replay buffer (unchanged: carried
# rather than closed over, so that XLA need not copy it into the loop).
_Carry: TypeAlias = tuple[
    PyTree, OptState, PyTree, Int[Array, ""], ReplayBuffer, Bool[Array, ""] | None
]


@final
class DQNState(eqx.Module):
    """[`DQN`][lerax.algorithm.DQN]'s state.

    Attributes:
        opt_state: Adam's state (after global-norm clipping) over the policy's
            floating-point arrays.
        target: the target network, a copy of the policy whose arrays follow
            the policy's by Polyak averaging (``tau``) every
            ``target_update_interval`` gradient steps.
        buffer: the replay buffer (``buffer_size`` transitions).
        gradient_steps: gradient steps taken so far in this run.
        total_timesteps: the run's environment steps, ``num_iterations *
            num_envs * num_steps`` (static; the epsilon schedule's length).
    """

    opt_state: OptState
    target: QPolicy
    buffer: ReplayBuffer
    gradient_steps: Int[Array, ""]
    total_timesteps: int = eqx.field(static=True)


@final
class DQN(AbstractAlgorithm[QPolicy, DQNState]):
    """Deep Q-Network (Mnih et al. 2015) with the double-DQN target (van Hasselt
    et al. 2016) and a Polyak-averaged or hard-copied target network, for
    [`AbstractQPolicy`][lerax.policy.AbstractQPolicy] policies such as
    [`MLPQPolicy`][lerax.policy.MLPQPolicy] on ``Discrete`` action spaces.
    Dueling (Wang et al. 2016) is the policy's choice
    (``MLPQPolicy(..., dueling=True)``).

    One iteration: ``num_steps`` steps of each of ``num_envs`` environments,
    acting epsilon-greedily; the rollout's ``num_envs * num_steps``
    transitions (flattened in step order) go into the replay buffer; then
    ``gradient_steps`` gradient steps, each on ``batch_size`` transitions
    drawn uniformly from the buffer and each followed by the target update
    when due. Gradient steps start with the first iteration after which the
    run has collected at least ``learning_starts`` environment steps; until
    then actions are uniformly random and only the buffer changes.

    Exploration: the probability of a uniformly random action is 1 before
    ``learning_starts`` steps, then follows a line from ``eps_start`` at step
    0 to ``eps_end`` at ``exploration_fraction`` of the run's environment
    steps, and stays at ``eps_end`` (see
    [`epsilon`][lerax.algorithm.DQN.epsilon]).

    Loss (``td_loss``): half the squared error (``"mse"``, as rejax and
    CleanRL) or the Huber loss (``"huber"``, delta 1, as Stable-Baselines3 and
    the Nature DQN's error clipping) between ``Q(s, a)`` and the TD target ``r + gamma * (1 -
    terminated) * Q_target(s', a*)``, ``s'`` being the true next observation
    (a truncated episode bootstraps, a terminated one does not), ``a* =
    argmax Q(s')`` with ``double_dqn`` and ``argmax Q_target(s')`` without
    (see [`td_targets`][lerax.algorithm.DQN.td_targets]). Adam (optax's
    defaults) after global-norm clipping at ``max_grad_norm``, its learning
    rate decaying linearly to 0 over the run's gradient steps with
    ``anneal_lr``. The target
    update is ``target <- tau * online + (1 - tau) * target`` (``tau = 1``:
    a hard copy).

    ``on_step`` callbacks see ``ctx.locals`` = ``{"epsilon"}``: the
    probability that this step's action was uniformly random
    (``on_rollout``'s, the same for the whole rollout, leading axes
    ``(num_steps, num_envs)``). The training
    log holds ``loss`` and ``q_value`` (the mean over the iteration's
    gradient steps of the loss and of ``Q(s, a)`` of the sampled
    transitions; 0 in iterations without gradient steps), ``epsilon`` (the
    mean over the rollout's steps) and ``learning_rate``.

    Defaults start from rejax's tuned CartPole config (keraJLi/rejax
    ``configs/gymnax/cartpole.yaml``, ``dqn``), whose network is a dueling
    64x64 swish MLP: ``MLPQPolicy(env, key=..., dueling=True,
    activation=jax.nn.swish)``, and its squared-error loss. Its ``polyak:
    0.98`` is ``tau=0.02`` here, applied, as rejax does, once per iteration:
    after every 5th gradient step (``target_update_interval=5``,
    ``gradient_steps=5``). Three settings differ, chosen on CartPole over ten
    seeds (BENCHMARKS.md): ``batch_size=256`` (rejax: 100),
    ``learning_rate=2e-3`` (rejax: 1e-3) and ``anneal_lr=True`` (rejax: a
    constant rate); the greedy policy at the end of the run is then much
    steadier. Also unlike rejax, gradients are clipped by their global norm
    (rejax: each element), and a truncated episode bootstraps (rejax: treats
    it as terminated).

    Hyperparameters: ``num_envs``, ``num_steps``, ``buffer_size``,
    ``learning_starts``, ``batch_size``, ``gradient_steps``,
    ``target_update_interval``, ``double_dqn``, ``td_loss`` and
    ``anneal_lr`` are static (they choose
    shapes and code); the floats (``learning_rate``, ``gamma``, ``tau``,
    ``eps_start``, ``eps_end``, ``exploration_fraction``, ``max_grad_norm``)
    are float32 array leaves, so a batch of DQNs trains as one program (a
    sweep) and a new value reuses the compiled program.
    ``max_grad_norm=inf`` means no clipping.

    Attributes:
        num_envs: parallel environments.
        num_steps: steps per environment per iteration.
        buffer_size: the replay buffer's capacity, in transitions.
        learning_starts: environment steps (over all environments) collected
            before the first gradient step; actions are uniformly random until
            then.
        batch_size: transitions per gradient step.
        gradient_steps: gradient steps per iteration.
        target_update_interval: gradient steps between target updates.
        double_dqn: choose the next action with the online network (double
            DQN) instead of the target network.
        td_loss: ``"huber"`` (delta 1; Stable-Baselines3, the Nature DQN) or
            ``"mse"`` (half the squared error; rejax, CleanRL).
        anneal_lr: decay the learning rate linearly from ``learning_rate`` at
            the first gradient step to 0 at the run's last (the final greedy
            policy then changes little over the last iterations).
        learning_rate: Adam's learning rate.
        gamma: discount factor.
        tau: the target update's step, in ``(0, 1]`` (1: hard copy).
        eps_start: the exploration rate at step 0.
        eps_end: the exploration rate after the schedule.
        exploration_fraction: the fraction of the run's environment steps
            over which the exploration rate goes from ``eps_start`` to
            ``eps_end``.
        max_grad_norm: global gradient norm clip (``inf``: none).
    """

    hyperparameter_ranges: ClassVar[dict[str, Interval]] = {
        "learning_rate": POSITIVE,
        "gamma": UNIT,
        "tau": UNIT_OPEN_LOW,
        "eps_start": UNIT,
        "eps_end": UNIT,
        "exploration_fraction": UNIT,
        "max_grad_norm": POSITIVE_OR_INF,
    }

    num_envs: int = eqx.field(static=True)
    num_steps: int = eqx.field(static=True)
    buffer_size: int = eqx.field(static=True)
    learning_starts: int = eqx.field(static=True)
    batch_size: int = eqx.field(static=True)
    gradient_steps: int = eqx.field(static=True)
    target_update_interval: int = eqx.field(static=True)
    double_dqn: bool = eqx.field(static=True)
    td_loss: str = eqx.field(static=True)
    anneal_lr: bool = eqx.field(static=True)
    learning_rate: Float[Array, "*runs"]
    gamma: Float[Array, "*runs"]
    tau: Float[Array, "*runs"]
    eps_start: Float[Array, "*runs"]
    eps_end: Float[Array, "*runs"]
    exploration_fraction: Float[Array, "*runs"]
    max_grad_norm: Float[Array, "*runs"]

    def __init__(
        self,
        *,
        num_envs: int = 10,
        num_steps: int = 1,
        buffer_size: int = 50_000,
        learning_starts: int = 5_000,
        batch_size: int = 256,
        gradient_steps: int = 5,
        target_update_interval: int = 5,
        double_dqn: bool = True,
        td_loss: str = "mse",
        anneal_lr: bool = True,
        learning_rate: float | Float[ArrayLike, "*runs"] = 2e-3,
        gamma: float | Float[ArrayLike, "*runs"] = 0.99,
        tau: float | Float[ArrayLike, "*runs"] = 0.02,
        eps_start: float | Float[ArrayLike, "*runs"] = 1.0,
        eps_end: float | Float[ArrayLike, "*runs"] = 0.05,
        exploration_fraction: float | Float[ArrayLike, "*runs"] = 0.5,
        max_grad_norm: float | Float[ArrayLike, "*runs"] = 10.0,
    ):
        check_sizes(
            "DQN",
            num_envs=num_envs,
            num_steps=num_steps,
            buffer_size=buffer_size,
            batch_size=batch_size,
            gradient_steps=gradient_steps,
            target_update_interval=target_update_interval,
        )
        check_replay(
            "DQN",
            buffer_size=buffer_size,
            learning_starts=learning_starts,
            batch_size=batch_size,
        )
        if num_envs * num_steps > buffer_size:
            raise ValueError(
                f"DQN: an iteration adds num_envs * num_steps = {num_envs} * "
                f"{num_steps} = {num_envs * num_steps} transitions, more than "
                f"buffer_size={buffer_size}; they must fit in the buffer"
            )
        check_flags("DQN", double_dqn=double_dqn, anneal_lr=anneal_lr)
        if td_loss not in ("huber", "mse"):
            raise ValueError(
                f"DQN: td_loss must be 'huber' or 'mse', got td_loss={td_loss!r}"
            )
        self.num_envs = num_envs
        self.num_steps = num_steps
        self.buffer_size = buffer_size
        self.learning_starts = learning_starts
        self.batch_size = batch_size
        self.gradient_steps = gradient_steps
        self.target_update_interval = target_update_interval
        self.double_dqn = double_dqn
        self.anneal_lr = anneal_lr
        self.td_loss = td_loss
        hyperparameters(
            self,
            self.hyperparameter_ranges,
            learning_rate=learning_rate,
            gamma=gamma,
            tau=tau,
            eps_start=eps_start,
            eps_end=eps_end,
            exploration_fraction=exploration_fraction,
            max_grad_norm=max_grad_norm,
        )

    @property
    def host_call_every(self) -> int:
        """Iterations between periodic host calls: about every ``2**16``
        units of work, an iteration counting ``num_envs * num_steps +
        gradient_steps * batch_size`` (its steps and the transitions its
        gradient steps go through)."""
        return host_call_every(
            self.steps_per_iteration, self.gradient_steps, self.batch_size
        )

    def total_gradient_steps(self, total_timesteps: int) -> int:
        """The gradient steps of a run of ``total_timesteps`` environment
        steps: ``gradient_steps`` in each iteration from the first after which
        ``learning_starts`` steps have been collected."""
        iterations = total_timesteps // self.steps_per_iteration
        first = max(0, -(-self.learning_starts // self.steps_per_iteration) - 1)
        return max(0, iterations - first) * self.gradient_steps

    @property
    def updates_per_iteration(self) -> int:
        """Gradient steps per iteration: ``gradient_steps``."""
        return self.gradient_steps

    def optimizer(self, total_timesteps: int) -> optax.GradientTransformation:
        """Global-norm clipping at ``max_grad_norm``, then Adam with the
        learning rate (constant, or with ``anneal_lr`` decaying linearly to 0
        over the run's [`total_gradient_steps`][lerax.algorithm.DQN.total_gradient_steps])
        in its state."""
        if not self.anneal_lr:
            return adam(self.learning_rate, self.max_grad_norm)
        schedule = optax.linear_schedule(
            self.learning_rate, 0.0, max(1, self.total_gradient_steps(total_timesteps))
        )
        return adam(schedule, self.max_grad_norm)

    def epsilon(
        self, timestep: Int[ArrayLike, ""], total_timesteps: int
    ) -> Float[Array, ""]:
        """The probability of a uniformly random action at ``timestep`` (the
        run's environment steps so far) in a run of ``total_timesteps``: 1
        before ``learning_starts``, else ``eps_start + (eps_end - eps_start) *
        min(1, timestep / (exploration_fraction * total_timesteps))``
        (``eps_end`` throughout if ``exploration_fraction`` is 0)."""
        t = jnp.asarray(timestep).astype(jnp.float32)
        decay = self.exploration_fraction * total_timesteps
        progress = jnp.where(t >= decay, 1.0, t / jnp.where(decay > 0, decay, 1.0))
        scheduled = self.eps_start + (self.eps_end - self.eps_start) * progress
        return jnp.where(t < self.learning_starts, 1.0, scheduled)

    def init_state(
        self,
        env: AbstractEnv[Any, Any, Any],
        policy: AbstractPolicy[Any, Any],
        num_iterations: int,
        *,
        key: Key,
    ) -> DQNState:
        """An empty replay buffer, the target network as a copy of the policy,
        and Adam's state.

        Raises:
            TypeError: ``env`` has no ``Discrete`` action space, or ``policy``
                is not an ``AbstractQPolicy``.
            ValueError: ``learning_starts`` or ``batch_size`` is larger than
                the run.
        """
        if not isinstance(env.action_space, Discrete):
            raise TypeError(
                f"DQN: the env's action_space must be Discrete, got "
                f"action_space={env.action_space!r} (env {env.name}); DQN picks "
                "one of finitely many actions"
            )
        if not isinstance(policy, AbstractQPolicy):
            raise policy_kind_error("DQN", policy, AbstractQPolicy, "MLPQPolicy")
        check_run_length(
            "DQN",
            self.learning_starts,
            self.batch_size,
            num_iterations,
            self.steps_per_iteration,
        )
        total_timesteps = num_iterations * self.steps_per_iteration
        # What act returns: an int32 scalar.
        action = jax.ShapeDtypeStruct((), jnp.int32)  # type: ignore[no-untyped-call]  # jax leaves ShapeDtypeStruct.__init__ unannotated
        buffer = empty_buffer(self.buffer_size, env, action, key)
        params = eqx.filter(policy, eqx.is_inexact_array)
        return DQNState(
            opt_state=self.optimizer(total_timesteps).init(params),
            target=policy,
            buffer=buffer,
            gradient_steps=jnp.zeros((), jnp.int32),
            total_timesteps=total_timesteps,
        )

    def act(
        self,
        policy: QPolicy,
        state: DQNState,
        observation: ArrayTree,
        *,
        timestep: Int[Array, ""],
        key: Key,
    ) -> tuple[ArrayTree, dict[str, Shaped[Array, "..."]]]:
        """Epsilon-greedy: with probability [`epsilon`][lerax.algorithm.DQN.epsilon]
        a uniformly random action, else the policy's greedy action."""
        space = policy.action_space
        if not isinstance(space, Discrete):
            raise TypeError(f"DQN: action_space must be Discrete, got {space!r}")
        epsilon = self.epsilon(timestep, state.total_timesteps)
        # One draw for both choices: fewer random-number call sites compile faster.
        u = jr.uniform(key, (2,))
        offset = jnp.minimum(jnp.floor(u[1] * space.n).astype(jnp.int32), space.n - 1)
        random_action = offset + jnp.asarray(space.start, jnp.int32)
        greedy = jnp.asarray(policy(observation), jnp.int32)
        action = jnp.where(u[0] < epsilon, random_action, greedy)
        return action, {"epsilon": epsilon}

    def initial_training_log(self) -> dict[str, Float[Array, ""]]:
        return zeros_log(("loss", "q_value", "epsilon", "learning_rate"))

    def td_targets(
        self, policy: QPolicy, target: QPolicy, batch: Transition
    ) -> Float[Array, " batch"]:
        """``r + gamma * (1 - terminated) * Q_target(s', a*)`` for each
        transition, ``s'`` its (true) next observation, ``a* = argmax Q(s')``
        of ``policy`` if ``double_dqn`` else of ``target``. Truncated
        transitions bootstrap; terminated ones do not."""
        next_target = jax.vmap(target.q_values)(batch.next_observations)
        if self.double_dqn:
            chooser = jax.vmap(policy.q_values)(batch.next_observations)
        else:
            chooser = next_target
        best = jnp.argmax(chooser, axis=-1)
        next_value = jnp.take_along_axis(next_target, best[:, None], axis=-1)[:, 0]
        bootstrap = jnp.where(batch.terminated, 0.0, next_value)
        return batch.rewards + self.gamma * bootstrap

    def loss(
        self, policy: QPolicy, target: QPolicy, batch: Transition
    ) -> tuple[Float[Array, ""], Float[Array, ""]]:
        """The mean ``td_loss`` (half the squared error, or the Huber loss with
        delta 1) between ``Q(s, a)`` and the TD targets of
        [`td_targets`][lerax.algorithm.DQN.td_targets] (held constant), and the
        mean ``Q(s, a)``."""
        targets = jax.lax.stop_gradient(self.td_targets(policy, target, batch))
        q = jax.vmap(policy.q_values)(batch.observations)
        space = policy.action_space
        if not isinstance(space, Discrete):
            raise TypeError(f"DQN: action_space must be Discrete, got {space!r}")
        index = batch.actions.astype(jnp.int32) - jnp.asarray(space.start, jnp.int32)
        q_taken = jnp.take_along_axis(q, index[:, None], axis=-1)[:, 0]
        if self.td_loss == "mse":
            errors = optax.l2_loss(q_taken, targets)
        else:
            errors = optax.huber_loss(q_taken, targets, delta=1.0)
        return jnp.mean(errors), q_taken.mean()

    def update(
        self,
        policy: QPolicy,
        state: DQNState,
        rollout: Rollout,
        *,
        key: Key,
        need_log: bool,
    ) -> tuple[QPolicy, DQNState, dict[str, Float[Array, ""]]]:
        """Add the rollout to the buffer, then take ``gradient_steps`` gradient
        steps (none before ``learning_starts``), each followed by the target
        update when due."""
        policy, state, log, _ = self._update(
            policy, state, rollout, key=key, need_log=need_log, guard=False
        )
        return policy, state, log

    def guarded_update(
        self,
        policy: QPolicy,
        state: DQNState,
        rollout: Rollout,
        *,
        key: Key,
        need_log: bool,
    ) -> tuple[QPolicy, DQNState, dict[str, Float[Array, ""]], Bool[Array, ""]]:
        """[`update`][lerax.algorithm.DQN.update], guarded: each gradient step
        updates the Q-network, counts itself and moves the target network
        only while the rollout and every loss and gradient so far are
        finite."""
        policy, state, log, ok = self._update(
            policy, state, rollout, key=key, need_log=need_log, guard=True
        )
        assert ok is not None
        return policy, state, log, ok

    def _update(
        self,
        policy: QPolicy,
        state: DQNState,
        rollout: Rollout,
        *,
        key: Key,
        need_log: bool,
        guard: bool,
    ) -> tuple[QPolicy, DQNState, dict[str, Float[Array, ""]], Ok]:
        buffer = add_rollout(state.buffer, rollout)
        params, static = eqx.partition(policy, eqx.is_inexact_array)
        target_params = eqx.filter(state.target, eqx.is_inexact_array)
        optimizer = self.optimizer(state.total_timesteps)

        def loss_fn(
            params: PyTree, target_params: PyTree, batch: Transition
        ) -> tuple[Float[Array, ""], Float[Array, ""]]:
            return self.loss(
                eqx.combine(params, static), eqx.combine(target_params, static), batch
            )

        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

        def gradient_step(carry: _Carry, key: Key) -> tuple[_Carry, Float[Array, " 2"]]:
            params, opt_state, target_params, count, buffer, ok = carry
            batch = buffer.sample(self.batch_size, key=key)
            (loss, q_value), grads = grad_fn(params, target_params, batch)
            params, opt_state, ok = guarded_adam(
                optimizer, loss, grads, opt_state, params, ok
            )
            count = guarded(ok, count + 1, count)
            target_params = guarded(
                ok, self._target_update(params, target_params, count), target_params
            )
            carry = (params, opt_state, target_params, count, buffer, ok)
            return carry, jnp.stack([loss, q_value])

        def learn(carry: _Carry) -> tuple[_Carry, Float[Array, " 2"]]:
            keys = jr.split(key, self.gradient_steps)
            new, stats = jax.lax.scan(gradient_step, carry, keys)
            *learned, buffer, ok = new
            learned = restore_iteration(
                ok, learned, list(carry[:4]), self.gradient_steps
            )
            params, opt_state, target_params, count = learned
            return (params, opt_state, target_params, count, buffer, ok), stats.mean(
                axis=0
            )

        def wait(carry: _Carry) -> tuple[_Carry, Float[Array, " 2"]]:
            return carry, jnp.zeros((2,), jnp.float32)

        carry: _Carry = (
            params,
            state.opt_state,
            target_params,
            state.gradient_steps,
            buffer,
            rollout_ok(rollout, guard),
        )
        if self.learning_starts <= self.steps_per_iteration:
            carry, stats = learn(carry)  # every iteration learns
        else:
            ready = ready_to_learn(
                rollout, self.steps_per_iteration, self.learning_starts
            )
            carry, stats = jax.lax.cond(ready, learn, wait, carry)
        params, opt_state, target_params, count, buffer, ok = carry
        new_state = DQNState(
            opt_state=opt_state,
            target=eqx.combine(target_params, static),
            buffer=buffer,
            gradient_steps=count,
            total_timesteps=state.total_timesteps,
        )
        policy = eqx.combine(params, static)
        if not need_log:
            return policy, new_state, {}, ok
        return (
            policy,
            new_state,
            {
                "loss": stats[0],
                "q_value": stats[1],
                "epsilon": jnp.mean(rollout.extras["epsilon"]),
                "learning_rate": current_learning_rate(opt_state),
            },
            ok,
        )

    def _target_update(
        self, params: PyTree, target_params: PyTree, count: Int[Array, ""]
    ) -> PyTree:
        """``tau * params + (1 - tau) * target_params`` after gradient step
        ``count`` if it is a multiple of ``target_update_interval``, else
        ``target_params``."""
        moved = polyak_update(params, target_params, self.tau)
        if self.target_update_interval == 1:
            return moved
        due = count % self.target_update_interval == 0
        return jax.tree.map(lambda m, t: jnp.where(due, m, t), moved, target_params)
