"""Packaging invariants: exact pins (torch CPU-friendly), ignored outputs, and CI running the README's test command."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _name(req: str) -> str:
    return re.split(r"[\s<>=!~;\[@]", req.strip(), maxsplit=1)[0].lower()


def test_torch_pinned_exactly():
    deps = _pyproject()["project"]["dependencies"]
    torch = [d for d in deps if _name(d) == "torch"]
    assert torch == ["torch==2.13.0"], f"torch must be pinned as torch==2.13.0 (an unpinned torch pulls CUDA): {torch}"


def test_runtime_dependencies_pinned():
    deps = _pyproject()["project"]["dependencies"]
    assert deps, "no runtime dependencies declared"
    loose = [d for d in deps if not re.fullmatch(r"[A-Za-z0-9_.\-]+(\[[^\]]+\])?==[0-9][A-Za-z0-9.+\-]*", d.strip())]
    assert not loose, f"runtime dependencies must be pinned with ==: {loose}"
    for required in ["torch", "transformers", "tokenizers", "safetensors", "einops", "matplotlib", "ipywidgets",
                     "tqdm", "numpy"]:
        assert required in {_name(d) for d in deps}, f"{required} missing from runtime dependencies"


def test_extras_pinned():
    extras = _pyproject()["project"]["optional-dependencies"]
    assert {"course", "test"} <= set(extras)
    loose = [d for group in extras.values() for d in group if "==" not in d]
    assert not loose, f"optional dependencies must be pinned with ==: {loose}"


def test_only_rlhf_lib_is_packaged():
    assert _pyproject()["tool"]["setuptools"]["packages"] == ["rlhf_lib"]


def test_gitignore_ignores_outputs():
    lines = {line.strip() for line in (ROOT / ".gitignore").read_text().splitlines()}
    for d in ["artifacts", "runs"]:
        assert lines & {d, f"{d}/", f"/{d}", f"/{d}/"}, f".gitignore must ignore {d}/"


def test_ci_runs_make_test():
    ci = (ROOT / ".ci" / "run").read_text()
    commands = [line.strip() for line in ci.splitlines()
                if line.strip() and not line.strip().startswith("#")]
    make_calls = [c for c in commands if c.startswith("make")]
    assert make_calls == ["make test"], f".ci/run must run exactly `make test`, found {make_calls}"
    assert "set -euo pipefail" in commands


def test_makefile_test_target_runs_pytest():
    makefile = (ROOT / "Makefile").read_text()
    m = re.search(r"^test:([^\n]*)\n((?:\t[^\n]*\n)+)", makefile, re.MULTILINE)
    assert m, "Makefile has no `test` target"
    assert "setup" in m.group(1).split(), "`make test` must depend on setup (CI does no other setup)"
    recipe = m.group(2)
    assert "tests/run.py" in recipe, "`make test` must run tests/run.py (the unit tests and every lesson)"
    assert re.search(r"^\.PHONY:.*\btest\b", makefile, re.MULTILINE)
