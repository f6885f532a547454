"""Supervised fine-tuning on demonstrations — InstructGPT step 1 (lesson 02).

"Collect demonstration data, and train a supervised policy." Each demonstration is a prompt x and the response y a
careful labeler wrote. The policy learns p(y | x) with the next-token loss **on the response tokens only**:

    L_SFT(θ) = − 1/|R| Σ_{t ∈ R} log π_θ(y_t | x, y_<t)        R = response tokens (+ the final EOS)

The prompt tokens are masked out (the model should not learn to *write prompts*), and EOS is appended so the policy
learns to stop. ChatLLaMA's ActorTrainer used the plain loss over prompt + response (`mask_prompt=False`); lesson 02
trains both and compares.

Two data conventions are supported: Alpaca records (`instruction`, `input`, `output`, rendered with Alpaca's
template) and chat `messages` (system/user/assistant, rendered with the tokenizer's chat template, as in the
ChatGPT API). The policy is evaluated with the chat template.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
from einops import rearrange
from transformers import AutoConfig, AutoTokenizer

from . import stages
from .config import fixed, knob, validate
from .data import DataError, check_stage_fields, read_demos
from .lora import check_one_process, save_merged, special_tokens, trainable, with_lora
from .losses import masked_lm_loss
from .models import load_causal_lm
from .tokenizer import render_alpaca, require_chat_template
from .training import LOCAL, Parallel, adamw, ensure_finite, save_stage, stage_info, warmup_cosine_lr


@dataclass(frozen=True, kw_only=True)
class SFTConfig:
    """Supervised fine-tuning hyperparameters."""
    lr: float = knob(1e-3, lo=1e-6, hi=1e-2, log=True, help="peak AdamW learning rate (cosine decay to 10 %)")
    epochs: float = knob(4.0, lo=0.1, hi=10.0, step=0.1,
                         help="passes over the demonstrations (2 under-fits the held-out prompts)")
    batch_size: int = knob(32, lo=1, hi=256, help="demonstrations per optimizer step")
    mask_prompt: bool = knob(True, help="loss on response tokens only (InstructGPT); off = ChatLLaMA's plain LM loss")
    use_alpaca: bool = knob(True, help="train on the Alpaca-format demonstrations")
    use_chat: bool = knob(True, help="train on the chat-format demonstrations")
    max_len: int = knob(256, lo=32, hi=4096, step=32, help="longest prompt + response in tokens; longer is an error")
    warmup_steps: int = knob(20, lo=0, hi=1000, help="linear learning-rate warm-up steps")
    lora_rank: int = knob(0, lo=0, hi=64, help="LoRA rank r (0 = full fine-tuning): train low-rank adapters with "
                                               "peft, save them and merge them into the saved model (lora.py)")
    lora_tokens: bool = knob(True, help="with LoRA, also train the special tokens' embeddings (the chat template's "
                                        "role tokens are untrained in the base model)")
    betas: tuple[float, float] = fixed((0.9, 0.95), help="AdamW β1, β2 (GPT-3 and LLaMA used 0.9, 0.95)")
    weight_decay: float = fixed(0.0, help="AdamW weight decay")
    max_grad_norm: float = fixed(1.0, help="gradient-norm clip before each optimizer step")
    eval_batch_size: int = fixed(64, help="demonstrations per forward pass of the held-out loss")
    heldout_frac: float = fixed(0.05, help="fraction of demonstrations kept for the held-out loss")
    eval_every: int = fixed(30, help="steps between held-out loss measurements")
    seed: int = fixed(0, help="seed for data order")
    init: str = fixed("base", help="stage the policy starts from")
    out: str = fixed("sft", help="stage name written (lesson 02 writes the unmasked variant to 'sft_nomask')")

    def __post_init__(self):
        validate(self)
        check_stage_fields(self, "init", "out")
        if not (self.use_alpaca or self.use_chat):
            raise ValueError("SFTConfig: use_alpaca and use_chat are both off; enable at least one data format")


@dataclass
class Example:
    prompt_ids: list
    response_ids: list
    source: str           # "file:line"


def load_demos(cfg: SFTConfig, data_dir: Path | None = None) -> list[tuple[str, int, str, str]]:
    """(path, line, prompt text, response text) for every demonstration, validated before any training
    (`data.read_demos`: the schema, the category, unique ids, at least one record per file used)."""
    data_dir = data_dir or stages.DATA_DIR
    out = []
    if cfg.use_alpaca:
        path = data_dir / "sft_alpaca.jsonl"
        for i, r in read_demos(path, "alpaca"):
            out.append((str(path), i, render_alpaca(r["instruction"], r["input"]), r["output"]))
    if cfg.use_chat:
        path = data_dir / "sft_chat.jsonl"
        for i, r in read_demos(path, "chat"):
            out.append((str(path), i, r["messages"], r["messages"][-1]["content"]))
    return out


def tokenize_demos(demos, tokenizer, max_len: int, context: int | None = None) -> list[Example]:
    """Prompt and response token ids (response + EOS); a demonstration longer than `max_len` (or than the model's
    `context`, where that is shorter) is an error that names its file and line."""
    limit = min(max_len, context or max_len)
    what = f"max_len = {max_len}" if limit == max_len else f"the model's context of {context} tokens"
    fix = "raise SFTConfig.max_len" if limit == max_len else "start from a model with a longer context"
    examples = []
    for path, line, prompt, response in demos:
        if isinstance(prompt, list):    # chat messages: everything before the last assistant turn is the prompt
            require_chat_template(tokenizer)
            prompt = tokenizer.apply_chat_template(prompt[:-1], tokenize=False, add_generation_prompt=True)
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        r = tokenizer(response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        if len(p) + len(r) > limit:
            field = "output" if path.endswith("alpaca.jsonl") else "messages"
            raise DataError(path, line, field, f"prompt + response is {len(p) + len(r)} tokens > {what}; "
                            f"shorten the demonstration or {fix}")
        examples.append(Example(p, r, f"{path}:{line}"))
    return examples


def collate(batch: list[Example], pad_id: int, mask_prompt: bool) -> dict:
    """Right-padded tensors: input_ids, attention_mask and loss_mask, all (B, T)."""
    T = max(len(e.prompt_ids) + len(e.response_ids) for e in batch)
    ids = torch.full((len(batch), T), pad_id)
    attn = torch.zeros(len(batch), T)
    loss_mask = torch.zeros(len(batch), T)
    for i, e in enumerate(batch):
        n_p, n = len(e.prompt_ids), len(e.prompt_ids) + len(e.response_ids)
        ids[i, :n] = torch.tensor(e.prompt_ids + e.response_ids)
        attn[i, :n] = 1
        loss_mask[i, (n_p if mask_prompt else 0):n] = 1
    return {"input_ids": ids, "attention_mask": attn, "loss_mask": loss_mask}


def loss_positions(model, b: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits (N, V) at the N positions whose next token counts (`loss_mask`), those tokens (N,), and the row of
    the batch each belongs to (N,): position t predicts token t+1.

    Only the positions that count are sent through the LM head: with a vocabulary of V tokens the head is most of a
    small model's compute, and the prompt positions' logits would be multiplied by 0 anyway."""
    mask = b["loss_mask"][:, 1:]                                                           # (B, T-1)
    hidden = model.get_decoder()(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).last_hidden_state
    keep = mask.bool()
    logits = model.get_output_embeddings()(hidden[:, :-1][keep])                          # (N, V), N = mask.sum()
    labels = b["input_ids"][:, 1:][keep]                                                   # (N,)
    rows = torch.arange(len(mask), device=mask.device)[:, None].expand_as(mask)[keep]     # (N,)
    return logits, labels, rows


