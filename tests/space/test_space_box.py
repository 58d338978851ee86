"""Box: construction checks, sampling distributions, contains rules, identity."""

import equinox as eqx
import gymnasium.spaces as gs
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jaxtyping import Array, PRNGKeyArray, Shaped, TypeCheckError

from lerax.space import AbstractSpace, Box

INF = np.inf
N = 4000


@eqx.filter_jit
def _sample_many(space: Box, key: PRNGKeyArray) -> Shaped[Array, "n ..."]:
    return jax.vmap(lambda k: space.sample(key=k))(jr.split(key, N))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Box(1.0, 0.0), r"low must be <= high.*low=1\.0 > high=0\.0"),
        (
            lambda: Box(np.zeros(3), np.array([1.0, -1.0, 1.0])),
            r"low=0\.0 > high=-1\.0 at index \(1,\)",
        ),
        (
            lambda: Box(np.array([0.0, np.nan]), 1.0),
            r"low must not contain NaN.*\(1,\)",
        ),
        (lambda: Box(0.0, np.nan), r"high must not contain NaN"),
        (lambda: Box(np.zeros(2), np.ones(3)), r"must broadcast together"),
        (lambda: Box(np.zeros(2), np.ones(2), (3,)), r"must broadcast to shape=\(3,\)"),
        (lambda: Box(0.0, 1.0, (2, -1)), r"shape must have non-negative.*\(2, -1\)"),
        (lambda: Box(0, 1, dtype=np.complex64), r"dtype must be .*complex64"),
        (lambda: Box(0, 1, dtype=np.bool_), r"dtype must be .*got dtype=bool"),
        (lambda: Box(0.5, 3, dtype=np.int32), r"low must hold integers.*int32.*0\.5"),
        (lambda: Box(0, 300, dtype=np.uint8), r"high must hold integers.*uint8.*300"),
        (lambda: Box(-INF, 3, dtype=np.uint8), r"low must hold integers.*uint8.*-inf"),
        (lambda: Box(0, INF, dtype=np.uint8), r"high must hold integers.*uint8.*inf"),
        (lambda: Box(INF, INF, dtype=np.int32), r"low must hold integers.*inf"),
        (lambda: Box(0.0, 1e40), r"high entry 1e\+40 is out of the range of dtype"),
        (lambda: Box(np.array(["a"]), 1.0), r"low must be real numbers"),
    ],
)
def test_invalid_construction_names_the_value(make: object, message: str) -> None:
    assert callable(make)
    with pytest.raises(ValueError, match=message):
        make()


def test_integer_sampling_includes_high_and_is_uniform() -> None:
    small = Box(0, 2, (3,), np.int32)
    xs = np.asarray(_sample_many(small, jr.key(0))).ravel()
    assert set(xs.tolist()) == {0, 1, 2}
    freq = np.bincount(xs, minlength=3) / xs.size
    np.testing.assert_allclose(freq, 1 / 3, atol=0.02)
    # Gymnasium's integer Box includes high too.
    g = gs.Box(0, 2, (3,), np.int32)
    g.seed(0)
    assert {int(v) for _ in range(200) for v in g.sample()} == {0, 1, 2}


@pytest.mark.parametrize(
    ("low", "high", "dtype"),
    [
        (-128, 127, np.int8),  # the whole dtype: high + 1 overflows
        (4294967294, 4294967295, np.uint32),  # the top of uint32
        (-2147483648, -2147483647, np.int32),  # the bottom of int32
        (7, 7, np.int16),  # a single value
    ],
)
def test_integer_sampling_reaches_both_ends(low: int, high: int, dtype: type) -> None:
    space = Box(low, high, (), dtype)
    xs = np.asarray(_sample_many(space, jr.key(1)))
    assert xs.dtype == dtype
    assert int(xs.min()) == low and int(xs.max()) == high


