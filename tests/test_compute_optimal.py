"""Lesson 10's compute-optimal sweep (`rlhf_lib/compute_optimal.py`): the C ≈ 6ND arithmetic against independent
counts, the config's errors, and a tiny point on a slice of the world that trains, repeats itself and leaves the
course's stages as they were."""
from __future__ import annotations

import math
from dataclasses import replace

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
from conftest import save_base  # noqa: E402

from rlhf_lib import compute_optimal as co  # noqa: E402
from rlhf_lib import scaling_views, stages  # noqa: E402
from rlhf_lib.models import ModelConfig, build_model, n_params  # noqa: E402
from rlhf_lib.pretrain import PretrainConfig  # noqa: E402


# ------------------------------------------------------------------------------------------------ the arithmetic
def test_lesson00_shape_is_one_of_the_sizes():
    assert co.model_shape((128, 4)) == ModelConfig()                    # 8/3 · 128 rounded up to 32 is 352


@pytest.mark.parametrize("size", [(32, 1), (64, 2), (96, 3), (128, 4)])
def test_count_params_matches_the_built_model(size, data_slice):
    _, tok = data_slice
    shape = co.model_shape(size)
    assert co.count_params(shape, len(tok)) == n_params(build_model(shape, tok, seed=0))


def test_token_budget_is_c_over_6n_in_whole_steps():
    steps, d = co.token_budget(6 * 1000 * 10_240, 1000, 1024)          # C = 6 · N · D with D = 10 240 exactly
    assert (steps, d) == (10, 10_240)
    steps, d = co.token_budget(6e12, 1_500_000, 1024)
    assert d == steps * 1024 and abs(6 * 1_500_000 * d - 6e12) <= 6 * 1_500_000 * 512   # within half a step
    assert co.token_budget(1.0, 10**6, 1024) == (1, 1024)              # at least one step
    with pytest.raises(ValueError, match="must be positive"):
        co.token_budget(0, 1000, 1024)


def test_chinchilla_n_opt_gives_twenty_tokens_per_parameter():
    n = 1e6
    assert math.isclose(co.chinchilla_n_opt(6 * n * 20 * n), n)


# ------------------------------------------------------------------------------------------------ the config
@pytest.mark.parametrize("changes, message", [
    ({"sizes": ((100, 2),)}, "not a multiple of head_dim = 32"),
    ({"sizes": ((64,),)}, r"not a \(hidden_size, num_layers\) pair"),
    ({"sizes": ((64, 0),)}, r"\(64, 0\) does not give a valid model"),
    ({"sizes": ()}, "sizes is empty"),
    ({"budgets": (0.0,)}, r"each in \(0, 16\]"),
    ({"budgets": (0.25,), "sft_budgets": (0.5,)}, r"sft_budgets \[0.5\] are not among budgets"),
    ({"sft_epochs": 0.0}, "sft_epochs = 0.0 is out of range"),
    ({"pretrain": PretrainConfig(seq_len=512, model=ModelConfig(max_len=512))}, None),
])
def test_config_errors_name_the_field(changes, message):
    if message is None:
        co.ScalingConfig(**changes)                                      # a valid combination
        return
    with pytest.raises(ValueError, match=message):
        co.ScalingConfig(**changes)


def test_a_misspelled_field_fails():
    from rlhf_lib.config import override
    with pytest.raises(ValueError, match="did you mean 'sft_epochs'"):
        override(co.ScalingConfig(), sft_epoch=2.0)


# ------------------------------------------------------------------------------------------------ a tiny point
TINY = dict(sizes=((32, 1),), budgets=(0.05,), sft_budgets=(0.05,), evals=2)


@pytest.fixture
def tiny_world(data_slice, artifacts, monkeypatch):
    """A slice of the world and a course with its tokenizer and base stages (sft too): what a point must not touch."""
    folder, tok = data_slice
    monkeypatch.setattr(stages, "DATA_DIR", folder)
    save_base(build_model(ModelConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64), tok, 0), tok)
    with stages.writing("sft") as f:
        stages.write_json(f / "stage.json", {"stage": "sft", "config": {}, "upstream": ["base"]})
    return artifacts


def snapshot(folder):
    return {p.relative_to(folder).as_posix(): (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.rglob("*")
            if p.is_file()}


def test_a_tiny_point_trains_repeats_and_touches_no_stage(tiny_world):
    before = snapshot(tiny_world)
    cfg = co.ScalingConfig(**TINY)
    point = co.train_point(cfg, (32, 1), 0.05, sft=True)
    assert snapshot(tiny_world) == before                               # nothing written, replaced or left behind
    assert point["n_params"] == co.count_params(co.model_shape((32, 1)), 800)
    assert point["tokens"] == point["steps"] * cfg.batch_size * cfg.pretrain.seq_len
    assert math.isclose(point["flops"], 6 * point["n_params"] * point["tokens"])
    for key in ("heldout_loss", "initial_heldout_loss", "tokens_per_s", "wall_s", "sft_heldout_loss", "gold_mean"):
        assert math.isfinite(point[key]), key
    assert point["heldout_loss"] < point["initial_heldout_loss"]
    assert 0 <= point["gold_mean"] <= 1
    again = co.train_point(replace(cfg, sft_budgets=()), (32, 1), 0.05)  # same seed, same machine: same numbers
    assert again["history"]["heldout_loss"] == point["history"]["heldout_loss"]
    rows = scaling_views.compare_live(again, {"points": [point]})
    assert rows[-1]["held-out loss"] == "+0.00e+00"


def test_a_point_needs_the_course_tokenizer(data_slice, artifacts, monkeypatch):
    monkeypatch.setattr(stages, "DATA_DIR", data_slice[0])
    with pytest.raises(FileNotFoundError, match="stage 'tokenizer' is missing"):
        co.train_point(co.ScalingConfig(**TINY), (32, 1), 0.05)
    assert not (artifacts / "tokenizer").exists()                       # never trained here


# ------------------------------------------------------------------------------------------------ the views
def test_views_draw_and_tabulate_a_record():
    def pt(budget, d, loss, **extra):
        n = co.count_params(co.model_shape((d, 2)), 4096)
        return {"budget": budget, "hidden_size": d, "num_layers": 2, "n_params": n, "tokens": 1024,
                "tokens_per_param": 0.1, "steps": 1, "flops": 6 * n * 1024, "heldout_loss": loss,
                "tokens_per_s": 100, "wall_s": 1.0, **extra}
    record = {"machine": {"cpu": "test CPU"}, "seed": 0,
              "points": [pt(1 / 16, 32, 4.0), pt(1 / 16, 64, 4.5), pt(1 / 8, 32, 3.5, gold_mean=0.3,
                                                                   sft_eval_wall_s=2.0), pt(1 / 8, 64, 3.4)]}
    ax = scaling_views.plot_loss_vs_n(record, live=record["points"][0])
    assert ax.get_xscale() == "log" and "test CPU" in ax.get_title()
    rows = scaling_views.sweep_rows(record)
    assert [r["C"] for r in rows] == ["C₀/16", "C₀/16", "C₀/8", "C₀/8"]
    assert rows[2]["gold after SFT"] == 0.3 and rows[2]["seconds"] == 3.0 and rows[0]["gold after SFT"] == ""
    with pytest.raises(ValueError, match="no point d=96"):
        scaling_views.compare_live(pt(1 / 8, 96, 3.0), record)
