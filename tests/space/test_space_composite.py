"""Tuple and Dict: construction, key order, structure checks, scan, typing."""

import gymnasium.spaces as gs
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jaxtyping import Array, Bool, PRNGKeyArray, TypeCheckError

from lerax.space import (
    AbstractSpace,
    Box,
    Dict,
    Discrete,
    MultiBinary,
    MultiDiscrete,
    Tuple,
)


def _nested() -> Dict[object]:
    return Dict(
        {
            "z": Box(0.0, 1.0, (2,)),
            "a": Tuple((Discrete(3), MultiBinary(2))),
            "m": MultiDiscrete([2, 2]),
        }
    )


def test_invalid_construction_names_the_entry() -> None:
    # The runtime checker (jaxtyping + beartype) checks one random item of a
    # container, so it may answer before __init__ does; either way the error is
    # a TypeError that points at ``spaces``.
    checker = r"|(?s:Type-check error.*'spaces')"
    with pytest.raises(TypeError, match=r"spaces\[1\]='box'" + checker):
        Tuple((Discrete(2), "box"))  # type: ignore[arg-type]  # deliberately not a space
    # A generator hides its items from the runtime checker: __init__ names them.
    parts = (s for s in [Discrete(2), "box"])
    with pytest.raises(TypeError, match=r"^Tuple: .* got spaces\[1\]='box'$"):
        Tuple(parts)  # type: ignore[arg-type]  # deliberately not a space
    with pytest.raises(TypeError, match=r"spaces\['b'\]=3" + checker):
        Dict({"a": Discrete(2), "b": 3})  # type: ignore[arg-type]  # deliberately not a space
    with pytest.raises(TypeError, match=r"keys must be strings, got key 1" + checker):
        Dict({1: Discrete(2)})  # type: ignore[dict-item]  # deliberately not a str key
    with pytest.raises(TypeCheckError, match="'spaces'"):
        Dict([Discrete(2)])  # type: ignore[arg-type]  # deliberately not a mapping


def test_dict_keys_are_sorted_like_gymnasium() -> None:
    space = _nested()
    gym = gs.Dict(
        {
            "z": gs.Box(0.0, 1.0, (2,), np.float32),
            "a": gs.Tuple((gs.Discrete(3), gs.MultiBinary(2))),
            "m": gs.MultiDiscrete([2, 2]),
        }
    )
    assert space.keys() == ("a", "m", "z") == tuple(gym.spaces.keys())
    assert list(space.sample(key=jr.key(0))) == ["a", "m", "z"]
    assert list(space.spaces) == ["a", "m", "z"] and len(space) == 3
    assert space["m"] == MultiDiscrete([2, 2])
    with pytest.raises(KeyError):
        space["missing"]
    # Insertion order does not matter: equal, same hash.
    other = Dict(
        {
            "m": MultiDiscrete([2, 2]),
            "a": Tuple((Discrete(3), MultiBinary(2))),
            "z": Box(0.0, 1.0, (2,)),
        }
    )
    assert other == space and hash(other) == hash(space)
    assert Dict({"a": Discrete(2)}) != Dict({"b": Discrete(2)})


def test_contains_checks_structure() -> None:
    space = _nested()
    x = space.sample(key=jr.key(1))
    assert bool(space.contains(x))
    assert bool(space.contains(dict(reversed(list(x.items())))))  # any order
    assert not bool(space.contains({k: v for k, v in x.items() if k != "m"}))
    assert not bool(space.contains({**x, "extra": jnp.zeros(2)}))
    assert not bool(space.contains(list(x.values())))
    bad_z = {**x, "z": jnp.array([0.5, 1.5])}
    assert not bool(space.contains(bad_z))
    pair = Tuple((Discrete(3), Box(0.0, 1.0)))
    assert bool(pair.contains((jnp.int32(2), jnp.float32(0.5))))
    assert bool(pair.contains([2, 0.5]))  # a list of the right length
    assert not bool(pair.contains((jnp.int32(3), jnp.float32(0.5))))
    assert not bool(pair.contains((jnp.int32(2),)))
    assert not bool(pair.contains(jnp.array([2.0, 0.5])))
    assert len(pair) == 2 and pair[0] == Discrete(3)


def test_flatten_rejects_wrong_structure() -> None:
    pair = Tuple((Discrete(3), Box(0.0, 1.0)))
    with pytest.raises(ValueError, match="expected a tuple of 2 elements, got 1"):
        pair.flatten((jnp.int32(1),))
    space = Dict({"a": Discrete(2)})
    with pytest.raises(ValueError, match=r"expected the keys \['a'\], got \['b'\]"):
        space.flatten({"b": jnp.int32(1)})


def test_flatten_layout_by_hand() -> None:
    # Annotated: mypy would infer an odd join of Array and tuple otherwise.
    space: Dict[object] = Dict(
        {"b": Box(-1.0, 1.0, (2,)), "a": Tuple((Discrete(3), MultiBinary(2)))}
    )
    x: dict[str, object] = {
        "b": jnp.array([0.25, -0.5]),
        "a": (jnp.int32(2), jnp.array([1, 0], jnp.int8)),
    }
    np.testing.assert_array_equal(
        space.flatten(x), [0, 0, 1, 1, 0, 0.25, -0.5]
    )  # "a" first: one-hot 2 of 3, the bits, then "b"


def test_empty_composites_match_gymnasium() -> None:
    for space, gym in [
        (Tuple(()), gs.Tuple(())),
        (Dict({}), gs.Dict({})),
    ]:
        assert space.flat_size == gs.flatdim(gym) == 0
        x = space.sample(key=jr.key(0))
        assert bool(space.contains(x)) and not bool(space.contains((1,)))
        flat = space.flatten(x)
        assert flat.shape == (0,) and flat.dtype == jnp.float32
        assert space.unflatten(flat) == x


def test_inside_scan_matches_vmap() -> None:
    space = _nested()
    keys = jr.split(jr.key(2), 6)

    def body(
        carry: Bool[Array, ""], key: PRNGKeyArray
    ) -> tuple[Bool[Array, ""], dict[str, object]]:
        x = space.sample(key=key)
        ok = space.contains(space.unflatten(space.flatten(x)))
        return carry & ok, x

    all_ok, scanned = jax.lax.scan(body, jnp.array(True), keys)
    assert bool(all_ok)
    vmapped = jax.vmap(lambda k: space.sample(key=k))(keys)
    for a, b in zip(jax.tree.leaves(scanned), jax.tree.leaves(vmapped), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_static_types_of_elements() -> None:
    # These annotations are checked by mypy and pyright.
    pair = Tuple((Box(0.0, 1.0, (2,)), Discrete(3)))
    arrays: Tuple[Array] = pair
    first: Array = arrays.sample(key=jr.key(0))[0]
    nested = _nested()
    as_space: AbstractSpace[dict[str, object]] = nested
    sample: dict[str, object] = as_space.sample(key=jr.key(0))
    assert first.shape == (2,) and set(sample) == {"a", "m", "z"}
