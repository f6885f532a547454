"""Faults a stage folder meets on disk, one probe each ("no trained stage is ever lost"): a lost stage.json, kills
during a save (real SIGKILL/SIGTERM of a child process), truncated or overwritten weights, an edited config.json,
files that are not JSON, NaN in metrics, file modes. Each probe checks the outcome it is listed with below, that
an error names the file and the fix, and that no complete stage was lost or changed (sha256 of every file).

Outcomes: "error" — a clear exception (type, file, fix) and nothing changed on disk; "recovered" — the next start
finishes or rolls back the interrupted save and says so in one line; "cleaned" — a dead process's leftover is removed
and reported; "works" — the case must simply work (old stages load, NaN round-trips, modes match).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from rlhf_lib import pipeline, stages
from rlhf_lib.models import CheckpointError, ModelConfig, build_tiny_llama, load_causal_lm
from rlhf_lib.reward_model import build_reward_model, load_reward_model, save_reward_model
from rlhf_lib.tokenizer import train_tokenizer
from rlhf_lib.training import LOCAL, save_stage

ROOT = Path(__file__).resolve().parents[1]
PROBES = {                          # probe -> outcome (the test of each probe is marked @probe(name))
    "stage.json deleted: require, load_model, exists, status": "error",
    "stage.json deleted: an explicit retrain keeps the old folder aside": "works",
    "SIGKILL between the two renames: finished at the next start": "recovered",
    "SIGKILL between the two renames, new copy damaged: rolled back": "recovered",
    "SIGKILL between the renames of tokenizer+base: both finished": "recovered",
    "SIGKILL between the renames of tokenizer+base, new base damaged: both rolled back": "recovered",
    "SIGKILL after the journal, before any rename: finished": "recovered",
    "three processes start at once after a SIGKILL between renames: one finishes it": "recovered",
    "torn journal of a dead process: removed": "cleaned",
    "SIGKILL mid-save: half-written folder removed": "cleaned",
    "SIGTERM mid-save: half-written folder removed": "cleaned",
    "pretraining stopped mid-run: tokenizer not committed before base": "works",
    "SIGKILL mid-pretraining: tokenizer and base both as they were": "cleaned",
    "truncated model.safetensors (checksummed stage)": "error",
    "truncated model.safetensors (stage saved before checksums)": "error",
    "bytes overwritten inside the weights (checksummed stage)": "error",
    "bytes overwritten inside the weights (stage saved before checksums): NaN": "error",
    "num_hidden_layers changed in config.json (checksummed stage)": "error",
    "num_hidden_layers changed in config.json (stage saved before checksums)": "error",
    "bad JSON in stage.json": "error",
    "bad JSON in metrics.json (checksummed stage)": "error",
    "bad JSON in metrics.json (stage saved before checksums)": "error",
    "bad JSON in reward_norm.json (checksummed stage)": "error",
    "bad JSON in reward_norm.json (stage saved before checksums)": "error",
    "NaN and inf in metrics: strict JSON, NaN read back": "works",
    "model.safetensors has the folder's file mode": "works",
    "stage saved before checksums loads, unverified": "works",
    "eval.json and a rewritten metrics.json are recorded after the commit": "works",
}
TESTED: set[str] = set()


def case(name: str) -> str:
    """A row of PROBES, marked as tested (at collection, so the count does not depend on the order)."""
    assert name in PROBES, name
    TESTED.add(name)
    return name


def probe(name: str):
    case(name)
    return lambda fn: fn


TINY = ModelConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, max_len=128)
TEXTS = ["Explain the moon landing to a 6 year old.", "달 착륙을 설명해 주세요.", "Tell me about Columbus."] * 20


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(TEXTS, vocab_size=300)


def files(folder: Path) -> dict[str, str]:
    """sha256 of every file in `folder`."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def hidden(artifacts: Path) -> list[str]:
    return sorted(p.name for p in artifacts.iterdir() if p.name.startswith("."))


def save_lm(name: str, tok, metrics: dict | None = None) -> Path:
    model = build_tiny_llama(TINY, tok, seed=0)
    save_stage(LOCAL, name, model, tok, {"stage": name, "prompt_format": "plain", "config": {}, "upstream": []},
               metrics or {"final_loss": 1.0, "history": {"step": [0, 1], "train_loss": [float("nan"), 1.0]}})
    return stages.stage_dir(name)


def save_rm(tok) -> Path:
    rm = build_reward_model(save_lm("base", tok), tok)
    save_stage(LOCAL, "rm", rm, tok, {"stage": "rm", "prompt_format": "chat", "config": {}, "upstream": ["base"]},
               {"steps": 1}, write_model=lambda tmp: save_reward_model(rm, tok, tmp, {"gain": 2.0, "bias": -1.0}))
    return stages.stage_dir("rm")


