"""Fixtures shared by the test files."""
import pytest

from rlhf_lib import stages


@pytest.fixture
def artifacts(tmp_path, monkeypatch):
    """A fresh, empty artifacts folder for one test (stages.ARTIFACTS points at it)."""
    monkeypatch.setattr(stages, "ARTIFACTS", tmp_path / "artifacts")
    return tmp_path / "artifacts"