def test_float_sampling_distributions() -> None:
    space = Box([-1.0, 2.0, -INF, -INF], [3.0, INF, -2.0, INF])
    xs = np.asarray(_sample_many(space, jr.key(2)), np.float64)
    uniform, above, below, normal = xs.T
    assert uniform.min() >= -1.0 and uniform.max() <= 3.0
    assert abs(uniform.mean() - 1.0) < 0.08 and abs(uniform.std() - 4 / 12**0.5) < 0.05
    assert above.min() >= 2.0 and abs(above.mean() - 3.0) < 0.08  # 2 + Exp(1)
    assert below.max() <= -2.0 and abs(below.mean() + 3.0) < 0.08  # -2 - Exp(1)
    assert abs(normal.mean()) < 0.08 and abs(normal.std() - 1.0) < 0.05


def test_sampling_creates_no_nans() -> None:
    # Unbounded coordinates never pass through inf * 0 (jax_debug_nans users).
    space = Box([-1.0, 2.0, -INF, -INF], [3.0, INF, -2.0, INF])
    with jax.debug_nans(True):
        x = jax.jit(lambda k: space.sample(key=k))(jr.key(0))
    assert bool(space.contains(x))


def test_unbounded_integer_sampling_floors_like_gymnasium() -> None:
    space = Box([-INF, 3, -INF], [INF, INF, -3], dtype=np.int16)
    xs = np.asarray(_sample_many(space, jr.key(3)))
    normal, above, below = xs.T
    # floor(N(0, 1)) is 0 with probability P(0 <= Z < 1) = 0.3413.
    assert abs(np.mean(normal == 0) - 0.3413) < 0.03
    assert abs(normal.mean() + 0.5) < 0.08
    # 3 + floor(Exp(1)) is 3 with probability 1 - exp(-1) = 0.632.
    assert above.min() == 3 and abs(np.mean(above == 3) - 0.632) < 0.03
    assert below.max() == -3 and abs(np.mean(below == -3) - 0.632) < 0.03
    np.testing.assert_array_equal(space.low, [-32768, 3, -32768])
    np.testing.assert_array_equal(space.high, [32767, 32767, -3])
    np.testing.assert_array_equal(space.bounded_below, [False, True, False])
    np.testing.assert_array_equal(space.bounded_above, [False, False, True])


def test_contains_follows_gymnasium_on_arrays() -> None:
    space = Box(0.0, 1.0, (2,))
    gym = gs.Box(0.0, 1.0, (2,), np.float32)
    candidates = [
        np.array([0.5, 1.0], np.float32),
        np.array([0.5, 1.5], np.float32),
        np.array([-0.1, 0.5], np.float32),
        np.array([0.5, np.nan], np.float32),
        np.array([0.5, 0.25], np.float16),  # casts safely
        np.array([0, 1], np.int8),  # casts safely
        np.array([0, 1], np.int32),  # does not cast safely to float32
        np.array([True, False]),
        np.array([0.5, 0.5, 0.5], np.float32),  # wrong shape
        np.array([[0.5, 0.5]], np.float32),  # wrong shape
    ]
    for c in candidates:
        assert bool(space.contains(c)) == gym.contains(c), c
        assert bool(space.contains(jnp.asarray(c))) == gym.contains(c), c
    int_space = Box(0, 3, (2,), np.int32)
    int_gym = gs.Box(0, 3, (2,), np.int32)
    for c in [
        np.array([0, 3], np.int32),
        np.array([0, 4], np.int32),
        np.array([0, 3], np.uint8),
        np.array([0.0, 1.0], np.float32),  # floats never cast safely to ints
    ]:
        assert bool(int_space.contains(c)) == int_gym.contains(c), c