def unchecksummed(folder: Path) -> None:
    """Turn a stage into one saved before checksums (no "files" in stage.json)."""
    info = json.loads((folder / "stage.json").read_text())
    del info["files"]
    (folder / "stage.json").write_text(json.dumps(info))


def overwrite(path: Path, at: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(at)
        f.write(data)


def clear(err, *names: str) -> str:
    """The message names every one of `names` and says what to do."""
    msg = str(err.value)
    assert all(n in msg for n in names), msg
    assert "restore" in msg and ("delete it" in msg or "evaluate again" in msg), msg
    return msg


# ------------------------------------------------------------------------------------------------ kills
CHILD = r"""
import os, signal, sys
from rlhf_lib import stages
mode, names = sys.argv[1], sys.argv[2].split(",")
kill = lambda: os.kill(os.getpid(), signal.SIGTERM if mode == "sigterm" else signal.SIGKILL)
stages.swap_hook = lambda point, name: kill() if (point, name) in (("between", names[-1]), (mode, "+".join(names))) \
    else None
with stages.together(*names):
    for name in names:
        with stages.writing(name) as tmp:
            (tmp / "model.safetensors").write_bytes(os.urandom(2048))
            (tmp / "stage.json").write_text('{"stage": "%s", "v": 2}' % name)
            if mode in ("midsave", "sigterm"):
                kill()
"""


def fake_stage(name: str) -> Path:
    with stages.writing(name) as tmp:
        (tmp / "model.safetensors").write_bytes(os.urandom(2048))
        (tmp / "stage.json").write_text(json.dumps({"stage": name, "v": 1}))
    return stages.stage_dir(name)


def killed(artifacts: Path, mode: str, names: str, want=-signal.SIGKILL) -> None:
    """Run CHILD writing `names` (comma-separated), killed at `mode`; it must die of the signal."""
    env = {**os.environ, "RLHF_ARTIFACTS": str(artifacts)}
    proc = subprocess.run([sys.executable, "-c", CHILD, mode, names], env=env, cwd=ROOT, capture_output=True)
    assert proc.returncode == want, proc.stderr.decode()


@probe("SIGKILL between the two renames: finished at the next start")
def test_kill_between_renames_is_finished(artifacts, capsys):
    fake_stage("sft")
    killed(artifacts, "between", "sft")
    assert not (artifacts / "sft").exists() and any(".swap-" in n for n in hidden(artifacts))  # the gap itself
    lines = stages.recover()
    assert len(lines) == 1 and "finished the interrupted save of 'sft'" in lines[0], lines
    assert "stages: finished" in capsys.readouterr().err
    assert json.loads((artifacts / "sft" / "stage.json").read_text())["v"] == 2
    assert stages.status("sft", verify=True).complete and hidden(artifacts) == []
    assert stages.recover() == []                                                   # idempotent


@probe("SIGKILL between the two renames, new copy damaged: rolled back")
def test_kill_between_renames_with_damaged_new_copy_rolls_back(artifacts):
    before = files(fake_stage("sft"))
    killed(artifacts, "between", "sft")
    new = next(artifacts.glob(".sft.partial-*"))
    overwrite(new / "model.safetensors", 10, b"\0" * 8)
    lines = stages.recover()
    assert len(lines) == 1 and "rolled back" in lines[0] and "'sft'" in lines[0], lines
    assert files(artifacts / "sft") == before and hidden(artifacts) == []


@probe("SIGKILL between the renames of tokenizer+base: both finished")
def test_kill_between_renames_of_a_group_finishes_both(artifacts):
    fake_stage("tokenizer"), fake_stage("base")
    killed(artifacts, "between", "tokenizer,base")                  # tokenizer renamed, base's old copy moved away
    assert not (artifacts / "base").exists()
    assert "finished the interrupted save of 'tokenizer', 'base'" in stages.recover()[0]
    for name in ("tokenizer", "base"):
        assert json.loads((artifacts / name / "stage.json").read_text())["v"] == 2
    assert hidden(artifacts) == []


@probe("SIGKILL between the renames of tokenizer+base, new base damaged: both rolled back")
def test_kill_between_renames_of_a_group_with_damage_rolls_back_both(artifacts):
    before = {n: files(fake_stage(n)) for n in ("tokenizer", "base")}
    killed(artifacts, "between", "tokenizer,base")
    (next(artifacts.glob(".base.partial-*")) / "model.safetensors").write_bytes(b"short")
    assert "rolled back" in stages.recover()[0]
    assert {n: files(artifacts / n) for n in before} == before and hidden(artifacts) == []


@probe("SIGKILL after the journal, before any rename: finished")
def test_kill_after_journal_is_finished(artifacts):
    fake_stage("sft")
    killed(artifacts, "journal", "sft")
    assert json.loads((artifacts / "sft" / "stage.json").read_text())["v"] == 1
    assert "finished" in stages.recover()[0]
    assert json.loads((artifacts / "sft" / "stage.json").read_text())["v"] == 2 and hidden(artifacts) == []


@probe("three processes start at once after a SIGKILL between renames: one finishes it")
def test_concurrent_starts_recover_once(artifacts):
    fake_stage("sft")
    killed(artifacts, "between", "sft")
    env = {**os.environ, "RLHF_ARTIFACTS": str(artifacts)}
    starts = [subprocess.Popen([sys.executable, "-c", "from rlhf_lib import stages; print(len(stages.recover()))"],
                               env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True) for _ in range(3)]
    reported = sorted(int(p.communicate()[0]) for p in starts)
    assert reported == [0, 0, 1], reported
    assert json.loads((artifacts / "sft" / "stage.json").read_text())["v"] == 2
    assert stages.status("sft", verify=True).complete and hidden(artifacts) == []


@probe("torn journal of a dead process: removed")
def test_torn_journal_is_removed(artifacts):
    before = files(fake_stage("sft"))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (artifacts / f".sft.swap-{dead.stdout.strip()}-{stages.HOST}").write_text('{"pid": 1, "sta')
    assert "before it renamed anything" in stages.recover()[0]
    assert files(artifacts / "sft") == before and hidden(artifacts) == []


@pytest.mark.parametrize("fault, mode, signum", [
    (case("SIGKILL mid-save: half-written folder removed"), "midsave", signal.SIGKILL),
    (case("SIGTERM mid-save: half-written folder removed"), "sigterm", signal.SIGTERM),
])
def test_kill_mid_save_leftover_is_removed(artifacts, fault, mode, signum):
    before = files(fake_stage("sft"))
    killed(artifacts, mode, "sft", want=-signum)
    assert [n.split("-")[0] for n in hidden(artifacts)] == [".sft.partial"]
    lines = stages.recover()
    assert len(lines) == 1 and "half-written copy of stage 'sft'" in lines[0], lines
    assert files(artifacts / "sft") == before and hidden(artifacts) == []


def tiny_web(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    with open(stages.DATA_DIR / "web.jsonl", encoding="utf-8") as f:
        (data / "web.jsonl").write_text("".join(f.readline() for _ in range(300)), encoding="utf-8")
    return data


def tiny_pretrain(vocab_size: int = 512):
    from rlhf_lib.pretrain import PretrainConfig
    return PretrainConfig(vocab_size=vocab_size, epochs=0.2, batch_size=8, warmup_steps=2, eval_every=2,
                          model=ModelConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64))


@probe("pretraining stopped mid-run: tokenizer not committed before base")
def test_pretraining_commits_tokenizer_with_base(artifacts, tmp_path, monkeypatch):
    from rlhf_lib import pretrain
    monkeypatch.setattr(stages, "DATA_DIR", tiny_web(tmp_path))

    def stop(history):
        assert not stages.exists("tokenizer") and list(artifacts.glob(".tokenizer.partial-*"))
        raise RuntimeError("stopped")
    with pytest.raises(RuntimeError, match="stopped"):
        pretrain.run(tiny_pretrain(), on_log=stop)
    assert list(artifacts.iterdir()) == []
    pretrain.run(tiny_pretrain())
    assert stages.exists("tokenizer") and stages.exists("base") and hidden(artifacts) == []
    tok_files = files(artifacts / "tokenizer")
    assert tok_files["tokenizer.json"] == files(artifacts / "base")["tokenizer.json"]


@probe("SIGKILL mid-pretraining: tokenizer and base both as they were")
def test_kill_mid_pretraining_keeps_both(artifacts, tmp_path, monkeypatch):
    from rlhf_lib import pretrain
    data = tiny_web(tmp_path)
    monkeypatch.setattr(stages, "DATA_DIR", data)
    pretrain.run(tiny_pretrain())
    before = {n: files(artifacts / n) for n in ("tokenizer", "base")}
    script = ("import os, signal, sys; sys.path.insert(0, 'tests'); from test_stage_faults import tiny_pretrain; "
              "from rlhf_lib import pretrain; "
              "pretrain.run(tiny_pretrain(640), on_log=lambda h: os.kill(os.getpid(), signal.SIGKILL))")
    env = {**os.environ, "RLHF_ARTIFACTS": str(artifacts), "RLHF_DATA": str(data)}
    assert subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT).returncode == -signal.SIGKILL
    assert [n.split("-")[0] for n in hidden(artifacts)] == [".tokenizer.partial"]      # trained, never committed
    assert "half-written copy of stage 'tokenizer'" in stages.recover()[0]
    assert {n: files(artifacts / n) for n in before} == before and hidden(artifacts) == []