def batch_loss(model, b: dict):
    """Masked next-token loss of one batch (`loss_positions`), the token mean over the response tokens."""
    logits, labels, _ = loss_positions(model, b)                                           # (N, V), (N,)
    # the kept positions as one row of N tokens, all of which count
    logits, labels = rearrange(logits, "n v -> 1 n v"), rearrange(labels, "n -> 1 n")     # (1, N, V), (1, N)
    return masked_lm_loss(logits, labels, torch.ones_like(labels, dtype=b["loss_mask"].dtype))


@torch.no_grad()
def heldout_loss(model, examples: list[Example], pad_id: int, batch_size: int = 64) -> float:
    """Response-only loss on held-out demonstrations (the same measure whether or not training masked prompts)."""
    model.eval()
    total, n = 0.0, 0.0
    for i in range(0, len(examples), batch_size):
        b = collate(examples[i:i + batch_size], pad_id, mask_prompt=True)
        loss, stats = batch_loss(model, b)
        total += loss.item() * stats["n_tokens"].item()
        n += stats["n_tokens"].item()
    return total / n


def checked_examples(cfg: SFTConfig, load=load_demos) -> list[Example]:
    """Every demonstration (`load(cfg)`: the world's by default) validated and tokenized with stage `cfg.init`'s
    tokenizer, each within max_len and the model's context: all of it before any model is loaded."""
    init = stages.existing(cfg.init)
    tokenizer = AutoTokenizer.from_pretrained(init, trust_remote_code=False)
    context = AutoConfig.from_pretrained(init, trust_remote_code=False).max_position_embeddings
    return tokenize_demos(load(cfg), tokenizer, cfg.max_len, context)


def split_demos(cfg: SFTConfig, tokenizer, examples: list[Example] | None = None,
                ) -> tuple[list[Example], list[Example], torch.Generator]:
    """Training and held-out examples, and the seeded generator that goes on to shuffle the training set each epoch:
    every rank of a DeepSpeed group sees the same split and the same batches."""
    examples = tokenize_demos(load_demos(cfg), tokenizer, cfg.max_len) if examples is None else examples
    gen = torch.Generator().manual_seed(cfg.seed)
    perm = torch.randperm(len(examples), generator=gen).tolist()
    n_held = max(1, int(len(examples) * cfg.heldout_frac))
    return [examples[i] for i in perm[n_held:]], [examples[i] for i in perm[:n_held]], gen


