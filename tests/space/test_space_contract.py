"""Every space honours the AbstractSpace contract and agrees with Gymnasium.

Each case pairs one of our spaces with the equivalent ``gymnasium.spaces``
space. For each we check: vmapped samples are contained; flatten/unflatten
round-trips and has ``flat_size`` entries; ``filter_jit`` and ``vmap`` give the
eager results; an equal space (built anew) hashes equal and is not retraced;
the layout of ``flatten`` and ``flat_size`` match ``gymnasium.spaces``;
Gymnasium's samples are contained in our space and ours in Gymnasium's.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

import equinox as eqx
import gymnasium
import gymnasium.spaces as gs
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from lerax.space import (
    AbstractSpace,
    Box,
    Dict,
    Discrete,
    MultiBinary,
    MultiDiscrete,
    Tuple,
)

INF = np.inf
N = 128

GymSpace: TypeAlias = "gymnasium.Space[object]"


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[], tuple[AbstractSpace[object], GymSpace]]


CASES = [
    Case("box", lambda: (Box(-1.0, 2.0, (3,)), gs.Box(-1.0, 2.0, (3,), np.float32))),
    Case("box_scalar", lambda: (Box(0.0, 1.0), gs.Box(0.0, 1.0, (), np.float32))),
    Case(
        "box_unbounded",
        lambda: (
            Box([-INF, 0.0, -1.0, -INF], [INF, INF, 1.0, 0.0]),
            gs.Box(
                np.array([-INF, 0.0, -1.0, -INF], np.float32),
                np.array([INF, INF, 1.0, 0.0], np.float32),
                dtype=np.float32,
            ),
        ),
    ),
    Case(
        "box_int",
        lambda: (Box(0, 5, (2, 2), np.int32), gs.Box(0, 5, (2, 2), np.int32)),
    ),
    Case(
        "box_int_unbounded",
        lambda: (
            Box([-INF, 0.0, -3.0], [5.0, INF, 3.0], dtype=np.int16),
            gs.Box(np.array([-INF, 0, -3]), np.array([5, INF, 3]), dtype=np.int16),
        ),
    ),
    Case(
        "box_uint8",
        lambda: (Box(0, 255, (4,), np.uint8), gs.Box(0, 255, (4,), np.uint8)),
    ),
    Case("discrete", lambda: (Discrete(5), gs.Discrete(5))),
    Case("discrete_start", lambda: (Discrete(3, start=-2), gs.Discrete(3, start=-2))),
    Case(
        "multi_discrete",
        lambda: (
            MultiDiscrete([2, 3, 5], start=[0, -1, 2]),
            gs.MultiDiscrete([2, 3, 5], start=[0, -1, 2]),
        ),
    ),
    Case("multi_binary", lambda: (MultiBinary(4), gs.MultiBinary(4))),
    Case("multi_binary_2d", lambda: (MultiBinary((2, 3)), gs.MultiBinary((2, 3)))),
    Case(
        "tuple",
        lambda: (
            Tuple((Discrete(3), Box(0.0, 1.0, (2,)))),
            gs.Tuple((gs.Discrete(3), gs.Box(0.0, 1.0, (2,), np.float32))),
        ),
    ),
    Case(
        "dict_nested",
        lambda: (
            Dict(
                {
                    "pos": Box(-1.0, 1.0, (2,)),
                    "id": Discrete(4, start=1),
                    "inner": Tuple((MultiBinary(2), MultiDiscrete([2, 3]))),
                }
            ),
            gs.Dict(
                {
                    "pos": gs.Box(-1.0, 1.0, (2,), np.float32),
                    "id": gs.Discrete(4, start=1),
                    "inner": gs.Tuple((gs.MultiBinary(2), gs.MultiDiscrete([2, 3]))),
                }
            ),
        ),
    ),
]


@pytest.fixture(params=CASES, ids=[c.name for c in CASES])
def case(request: pytest.FixtureRequest) -> Case:
    assert isinstance(request.param, Case)
    return request.param


def _to_gym(x: object) -> object:
    """Our element(s) as Gymnasium's (JAX leaves become numpy arrays)."""
    return jax.tree.map(np.asarray, x)


def _leaves(x: object) -> list[Array]:
    leaves = jax.tree.leaves(x)
    assert all(isinstance(leaf, jax.Array) for leaf in leaves)
    return leaves


def _assert_same(a: object, b: object) -> None:
    """Equal pytrees: same structure, shapes and dtypes; values equal (floats
    to float32 rounding, since jit may fuse arithmetic differently)."""
    structure_a: object = jax.tree.structure(a)
    assert structure_a == jax.tree.structure(b)
    for la, lb in zip(_leaves(a), _leaves(b), strict=True):
        assert la.shape == lb.shape and la.dtype == lb.dtype
        if jnp.issubdtype(la.dtype, jnp.floating):
            np.testing.assert_allclose(np.asarray(la), np.asarray(lb), rtol=1e-6)
        else:
            np.testing.assert_array_equal(np.asarray(la), np.asarray(lb))


def _gym_flatten(gspace: GymSpace, x: object) -> np.ndarray:
    flat = gs.flatten(gspace, x)
    assert isinstance(flat, np.ndarray)
    return flat


