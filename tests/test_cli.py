"""The command line (`rlhf` / `python -m rlhf_lib`): help, settings and their errors, and two cheap real stages.

Training stages are not run here (too slow for a unit test); `all`'s skipping is checked with stand-in runners.
"""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from rlhf_lib import cli, evaluation, stages
from rlhf_lib.build_data import DataConfig, DataSizes, build
from rlhf_lib.config import to_dict

ROOT = Path(__file__).resolve().parents[1]
TINY = {"web_docs": 40, "sft_alpaca": 4, "sft_chat": 4, "comparisons": 12, "rl_prompts": 4, "eval_per_category": 8}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """A tiny world data folder (built in well under a second)."""
    out = tmp_path_factory.mktemp("world")
    build(out, 0, DataSizes(**TINY))
    return out


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of the command line run in this process."""
    try:
        code = cli.main(list(argv))
    except SystemExit as e:           # argparse: --help and its own usage errors
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def resolved(out: str) -> dict:
    """The resolved config a command prints (TOML) before it starts."""
    return tomllib.loads(out)


# ------------------------------------------------------------------------------------------------- help
def test_top_level_help_lists_every_stage(capsys):
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0
    for name in ("data", "tokenizer", "pretrain", "sft", "rm", "ppo", "eval", "all"):
        assert f"\n    {name}" in out
    assert "--config" in out and "--set" in out


@pytest.mark.parametrize("stage, expected", [
    ("data", ["web_docs = 12000", "10 ≤ web_docs ≤ 1000000", "eval_per_category"]),
    ("tokenizer", ["vocab_size = 4096", "512 ≤ vocab_size ≤ 32768", "BPE vocabulary size"]),
    ("pretrain", ["lr = 0.003", "log scale", "model.hidden_size = 128", "width d_model"]),
    ("sft", ["lr = 0.001", "1e-06 ≤ lr ≤ 0.01", "mask_prompt = true", "true or false", "out = \"sft\""]),
    ("rm", ["loss = \"pairwise\"", "one of 'pairwise', 'mse'", "temperatures = [0.7, 1.0]", "in --config only"]),
    ("ppo", ["kl_mode = \"fixed\"", "one of 'fixed', 'adaptive'", "ptx_coef", "InstructGPT: 27.8"]),
    ("eval", ["temperature = 0.7", "stages = \"base,sft,ppo\"", "sampling seed"]),
    ("all", ["sft.lr = 0.001", "ppo.kl_mode", "data.web_docs", "eval.stages", "--force"]),
])
def test_stage_help_documents_fields_and_example(capsys, stage, expected):
    code, out, _ = run_cli(capsys, stage, "--help")
    assert code == 0
    for text in expected:
        assert text in out, f"{stage} --help lacks {text!r}"
    assert "example:\n  rlhf " in out
    if stage == "tokenizer":                    # only the fields the stage reads
        assert "lr = " not in out and "model." not in out


def test_help_and_data_do_not_import_torch():
    code = ("import sys; from rlhf_lib import cli; cli.build_parser().format_help(); "
            "cli._configure(cli.STAGES['data'], None, None, 1, []); assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# ------------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("argv, expected", [
    (["sft", "--set", "lr=-1"], ["error: lr=-1: ", "SFTConfig.lr = -1.0 is out of range", "1e-06 ≤ lr ≤ 0.01"]),
    (["sft", "--set", "lrr=1e-3"], ["error: lrr=1e-3: ", "no field 'lrr'", "did you mean 'lr'", "valid fields: lr, "]),
    (["sft", "--set", "batch_size=big"], ["cannot parse 'big' as int", "1 ≤ batch_size ≤ 256"]),
    (["sft", "--set", "mask_prompt=yes"], ["mask_prompt", "true or false"]),
    (["sft", "--set", "lr"], ["--set expects FIELD=VALUE"]),
    (["rm", "--set", "loss=hinge"], ["RMConfig.loss = 'hinge' is not allowed", "one of 'pairwise', 'mse'"]),
    (["ppo", "--set", "minibatch_size=128"], ["minibatch_size=128: ", "larger than batch_size = 64"]),
    (["pretrain", "--set", "model.num_heads=0"], ["ModelConfig.num_heads = 0 is out of range"]),
    (["tokenizer", "--set", "lr=1e-3"], ["tokenizer has no field 'lr'", "valid fields: vocab_size, heldout_frac"]),
    (["eval", "--set", "stages=rm"], ["'rm' is not a policy"]),
    (["eval", "--set", "stages=nope"], ["no stage 'nope'"]),
    (["all", "--set", "sft.lr=-1"], ["error: sft.lr=-1: ", "1e-06 ≤ lr ≤ 0.01"]),
    (["all", "--set", "sfft.lr=1e-3"], ["unknown stage 'sfft'", "did you mean 'sft'", "stages: data, pretrain"]),
    (["all", "--set", "tokenizer.vocab_size=512"], ["use pretrain.vocab_size"]),
    (["all", "--set", "lr=1e-3"], ["STAGE.FIELD=VALUE"]),
    (["all", "--set", "ppo.updates=0"], ["error: ppo.updates=0: ", "1 ≤ updates ≤ 2000"]),
])
def test_bad_set_exits_2_with_one_line_before_any_work(capsys, tmp_path, world, argv, expected):
    artifacts = tmp_path / "artifacts"
    code, out, err = run_cli(capsys, *argv, "--data", str(world), "--artifacts", str(artifacts))
    assert code == 2
    assert err.endswith("\n") and err.count("\n") == 1 and err.startswith("error: "), err
    for text in expected:
        assert text in err
    assert out == ""                            # not even the resolved config
    assert not artifacts.exists()


@pytest.mark.parametrize("name, text, expected", [
    ("c.toml", "[sft]\nlrr = 3e-4\n", ["c.toml: [sft] lrr: unknown key", "did you mean 'lr'", "valid keys: lr, "]),
    ("c.toml", "[sfft]\nlr = 3e-4\n", ["c.toml: unknown table [sfft]", "tables: data, tokenizer, pretrain"]),
    ("c.toml", "lr = 3e-4\n", ["c.toml: key 'lr' is outside a stage table"]),
    ("c.toml", "[sft]\nlr = -1\n", ["c.toml: [sft]: ", "SFTConfig.lr = -1.0 is out of range"]),
    ("c.toml", "[sft]\nlr = \"fast\"\n", ["c.toml: [sft]: ", "has the wrong type; expected float"]),
    ("c.toml", "[pretrain.model]\nhidden = 64\n", ["c.toml: [pretrain]: ", "ModelConfig has no field 'hidden'"]),
    ("c.toml", "[sft]\nlr = 3e-4\n[ppo]\nupdatez = 4\n", ["c.toml: [ppo] updatez: unknown key"]),   # not sft's table
    ("c.toml", "[sft\n", ["c.toml: not valid TOML"]),
    ("c.json", '{"sft": {"lrr": 1}}', ["c.json: [sft] lrr: unknown key"]),
    ("c.yaml", "sft: {}", ["c.yaml: unknown config format '.yaml'"]),
])
def test_config_file_errors_name_file_and_key(capsys, tmp_path, world, name, text, expected):
    path = tmp_path / name
    path.write_text(text)
    code, out, err = run_cli(capsys, "sft", "--config", str(path), "--data", str(world),
                             "--artifacts", str(tmp_path / "artifacts"))
    assert code == 2 and err.count("\n") == 1 and out == ""
    for t in expected:
        assert t in err, err
    assert not (tmp_path / "artifacts").exists()


def test_all_rejects_a_tokenizer_table(capsys, tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[tokenizer]\nvocab_size = 1024\n")
    code, _, err = run_cli(capsys, "all", "--config", str(path), "--dry-run")
    assert code == 2 and "[tokenizer]: `all` trains the tokenizer inside pretrain" in err


# ------------------------------------------------------------------------------------------------- precedence
def test_defaults_then_file_then_seed_then_set(capsys, tmp_path):
    path = tmp_path / "rlhf.toml"
    path.write_text("[sft]\nlr = 3e-4\nepochs = 1\nseed = 5\n[ppo]\nupdates = 4\n")
    code, out, _ = run_cli(capsys, "sft", "--config", str(path), "--seed", "7", "--set", "epochs=0.5",
                           "--set", "sft.mask_prompt=false", "--dry-run")
    assert code == 0
    sft = resolved(out)["sft"]
    assert (sft["lr"], sft["epochs"], sft["seed"], sft["mask_prompt"]) == (3e-4, 0.5, 7, False)
    assert sft["batch_size"] == 32 and isinstance(sft["epochs"], float)      # untouched default; int in file -> float
    assert list(resolved(out)) == ["sft"]                                     # only the stage's own table

    code, out, _ = run_cli(capsys, "sft", "--config", str(path), "--set", "seed=9", "--seed", "7", "--dry-run")
    assert resolved(out)["sft"]["seed"] == 9                                  # --set wins over --seed


def test_pipeline_precedence_and_json_file(capsys, tmp_path):
    path = tmp_path / "rlhf.json"
    path.write_text(json.dumps({"sft": {"lr": 3e-4}, "pretrain": {"model": {"num_layers": 2}}, "ppo": {"updates": 4}}))
    code, out, _ = run_cli(capsys, "all", "--config", str(path), "--set", "ppo.updates=8", "--set",
                           "pretrain.model.hidden_size=64", "--seed", "3", "--artifacts", str(tmp_path / "a"),
                           "--dry-run")
    assert code == 0
    cfg = resolved(out)
    assert list(cfg) == ["data", "pretrain", "sft", "rm", "ppo", "eval"]
    assert cfg["sft"]["lr"] == 3e-4 and cfg["ppo"]["updates"] == 8
    assert cfg["pretrain"]["model"] == {**cfg["pretrain"]["model"], "num_layers": 2, "hidden_size": 64}
    assert {table["seed"] for table in cfg.values()} == {3}
    assert not (tmp_path / "a").exists()


# ------------------------------------------------------------------------------------------------- real stages
def test_data_stage_runs_through_the_command_line(tmp_path):
    out = tmp_path / "world"
    sets = [arg for k, v in TINY.items() for arg in ("--set", f"{k}={v}")]
    proc = subprocess.run([sys.executable, "-m", "rlhf_lib", "data", "--data", str(out), "--seed", "1", *sets],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    world = json.loads((out / "world.json").read_text())
    assert world["seed"] == 1 and world["sizes"] == TINY
    assert sum(1 for _ in (out / "web.jsonl").open()) == TINY["web_docs"]
    assert tomllib.loads(proc.stdout.split("\ndata: ")[0])["data"]["web_docs"] == TINY["web_docs"]
    summary = proc.stdout.strip().splitlines()[-1]
    assert summary.startswith("data: 40 web docs, 8 demonstrations, 12 comparisons") and "labeler agreement" in summary


def test_tokenizer_stage_writes_its_artifact(capsys, tmp_path, world):
    before = stages.ARTIFACTS, stages.DATA_DIR
    code, out, err = run_cli(capsys, "tokenizer", "--data", str(world), "--artifacts", str(tmp_path),
                             "--set", "vocab_size=512")
    assert code == 0, err
    assert json.loads((tmp_path / "tokenizer" / "stage.json").read_text())["vocab_size"] == 512
    assert out.strip().splitlines()[-1].startswith("tokenizer: 512 tokens, ")
    assert (stages.ARTIFACTS, stages.DATA_DIR) == before                     # the command's folders are undone


def test_missing_world_data_is_a_usage_error(capsys, tmp_path):
    code, _, err = run_cli(capsys, "sft", "--data", str(tmp_path), "--artifacts", str(tmp_path / "a"))
    assert code == 2 and "world.json is missing" in err and "rlhf data --data" in err


# ------------------------------------------------------------------------------------------------- `all`
def _fake_runner(artifacts: Path, calls: list[str]):
    """A stand-in for `cli.run_one` that records its call and writes the stage's stage.json with its config."""
    def run(stage, cfg, ctx):
        calls.append(stage.name)
        for out in stage.outputs(cfg):
            (artifacts / out).mkdir(parents=True, exist_ok=True)
            (artifacts / out / "stage.json").write_text(json.dumps({"config": cli._resolved(stage, cfg)}))
        return [f"{stage.name}: done"]
    return run


