"""Discrete, MultiDiscrete, MultiBinary: checks, contains rules, encodings."""

from collections.abc import Callable

import equinox as eqx
import gymnasium.spaces as gs
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jaxtyping import Array, Int, PRNGKeyArray, TypeCheckError

from lerax.space import AbstractSpace, Discrete, MultiBinary, MultiDiscrete

N = 3000


@eqx.filter_jit
def _sample_many(space: AbstractSpace[Array], key: PRNGKeyArray) -> Array:
    return jax.vmap(lambda k: space.sample(key=k))(jr.split(key, N))


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: Discrete(0), ValueError, r"n must be a positive integer, got n=0"),
        (lambda: Discrete(-3), ValueError, r"got n=-3"),
        (lambda: Discrete(True), TypeError, r"n must be an integer, got True"),
        (
            lambda: Discrete(2, start=2**31 - 1),
            ValueError,
            r"fit int32.*start=2147483647",
        ),
        (lambda: MultiDiscrete([]), ValueError, r"nvec must be a non-empty 1-D"),
        (lambda: MultiDiscrete(np.array([[2, 3]])), ValueError, r"1-D.*shape \(1, 2\)"),
        (lambda: MultiDiscrete([2, 0, 3]), ValueError, r"nvec\[1\]=0"),
        (
            lambda: MultiDiscrete(np.array([2.5, 3.0])),
            TypeError,
            r"nvec must be an array of integers",
        ),
        (
            lambda: MultiDiscrete([2, 3], start=[0]),
            ValueError,
            r"start must have the shape of nvec \(2,\).*shape \(1,\)",
        ),
        (
            lambda: MultiDiscrete([2, 3], start=[0, 2**31 - 2]),
            ValueError,
            r"fit int32.*start\[1\]=2147483646, nvec\[1\]=3",
        ),
        (lambda: MultiBinary(0), ValueError, r"n must be a positive .*got n=0"),
        (lambda: MultiBinary(()), ValueError, r"got n=\(\)"),
        (lambda: MultiBinary((2, -1)), ValueError, r"non-negative.*\(2, -1\)"),
        (lambda: MultiBinary((2, 0)), ValueError, r"got n=\(2, 0\)"),
    ],
)
def test_invalid_construction_names_the_value(
    make: Callable[[], object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        make()


def test_non_integer_n_is_refused_by_the_signature() -> None:
    # The runtime checker (jaxtyping + beartype) names the parameter.
    with pytest.raises(TypeCheckError, match="'n'"):
        Discrete(2.5)  # type: ignore[arg-type]  # deliberately a float


def test_discrete_identity() -> None:
    d = Discrete(np.int64(3), start=np.int32(-1))
    assert d == Discrete(3, start=-1) and hash(d) == hash(Discrete(3, -1))
    assert type(d.n) is int and type(d.start) is int
    assert d != Discrete(3) and d.shape == () and d.dtype == np.int32


def test_discrete_samples_uniformly() -> None:
    xs = np.asarray(_sample_many(Discrete(3, start=-1), jr.key(0)))
    assert xs.dtype == np.int32 and set(xs.tolist()) == {-1, 0, 1}
    np.testing.assert_allclose(np.bincount(xs + 1) / N, 1 / 3, atol=0.03)


def test_discrete_contains_follows_gymnasium() -> None:
    space, gym = Discrete(3, start=-1), gs.Discrete(3, start=-1)
    candidates: list[object] = [
        np.int32(-1),
        np.int32(1),
        np.int32(2),
        np.int32(-2),
        np.int8(0),
        np.array(0, np.int16),
        np.float32(0.0),
        np.array([0], np.int32),  # wrong shape
        np.bool_(True),
    ]
    for c in candidates:
        assert bool(space.contains(c)) == gym.contains(c), c
    # Unsigned values are compared without wrapping around.
    assert not bool(space.contains(np.uint32(4294967295)))
    assert bool(Discrete(5).contains(np.uint8(4)))
    # Python ints; not bools, floats or lists.
    assert bool(space.contains(0)) and not bool(space.contains(5))
    assert not bool(space.contains(True)) and not bool(space.contains(0.0))
    assert not bool(space.contains([0]))


def test_discrete_one_hot() -> None:
    space = Discrete(4, start=2)
    np.testing.assert_array_equal(space.flatten(jnp.int32(3)), [0, 1, 0, 0])
    # An out-of-space value encodes to zeros (never another element's code).
    np.testing.assert_array_equal(space.flatten(jnp.int32(1)), [0, 0, 0, 0])
    np.testing.assert_array_equal(space.flatten(jnp.int32(6)), [0, 0, 0, 0])
    assert int(space.unflatten(jnp.array([0.1, 0.2, 0.6, 0.1]))) == 4
    with pytest.raises(TypeCheckError):
        space.flatten(jnp.float32(3.0))  # statically an Array; jaxtyping sees float


def test_multi_discrete_samples_every_value() -> None:
    space = MultiDiscrete([2, 3, 5], start=[0, -1, 2])
    xs = np.asarray(_sample_many(space, jr.key(1)))
    assert xs.shape == (N, 3) and xs.dtype == np.int32
    for i, (n, s) in enumerate(zip(space.nvec, space.start, strict=True)):
        assert set(xs[:, i].tolist()) == set(range(s, s + n))
        np.testing.assert_allclose(np.bincount(xs[:, i] - s) / N, 1 / n, atol=0.035)


def test_multi_discrete_contains_follows_gymnasium() -> None:
    space = MultiDiscrete([2, 3], start=[0, -1])
    gym = gs.MultiDiscrete([2, 3], start=[0, -1])
    candidates = [
        np.array([0, -1], np.int32),
        np.array([1, 1], np.int32),
        np.array([2, 0], np.int32),
        np.array([0, 2], np.int32),
        np.array([0, -2], np.int32),
        np.array([1, 0], np.int8),
        np.array([1, 0], np.float32),  # floats are not elements
        np.array([1, 0, 0], np.int32),  # wrong shape
        np.array([[1, 0]], np.int32),  # wrong shape
    ]
    for c in candidates:
        assert bool(space.contains(c)) == gym.contains(c), c
    assert not bool(space.contains(np.array([1, 255], np.uint8)))
    assert not bool(space.contains((1, 0)))  # tuples are not arrays


def test_multi_discrete_one_hot_blocks() -> None:
    space = MultiDiscrete([2, 3], start=[0, -1])
    assert space.flat_size == 5 and space.shape == (2,)
    flat = space.flatten(jnp.array([1, 0], jnp.int32))
    np.testing.assert_array_equal(flat, [0, 1, 0, 1, 0])
    # An out-of-range entry leaves its block empty, not its neighbour's.
    np.testing.assert_array_equal(
        space.flatten(jnp.array([2, 0], jnp.int32)), [0, 0, 0, 1, 0]
    )
    back = space.unflatten(jnp.array([0.6, 0.4, 0.1, 0.2, 0.7]))
    np.testing.assert_array_equal(back, [0, 1])
    assert MultiDiscrete(np.array([2, 3])) == MultiDiscrete((2, 3), start=(0, 0))


def test_multi_binary_identity_and_shape() -> None:
    assert MultiBinary(3) == MultiBinary((3,)) and MultiBinary(3).n == 3
    assert MultiBinary((2, 3)).n == (2, 3) and MultiBinary((2, 3)).flat_size == 6
    assert repr(MultiBinary((2, 3))) == "MultiBinary((2, 3))"
    assert MultiBinary(3).dtype == np.int8 == gs.MultiBinary(3).dtype


def test_multi_binary_samples_fair_bits() -> None:
    xs = np.asarray(_sample_many(MultiBinary((2, 2)), jr.key(2)))
    assert xs.shape == (N, 2, 2) and xs.dtype == np.int8
    assert set(np.unique(xs).tolist()) == {0, 1}
    np.testing.assert_allclose(xs.mean(axis=0), 0.5, atol=0.04)


def test_multi_binary_contains_follows_gymnasium() -> None:
    space, gym = MultiBinary(3), gs.MultiBinary(3)
    candidates = [
        np.array([0, 1, 1], np.int8),
        np.array([0, 1, 2], np.int8),
        np.array([0, -1, 1], np.int32),
        np.array([1, 1, 1], np.uint8),
        np.array([True, False, True]),
        np.array([0, 1], np.int8),  # wrong shape
    ]
    for c in candidates:
        assert bool(space.contains(c)) == gym.contains(c), c
    # Gymnasium accepts 0.0/1.0 floats; our elements are integers.
    assert not bool(space.contains(np.array([0.0, 1.0, 1.0], np.float32)))


def test_multi_binary_encoding() -> None:
    space = MultiBinary((2, 2))
    x: Int[Array, "2 2"] = jnp.array([[1, 0], [0, 1]], jnp.int8)
    np.testing.assert_array_equal(space.flatten(x), [1, 0, 0, 1])
    back = space.unflatten(jnp.array([0.2, 0.7, 0.5, 0.9]))
    assert back.dtype == jnp.int8
    np.testing.assert_array_equal(back, [[0, 1], [0, 1]])
