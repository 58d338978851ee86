"""An evaluation stays inside its gate in the compiled program.

An evaluation reads only values its gate's loop does not change (the policy,
the callback's key), so XLA's loop-invariant code motion once moved it out of
the gate: every training iteration evaluated and the gate only chose whether
to keep the result (a 10-episode ``EvalCallback`` made a SAC run 2.4 times
slower whether it evaluated once or 16 times). Being a pure computation, the
hoisted evaluation changed no value, only where it ran, so the test reads
where it is in the optimised program: XLA's HLO text, every computation with
the loops and branches that call it."""

import re

import equinox as eqx
import jax
import jax.random as jr

from lerax.callback.control import EvalCallback

from ..hlo import instructions, surroundings
from .helpers import ALGO, ENV, POLICY, STEPS

#: The evaluation's loop is found by its carry, which holds the returns of
#: its ``_EPISODES`` episodes (op names in the optimised program are not
#: reliable): no other loop of the program has an array of that size.
_EPISODES = 7
_EVALUATION_CARRY = re.compile(rf"\bf32\[{_EPISODES}\]")


def _evaluation_depths(hlo: str) -> list[int]:
    """For each evaluation loop (``evaluate_policy``'s ``while``) of the
    optimised program ``hlo``, the number of loop bodies and branches around
    it (the fewest, over the ways to reach it from the entry computation)."""
    around = surroundings(hlo)
    loops = instructions(
        hlo,
        lambda line: (
            " while(" in line
            and bool(_EVALUATION_CARRY.search(line.split(" while(")[0]))
        ),
    )
    return sorted(min(len(path) for path in around[name]) for name, _ in loops)


def test_evaluations_run_inside_their_gates() -> None:
    evaluation = EvalCallback(ENV, every=2 * STEPS, num_episodes=_EPISODES)

    def train(key: jax.Array) -> object:
        result = ALGO.train(ENV, POLICY, 6 * STEPS, key=key, callback=evaluation)
        return eqx.filter(result, eqx.is_array)

    hlo = jax.jit(train).lower(jr.key(0)).compile().as_text()
    assert hlo is not None
    # One evaluation in the training loop's body, inside its gate's loop (2);
    # one at the end of training for a run that stopped early, inside its
    # own gate (1). Hoisted, they were at 1 and 0.
    assert _evaluation_depths(hlo) == [1, 2]
