"""A host call's record reaches the host whole, however large: a record of
more than one operand's worth of bytes travels in pieces and is joined on the
host, bit for bit, for every vmapped run."""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lerax._host import _OPERAND_BYTES, host_call, new_token, run_index


def record_of(x: jax.Array) -> dict[str, jax.Array]:
    """Leaves of every wire group: float32 and bool (the int32 group, larger
    than one operand), int8 and uint16 (groups of their own, the int8 one
    also split)."""
    return {
        "big": x * 1.5,
        "flag": x[:7] > 0,
        "small": (x[:3] * 10).astype(jnp.int8),
        "bytes": jnp.arange(_OPERAND_BYTES + 5, dtype=jnp.int8),
        "half": x[:5].astype(jnp.uint16),
    }


@pytest.mark.parametrize("runs", [1, 3])
def test_a_record_larger_than_an_operand_arrives_whole(runs: int) -> None:
    size = _OPERAND_BYTES // 4 * 2 + 11  # over two operands of float32, per run
    seen: dict[int, Any] = {}

    def keep(record: Any, index: int, total: int) -> None:
        assert total == runs
        seen[index] = record

    def one(x: jax.Array) -> jax.Array:
        return host_call(keep, record_of(x), run_index(x), new_token())

    xs = jnp.linspace(-1.0, 1.0, runs * size, dtype=jnp.float32).reshape(runs, size)
    if runs == 1:
        jax.jit(one)(xs[0]).block_until_ready()
    else:
        jax.jit(jax.vmap(one))(xs).block_until_ready()

    assert sorted(seen) == list(range(runs))
    for i in range(runs):
        want = jax.tree.map(np.asarray, record_of(xs[i]))
        got = seen[i]
        assert got.keys() == want.keys()
        for name in want:
            assert got[name].dtype == want[name].dtype, name
            assert got[name].shape == want[name].shape, name
            assert got[name].tobytes() == want[name].tobytes(), name


def test_each_operand_of_the_compiled_call_stays_within_the_limit() -> None:
    size = _OPERAND_BYTES // 4 * 3

    def one(x: jax.Array) -> jax.Array:
        return host_call(lambda *_: None, {"x": x}, run_index(x), new_token())

    xs = jnp.zeros((4, size), jnp.float32)
    text = jax.jit(jax.vmap(one)).lower(xs).as_text(dialect="hlo")
    calls = [line for line in text.splitlines() if "cpu_callback" in line]
    assert len(calls) == 1, calls
    operands = calls[0].split("custom-call(")[1].split(")")[0].split(", ")
    # 4 runs x (3 operands' worth + the header) in pieces of the limit
    total = 4 * (size + 4) * 4
    assert len(operands) == -(-total // _OPERAND_BYTES), operands
