"""Lesson notebooks are committed clean and follow the course's shape.

Every `notebooks/*.ipynb` must be valid nbformat v4, carry no outputs or execution counts (run `make strip`),
use the `python3` kernel, open with an H1 title, have `Summary` and `Exercises` headings, and be numbered
`NN_name.ipynb` with unique consecutive numbers from 00 (the draft lessons in `notebooks/drafts/` keep their numbers
in the sequence).
"""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
DRAFTS = sorted((NOTEBOOK_DIR / "drafts").glob("*.ipynb"))
NAME_RE = re.compile(r"^(\d{2})_[a-z0-9_]+\.ipynb$")
STRIP_HINT = "commit notebooks without outputs: run `make strip`"


def _ids(paths):
    return [p.name for p in paths]


def _heading_titles(nb) -> list[str]:
    titles = []
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        for line in cell.source.splitlines():
            m = re.match(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$", line)
            if m:
                titles.append(m.group(1))
    return titles


def test_notebooks_exist():
    if not NOTEBOOKS:
        pytest.skip("no notebooks yet")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_valid_nbformat_v4(path):
    nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
    assert nb.nbformat == 4, f"{path.name}: nbformat {nb.nbformat}, expected 4"
    nbformat.validate(nb)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_no_outputs(path):
    nb = nbformat.read(path, as_version=4)
    dirty = [i for i, c in enumerate(nb.cells)
             if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, f"{path.name}: code cells {dirty} have outputs or execution counts; {STRIP_HINT}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_kernelspec_python3(path):
    nb = nbformat.read(path, as_version=4)
    name = nb.metadata.get("kernelspec", {}).get("name")
    assert name == "python3", f"{path.name}: kernelspec name {name!r}, expected 'python3'"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_starts_with_h1_title(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.cells, f"{path.name}: empty notebook"
    first = nb.cells[0]
    assert first.cell_type == "markdown", f"{path.name}: first cell is {first.cell_type}, expected markdown"
    assert first.source.lstrip().startswith("# "), f"{path.name}: first cell must start with an H1 title ('# ...')"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
@pytest.mark.parametrize("heading", ["Summary", "Exercises"])
def test_has_heading(path, heading):
    nb = nbformat.read(path, as_version=4)
    titles = _heading_titles(nb)
    assert any(re.search(rf"\b{heading}\b", t, re.IGNORECASE) for t in titles), \
        f"{path.name}: no markdown heading containing {heading!r} (headings: {titles})"


def test_numbering():
    if not NOTEBOOKS:
        pytest.skip("no notebooks yet")
    bad = [p.name for p in NOTEBOOKS if not NAME_RE.match(p.name)]
    assert not bad, f"notebooks must be named NN_name.ipynb (lowercase, underscores): {bad}"
    numbers = sorted(int(m.group(1)) for p in NOTEBOOKS + DRAFTS if (m := NAME_RE.match(p.name)))
    dupes = sorted({n for n in numbers if numbers.count(n) > 1})
    assert not dupes, f"duplicate notebook numbers (lessons and drafts): {dupes}"
    assert numbers == list(range(len(numbers))), \
        f"notebook numbers (lessons and drafts) must be consecutive from 00, got {numbers}"
