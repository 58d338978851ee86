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
from collections import defaultdict

import equinox as eqx
import jax
import jax.random as jr

from lerax.callback.control import EvalCallback

from .helpers import ALGO, ENV, POLICY, STEPS

_HEADER = re.compile(r"^(?:ENTRY )?%?([\w.\-]+) \(.*\) -> .* \{$")
#: An instruction that runs a computation only sometimes (a loop's body, a
#: branch) or always (a loop's condition, a fusion, a call).
_CALLED = re.compile(
    r"\b(body|condition|calls|to_apply|true_computation|false_computation)=%?([\w.\-]+)"
)
_BRANCHES = re.compile(r"branch_computations=\{([^}]*)\}")
#: The evaluation's loop is found by its carry, which holds the returns of
#: its ``_EPISODES`` episodes (op names in the optimised program are not
#: reliable): no other loop of the program has an array of that size.
_EPISODES = 7
_EVALUATION_CARRY = re.compile(rf"\bf32\[{_EPISODES}\]")


def _evaluation_depths(hlo: str) -> list[int]:
    """For each evaluation loop (``evaluate_policy``'s ``while``) of the
    optimised program ``hlo``, the number of loop bodies and branches around
    it (the fewest, over the ways to reach it from the entry computation)."""
    body: dict[str, list[str]] = defaultdict(list)
    entry = ""
    name = ""
    for line in hlo.splitlines():
        header = _HEADER.match(line)
        if header:
            name = header.group(1)
            entry = name if line.startswith("ENTRY") else entry
        elif name:
            body[name].append(line)

    def callees(computation: str) -> list[tuple[str, int]]:
        out = []
        for line in body[computation]:
            for kind, callee in _CALLED.findall(line):
                out.append(
                    (callee, 0 if kind in ("condition", "calls", "to_apply") else 1)
                )
            for group in _BRANCHES.findall(line):
                out += [(b.strip().lstrip("%"), 1) for b in group.split(",")]
        return out

    depth = {entry: 0}
    frontier = [entry]
    while frontier:  # the fewest loops and branches first
        frontier.sort(key=depth.__getitem__)
        computation = frontier.pop(0)
        for callee, step in callees(computation):
            if callee in body and depth[computation] + step < depth.get(
                callee, 1 << 30
            ):
                depth[callee] = depth[computation] + step
                frontier.append(callee)
    return sorted(
        depth[c]
        for c, lines in body.items()
        if c in depth
        for line in lines
        if " while(" in line and _EVALUATION_CARRY.search(line.split(" while(")[0])
    )


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