# ------------------------------------------------------------------------------------------------ stage.json
@probe("stage.json deleted: require, load_model, exists, status")
def test_lost_stage_json_is_an_error_never_a_retrain(artifacts, tok):
    folder = save_lm("sft", tok)
    (folder / "stage.json").unlink()
    before = files(folder)
    assert not stages.exists("sft")
    st = stages.status("sft")
    assert st.state == "incomplete" and "model.safetensors" in st.present and st.problems == ("stage.json is missing",)
    for call in (lambda: pipeline.require("sft"), lambda: pipeline.load_model("sft"), lambda: stages.existing("sft")):
        with pytest.raises(stages.StageError) as err:
            call()
        msg = clear(err, str(folder), "stage.json is missing", "model.safetensors", "move the folder away")
        assert "restore stage.json" in msg
    assert files(folder) == before


@probe("stage.json deleted: an explicit retrain keeps the old folder aside")
def test_retrain_over_incomplete_folder_keeps_it(artifacts, tok, capsys):
    folder = save_lm("sft", tok)
    (folder / "stage.json").unlink()
    before = files(folder)
    save_lm("sft", tok)
    kept = list(artifacts.glob("sft.incomplete-*"))
    assert len(kept) == 1 and files(kept[0]) == before and stages.status("sft", verify=True).complete
    assert f"kept it as {kept[0]}" in capsys.readouterr().err


