"""Stages and their artifacts: how lessons hand models to each other (all lessons).

Each InstructGPT step is a *stage* that writes one folder, `artifacts/<stage>/`:

    model.safetensors + config.json   (save_pretrained; loads with AutoModelForCausalLM, no pickle)
    tokenizer files                    (save_pretrained, with the chat template)
    stage.json                         (the stage's config, its upstream stages, the prompt format)
    metrics.json                       (training figures: final_loss, wall_s, curves …)
    eval.json                          (gold-labeler evaluation on the held-out prompts, when run)

A stage is written into a temporary folder and renamed into place only when complete, so an interrupted run leaves
the previous artifact (or nothing), never half a model. This module only stores and reads artifacts; training a
missing stage is the registry's job (`pipeline.require`).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("RLHF_DATA", ROOT / "data"))
ARTIFACTS = Path(os.environ.get("RLHF_ARTIFACTS", ROOT / "artifacts"))


@contextmanager
def located(data: Path, artifacts: Path):
    """Read the world's data from `data` and keep the stage folders in `artifacts` for the duration of a command (the
    command line's --data and --artifacts), then restore the previous folders."""
    global DATA_DIR, ARTIFACTS
    saved = DATA_DIR, ARTIFACTS
    DATA_DIR, ARTIFACTS = Path(data), Path(artifacts)
    try:
        yield
    finally:
        DATA_DIR, ARTIFACTS = saved


def stage_dir(name: str) -> Path:
    return ARTIFACTS / name


def exists(name: str) -> bool:
    return (stage_dir(name) / "stage.json").is_file()


@contextmanager
def writing(name: str):
    """Yield a temporary folder; on success it atomically becomes `artifacts/<name>/`, on error it vanishes."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=ARTIFACTS))
    tmp.chmod(0o755)                                  # mkdtemp makes it private; a stage is an ordinary folder
    try:
        yield tmp
        final = stage_dir(name)
        old = None
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{name}-old-", dir=ARTIFACTS))
            os.replace(final, old / name)
        os.replace(tmp, final)
        if old is not None:
            shutil.rmtree(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def write_json(path: Path, obj) -> None:
    """JSON file written atomically (temp file + rename)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_json(name: str, file: str) -> dict:
    path = stage_dir(name) / file
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run stage '{name}' first (rlhf_lib.pipeline.require('{name}'))")
    return json.loads(path.read_text(encoding="utf-8"))


def info(name: str) -> dict:
    return read_json(name, "stage.json")


def metrics(name: str) -> dict:
    return read_json(name, "metrics.json")


def existing(name: str) -> Path:
    """The folder of stage `name`, which must have been trained: a clear error naming what to run otherwise."""
    if not exists(name):
        raise FileNotFoundError(f"stage {name!r} is missing ({stage_dir(name)}): train it first, e.g. "
                                f"rlhf_lib.pipeline.require({name!r}) or the `rlhf` command line")
    return stage_dir(name)


def load_model(name: str):
    """(model, tokenizer, stage info) of a trained causal-LM stage (safetensors, no remote code)."""
    from .models import load_causal_lm
    model, tok = load_causal_lm(existing(name))
    return model, tok, info(name)
