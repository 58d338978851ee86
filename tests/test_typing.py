"""The static-typing suite: user-style files checked by mypy and pyright."""

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PASS = sorted((ROOT / "tests/typing/pass").glob("*.py"))
FAIL = sorted((ROOT / "tests/typing/fail").glob("*.py"))
BIN = Path(sys.executable).parent


def _mypy(path: Path, tmp: Path) -> tuple[int, set[int]]:
    proc = subprocess.run(
        [str(BIN / "mypy"), "--config-file", str(ROOT / "mypy.ini"), str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    lines = {
        int(m.group(1))
        for m in re.finditer(
            rf"^{re.escape(str(path.relative_to(ROOT)))}:(\d+): error",
            proc.stdout,
            re.M,
        )
    }
    return proc.returncode, lines


def _pyright(path: Path, tmp: Path) -> tuple[int, set[int]]:
    # The project's config excludes the negative files from normal runs; check
    # them with the same settings and nothing excluded.
    config = {
        "venvPath": str(ROOT),
        "venv": ".venv",
        "stubPath": str(ROOT / "typings"),
        "pythonVersion": "3.11",
        "typeCheckingMode": "standard",
        "include": [path.name],
    }
    (tmp / path.name).write_text(path.read_text())
    (tmp / "pyrightconfig.json").write_text(json.dumps(config))
    proc = subprocess.run(
        [str(BIN / "pyright"), "-p", str(tmp / "pyrightconfig.json")],
        cwd=tmp,
        capture_output=True,
        text=True,
    )
    lines = {int(m.group(1)) for m in re.finditer(r":(\d+):\d+ - error", proc.stdout)}
    return proc.returncode, lines


def _expected(path: Path) -> set[int]:
    return {
        i
        for i, line in enumerate(path.read_text().splitlines(), start=1)
        if line.rstrip().endswith("# expect-error")
    }


CHECKERS: dict[str, Callable[[Path, Path], tuple[int, set[int]]]] = {
    "mypy": _mypy,
    "pyright": _pyright,
}


@pytest.mark.parametrize("checker", sorted(CHECKERS))
@pytest.mark.parametrize("path", PASS, ids=lambda p: p.name)
def test_positive_files_are_clean(checker: str, path: Path, tmp_path: Path) -> None:
    code, lines = CHECKERS[checker](path, tmp_path)
    assert lines == set(), f"{checker} reported errors on lines {sorted(lines)}"
    assert code == 0


@pytest.mark.parametrize("checker", sorted(CHECKERS))
@pytest.mark.parametrize("path", FAIL, ids=lambda p: p.name)
def test_negative_files_report_each_mistake(
    checker: str, path: Path, tmp_path: Path
) -> None:
    expected = _expected(path)
    assert expected, "a negative file must mark its mistakes"
    _, lines = CHECKERS[checker](path, tmp_path)
    assert lines == expected, (
        f"{checker}: missed {sorted(expected - lines)}, unexpected {sorted(lines - expected)}"
    )
