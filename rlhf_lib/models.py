"""Models: the course's tiny LLaMA ("our GPT-3") and loaders for any Hugging Face causal LM (lesson 00).

The tiny model is an ordinary `LlamaForCausalLM` built from a `LlamaConfig` (ChatLLaMA, Alpaca and KoAlpaca are all
LLaMA-based). Nothing here depends on it being tiny: every trainer takes whatever `AutoModelForCausalLM` a stage
folder holds, so a real checkpoint on disk can be dropped in (see the README). Checkpoints are safetensors only and
`trust_remote_code` is always off: loading never executes code from a model folder.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from .checksums import mismatch
from .config import knob, validate

ARCHS = ("llama", "gpt2", "qwen2", "gpt_neox", "opt")


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """Shape of the tiny LLaMA (lesson 00 states how long pretraining it takes on the machine in front of you)."""
    hidden_size: int = knob(128, lo=32, hi=1024, step=32, help="width d_model of the residual stream")
    num_layers: int = knob(4, lo=1, hi=24, help="transformer blocks")
    num_heads: int = knob(4, lo=1, hi=16, help="attention heads (hidden_size must divide evenly)")
    intermediate_size: int = knob(352, lo=64, hi=4096, step=32, help="SwiGLU MLP width (LLaMA uses ≈ 8/3 · d_model)")
    max_len: int = knob(256, lo=64, hi=4096, step=64, help="context length in tokens (rotary positions)")
    arch: str = knob("llama", choices=ARCHS, help="architecture (`model_type`): the course's LLaMA, or GPT-2, Qwen2, "
                                                  "GPT-NeoX (Polyglot-ko's) or OPT (DeepSpeed-Chat's) of the same size")

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


def arch_fields(cfg: ModelConfig) -> dict:
    """The shape of `cfg` in the field names of its architecture's own config class."""
    if cfg.arch == "gpt2":
        return dict(n_embd=cfg.hidden_size, n_layer=cfg.num_layers, n_head=cfg.num_heads, n_inner=cfg.intermediate_size,
                    n_positions=cfg.max_len, tie_word_embeddings=True)
    if cfg.arch == "opt":
        return dict(hidden_size=cfg.hidden_size, num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads,
                    ffn_dim=cfg.intermediate_size, max_position_embeddings=cfg.max_len,
                    word_embed_proj_dim=cfg.hidden_size, tie_word_embeddings=True)
    extra = {"num_key_value_heads": cfg.num_heads} if cfg.arch == "qwen2" else {}
    return dict(hidden_size=cfg.hidden_size, num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads,
                intermediate_size=cfg.intermediate_size, max_position_embeddings=cfg.max_len,
                tie_word_embeddings=True, **extra)


def build_model(cfg: ModelConfig, tokenizer, seed: int):
    """A freshly initialised causal LM of architecture `cfg.arch` with the tokenizer's vocabulary and special
    tokens: `build_tiny_llama` for LLaMA, else the architecture's own config class (`AutoConfig.for_model`). Every
    later stage loads whatever this saves with the Auto classes, so nothing downstream names the architecture."""
    if cfg.arch == "llama":
        return build_tiny_llama(cfg, tokenizer, seed)
    torch.manual_seed(seed)
    config = AutoConfig.for_model(cfg.arch, vocab_size=len(tokenizer), eos_token_id=tokenizer.eos_token_id,
                                  pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.eos_token_id,
                                  **arch_fields(cfg))
    return AutoModelForCausalLM.from_config(config)


def load_causal_lm(path: str | Path, dtype: torch.dtype = torch.float32):
    """Any causal LM saved with `save_pretrained` (safetensors), and its tokenizer. A local folder is checked first
    (`check_folder`) and after loading (`check_loaded`): a damaged checkpoint is a CheckpointError, never a model."""
    if Path(path).is_dir():
        check_folder(Path(path))
    model, info = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, use_safetensors=True, trust_remote_code=False,
                                                       output_loading_info=True, ignore_mismatched_sizes=True)
    if Path(path).is_dir():
        check_loaded(Path(path), model, info)
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    if tokenizer.pad_token is None:          # many real checkpoints ship without one
        tokenizer.pad_token = tokenizer.eos_token
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


# ------------------------------------------------------------------------------------------------ checkpoint checks
class CheckpointError(ValueError):
    """A model folder that cannot give the model that was saved; the message names the file and the fix."""


def fix_for(folder: Path, restore: str = "restore it from a backup") -> str:
    if (folder / "stage.json").is_file():
        return (f"{restore}, or move {folder} away or delete it to retrain stage '{folder.name}' "
                f"(pipeline.require('{folder.name}') trains a missing stage)")
    return f"{restore}, or save the model again with save_pretrained"


def check_folder(folder: Path) -> None:
    """Before loading: each file the folder's stage.json recorded still has its size and sha256 (the records that
    `stages` writes, checked with the same `checksums.mismatch`), and each .safetensors file is whole (its header's
    tensors end where the file ends)."""
    try:
        recorded = json.loads((folder / "stage.json").read_text(encoding="utf-8")).get("files") or {}
    except (OSError, ValueError, AttributeError):
        recorded = {}                        # not a stage folder, or one saved before checksums
    for rel, rec in recorded.items():
        path = folder / rel
        if path.is_file() and isinstance(rec, dict) and (why := mismatch(path, rec)):
            raise CheckpointError(f"{path} {why}: {fix_for(folder)}")
    for path in sorted(folder.glob("*.safetensors")):
        check_safetensors(path, fix_for(folder))


def check_safetensors(path: Path, fix: str) -> None:
    """A safetensors file is an 8-byte header length, a JSON header of tensors (dtype, shape, byte offsets), then
    the bytes: a truncated or overwritten file disagrees with its own header."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        head = f.read(n) if 8 + n <= size else b""
    try:
        end = 8 + n + max((t["data_offsets"][1] for k, t in json.loads(head).items() if k != "__metadata__"),
                          default=0)
    except (UnicodeDecodeError, ValueError, TypeError, KeyError, IndexError, AttributeError):
        raise CheckpointError(f"{path} is not a whole safetensors file (its header is unreadable): {fix}") from None
    if end != size:
        raise CheckpointError(f"{path} has {size} bytes but its header describes {end} (truncated or overwritten): "
                              f"{fix}")


def check_loaded(folder: Path, model, info: dict) -> None:
    """After loading (`info`: from_pretrained's output_loading_info): config.json built the model the weights are
    for (no tensor missing, left over or of another shape) and no weight is NaN or inf."""
    odd = {kind: [str(k[0] if isinstance(k, tuple) else k) for k in info.get(f"{kind}_keys", ())]
           for kind in ("missing", "unexpected", "mismatched")}
    if any(odd.values()):
        found = "; ".join(f"{len(v)} {kind} (e.g. {sorted(v)[0]})" for kind, v in odd.items() if v)
        c = model.config
        raise CheckpointError(f"{folder / 'config.json'} does not describe the weights in {folder}: tensors {found}."
                              f" It builds num_hidden_layers={c.num_hidden_layers}, hidden_size={c.hidden_size}, "
                              f"vocab_size={c.vocab_size}: "
                              f"{fix_for(folder, 'restore the config.json saved with these weights')}")
    bad = [name for name, p in model.named_parameters() if not torch.isfinite(p).all()]
    if bad:
        raise CheckpointError(f"{folder} holds NaN or inf weights (in {len(bad)} tensor(s), e.g. {bad[0]}): "
                              f"{fix_for(folder)}")


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
