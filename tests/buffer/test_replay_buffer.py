"""ReplayBuffer against a plain Python circular buffer, eager, jitted, in a scan
and vmapped over runs."""

import re
from typing import TypeVar

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jaxtyping import Array, Bool, Float, Int, TypeCheckError

from lerax.buffer import ReplayBuffer, Transition

T = TypeVar("T")

OBS_EXAMPLE = jnp.zeros(3, dtype=jnp.float32)
ACT_EXAMPLE = jnp.zeros((), dtype=jnp.int32)


class Batch(eqx.Module):
    """The six arguments of ``ReplayBuffer.add`` for transitions with given ids."""

    observations: Float[Array, "n 3"]
    actions: Int[Array, " n"]
    rewards: Float[Array, " n"]
    terminated: Bool[Array, " n"]
    truncated: Bool[Array, " n"]
    next_observations: Float[Array, "n 3"]


def transition_values(i: int) -> dict[str, np.ndarray]:
    """The fields of transition ``i``: every field is a function of ``i``, and
    the action is ``i`` itself, so a sampled transition names its id."""
    obs = np.array([i, i + 0.5, -i], dtype=np.float32)
    return {
        "observations": obs,
        "actions": np.array(i, dtype=np.int32),
        "rewards": np.array(0.25 * i, dtype=np.float32),
        "terminated": np.array(i % 3 == 1),
        "truncated": np.array(i % 4 == 2),
        "next_observations": obs + 100.0,
    }


def make_batch(ids: list[int]) -> Batch:
    values = [transition_values(i) for i in ids]
    return Batch(
        **{name: jnp.asarray(np.stack([v[name] for v in values])) for name in values[0]}
    )


def add(buffer: ReplayBuffer, batch: Batch) -> ReplayBuffer:
    return buffer.add(
        batch.observations,
        batch.actions,
        batch.rewards,
        batch.terminated,
        batch.truncated,
        batch.next_observations,
    )


