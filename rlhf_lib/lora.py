"""LoRA adapters with `peft` (KoAlpaca trained its largest model this way): fine-tune a few low-rank matrices.

Hu et al. (2021) freeze the pretrained weight W₀ of each linear layer and learn a low-rank update beside it,

    h = W₀ x + (α / r) · B A x,        A ∈ ℝ^{r×k} (random), B ∈ ℝ^{d×r} (zeros), r ≪ min(d, k)

so at the start the model is exactly W₀, only r(d + k) numbers per layer train, and after training B A can be
merged into W₀ — the merged model is an ordinary `save_pretrained` folder that every later stage (and the server of
lesson 09) loads as it loads any other. `peft` does the work: `LoraConfig`, `get_peft_model`, the adapter's own
format (`adapter_config.json`, `adapter_model.safetensors`) and `merge_and_unload`.

    model = with_lora(model, rank=8)          # SFT with SFTConfig(lora_rank=8) does this
    save_merged(model, folder)                # folder/ the merged model, folder/adapter/ the adapter in PEFT's format
"""
from __future__ import annotations

import warnings
from pathlib import Path

ADAPTER_DIR = "adapter"          # inside a stage folder: the adapter, in PEFT's own format


def with_lora(model, rank: int, alpha: float | None = None, dropout: float = 0.0, tokens: list[int] = ()):
    """`model` wrapped by `peft.get_peft_model` with LoRA on every linear layer of its blocks (not the LM head):
    only the adapters are trainable, and the embedding rows of `tokens` (peft's `trainable_token_indices`).
    `alpha` defaults to 2 · rank (a scale α / r of 2).

    Why `tokens`: a chat template's role tokens (`<|user|>`, `<|assistant|>` …) never occur in pretraining text,
    so their embeddings are still random in the base model, and no low-rank update of the blocks can move them."""
    from peft import LoraConfig, get_peft_model
    if rank < 1:
        raise ValueError(f"LoRA rank = {rank}: give a rank ≥ 1 (0 means full fine-tuning, without LoRA)")
    cfg = LoraConfig(r=rank, lora_alpha=alpha if alpha is not None else 2 * rank, lora_dropout=dropout,
                     target_modules="all-linear", task_type="CAUSAL_LM",
                     trainable_token_indices=sorted(set(tokens)) or None)
    with warnings.catch_warnings():     # peft 0.21 reads transformers' deprecated `is_gradient_checkpointing`
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(model, cfg)


def check_one_process(cfg, world: int) -> None:
    """LoRA runs on one process here: a config with `lora_rank` > 0 under several ranks is an error naming it."""
    if cfg.lora_rank and world > 1:
        raise ValueError(f"{type(cfg).__name__}.lora_rank = {cfg.lora_rank}: LoRA runs on one process here; "
                         "set lora_rank=0 under DeepSpeed")


def special_tokens(tokenizer) -> list[int]:
    """The ids of the tokenizer's special tokens (EOS, PAD and the chat template's role tokens)."""
    return sorted(set(tokenizer.all_special_ids))


def trainable(model) -> tuple[int, int]:
    """(trainable parameters, all parameters)."""
    return (sum(p.numel() for p in model.parameters() if p.requires_grad),
            sum(p.numel() for p in model.parameters()))


def is_lora(model) -> bool:
    from peft import PeftModel
    return isinstance(model, PeftModel)


def save_merged(model, folder: Path) -> None:
    """Write the adapter in PEFT's format to `folder/adapter/`, then merge it into the weights and write the plain
    model (safetensors) to `folder/`. The model passed in is merged in place."""
    folder = Path(folder)
    model.save_pretrained(folder / ADAPTER_DIR, safe_serialization=True)
    model.merge_and_unload().save_pretrained(folder, safe_serialization=True)