def _index(xs: object, i: int) -> object:
    """Entry ``i`` of a batched element (leaves keep their array type)."""
    return jax.tree.map(lambda leaf: leaf[i, ...], xs)  # pyright: ignore[reportUnknownLambdaType, reportUnknownArgumentType]  # array leaves


def _stack(items: list[object]) -> object:
    return jax.tree.map(lambda *leaves: jnp.asarray(np.stack(leaves)), *items)  # pyright: ignore[reportUnknownLambdaType, reportUnknownArgumentType]  # array leaves


# Batched helpers, jitted once per space: equal spaces built by later tests hit
# the same cache entry (``test_jit_and_vmap_match_eager_without_retrace`` checks
# that explicitly).
@eqx.filter_jit
def _sample_many(space: AbstractSpace[object], keys: PRNGKeyArray) -> object:
    return jax.vmap(lambda k: space.sample(key=k))(keys)


@eqx.filter_jit
def _contains_many(space: AbstractSpace[object], xs: object) -> Bool[Array, " n"]:
    return jax.vmap(space.contains)(xs)


@eqx.filter_jit
def _flatten_many(space: AbstractSpace[object], xs: object) -> Float[Array, "n size"]:
    return jax.vmap(space.flatten)(xs)


@eqx.filter_jit
def _unflatten_many(
    space: AbstractSpace[object], flat: Float[Array, "n size"]
) -> object:
    return jax.vmap(space.unflatten)(flat)


def _samples(space: AbstractSpace[object]) -> object:
    return _sample_many(space, jr.split(jr.key(0), N))


def test_samples_are_contained(case: Case) -> None:
    space, _ = case.make()
    xs = _samples(space)
    inside = _contains_many(space, xs)
    assert inside.shape == (N,) and inside.dtype == jnp.bool_
    assert bool(jnp.all(inside))
    if space.dtype is not None:  # an array space
        (leaf,) = _leaves(xs)
        assert leaf.shape == (N, *space.shape) and leaf.dtype == space.dtype
    else:
        assert space.shape == ()


def test_flatten_round_trip(case: Case) -> None:
    space, _ = case.make()
    xs = _samples(space)
    flat = _flatten_many(space, xs)
    assert flat.shape == (N, space.flat_size) and flat.dtype == jnp.float32
    _assert_same(_unflatten_many(space, flat), xs)


def test_jit_and_vmap_match_eager_without_retrace(case: Case) -> None:
    def run(
        space: AbstractSpace[object], key: PRNGKeyArray
    ) -> tuple[object, Bool[Array, ""], Float[Array, " size"], object]:
        x = space.sample(key=key)
        flat = space.flatten(x)
        return x, space.contains(x), flat, space.unflatten(flat)

    counted = eqx.debug.assert_max_traces(run, max_traces=1)
    jitted = eqx.filter_jit(counted)
    space, _ = case.make()
    twin, _ = case.make()
    assert twin is not space and twin == space and hash(twin) == hash(space)

    keys = jr.split(jr.key(0), N)
    eager = [run(space, keys[i]) for i in range(2)]
    _assert_same(jitted(space, keys[0]), eager[0])
    # An equal space built anew, and another key: the compiled program is reused.
    _assert_same(jitted(twin, keys[1]), eager[1])
    assert eqx.debug.get_num_traces(counted) == 1

    # vmap (inside jit) agrees with the eager results element by element.
    xs = _samples(twin)
    flat = _flatten_many(twin, xs)
    inside = _contains_many(twin, xs)
    back = _unflatten_many(twin, flat)
    for i in range(2):
        x, contained, x_flat, x_back = eager[i]
        _assert_same(_index(xs, i), x)
        _assert_same(inside[i], contained)
        _assert_same(flat[i], x_flat)
        _assert_same(_index(back, i), x_back)


def test_wrong_structure_is_not_contained_under_jit(case: Case) -> None:
    space, _ = case.make()
    bad: list[object] = [jnp.zeros((7, 5)), "text", None, (jnp.zeros(1),) * 4]
    for value in bad:
        eager = space.contains(value)
        assert eager.shape == () and not bool(eager)
    contains = jax.jit(space.contains)
    assert not bool(contains(jnp.zeros((7, 5))))


def test_agrees_with_gymnasium(case: Case) -> None:
    space, gspace = case.make()
    assert space.flat_size == gs.flatdim(gspace)
    if space.dtype is not None:
        assert gspace.dtype is not None
        assert space.shape == gspace.shape
        assert space.dtype == jax.dtypes.canonicalize_dtype(gspace.dtype)
    gspace.seed(0)
    theirs: list[object] = [gspace.sample() for _ in range(N)]
    # Gymnasium's samples are ours ...
    batch = _stack(theirs)
    assert bool(jnp.all(_contains_many(space, batch)))
    expected = np.stack([_gym_flatten(gspace, g) for g in theirs])
    np.testing.assert_allclose(np.asarray(_flatten_many(space, batch)), expected)
    # ... and ours are Gymnasium's, with the same flat layout.
    xs = _to_gym(_samples(space))
    flat = np.asarray(_flatten_many(space, _samples(space)))
    for i in range(N):
        x = _index(xs, i)
        assert gspace.contains(x), x
        np.testing.assert_allclose(flat[i], _gym_flatten(gspace, x))
