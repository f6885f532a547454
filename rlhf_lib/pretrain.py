"""Pretraining "our GPT-3" on the world's web corpus (lesson 00).

Plain next-token prediction, L(θ) = −1/N Σ_t log p_θ(x_t | x_<t), over documents packed into fixed-length blocks
(each document ends with EOS). This is all GPT-3 was trained to do, which is why it continues an instruction with
more instructions, repeats itself and repeats the web's wrong claims: lesson 01 measures exactly that.

    cfg = PretrainConfig()          # or panel.value
    result = run(cfg)               # writes artifacts/tokenizer/ and artifacts/base/
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from einops import rearrange

from . import stages
from .config import fixed, knob, validate
from .data import read_web
from .models import ModelConfig, build_model, n_params
from .tokenizer import train_tokenizer
from .training import LOCAL, Parallel, adamw, ensure_finite, save_stage, stage_info, warmup_cosine_lr


@dataclass(frozen=True, kw_only=True)
class PretrainConfig:
    """Tokenizer and pretraining hyperparameters (the model's shape is `model`)."""
    vocab_size: int = knob(4096, lo=512, hi=32768, step=512, help="BPE vocabulary size (bytes + merges + specials)")
    lr: float = knob(3e-3, lo=1e-5, hi=3e-2, log=True, help="peak AdamW learning rate (cosine decay to 10 %)")
    epochs: float = knob(2.0, lo=0.1, hi=20.0, step=0.1, help="passes over the packed corpus")
    batch_size: int = knob(32, lo=1, hi=256, help="blocks per optimizer step")
    seq_len: int = knob(128, lo=16, hi=1024, step=16, help="tokens per packed block")
    warmup_steps: int = knob(30, lo=0, hi=2000, help="linear learning-rate warm-up steps")
    weight_decay: float = knob(0.1, lo=0.0, hi=0.5, step=0.01, help="AdamW weight decay")
    betas: tuple[float, float] = fixed((0.9, 0.95), help="AdamW β1, β2 (GPT-3 and LLaMA used 0.9, 0.95)")
    max_grad_norm: float = fixed(1.0, help="gradient-norm clip before each optimizer step")
    eval_batch_size: int = fixed(64, help="blocks per forward pass of the held-out loss")
    heldout_frac: float = fixed(0.05, help="fraction of web documents kept aside for the held-out loss")
    eval_every: int = fixed(40, help="steps between held-out loss measurements")
    seed: int = fixed(0, help="seed for initialisation and data order")
    model: ModelConfig = fixed(ModelConfig(), help="shape (and architecture) of the base model")

    def __post_init__(self):
        validate(self)
        if self.seq_len > self.model.max_len:
            raise ValueError(f"PretrainConfig.seq_len = {self.seq_len} exceeds model.max_len = {self.model.max_len}; "
                             "lower seq_len or raise ModelConfig.max_len")


def load_web() -> list[dict]:
    """The web corpus's documents, validated (schema, unique ids, at least one) before any work."""
    return [doc for _, doc in read_web(stages.DATA_DIR / "web.jsonl")]


def split_docs(docs: list[dict], cfg: PretrainConfig) -> tuple[list[dict], list[dict]]:
    n_held = max(1, int(len(docs) * cfg.heldout_frac))
    return docs[n_held:], docs[:n_held]


def train_tokenizer_stage(cfg: PretrainConfig):
    """Train the BPE tokenizer on the training documents and save `artifacts/tokenizer/` (inside `run`, together
    with the base model once it is trained)."""
    train_docs, _ = split_docs(load_web(), cfg)
    with stages.writing("tokenizer") as tmp:
        tok = train_tokenizer([d["text"] for d in train_docs], cfg.vocab_size, tmp)
        stages.write_json(tmp / "stage.json", {"stage": "tokenizer", "config": {"vocab_size": cfg.vocab_size},
                                               "vocab_size": len(tok)})
    return tok


def pack(tokenizer, docs: list[dict], seq_len: int) -> torch.Tensor:
    """Concatenate documents (each + EOS) and cut into blocks: (N, seq_len)."""
    ids: list[int] = []
    for enc in tokenizer([d["text"] for d in docs], add_special_tokens=False)["input_ids"]:
        ids += enc + [tokenizer.eos_token_id]
    n = len(ids) // seq_len
    return rearrange(torch.tensor(ids[: n * seq_len]), "(n t) -> n t", t=seq_len)          # (N, seq_len)


@torch.no_grad()
def lm_loss(model, blocks: torch.Tensor, batch_size: int = 64) -> float:
    """Mean next-token loss of `model` on packed blocks (the "alignment tax" uses this on the web corpus)."""
    model.eval()
    total, n = 0.0, 0
    for i in range(0, len(blocks), batch_size):
        x = blocks[i:i + batch_size]
        total += model(input_ids=x, labels=x).loss.item() * len(x)
        n += len(x)
    return total / n


def lr_at(step: int, total: int, cfg: PretrainConfig) -> float:
    """Pretraining's learning rate: linear warm-up, then cosine decay to 10 % over the remaining steps."""
    return warmup_cosine_lr(cfg.lr, cfg.warmup_steps, step, total, decay_after_warmup=True)


def packed_corpus(tokenizer, cfg: PretrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The web corpus as pretraining sees it: (train blocks, held-out blocks), each (N, seq_len)."""
    train_docs, held_docs = split_docs(load_web(), cfg)
    return pack(tokenizer, train_docs, cfg.seq_len), pack(tokenizer, held_docs, cfg.seq_len)


def lesson_steps(cfg: PretrainConfig, train_blocks: torch.Tensor) -> int:
    """Optimizer steps of `cfg.epochs` passes over the packed training blocks."""
    return max(1, int(cfg.epochs * (len(train_blocks) // cfg.batch_size)))


def train_lm(cfg: PretrainConfig, tokenizer, train_blocks: torch.Tensor, held_blocks: torch.Tensor, total: int,
             on_log=None, *, par: Parallel = LOCAL, desc: str = "pretraining") -> tuple[torch.nn.Module, dict]:
    """The pretraining loop: a fresh `cfg.model` (seed `cfg.seed`) trained for `total` optimizer steps of
    `cfg.batch_size` random blocks, the held-out loss every `cfg.eval_every` steps. Returns (model, metrics); the
    metrics' `heldout_s` is the time the held-out loss took. `run` calls it for lesson 00's base model,
    `compute_optimal.train_point` for each point of lesson 10's sweep."""
    # 1. model and optimizer
    model = build_model(cfg.model, tokenizer, cfg.seed)
    opt = adamw(model.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    engine = par.engine([model], opt, clip=[(list(model.parameters()), cfg.max_grad_norm)])
    gen = torch.Generator().manual_seed(cfg.seed)
    held_s = [0.0]                              # seconds spent on the held-out loss, apart from training's

    def heldout() -> float:
        t = time.perf_counter()
        loss = lm_loss(model, held_blocks, cfg.eval_batch_size)
        held_s[0] += time.perf_counter() - t
        return loss
    initial_heldout = heldout()
    history = {"step": [0], "train_loss": [initial_heldout], "heldout_loss": [initial_heldout], "lr": [0.0]}
    # 2. the loop: next-token loss on random blocks
    order = torch.randperm(len(train_blocks), generator=gen)
    running, seen = 0.0, 0
    for step in par.progress(range(total), desc):
        if (step * cfg.batch_size) % len(order) + cfg.batch_size > len(order):
            order = torch.randperm(len(train_blocks), generator=gen)
        start = (step * cfg.batch_size) % (len(order) - cfg.batch_size + 1)
        x = train_blocks[order[start:start + cfg.batch_size]]                      # (B, T)
        model.train()
        loss = engine(lambda m, ids: m(input_ids=ids, labels=ids).loss, x)
        engine.step(loss, lr_at(step, total, cfg))
        step_loss = par.reduce([loss.item()])[0]
        ensure_finite(step_loss, desc, step, f"lower lr (now {cfg.lr}) or raise warmup_steps")
        running, seen = running + step_loss, seen + 1
        if (step + 1) % cfg.eval_every == 0 or step + 1 == total:
            history["step"].append(step + 1), history["train_loss"].append(running / seen)
            history["heldout_loss"].append(heldout())
            history["lr"].append(lr_at(step, total, cfg))
            running, seen = 0.0, 0
            if on_log is not None:
                on_log(history)
    metrics = {"final_loss": history["train_loss"][-1], "heldout_loss": history["heldout_loss"][-1],
               "initial_heldout_loss": initial_heldout, "steps": total,
               "tokens_seen": total * cfg.batch_size * cfg.seq_len, "n_params": n_params(model),
               "corpus_tokens": int(train_blocks.numel()), "heldout_s": round(held_s[0], 1), "history": history}
    return model, metrics


@stages.together("tokenizer", "base")      # both folders are committed when training is done, in one swap
def run(cfg: PretrainConfig, on_log=None, *, par: Parallel = LOCAL) -> dict:
    """Train the tokenizer and the base LM; save `artifacts/tokenizer/` and `artifacts/base/` together (a run that
    stops early leaves both as they were). Returns the metrics.

    `on_log(history)` is called at every held-out measurement (notebooks redraw a live curve there)."""
    t0 = time.time()
    # 1. data and tokenizer
    tokenizer = train_tokenizer_stage(cfg)
    train_blocks, held_blocks = packed_corpus(tokenizer, cfg)
    # 2. the loop (`train_lm`)
    model, metrics = train_lm(cfg, tokenizer, train_blocks, held_blocks, lesson_steps(cfg, train_blocks), on_log,
                              par=par)
    # 3. save the stage atomically
    wall = time.time() - t0
    metrics = {**metrics, "tokens_per_s": round(metrics["tokens_seen"] / wall), "wall_s": round(wall, 1)}
    info = stage_info("base", cfg, ["tokenizer"], prompt_format="plain", n_params=metrics["n_params"])
    save_stage(par, "base", model, tokenizer, info, metrics)
    return metrics


def summary(m: dict) -> str:
    """One line of a finished pretraining run's metrics (the command line prints it)."""
    return (f"{m['steps']} steps, {m['n_params'] / 1e6:.2f} M parameters, {m['tokens_seen'] / 1e6:.2f} M tokens, "
            f"heldout loss {m['heldout_loss']:.3f} (initial {m['initial_heldout_loss']:.3f}), {m['wall_s']} s")


def run_tokenizer(cfg: PretrainConfig) -> dict:
    """Only the tokenizer stage (the command line's `rlhf tokenizer`). Returns {"vocab_size", "wall_s"}."""
    t0 = time.time()
    tok = train_tokenizer_stage(cfg)
    return {"vocab_size": len(tok), "wall_s": round(time.time() - t0, 1)}


def tokenizer_summary(m: dict) -> str:
    return f"{m['vocab_size']} tokens, {m['wall_s']} s"