@probe("bad JSON in stage.json")
def test_bad_stage_json(artifacts, tok):
    folder = save_lm("sft", tok)
    (folder / "stage.json").write_text('{"stage": "sft",')
    before = files(folder)
    assert not stages.exists("sft") and "stage.json is not valid JSON" in stages.status("sft").problems[0]
    with pytest.raises(stages.StageError) as err:
        stages.info("sft")
    clear(err, str(folder / "stage.json"), "line 1")
    with pytest.raises(stages.StageError) as err:
        pipeline.require("sft")
    clear(err, str(folder), "stage.json is not valid JSON")
    assert files(folder) == before


# ------------------------------------------------------------------------------------------------ weights
def damage_weights(folder: Path) -> None:
    path = folder / "model.safetensors"
    overwrite(path, path.stat().st_size - 64, b"\xff" * 64)       # NaN float32s inside the last tensor


def truncate_weights(folder: Path) -> None:
    path = folder / "model.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def deeper_config(folder: Path) -> None:
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 1}, indent=2))


@pytest.mark.parametrize("fault, damage, phrase", [
    (case("truncated model.safetensors (checksummed stage)"), truncate_weights, "truncated"),
    (case("bytes overwritten inside the weights (checksummed stage)"), damage_weights, "sha256"),
    (case("num_hidden_layers changed in config.json (checksummed stage)"), deeper_config, "config.json"),
])
def test_damaged_checksummed_stage(artifacts, tok, fault, damage, phrase):
    folder = save_lm("base", tok)
    damage(folder)
    before = files(folder)
    assert stages.status("base", verify=True).state == "damaged"
    for call in (lambda: stages.load_model("base"), lambda: pipeline.require("base")):
        with pytest.raises(stages.StageError) as err:
            call()
        clear(err, str(folder), phrase, "is damaged")
    with pytest.raises(CheckpointError) as err:                   # the loader alone, as lessons call it
        load_causal_lm(folder)
    clear(err, str(folder), phrase)
    assert files(folder) == before


@pytest.mark.parametrize("fault, damage, phrase", [
    (case("truncated model.safetensors (stage saved before checksums)"), truncate_weights, "header describes"),
    (case("bytes overwritten inside the weights (stage saved before checksums): NaN"), damage_weights, "NaN or inf"),
    (case("num_hidden_layers changed in config.json (stage saved before checksums)"), deeper_config,
     "num_hidden_layers=1"),
])
def test_damaged_stage_saved_before_checksums(artifacts, tok, fault, damage, phrase):
    folder = save_lm("base", tok)
    unchecksummed(folder)
    damage(folder)
    before = files(folder)
    with pytest.raises(CheckpointError) as err:
        stages.load_model("base")
    clear(err, str(folder), phrase)
    assert files(folder) == before