def run(cfg: SFTConfig, on_log=None, *, par: Parallel = LOCAL, max_steps: int | None = None, load=load_demos,
        name: str = "SFT") -> dict:
    """Fine-tune the `cfg.init` stage on the demonstrations (`load(cfg)` → (path, line, prompt, response); the
    world's by default, lesson 09's apps pass theirs) and save stage `cfg.out`. Returns the metrics.

    `par` runs the loop on several processes (`distributed.py`): each rank takes its share of every batch, in
    micro-batches weighted by their response tokens, so the gradient is the token mean over the whole batch as on one
    process. `max_steps` stops early (the learning-rate schedule stays that of the full run)."""
    t0 = time.time()
    # 1. data: every file validated and every length checked before the model is loaded
    examples = checked_examples(cfg, load)
    model, tokenizer = load_causal_lm(stages.existing(cfg.init))
    if cfg.lora_rank:
        check_one_process(cfg, par.world)
        model = with_lora(model, cfg.lora_rank, tokens=special_tokens(tokenizer) if cfg.lora_tokens else ())
    n_trainable, n_params = trainable(model)
    train, held, gen = split_demos(cfg, tokenizer, examples)
    # 2. optimizer and schedule
    opt = adamw(model.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    engine = par.engine([model], opt, clip=[(list(model.parameters()), cfg.max_grad_norm)])
    total = max(1, int(cfg.epochs * len(train) / cfg.batch_size))
    steps = min(total, max_steps or total)
    pad, micro = tokenizer.pad_token_id, par.micro(cfg.batch_size)
    with par.device():
        history = {"step": [0], "train_loss": [float("nan")],
                   "heldout_loss": [heldout_loss(model, held, pad, cfg.eval_batch_size)]}
        # 3. the loop: every rank sees the whole batch order and takes its rows of each batch
        order, pos, running, seen = [], 0, 0.0, 0
        for step in par.progress(range(steps), f"{name} ({'masked' if cfg.mask_prompt else 'unmasked'})"):
            if pos + cfg.batch_size > len(order):                                 # a fresh shuffle each epoch
                order, pos = torch.randperm(len(train), generator=gen, device="cpu").tolist(), 0
            mine = par.shard([train[i] for i in order[pos:pos + cfg.batch_size]])
            pos += cfg.batch_size
            parts = [collate(mine[k * micro:(k + 1) * micro], pad, cfg.mask_prompt) for k in range(par.accum)]
            n_tok = [float(b["loss_mask"][:, 1:].sum()) for b in parts]
            n_all = par.reduce([sum(n_tok)], "sum")[0]                            # response tokens in the step
            lr = warmup_cosine_lr(cfg.lr, cfg.warmup_steps, step, total)
            model.train()
            step_loss = 0.0
            for b, n in zip(parts, n_tok):
                loss, _ = engine(batch_loss, par.to_device(b))
                engine.step(loss * (n * par.world * par.accum / n_all), lr)       # token-weighted micro-batches
                step_loss += loss.item() * (n / n_all)
            step_loss = par.reduce([step_loss], "sum")[0]
            ensure_finite(step_loss, name, step, f"lower lr (now {cfg.lr})")
            running, seen = running + step_loss, seen + 1
            if (step + 1) % cfg.eval_every == 0 or step + 1 == steps:
                history["step"].append(step + 1)
                history["train_loss"].append(running / seen)
                history["heldout_loss"].append(heldout_loss(model, held, pad, cfg.eval_batch_size))
                running, seen = 0.0, 0
                if on_log is not None:
                    on_log(history)
    # 4. save the stage atomically
    metrics = {"final_loss": history["train_loss"][-1], "heldout_loss": history["heldout_loss"][-1],
               "initial_heldout_loss": history["heldout_loss"][0], "steps": steps, "n_train": len(train),
               "trainable_params": n_trainable, "params": n_params,
               "n_heldout": len(held), "wall_s": round(time.time() - t0, 1), "history": history}
    save_stage(par, cfg.out, model, tokenizer, stage_info(cfg.out, cfg, [cfg.init]), metrics,
               write_model=(lambda folder: save_merged(model, folder)) if cfg.lora_rank else None)
    return metrics


def summary(m: dict) -> str:
    """One line of a finished SFT run's metrics (the command line prints it)."""
    lora = (f", {m['trainable_params']:,} of {m['params']:,} parameters trained (LoRA)"
            if m.get("trainable_params", 0) < m.get("params", 0) else "")
    return (f"{m['steps']} steps, heldout loss {m['heldout_loss']:.3f} (initial {m['initial_heldout_loss']:.3f})"
            f"{lora}, {m['wall_s']} s")