class ReferenceBuffer:
    """A circular buffer as a Python list of transition ids and a position."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.slots: list[int | None] = [None] * capacity
        self.position = 0
        self.size = 0

    def add(self, ids: list[int]) -> None:
        for i in ids:
            self.slots[self.position] = i
            self.position = (self.position + 1) % self.capacity
            self.size = min(self.size + 1, self.capacity)

    def contents(self) -> set[int]:
        return {i for i in self.slots[: self.size] if i is not None}


def assert_matches_reference(buffer: ReplayBuffer, ref: ReferenceBuffer) -> None:
    assert int(buffer.position) == ref.position
    assert int(buffer.size) == ref.size
    for slot, i in enumerate(ref.slots):
        for name in (
            "observations",
            "actions",
            "rewards",
            "terminated",
            "truncated",
            "next_observations",
        ):
            got = np.asarray(getattr(buffer, name)[slot])
            if i is None:
                np.testing.assert_array_equal(got, np.zeros_like(got), err_msg=name)
            else:
                np.testing.assert_array_equal(
                    got, transition_values(i)[name], err_msg=f"slot {slot} {name}"
                )


def assert_trees_equal(got: object, expected: object) -> None:
    """Same pytree structure (static fields included) and equal leaves."""
    got_def: object = jax.tree.structure(got)
    expected_def: object = jax.tree.structure(expected)
    assert got_def == expected_def
    for g, e in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
        assert g.shape == e.shape and g.dtype == e.dtype
        np.testing.assert_array_equal(np.asarray(g), np.asarray(e))


def sampled_ids(transition: Transition) -> list[int]:
    """The ids of sampled transitions, after checking each is a whole stored
    transition (no fields mixed between slots)."""
    ids = [int(i) for i in np.asarray(transition.actions)]
    for row, i in enumerate(ids):
        expected = transition_values(i)
        for name in (
            "observations",
            "rewards",
            "terminated",
            "truncated",
            "next_observations",
        ):
            np.testing.assert_array_equal(
                np.asarray(getattr(transition, name)[row]), expected[name]
            )
    return ids


def test_empty_is_zero_filled_with_the_examples_shapes_and_dtypes() -> None:
    buffer = ReplayBuffer.empty(7, OBS_EXAMPLE, ACT_EXAMPLE)
    assert buffer.capacity == 7
    assert buffer.observations.shape == (7, 3)
    assert buffer.observations.dtype == jnp.float32
    assert buffer.next_observations.shape == (7, 3)
    assert buffer.actions.shape == (7,)
    assert buffer.actions.dtype == jnp.int32
    assert buffer.rewards.shape == (7,)
    assert buffer.terminated.dtype == jnp.bool_
    assert buffer.truncated.dtype == jnp.bool_
    assert int(buffer.position) == 0
    assert int(buffer.size) == 0
    for leaf in jax.tree.leaves(buffer):
        assert not np.asarray(leaf).any()


def test_adds_with_wrap_around_match_the_reference() -> None:
    capacity = 5
    buffer = ReplayBuffer.empty(capacity, OBS_EXAMPLE, ACT_EXAMPLE)
    ref = ReferenceBuffer(capacity)
    next_id = 0
    # 2, 2 fill 4 slots; 3 wraps inside one batch; 5 is a whole capacity
    # starting mid-buffer; then 1 and 4 wrap again.
    positions_and_sizes = []
    for n in (2, 2, 3, 5, 1, 4, 0):
        ids = list(range(next_id, next_id + n))
        next_id += n
        if n:
            buffer = add(buffer, make_batch(ids))
        ref.add(ids)
        assert_matches_reference(buffer, ref)
        positions_and_sizes.append((int(buffer.position), int(buffer.size)))
    assert positions_and_sizes == [
        (2, 2),
        (4, 4),
        (2, 5),
        (2, 5),
        (3, 5),
        (2, 5),
        (2, 5),
    ]
    # The last add (4 transitions from slot 3) overwrote slots 3, 4, 0, 1.
    assert ref.contents() == {13, 14, 15, 16, 12}


def test_add_of_an_empty_batch_changes_nothing() -> None:
    buffer = add(ReplayBuffer.empty(4, OBS_EXAMPLE, ACT_EXAMPLE), make_batch([0, 1]))
    empty_batch = Batch(
        observations=jnp.zeros((0, 3), jnp.float32),
        actions=jnp.zeros((0,), jnp.int32),
        rewards=jnp.zeros((0,), jnp.float32),
        terminated=jnp.zeros((0,), bool),
        truncated=jnp.zeros((0,), bool),
        next_observations=jnp.zeros((0, 3), jnp.float32),
    )
    after = add(buffer, empty_batch)
    assert_trees_equal(after, buffer)


def test_sampling_draws_only_from_the_filled_part() -> None:
    buffer = ReplayBuffer.empty(8, OBS_EXAMPLE, ACT_EXAMPLE)
    ref = ReferenceBuffer(8)
    buffer = add(buffer, make_batch([0, 1, 2]))
    ref.add([0, 1, 2])
    ids = sampled_ids(buffer.sample(600, key=jr.key(0)))
    assert set(ids) == ref.contents() == {0, 1, 2}  # all filled, none empty


def test_sampling_after_wrap_around_never_returns_overwritten_transitions() -> None:
    capacity = 6
    buffer = ReplayBuffer.empty(capacity, OBS_EXAMPLE, ACT_EXAMPLE)
    ref = ReferenceBuffer(capacity)
    for ids in ([0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10]):
        buffer = add(buffer, make_batch(ids))
        ref.add(ids)
        seen = set()
        for k in range(4):
            seen |= set(sampled_ids(buffer.sample(256, key=jr.key(k))))
        assert seen == ref.contents()
    assert ref.contents() == {5, 6, 7, 8, 9, 10}  # 0..4 were overwritten
    assert_matches_reference(buffer, ref)


def test_sampling_is_uniform_over_the_filled_part() -> None:
    buffer = add(
        ReplayBuffer.empty(10, OBS_EXAMPLE, ACT_EXAMPLE), make_batch([0, 1, 2, 3])
    )
    ids = np.asarray(buffer.sample(40_000, key=jr.key(3)).actions)
    frequencies = np.bincount(ids, minlength=4) / ids.size
    np.testing.assert_allclose(frequencies, 0.25, atol=0.01)


def test_sampling_an_empty_buffer_returns_slot_zero_zeros() -> None:
    buffer = ReplayBuffer.empty(4, OBS_EXAMPLE, ACT_EXAMPLE)
    sample = buffer.sample(5, key=jr.key(0))
    assert sample.observations.shape == (5, 3)
    for leaf in jax.tree.leaves(sample):
        assert not np.asarray(leaf).any()


def test_terminated_and_truncated_are_stored_apart() -> None:
    batch = Batch(
        observations=jnp.zeros((4, 3), jnp.float32),
        actions=jnp.arange(4, dtype=jnp.int32),
        rewards=jnp.zeros(4, jnp.float32),
        terminated=jnp.array([True, False, False, True]),
        truncated=jnp.array([False, True, False, True]),
        next_observations=jnp.ones((4, 3), jnp.float32),
    )
    buffer = add(ReplayBuffer.empty(4, OBS_EXAMPLE, ACT_EXAMPLE), batch)
    np.testing.assert_array_equal(buffer.terminated, [True, False, False, True])
    np.testing.assert_array_equal(buffer.truncated, [False, True, False, True])
    sample = buffer.sample(200, key=jr.key(1))
    actions = np.asarray(sample.actions)
    np.testing.assert_array_equal(sample.terminated, np.isin(actions, [0, 3]))
    np.testing.assert_array_equal(sample.truncated, np.isin(actions, [1, 3]))


def test_dict_observations() -> None:
    example = {
        "position": jnp.zeros(2, jnp.float32),
        "count": jnp.zeros((), jnp.int32),
    }
    buffer = ReplayBuffer.empty(3, example, jnp.zeros(2, jnp.float32))

    def add_ids(buffer: ReplayBuffer, ids: list[int]) -> ReplayBuffer:
        a = jnp.asarray(ids, dtype=jnp.int32)
        f = a.astype(jnp.float32)
        return buffer.add(
            {"position": jnp.stack([f, -f], axis=1), "count": a},
            jnp.stack([10 * f, 20 * f], axis=1),
            f / 2,
            a % 2 == 0,
            a % 2 == 1,
            {"position": jnp.stack([f + 1, -f - 1], axis=1), "count": a + 1},
        )

    buffer = add_ids(add_ids(buffer, [0, 1]), [2, 3])  # 3 overwrites slot 0
    np.testing.assert_array_equal(buffer.observations["count"], [3, 1, 2])
    np.testing.assert_array_equal(
        buffer.observations["position"], [[3, -3], [1, -1], [2, -2]]
    )
    np.testing.assert_array_equal(buffer.next_observations["count"], [4, 2, 3])
    np.testing.assert_array_equal(buffer.actions, [[30, 60], [10, 20], [20, 40]])
    assert int(buffer.size) == 3 and int(buffer.position) == 1

    sample = buffer.sample(300, key=jr.key(0))
    count = np.asarray(sample.observations["count"])
    assert set(count.tolist()) == {1, 2, 3}
    np.testing.assert_array_equal(sample.observations["position"][:, 0], count)
    np.testing.assert_array_equal(sample.next_observations["count"], count + 1)
    np.testing.assert_array_equal(sample.actions[:, 1], 20 * count)
    np.testing.assert_array_equal(sample.rewards, count / 2)


def test_jit_equals_eager_and_does_not_retrace() -> None:
    buffer = add(ReplayBuffer.empty(5, OBS_EXAMPLE, ACT_EXAMPLE), make_batch([0, 1, 2]))
    batch = make_batch([3, 4, 5, 6])

    jit_add = jax.jit(eqx.debug.assert_max_traces(add, max_traces=1))

    def sample(buffer: ReplayBuffer, key: Array) -> Transition:
        return buffer.sample(32, key=key)

    jit_sample = jax.jit(eqx.debug.assert_max_traces(sample, max_traces=1))
    eager = add(buffer, batch)
    jitted = jit_add(buffer, batch)
    assert_trees_equal(jitted, eager)
    assert_trees_equal(jit_add(jitted, batch), add(eager, batch))

    for k in range(2):
        key = jr.key(k)
        assert_trees_equal(jit_sample(jitted, key), eager.sample(32, key=key))


def test_adds_inside_lax_scan_equal_sequential_adds() -> None:
    ids = jnp.arange(12).reshape(4, 3)
    batches = [make_batch([int(i) for i in row]) for row in ids]
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *batches)
    empty = ReplayBuffer.empty(7, OBS_EXAMPLE, ACT_EXAMPLE)

    def body(buffer: ReplayBuffer, batch: Batch) -> tuple[ReplayBuffer, None]:
        return add(buffer, batch), None

    scanned, _ = jax.lax.scan(body, empty, stacked)
    sequential = empty
    for batch in batches:
        sequential = add(sequential, batch)
    assert_trees_equal(scanned, sequential)
    ref = ReferenceBuffer(7)
    ref.add(list(range(12)))
    assert_matches_reference(scanned, ref)


def run_of(tree: T, r: int) -> T:
    """Run ``r`` of a pytree batched over runs."""
    selected: T = jax.tree.map(lambda x: x[r], tree)
    return selected


def test_filter_vmap_over_three_buffers_equals_three_runs() -> None:
    capacity, runs = 4, 3

    def run(seed: Int[Array, ""], key: Array) -> tuple[ReplayBuffer, Transition]:
        buffer = ReplayBuffer.empty(capacity, OBS_EXAMPLE, ACT_EXAMPLE)
        for start in (0, 3):  # the second add wraps
            b = make_batch(list(range(start, start + 3)))
            b = eqx.tree_at(
                lambda b: (b.actions, b.rewards),
                b,
                (b.actions + 100 * seed, b.rewards * (seed + 1).astype(jnp.float32)),
            )
            buffer = add(buffer, b)
        return buffer, buffer.sample(16, key=key)

    seeds = jnp.arange(runs, dtype=jnp.int32)
    keys = jr.split(jr.key(7), runs)
    buffers, samples = eqx.filter_vmap(run)(seeds, keys)
    assert buffers.rewards.shape == (runs, capacity)
    assert samples.observations.shape == (runs, 16, 3)
    for r in range(runs):
        one_buffer, one_sample = run(seeds[r], keys[r])
        assert_trees_equal(run_of(buffers, r), one_buffer)
        assert_trees_equal(run_of(samples, r), one_sample)
    # The runs hold different data, so the comparison above is not vacuous.
    assert set(np.asarray(samples.actions[2]).tolist()) <= {202, 203, 204, 205}
    single = ReplayBuffer.empty(capacity, OBS_EXAMPLE, ACT_EXAMPLE)
    assert buffers.nbytes == runs * single.nbytes


def test_filter_vmap_of_add_and_sample_on_a_batched_buffer() -> None:
    runs = 3
    buffers = eqx.filter_vmap(
        lambda _: ReplayBuffer.empty(5, OBS_EXAMPLE, ACT_EXAMPLE)
    )(jnp.arange(runs))
    batches = [make_batch([10 * r, 10 * r + 1]) for r in range(runs)]
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *batches)
    buffers = eqx.filter_vmap(add)(buffers, stacked)
    keys = jr.split(jr.key(0), runs)
    samples = eqx.filter_vmap(lambda b, k: b.sample(50, key=k))(buffers, keys)
    for r in range(runs):
        single = add(ReplayBuffer.empty(5, OBS_EXAMPLE, ACT_EXAMPLE), batches[r])
        assert_trees_equal(run_of(buffers, r), single)
        expected = single.sample(50, key=keys[r])
        assert_trees_equal(run_of(samples, r), expected)
        assert set(sampled_ids(expected)) == {10 * r, 10 * r + 1}


def test_nbytes_follows_the_formula() -> None:
    capacity = 11
    obs = {"a": jnp.zeros((2, 3), jnp.float32), "b": jnp.zeros((), jnp.int32)}
    act = jnp.zeros(4, jnp.float32)
    buffer = ReplayBuffer.empty(capacity, obs, act)
    obs_bytes = 2 * 3 * 4 + 4
    act_bytes = 4 * 4
    scalar_bytes = buffer.rewards.dtype.itemsize + 2 * jnp.dtype(bool).itemsize
    counters = buffer.position.dtype.itemsize + buffer.size.dtype.itemsize
    expected = capacity * (obs_bytes + act_bytes + obs_bytes + scalar_bytes) + counters
    assert buffer.nbytes == expected


@pytest.mark.parametrize("capacity", [0, -3])
def test_non_positive_capacity_is_a_value_error(capacity: int) -> None:
    with pytest.raises(
        ValueError, match=rf"capacity must be a positive int.*got {capacity}"
    ):
        ReplayBuffer.empty(capacity, OBS_EXAMPLE, ACT_EXAMPLE)


def test_bool_capacity_is_a_type_error() -> None:
    with pytest.raises(
        TypeError,
        match=r"capacity must be a positive Python int, got True of type bool",
    ):
        ReplayBuffer.empty(True, OBS_EXAMPLE, ACT_EXAMPLE)


@pytest.mark.parametrize(
    ("capacity", "shown"), [(4.0, "4.0"), ("4", "'4'"), (np.int64(4), "np.int64(4)")]
)
def test_non_int_capacity_is_a_type_error(capacity: object, shown: str) -> None:
    # Under the test suite's runtime checker the annotation ``capacity: int``
    # rejects these first; without it ReplayBuffer's own check does. Either
    # way it is a TypeError naming the argument and the value.
    with pytest.raises(TypeError, match=rf"(?s)capacity.*{re.escape(shown)}"):
        ReplayBuffer.empty(capacity, OBS_EXAMPLE, ACT_EXAMPLE)  # type: ignore[arg-type]  # deliberately wrong


def test_batch_larger_than_capacity_is_a_value_error() -> None:
    buffer = ReplayBuffer.empty(5, OBS_EXAMPLE, ACT_EXAMPLE)
    batch = make_batch(list(range(6)))
    with pytest.raises(ValueError, match=r"n=6 .*capacity=5"):
        add(buffer, batch)
    with pytest.raises(ValueError, match=r"n=6 .*capacity=5"):
        jax.jit(add)(buffer, batch)


def test_bad_batch_size_is_an_error() -> None:
    buffer = ReplayBuffer.empty(5, OBS_EXAMPLE, ACT_EXAMPLE)
    with pytest.raises(ValueError, match=r"batch_size must be a positive int.*got 0"):
        buffer.sample(0, key=jr.key(0))
    with pytest.raises(
        TypeError, match=r"batch_size must be a positive Python int, got True"
    ):
        buffer.sample(True, key=jr.key(0))
    with pytest.raises(TypeError, match=r"(?s)batch_size.*2\.0"):
        buffer.sample(2.0, key=jr.key(0))  # type: ignore[arg-type]  # deliberately wrong


def test_mismatched_batch_is_an_error() -> None:
    buffer = ReplayBuffer.empty(5, OBS_EXAMPLE, ACT_EXAMPLE)
    b = make_batch([0, 1])
    with pytest.raises(
        TypeError,
        match=r"observations must have the example's dtype float32, got int32",
    ):
        buffer.add(
            b.observations.astype(jnp.int32),
            b.actions,
            b.rewards,
            b.terminated,
            b.truncated,
            b.next_observations,
        )
    with pytest.raises(ValueError, match=r"next_observations must have shape \(2, 3\)"):
        buffer.add(
            b.observations,
            b.actions,
            b.rewards,
            b.terminated,
            b.truncated,
            b.next_observations[:, :2],
        )
    with pytest.raises(TypeError, match=r"actions must have the pytree structure"):
        buffer.add(
            b.observations,
            {"a": b.actions},
            b.rewards,
            b.terminated,
            b.truncated,
            b.next_observations,
        )


def test_runtime_checker_rejects_wrong_dtypes_and_batch_sizes() -> None:
    buffer = ReplayBuffer.empty(5, OBS_EXAMPLE, ACT_EXAMPLE)
    b = make_batch([0, 1])
    with pytest.raises(TypeCheckError):
        buffer.add(
            b.observations,
            b.actions,
            b.rewards.astype(jnp.int32),
            b.terminated,
            b.truncated,
            b.next_observations,
        )
    with pytest.raises(TypeCheckError):
        buffer.add(
            b.observations,
            b.actions,
            b.rewards,
            b.terminated[:1],
            b.truncated,
            b.next_observations,
        )


def test_buffer_with_wrong_leading_axis_is_rejected() -> None:
    buffer = ReplayBuffer.empty(5, OBS_EXAMPLE, ACT_EXAMPLE)
    # The runtime checker binds ``capacity`` across the fields; without it,
    # ``__check_init__`` raises a ValueError naming the field.
    with pytest.raises(TypeCheckError, match=r"(?s)parameter 'actions'.*capacity=5"):
        ReplayBuffer(
            observations=buffer.observations,
            actions=jnp.zeros(4, jnp.int32),
            rewards=buffer.rewards,
            terminated=buffer.terminated,
            truncated=buffer.truncated,
            next_observations=buffer.next_observations,
            position=buffer.position,
            size=buffer.size,
            capacity=5,
        )
