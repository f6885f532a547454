"""Nothing in the recipe is specific to the tiny LLaMA: the whole pipeline on other Hugging Face architectures.

For GPT-2, Qwen2, GPT-NeoX (Polyglot-ko's architecture, which KoAlpaca fine-tuned) and OPT (DeepSpeed-Chat's), a
random tiny model is built from the architecture's own config class (`models.build_model`, the one line
`ModelConfig(arch=...)` changes), saved as the `base` stage, and taken through SFT → reward model → PPO → DPO →
GRPO on a slice of the world's data. Every stage must save, load back through the Auto classes (the reward model
as the architecture's own `AutoModelForSequenceClassification`), and give finite numbers. LLaMA itself is what
every other test trains.
"""
from __future__ import annotations

import importlib
import math

import pytest
from conftest import save_base
from transformers import AutoConfig

from rlhf_lib import dpo, grpo, ppo, reward, sft, stages
from rlhf_lib.config import parse_overrides
from rlhf_lib.models import ModelConfig, build_model, load_causal_lm
from rlhf_lib.reward_model import load_reward_model

SHAPE = dict(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, max_len=512)
RUNS = [(sft.SFTConfig, ["max_len=512", "batch_size=16", "epochs=1", "eval_every=3", "warmup_steps=1"]),
        (reward.RMConfig, ["max_len=512", "n_prompts=20", "written=9", "sft_samples=1", "epochs=1"]),
        (ppo.PPOConfig, ["updates=2", "batch_size=4", "minibatch_size=4", "sampling.max_new_tokens=8",
                         "evaluate=false", "gold_every=0"]),
        (dpo.DPOConfig, ["epochs=1", "prompts_per_batch=4", "eval_every=2", "curve_prompts=4", "evaluate=false"]),
        (grpo.GRPOConfig, ["updates=1", "batch_size=2", "group_size=2", "minibatch_size=4",
                           "sampling.max_new_tokens=8", "evaluate=false", "gold_every=0"])]


@pytest.mark.parametrize("arch", ["gpt2", "qwen2", "gpt_neox", "opt"])
def test_the_whole_pipeline_runs_on_another_architecture(arch, data_slice, tmp_path, monkeypatch):
    root, tok = data_slice
    monkeypatch.setattr(stages, "DATA_DIR", root)
    monkeypatch.setattr(stages, "ARTIFACTS", tmp_path / "artifacts")
    model = build_model(ModelConfig(arch=arch, **SHAPE), tok, seed=0)
    assert model.config.model_type == arch
    save_base(model, tok)
    for cls, overrides in RUNS:
        metrics = train(cls, overrides)
        numbers = [v for v in metrics.values() if isinstance(v, float)]
        assert numbers and all(math.isfinite(v) for v in numbers), (cls.__name__, metrics)
    for name in ("sft", "ppo", "dpo", "grpo"):
        policy, _ = load_causal_lm(stages.stage_dir(name))
        assert policy.config.model_type == arch, name
    rm, _, norm = load_reward_model(stages.stage_dir("rm"))
    assert type(rm).__name__.endswith("ForSequenceClassification") and rm.config.model_type == arch
    assert AutoConfig.from_pretrained(stages.stage_dir("rm")).model_type == arch and math.isfinite(norm["gain"])


def train(cls, overrides: list[str]) -> dict:
    """Train one stage with its defaults and `overrides`, through its module's own `run`."""
    return importlib.import_module(cls.__module__).run(parse_overrides(cls(), overrides))