def test_all_skips_finished_stages_and_reruns_what_follows(capsys, tmp_path, world, monkeypatch):
    artifacts, calls = tmp_path / "artifacts", []
    monkeypatch.setattr(cli, "run_one", _fake_runner(artifacts, calls))
    defaults = {name: to_dict(cli.STAGES[name].load()()) for name in ("pretrain", "sft")}
    for out, config in (("tokenizer", {"vocab_size": 4096}), ("base", defaults["pretrain"]),
                        ("sft", {**defaults["sft"], "lr": 0.01})):
        (artifacts / out).mkdir(parents=True)
        (artifacts / out / "stage.json").write_text(json.dumps({"config": config}))
    args = ("all", "--data", str(world), "--artifacts", str(artifacts))
    code, out, _ = run_cli(capsys, *args, "--set", "data.web_docs=40")
    assert code == 0
    assert calls == ["rm", "ppo", "eval"]
    assert "pretrain: skipped" in out
    sft_line = next(line for line in out.splitlines() if line.startswith("sft: skipped"))
    assert "lr=0.01 (now 0.001)" in sft_line and "--force" in sft_line
    assert out.rstrip().endswith("eval: done") and "\nsummary:\n" in out

    calls.clear()
    code, out, _ = run_cli(capsys, *args, "--set", "sft.lr=0.01")           # sft now matches: still skipped
    sft_line = next(line for line in out.splitlines() if line.startswith("sft: skipped"))
    assert calls == ["eval"] and "other settings" not in sft_line

    calls.clear()
    code, _, _ = run_cli(capsys, *args, "--set", "data.web_docs=40", "--set", "data.seed=0", "--force")
    assert calls == list(cli.PIPELINE)


def test_eval_keeps_only_an_eval_json_with_the_same_settings(tmp_path):
    cfg = evaluation.EvalConfig()
    path = tmp_path / "eval.json"
    path.write_text(json.dumps({"seed": 0, "generation": to_dict(cfg.generation()), "gold_mean": 0.5}))
    assert evaluation.same_eval(path, cfg.generation(), 0)["gold_mean"] == 0.5
    assert evaluation.same_eval(path, cfg.generation(), 1) is None
    assert evaluation.same_eval(path, dataclasses.replace(cfg.generation(), temperature=0.0), 0) is None


# ------------------------------------------------------------------------------------------------- packaging
def test_data_config_covers_data_sizes():
    sizes = {f.name: f.default for f in dataclasses.fields(DataSizes)}
    assert {n: getattr(DataConfig(), n) for n in sizes} == sizes
    assert DataConfig(web_docs=99).sizes() == DataSizes(web_docs=99)


def test_console_script_declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["rlhf"] == "rlhf_lib.cli:main"