def test_contains_python_scalars_and_numpy_64_bit() -> None:
    unit, dice = Box(0.0, 1.0), Box(1, 6, (), np.int32)
    assert bool(unit.contains(0.5)) and bool(unit.contains(1))
    assert not bool(unit.contains(2)) and not bool(unit.contains(-0.5))
    assert bool(dice.contains(6)) and not bool(dice.contains(7))
    assert not bool(dice.contains(3.0))  # a float is not an integer element
    # A weak int is compared exactly, not cast (300 would wrap to 44 in int8).
    small = Box(0, 100, (), np.int8)
    assert not bool(small.contains(300)) and not bool(jax.jit(small.contains)(300))
    assert bool(jax.jit(small.contains)(44))
    # numpy 64-bit values are judged after JAX's conversion ...
    assert bool(unit.contains(np.float64(0.5)))
    # ... unless the conversion would change them.
    assert not bool(Box(-INF, INF).contains(np.float64(1e300)))
    assert not bool(dice.contains(np.int64(2**32 + 3)))
    assert not bool(unit.contains([0.5]))  # lists are not arrays


def test_contains_is_traced() -> None:
    space = Box(0.0, 1.0, (2,))
    contains = jax.jit(space.contains)
    assert bool(contains(jnp.array([0.1, 0.9])))
    assert not bool(contains(jnp.array([0.1, 1.1])))
    assert not bool(contains(jnp.zeros(3)))  # decided at trace time
    inside = jax.vmap(space.contains)(jnp.array([[0.5, 0.5], [2.0, 0.5], [0.0, 1.0]]))
    np.testing.assert_array_equal(inside, [True, False, True])


def test_unflatten_rounds_integer_boxes() -> None:
    space = Box(0, 5, (3,), np.int32)
    x = space.unflatten(jnp.array([0.9, 2.2, 4.6]))
    assert x.dtype == jnp.int32
    np.testing.assert_array_equal(x, [1, 2, 5])


def test_equality_hash_and_retrace() -> None:
    a = Box(0.0, 1.0, (2,))
    assert a == Box(np.zeros(2), np.ones(2)) and hash(a) == hash(Box([0, 0], [1, 1]))
    assert a != Box(0.0, 2.0, (2,)) and a != Box(0, 1, (2,), np.int32)
    assert a != Box(0.0, 1.0, (3,))
    # float64 is canonicalized by JAX (float32 unless x64 is enabled).
    assert Box(0.0, 1.0, (2,), np.float64).dtype == jax.dtypes.canonicalize_dtype(
        np.float64
    )

    def first(space: Box, key: PRNGKeyArray) -> Shaped[Array, "..."]:
        return space.sample(key=key)

    counted = eqx.debug.assert_max_traces(first, max_traces=2)
    jitted = eqx.filter_jit(counted)
    jitted(a, jr.key(0))
    jitted(Box([0.0, 0.0], 1.0), jr.key(1))  # equal: cached
    assert eqx.debug.get_num_traces(counted) == 1
    x = jitted(Box(5.0, 6.0, (2,)), jr.key(1))  # other bounds: a new program
    assert eqx.debug.get_num_traces(counted) == 2
    assert bool(jnp.all(x >= 5.0))


def test_repr_and_bounds() -> None:
    assert repr(Box(0.0, 1.0, (2,))) == "Box(0.0, 1.0, (2,), float32)"
    assert repr(Box([0, 1], 5, dtype=np.int32)) == "Box([0, 1], 5, (2,), int32)"
    box = Box(np.array([-1.0, 0.0]), 2.0)
    assert box.low.dtype == np.float32 and box.low.shape == (2,)
    np.testing.assert_array_equal(box.low, [-1.0, 0.0])
    np.testing.assert_array_equal(box.high, [2.0, 2.0])
    assert box.flat_size == 2 and Box(0.0, 1.0, (2, 3)).flat_size == 6


def test_static_typing_is_covariant() -> None:
    # Checked by mypy/pyright: a Box is a space of arrays, and of objects.
    box = Box(0.0, 1.0, (2,))
    as_arrays: AbstractSpace[Array] = box
    as_objects: AbstractSpace[object] = box
    assert as_arrays is as_objects


def test_runtime_type_checks_fire() -> None:
    box = Box(0.0, 1.0, (2,))
    with pytest.raises(TypeCheckError):
        box.flatten(np.zeros(2, np.float32))  # type: ignore[arg-type]  # deliberately a numpy array, not a JAX one
