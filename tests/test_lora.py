"""LoRA with peft (`lora.py`, `SFTConfig.lora_rank`): few parameters train, the model starts exactly where it was,
the adapter is saved in PEFT's own format, and the merged folder is an ordinary model every stage loads."""
from __future__ import annotations

import copy
import math

import pytest
import torch
from conftest import save_base
from peft import PeftModel

from rlhf_lib import dpo, lora, reward, sft, stages
from rlhf_lib.config import parse_overrides
from rlhf_lib.models import ModelConfig, build_tiny_llama, load_causal_lm

SHAPE = ModelConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, max_len=512)


@pytest.fixture
def base(data_slice):
    _, tok = data_slice
    return build_tiny_llama(SHAPE, tok, seed=0), tok


def logits(model, ids):
    model.eval()
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_lora_trains_few_parameters_and_starts_at_the_base_model(base):
    model, tok = base
    ids = torch.tensor([tok("the moon landing")["input_ids"]])
    before = logits(model, ids)
    wrapped = lora.with_lora(copy.deepcopy(model), rank=2)
    n_train, n_all = lora.trainable(wrapped)
    # r (d + k) per adapted linear layer: q, k, v, o (32 × 32), gate, up (32 → 64), down (64 → 32); 2 blocks
    per_block = 4 * 2 * (32 + 32) + 3 * 2 * (32 + 64)
    assert n_train == 2 * per_block and n_train < 0.1 * n_all
    assert torch.allclose(logits(wrapped, ids), before)                      # B = 0: exactly W₀ at the start
    assert lora.is_lora(wrapped) and not lora.is_lora(model)
    with pytest.raises(ValueError, match="rank ≥ 1"):
        lora.with_lora(model, rank=0)


def test_the_adapter_and_the_merged_model_give_the_trained_model(base, tmp_path):
    model, tok = base
    ids = torch.tensor([tok("tell me about the moon")["input_ids"]])
    wrapped = lora.with_lora(copy.deepcopy(model), rank=4)
    opt = torch.optim.SGD([p for p in wrapped.parameters() if p.requires_grad], lr=0.5)
    for _ in range(3):                                                      # move B away from zero
        loss = wrapped(input_ids=ids, labels=ids).loss
        loss.backward(), opt.step(), opt.zero_grad()
    trained = logits(wrapped, ids)
    assert not torch.allclose(trained, logits(model, ids))
    lora.save_merged(wrapped, tmp_path)
    tok.save_pretrained(tmp_path)
    assert (tmp_path / lora.ADAPTER_DIR / "adapter_config.json").is_file()
    assert (tmp_path / lora.ADAPTER_DIR / "adapter_model.safetensors").is_file()
    merged, _ = load_causal_lm(tmp_path)                                     # a plain folder: no peft needed
    assert not lora.is_lora(merged)
    assert torch.allclose(logits(merged, ids), trained, atol=1e-5)
    adapter = PeftModel.from_pretrained(copy.deepcopy(model), tmp_path / lora.ADAPTER_DIR)
    assert torch.allclose(logits(adapter, ids), trained, atol=1e-5)


def test_sft_with_lora_saves_a_stage_the_next_stages_load(base, data_slice, tmp_path, monkeypatch):
    root, _ = data_slice
    model, tok = base
    monkeypatch.setattr(stages, "DATA_DIR", root)
    monkeypatch.setattr(stages, "ARTIFACTS", tmp_path / "artifacts")
    save_base(model, tok)
    cfg = parse_overrides(sft.SFTConfig(), ["max_len=512", "batch_size=16", "epochs=1", "eval_every=2",
                                             "warmup_steps=1", "lora_rank=2", "lr=3e-3"])
    m = sft.run(cfg)
    assert m["trainable_params"] < 0.1 * m["params"] and m["heldout_loss"] < m["initial_heldout_loss"]
    assert "parameters trained (LoRA)" in sft.summary(m)
    stages.verify(stages.stage_dir("sft"))                                   # every file recorded and whole
    policy, _ = load_causal_lm(stages.existing("sft"))
    assert not lora.is_lora(policy)
    moved = (policy.get_input_embeddings().weight - model.get_input_embeddings().weight).abs().sum(1)
    assert sorted(moved.nonzero().flatten().tolist()) == lora.special_tokens(tok)    # the role tokens learned
    assert (stages.stage_dir("sft") / lora.ADAPTER_DIR / "adapter_config.json").is_file()


def test_dpo_with_lora_starts_from_the_lora_sft_and_saves_a_plain_stage(base, data_slice, tmp_path, monkeypatch):
    """LoRA where it fits DPO: the reference log-probs are computed once before any adapter exists, then only the
    adapters (and the special tokens) train, and the stage is the merged model."""
    root, _ = data_slice
    model, tok = base
    monkeypatch.setattr(stages, "DATA_DIR", root)
    monkeypatch.setattr(stages, "ARTIFACTS", tmp_path / "artifacts")
    save_base(model, tok)
    sft.run(parse_overrides(sft.SFTConfig(), ["max_len=512", "batch_size=16", "epochs=1", "warmup_steps=1"]))
    reward.run(parse_overrides(reward.RMConfig(), ["max_len=512", "n_prompts=20", "written=9", "sft_samples=1",
                                                   "epochs=1"]))
    m = dpo.run(parse_overrides(dpo.DPOConfig(), ["epochs=1", "prompts_per_batch=4", "eval_every=2",
                                                  "curve_prompts=4", "evaluate=false", "lora_rank=2", "lr=1e-3"]))
    assert m["trainable_params"] < 0.1 * m["params"] and math.isfinite(m["final_loss"])
    policy, _ = load_causal_lm(stages.existing("dpo"))
    assert not lora.is_lora(policy) and (stages.stage_dir("dpo") / lora.ADAPTER_DIR / "adapter_config.json").is_file()
    sft_policy, _ = load_causal_lm(stages.existing("sft"))
    moved = [n for (n, p), q in zip(policy.named_parameters(), sft_policy.parameters()) if not torch.equal(p, q)]
    assert moved and all("layers" in n or "embed" in n for n in moved)          # the blocks (merged) and the embedding
