"""Fixtures shared by the test files."""
import itertools
import shutil

import pytest

from rlhf_lib import stages

DATA_SLICE = {"web.jsonl": 100, "sft_alpaca.jsonl": 48, "sft_chat.jsonl": 48, "comparisons.jsonl": 24,
              "rl_prompts.jsonl": 32, "eval_prompts.jsonl": 16}


@pytest.fixture
def artifacts(tmp_path, monkeypatch):
    """A fresh, empty artifacts folder for one test (stages.ARTIFACTS points at it)."""
    monkeypatch.setattr(stages, "ARTIFACTS", tmp_path / "artifacts")
    return tmp_path / "artifacts"


@pytest.fixture(scope="session")
def data_slice(tmp_path_factory):
    """(folder, tokenizer): the first lines of each world file in data/ (DATA_SLICE) and a small byte-level BPE
    tokenizer trained on them, for tests that train whole stages on a tiny model."""
    from rlhf_lib.tokenizer import train_tokenizer
    root = tmp_path_factory.mktemp("slice")
    texts = []
    for name, n in DATA_SLICE.items():
        with open(stages.DATA_DIR / name, encoding="utf-8") as f:
            lines = list(itertools.islice(f, n))
        (root / name).write_text("".join(lines), encoding="utf-8")
        texts += lines
    shutil.copy(stages.DATA_DIR / "world.json", root / "world.json")
    return root, train_tokenizer(texts, vocab_size=800)


def save_base(model, tok) -> None:
    """Save `model` and `tok` as the 'tokenizer' and 'base' stages of stages.ARTIFACTS."""
    for name in ("tokenizer", "base"):
        with stages.writing(name) as folder:
            tok.save_pretrained(folder)
            if name == "base":
                model.save_pretrained(folder, safe_serialization=True)
            stages.write_json(folder / "stage.json", {"stage": name, "prompt_format": "plain", "config": {},
                                                      "upstream": []})
