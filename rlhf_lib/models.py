"""Models: the course's tiny LLaMA ("our GPT-3") and loaders for any Hugging Face causal LM (lesson 00).

The tiny model is an ordinary `LlamaForCausalLM` built from a `LlamaConfig` (ChatLLaMA, Alpaca and KoAlpaca are all
LLaMA-based). Nothing here depends on it being tiny: every trainer takes whatever `AutoModelForCausalLM` a stage
folder holds, so a real checkpoint on disk can be dropped in (see the README). Checkpoints are safetensors only and
`trust_remote_code` is always off: loading never executes code from a model folder.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from .config import knob, validate


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """Shape of the tiny LLaMA (lesson 00 states how long pretraining it takes on the machine in front of you)."""
    hidden_size: int = knob(128, lo=32, hi=1024, step=32, help="width d_model of the residual stream")
    num_layers: int = knob(4, lo=1, hi=24, help="transformer blocks")
    num_heads: int = knob(4, lo=1, hi=16, help="attention heads (hidden_size must divide evenly)")
    intermediate_size: int = knob(352, lo=64, hi=4096, step=32, help="SwiGLU MLP width (LLaMA uses ≈ 8/3 · d_model)")
    max_len: int = knob(256, lo=64, hi=4096, step=64, help="context length in tokens (rotary positions)")

    def __post_init__(self):
        validate(self)
        if self.hidden_size % self.num_heads:
            raise ValueError(f"ModelConfig.hidden_size = {self.hidden_size} must be divisible by "
                             f"num_heads = {self.num_heads}; pick a num_heads that divides it")


def build_tiny_llama(cfg: ModelConfig, tokenizer, seed: int) -> LlamaForCausalLM:
    """A freshly initialised LLaMA with the tokenizer's vocabulary and special tokens (tied embeddings)."""
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads, num_key_value_heads=cfg.num_heads,
        max_position_embeddings=cfg.max_len, tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=None,
    )
    return LlamaForCausalLM(config)


def load_causal_lm(path: str | Path, dtype: torch.dtype = torch.float32):
    """Any causal LM saved with `save_pretrained` (safetensors), and its tokenizer."""
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, use_safetensors=True, trust_remote_code=False)
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    if tokenizer.pad_token is None:          # many real checkpoints ship without one
        tokenizer.pad_token = tokenizer.eos_token
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
