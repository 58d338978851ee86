"""Every ```python block in docs/*.md runs, page by page, in a fresh namespace."""

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGES = sorted(DOCS.glob("*.md"))
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_page_examples_run(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = BLOCK.findall(page.read_text())
    assert blocks, f"{page.name} has no python example"
    monkeypatch.chdir(tmp_path)  # examples that write logs write them here
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem}"}
    for i, code in enumerate(blocks):
        exec(compile(code, f"{page.name}[block {i}]", "exec"), namespace)  # noqa: S102


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_code_fences_are_well_formed(page: Path) -> None:
    """A fence line is ```` ``` ```` or ```` ```lang ````: text after a
    closing fence (```` ``` In ... ````) makes Markdown swallow the rest of
    the page into the code block, though the examples still run."""
    bad = [
        (number, line)
        for number, line in enumerate(page.read_text().splitlines(), start=1)
        if line.startswith("```") and not re.fullmatch(r"```[\w-]*", line.rstrip())
    ]
    assert bad == [], f"{page.name}: malformed fences {bad}"
