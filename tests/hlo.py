"""Reading XLA's optimised HLO text: which loops and branches surround each
computation, for tests that check where the compiler put a computation
(values cannot show it: a computation moved out of a branch or a loop
changes only how often it runs)."""

import re
from collections import defaultdict
from collections.abc import Callable

_HEADER = re.compile(r"^(?:ENTRY )?%?([\w.\-]+) \(.*\) -> .* \{$")
#: An instruction that runs a computation only sometimes (a loop's body, a
#: branch) or always (a loop's condition, a fusion, a call).
_CALLED = re.compile(
    r"\b(body|condition|calls|to_apply|true_computation|false_computation)=%?([\w.\-]+)"
)
_BRANCHES = re.compile(r"branch_computations=\{([^}]*)\}")


def computations(hlo: str) -> tuple[dict[str, list[str]], str]:
    """The instructions of each computation of ``hlo``, and the entry's name."""
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
    return body, entry


def _callees(lines: list[str]) -> list[tuple[str, str]]:
    """The computations the instructions ``lines`` call, each with how:
    ``"loop"`` (a loop's body), ``"branch"`` or ``""`` (always run)."""
    out = []
    for line in lines:
        for kind, callee in _CALLED.findall(line):
            how = {"body": "loop", "true_computation": "branch"}.get(kind, "")
            how = "branch" if kind == "false_computation" else how
            out.append((callee, how))
        for group in _BRANCHES.findall(line):
            out += [(b.strip().lstrip("%"), "branch") for b in group.split(",")]
    return out


def surroundings(hlo: str) -> dict[str, set[tuple[str, ...]]]:
    """For each computation reachable from the entry, every sequence of the
    loops and branches (``"loop"``, ``"branch"``, outermost first) on a way
    to reach it."""
    body, entry = computations(hlo)
    found: dict[str, set[tuple[str, ...]]] = defaultdict(set)
    stack: list[tuple[str, tuple[str, ...]]] = [(entry, ())]
    while stack:
        name, path = stack.pop()
        if path in found[name]:
            continue
        found[name].add(path)
        for callee, how in _callees(body[name]):
            if callee in body:
                stack.append((callee, (*path, how) if how else path))
    return found


def instructions(hlo: str, wanted: Callable[[str], bool]) -> list[tuple[str, str]]:
    """``(computation, instruction)`` for each instruction (a line) of
    ``hlo`` that ``wanted`` accepts."""
    body, _ = computations(hlo)
    return [
        (name, line) for name, lines in body.items() for line in lines if wanted(line)
    ]
