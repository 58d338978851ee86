"""A checkpoint's state is packed for its host call only where a save
happens, in the compiled program.

The host call's operands pack the whole training state into one int32
array. Packed outside the branch that makes the call, XLA built that array
at every training iteration, saved or not: a SAC run with a 100k-transition
replay buffer took 2.4 times as long with one checkpoint as without. Values
cannot show it, so the test reads the optimised program (XLA's HLO text):
every array as large as the packed buffer lies, on every way to it, inside
a branch within the training loop's body, or outside the loop."""

import re

import equinox as eqx
import jax
import jax.random as jr

from lerax.algorithm import SAC
from lerax.checkpoint import CheckpointCallback
from lerax.env import Pendulum
from lerax.policy import MLPSACPolicy

from ..hlo import instructions, surroundings

_CAPACITY = 5_000  # no other array of the program has this many elements
_SHAPE = re.compile(r"= s32\[(?:\d+,)*(\d+)\]")


def _packed(line: str) -> bool:
    """An instruction whose result is an int32 array of at least one
    observation per transition of the buffer (the packed state)."""
    match = _SHAPE.search(line)
    return match is not None and int(match.group(1)) >= 3 * _CAPACITY


def test_the_state_is_packed_only_where_it_is_saved(tmp_path: object) -> None:
    env = Pendulum()
    policy = MLPSACPolicy(env, key=jr.key(0), hidden_sizes=(8, 8))
    algo = SAC(buffer_size=_CAPACITY, learning_starts=8, batch_size=4)
    saver = CheckpointCallback(f"{tmp_path}/checkpoints", every=16)

    def train(key: jax.Array) -> object:
        result = algo.train(env, policy, 64, key=key, callback=saver)
        return eqx.filter(result, eqx.is_array)

    hlo = jax.jit(train).lower(jr.key(0)).compile().as_text()
    assert hlo is not None
    saver.close()
    around = surroundings(hlo)
    packed = instructions(hlo, _packed)
    assert packed, "the packed state was not found"
    for name, line in packed:
        for path in around[name]:
            if "loop" in path:
                last = len(path) - path[::-1].index("loop")
                assert "branch" in path[last:], (path, line[:160])
