"""docs/compatibility.md: every test a row names exists where the link points, every row has a
class, and the counts line adds the rows up."""

from __future__ import annotations

import ast
import re
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "compatibility.md"
LINK = re.compile(r"\[`(test_[a-z0-9_]+)`\]\(\.\./(tests/[a-z0-9_/]+\.py)\)")
CLASSES = {"a", "b", "c fixed", "c differs", "c gap"}
COUNTS = re.compile(
    r"Counts: (\d+) rows \(three more point to another row\): (\d+) a, (\d+) b, (\d+) c "
    r"\((\d+) fixed, (\d+) differs,\s+(\d+) gaps"
)


def rows() -> list[list[str]]:
    found = []
    for line in DOC.read_text().splitlines():
        if not line.startswith("| ") or line.startswith("| ---"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if cells[2] != "class":
            found.append(cells)
    return found


def functions_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }


def test_every_named_test_exists() -> None:
    links = LINK.findall(DOC.read_text())
    assert len(links) > 100
    missing = [f"{path}::{name}" for name, path in links if name not in functions_in(ROOT / path)]
    assert missing == []


def test_every_row_is_classed_and_tested_or_says_why_not() -> None:
    for cells in rows():
        assert len(cells) == 4, cells
        item, _, kind, tests = cells
        if kind.startswith("("):  # "(limitation 3)": the row it points to carries the class
            continue
        assert kind in CLASSES, item
        assert LINK.search(tests) or kind == "c gap", f"no test named for: {item}"


def test_the_counts_line_adds_the_rows_up() -> None:
    kinds = Counter(cells[2] for cells in rows() if not cells[2].startswith("("))
    match = COUNTS.search(DOC.read_text())
    assert match is not None
    total, a, b, c, fixed, differs, gaps = map(int, match.groups())
    assert (a, b, fixed, differs, gaps) == (
        kinds["a"],
        kinds["b"],
        kinds["c fixed"],
        kinds["c differs"],
        kinds["c gap"],
    )
    assert c == fixed + differs + gaps and total == a + b + c
