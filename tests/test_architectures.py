"""Nothing in the recipe is specific to the tiny LLaMA: the whole pipeline on other Hugging Face architectures.

For GPT-2, Qwen2, GPT-NeoX (Polyglot-ko's architecture, which KoAlpaca fine-tuned) and OPT (DeepSpeed-Chat's), a
tiny model is built from the architecture's own config class (`models.build_model`, the one line
`ModelConfig(arch=...)` changes), pretrained with a fresh tokenizer by `pretrain.run` on a slice of the world's web,
and taken through SFT → reward model → PPO → DPO → GRPO on a slice of the world's data. Every stage must save, load
back through the Auto classes (the reward model as the architecture's own `AutoModelForSequenceClassification`), and
give finite numbers. LLaMA itself is what every other test trains. A tokenizer without a chat template (GPT-2's, many
base checkpoints') is an error that says what to set.
"""
from __future__ import annotations

import copy
import importlib
import math

import pytest
from transformers import AutoConfig

from rlhf_lib import dpo, grpo, ppo, pretrain, reward, sft, stages
from rlhf_lib.config import parse_overrides
from rlhf_lib.models import ModelConfig, load_causal_lm
from rlhf_lib.pretrain import PretrainConfig
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
    root, _ = data_slice
    monkeypatch.setattr(stages, "DATA_DIR", root)
    monkeypatch.setattr(stages, "ARTIFACTS", tmp_path / "artifacts")
    pretrained = pretrain.run(PretrainConfig(vocab_size=512, epochs=1.0, batch_size=8, seq_len=64, warmup_steps=2,
                                             model=ModelConfig(arch=arch, **SHAPE)))
    assert math.isfinite(pretrained["heldout_loss"]) and pretrained["heldout_loss"] < pretrained["initial_heldout_loss"]
    base, _ = load_causal_lm(stages.stage_dir("base"))
    assert base.config.model_type == arch
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


def test_a_tokenizer_without_a_chat_template_says_what_to_set(data_slice):
    from rlhf_lib.sft import tokenize_demos
    from rlhf_lib.tokenizer import render_prompt
    _, tok = data_slice
    bare = copy.deepcopy(tok)
    bare.chat_template = None
    assert render_prompt(bare, "Hi", "plain") == "Hi\n"                       # a plain prompt needs no template
    with pytest.raises(ValueError, match="no chat template.*set tokenizer.chat_template.*'plain' or 'alpaca'"):
        render_prompt(bare, "Hi", "chat")
    demo = [("demo.jsonl", 1, [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}], "Hello")]
    with pytest.raises(ValueError, match="no chat template"):
        tokenize_demos(demo, bare, 64)
    assert tokenize_demos(demo, tok, 64)                                        # with the template: fine