# ------------------------------------------------------------------------------------------------ JSON files
@pytest.mark.parametrize("fault, checksummed", [(case("bad JSON in metrics.json (checksummed stage)"), True), (
    case("bad JSON in metrics.json (stage saved before checksums)"), False)])
def test_bad_metrics_json(artifacts, tok, fault, checksummed):
    folder = save_lm("sft", tok)
    if not checksummed:
        unchecksummed(folder)
    (folder / "metrics.json").write_text('{"final_loss": NaN, "history": {')
    before = files(folder)
    with pytest.raises(stages.StageError) as err:
        stages.metrics("sft")
    clear(err, "metrics.json", "is damaged" if checksummed else "not valid JSON")
    assert files(folder) == before


@pytest.mark.parametrize("fault, checksummed", [(case("bad JSON in reward_norm.json (checksummed stage)"), True), (
    case("bad JSON in reward_norm.json (stage saved before checksums)"), False)])
def test_bad_reward_norm_json(artifacts, tok, fault, checksummed):
    folder = save_rm(tok)
    assert load_reward_model(folder)[2] == {"gain": 2.0, "bias": -1.0}
    if not checksummed:
        unchecksummed(folder)
    (folder / "reward_norm.json").write_text('{"gain": 2.0 "bias": -1.0}')
    before = files(folder)
    with pytest.raises(stages.StageError) as err:
        load_reward_model(folder)
    clear(err, "reward_norm.json", "is damaged" if checksummed else "not valid JSON")
    assert files(folder) == before


@probe("NaN and inf in metrics: strict JSON, NaN read back")
def test_nan_in_metrics_is_strict_json_and_reads_back(artifacts, tok):
    history = {"step": [0, 1, 2], "train_loss": [float("nan"), 2.0, float("inf")]}
    folder = save_lm("sft", tok, {"final_loss": float("nan"), "history": history})
    text = (folder / "metrics.json").read_text()
    strict = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in metrics.json"))
    assert strict["history"]["train_loss"] == [None, 2.0, None] and strict["final_loss"] is None
    m = stages.metrics("sft")
    assert math.isnan(m["final_loss"]) and math.isnan(m["history"]["train_loss"][0])
    assert m["history"]["train_loss"][1] == 2.0 and m["history"]["step"] == [0, 1, 2]


@probe("model.safetensors has the folder's file mode")
def test_model_file_has_the_folders_mode(artifacts, tok):
    mask = os.umask(0o022)
    try:
        folder = save_lm("sft", tok)
    finally:
        os.umask(mask)
    modes = {p.name: p.stat().st_mode & 0o777 for p in folder.iterdir()}
    assert set(modes.values()) == {0o644}, modes
    assert folder.stat().st_mode & 0o777 == 0o755


@probe("stage saved before checksums loads, unverified")
def test_stage_saved_before_checksums_loads(artifacts, tok):
    folder = save_lm("sft", tok)
    unchecksummed(folder)
    st = stages.status("sft", verify=True)
    assert st.complete and not st.checksummed
    assert pipeline.require("sft") == folder
    model, tok2, info = stages.load_model("sft")
    assert info["stage"] == "sft" and math.isnan(stages.metrics("sft")["history"]["train_loss"][0])


@probe("eval.json and a rewritten metrics.json are recorded after the commit")
def test_files_written_after_the_commit_are_recorded(artifacts, tok):
    folder = save_lm("ppo", tok)
    stages.write_json(folder / "eval.json", {"gold_mean": 0.5, "by_category": {"empty": float("nan")}})
    stages.write_json(folder / "metrics.json", {"final_loss": 0.5, "eval_gold_mean": 0.5})     # as ppo.run does
    recorded = stages.info("ppo")["files"]
    assert {"eval.json", "metrics.json"} <= set(recorded) and stages.status("ppo", verify=True).complete
    assert math.isnan(stages.read_json("ppo", "eval.json")["by_category"]["empty"])
    (folder / "eval.json").unlink()                              # rlhf eval writes it again
    assert stages.status("ppo", verify=True).complete
    shutil.copy(folder / "metrics.json", folder / "eval.json")   # but a different one is damage
    with pytest.raises(stages.StageError) as err:
        stages.read_json("ppo", "metrics.json")
    clear(err, "eval.json", "is damaged")


def test_every_probe_is_tested():
    """Every row of PROBES has a test above."""
    assert set(PROBES) == TESTED, sorted(set(PROBES) - TESTED)
