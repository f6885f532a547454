"""LLaMA's lesson at our scale (lesson 10): at a fixed compute budget, which model size gives the lowest loss?

Training a transformer of N parameters on D tokens costs about

    C ≈ 6 · N · D  FLOPs        (2N per token forward, 4N backward; Kaplan et al. 2020, Hoffmann et al. 2022)

so at a budget C every model size N gets D = C / (6N) tokens. Hoffmann et al. (Chinchilla) trained many (N, D) at each
C and found the held-out loss lowest at an intermediate N (N_opt ∝ C^0.5, about 20 tokens per parameter). Touvron et
al. (LLaMA) then trained *smaller* models on more tokens than that: a model is trained once and served many times, so
a smaller one that reaches the same loss is cheaper to use.

Each point here is a fresh LLaMA of one shape trained by pretraining's own loop (`pretrain.train_lm`) for D tokens of
the same web corpus, with lesson 00's tokenizer (read, never retrained) and measured on the same held-out blocks with
the same `lm_loss`. The budgets are fractions of lesson 00's own C₀ = 6 · N₀ · D₀ (its base model). Optionally a
short SFT follows and the gold labeler scores the held-out prompts; that runs in a temporary artifacts folder, so a
point never writes to `artifacts/`.

    cfg = ScalingConfig()
    point = train_point(cfg, (32, 2), 1 / 32)         # one point: N, D, held-out loss, tokens/s, wall time
    points = sweep(cfg)                               # every budget × size (benchmarks/llama_scaling.py)
"""
from __future__ import annotations

import math
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

import torch
from transformers import AutoTokenizer

from . import stages
from .config import fixed, knob, validate
from .models import ModelConfig
from .pretrain import PretrainConfig, lesson_steps, packed_corpus, train_lm
from .training import LOCAL, save_stage, stage_info


@dataclass(frozen=True, kw_only=True)
class ScalingConfig:
    """A compute-optimal sweep: model sizes × compute budgets, each point trained from scratch (lesson 10)."""
    budgets: tuple[float, ...] = fixed((1 / 64, 1 / 32, 1 / 16, 1 / 8, 1 / 4),
                                       help="compute budgets C as fractions of lesson 00's C₀ = 6 · N₀ · D₀ "
                                            "(its base model's parameters × tokens)")
    sizes: tuple[tuple[int, int], ...] = fixed(((32, 2), (64, 2), (96, 3), (128, 4)),
                                               help="(hidden_size, num_layers) of each model compared; (128, 4) is "
                                                    "lesson 00's shape")
    head_dim: int = fixed(32, help="width of one attention head: num_heads = hidden_size / head_dim")
    batch_size: int = knob(8, lo=1, hi=256, help="blocks per optimizer step (lesson 00: 32, which at these budgets "
                                                 "would leave the largest model a few dozen steps)")
    evals: int = knob(2, lo=1, hi=100, help="held-out loss measurements per point besides the initial one (each "
                                           "costs a forward pass over 28 k tokens)")
    warmup_frac: float = knob(0.1, lo=0.0, hi=0.5, step=0.01, help="learning-rate warm-up as a fraction of each "
                                                                    "point's steps (lesson 00: 30 of 266)")
    sft_budgets: tuple[float, ...] = fixed((1 / 4,), help="budgets whose points also get the short SFT and the "
                                                          "gold evaluation (each one of `budgets`)")
    sft_epochs: float = knob(1.0, lo=0.1, hi=10.0, step=0.1, help="passes over the demonstrations of the short SFT "
                                                                   "(lesson 02 uses 4)")
    seed: int = fixed(0, help="seed of every point's initialisation, data order and SFT")
    pretrain: PretrainConfig = fixed(PretrainConfig(), help="lr, seq_len and held-out split of every point (lesson "
                                                            "00's); model, steps, batch and warm-up are the point's")

    def __post_init__(self):
        validate(self)
        if not self.budgets or any(not (isinstance(b, (int, float)) and 0 < b <= 16) for b in self.budgets):
            raise ValueError(f"ScalingConfig.budgets = {self.budgets!r}: give one or more fractions of lesson 00's "
                             "compute C₀, each in (0, 16], e.g. (0.125, 0.25)")
        if not self.sizes:
            raise ValueError("ScalingConfig.sizes is empty; give (hidden_size, num_layers) pairs, e.g. ((64, 2),)")
        for size in self.sizes:
            model_shape(size, self.head_dim, self.pretrain.model.max_len)         # raises with the size named
        if missing := [b for b in self.sft_budgets if b not in self.budgets]:
            raise ValueError(f"ScalingConfig.sft_budgets {missing} are not among budgets {self.budgets}; "
                             "pick from budgets or leave sft_budgets=()")
        if self.pretrain.seq_len > self.pretrain.model.max_len:
            raise ValueError(f"ScalingConfig.pretrain.seq_len = {self.pretrain.seq_len} exceeds the models' "
                             f"max_len = {self.pretrain.model.max_len}; lower seq_len")


def model_shape(size: tuple[int, int], head_dim: int = 32, max_len: int = 256) -> ModelConfig:
    """The LLaMA of `size` = (hidden_size d, num_layers L): d / head_dim heads and LLaMA's SwiGLU width, 8/3 · d
    rounded up to a multiple of 32 (352 for d = 128, lesson 00's shape)."""
    if not (isinstance(size, tuple) and len(size) == 2 and all(isinstance(v, int) for v in size)):
        raise ValueError(f"ScalingConfig.sizes: {size!r} is not a (hidden_size, num_layers) pair of ints, "
                         "e.g. (64, 2)")
    width, depth = size
    if width % head_dim:
        raise ValueError(f"ScalingConfig.sizes: hidden_size {width} of {size} is not a multiple of head_dim = "
                         f"{head_dim}; use e.g. {max(head_dim, width - width % head_dim)}")
    try:
        return ModelConfig(hidden_size=width, num_layers=depth, num_heads=width // head_dim,
                           intermediate_size=32 * math.ceil(8 * width / 3 / 32), max_len=max_len)
    except ValueError as e:
        raise ValueError(f"ScalingConfig.sizes: {size} does not give a valid model: {e}") from e


def count_params(shape: ModelConfig, vocab_size: int) -> int:
    """N of a LLaMA with tied embeddings, by hand: V·d (embedding = LM head) + L · (4d² attention + 3·d·f SwiGLU +
    2d norms) + d (final norm). Equal to `models.n_params` of the built model (the tests check it)."""
    d, f = shape.hidden_size, shape.intermediate_size
    return vocab_size * d + shape.num_layers * (4 * d * d + 3 * d * f + 2 * d) + d


def token_budget(flops: float, n: int, tokens_per_step: int) -> tuple[int, int]:
    """(steps, D) for compute `flops` on a model of `n` parameters: D = C / (6N), rounded to whole optimizer steps of
    `tokens_per_step` tokens (at least one)."""
    if flops <= 0 or n <= 0 or tokens_per_step <= 0:
        raise ValueError(f"token_budget: flops = {flops}, n = {n}, tokens_per_step = {tokens_per_step}; "
                         "all must be positive")
    steps = max(1, round(flops / (6 * n * tokens_per_step)))
    return steps, steps * tokens_per_step


def chinchilla_n_opt(flops: float, tokens_per_param: float = 20.0) -> float:
    """Chinchilla's rule of thumb, D_opt ≈ 20 · N_opt: with C = 6 · N · D that is N_opt = √(C / (6 · 20))."""
    return math.sqrt(flops / (6 * tokens_per_param))


class Corpus(NamedTuple):
    """Lesson 00's tokenizer and the web corpus packed as pretraining packs it: train and held-out blocks (N, T)."""
    tokenizer: object
    train: torch.Tensor
    held: torch.Tensor


def load_corpus(pcfg: PretrainConfig) -> Corpus:
    """The tokenizer stage (checked, never retrained: a missing one is an error that says how to make it) and the
    packed web corpus with `pcfg`'s seq_len and held-out split."""
    tokenizer = AutoTokenizer.from_pretrained(stages.existing("tokenizer"), trust_remote_code=False)
    return Corpus(tokenizer, *packed_corpus(tokenizer, pcfg))


def lesson_flops(cfg: ScalingConfig, corpus: Corpus) -> dict:
    """Lesson 00's compute: its shape's N₀, its D₀ (`epochs` passes over the training blocks) and C₀ = 6 · N₀ · D₀."""
    p = cfg.pretrain
    n0 = count_params(p.model, len(corpus.tokenizer))
    d0 = lesson_steps(p, corpus.train) * p.batch_size * p.seq_len
    return {"n_params": n0, "tokens": d0, "flops": 6 * n0 * d0}


def point_config(cfg: ScalingConfig, size: tuple[int, int], steps: int) -> PretrainConfig:
    """Lesson 00's pretraining settings with this point's model, batch, warm-up, held-out cadence and seed."""
    shape = model_shape(size, cfg.head_dim, cfg.pretrain.model.max_len)
    warmup = max(1, round(cfg.warmup_frac * steps)) if cfg.warmup_frac else 0
    return replace(cfg.pretrain, model=shape, batch_size=cfg.batch_size, warmup_steps=warmup,
                   eval_every=max(1, steps // cfg.evals), seed=cfg.seed)


def train_point(cfg: ScalingConfig, size: tuple[int, int], budget: float, *, corpus: Corpus | None = None,
                sft: bool = False, on_log=None) -> dict:
    """One point of the sweep: a fresh model of `size` = (hidden_size, num_layers) trained on D = C / (6N) tokens,
    C = `budget` × C₀. Returns N, D, tokens per parameter, the held-out loss, training tokens/s (the held-out
    measurements' `heldout_s` left out), wall time and the loss curve; with `sft`, also the short SFT's held-out
    loss and the gold mean (`gold_after_sft`). Writes nothing to artifacts/.

    `corpus` (from `load_corpus`) saves re-packing the web corpus across points; `on_log(history)` as in pretraining."""
    corpus = corpus or load_corpus(cfg.pretrain)
    c0 = lesson_flops(cfg, corpus)
    vocab, tokens_per_step = len(corpus.tokenizer), cfg.batch_size * cfg.pretrain.seq_len
    n = count_params(model_shape(size, cfg.head_dim, cfg.pretrain.model.max_len), vocab)
    steps, d = token_budget(budget * c0["flops"], n, tokens_per_step)
    pcfg = point_config(cfg, size, steps)
    t0 = time.time()
    model, m = train_lm(pcfg, corpus.tokenizer, corpus.train, corpus.held, steps, on_log,
                        desc=f"N = {n / 1e6:.2f} M, D = {d / 1e6:.2f} M tokens")
    wall = time.time() - t0
    assert m["n_params"] == n, (m["n_params"], n)                   # the 6ND arithmetic counts the model it trains
    point = {"budget": budget, "flops": 6 * n * d, "hidden_size": size[0], "num_layers": size[1],
             "num_heads": pcfg.model.num_heads, "intermediate_size": pcfg.model.intermediate_size, "n_params": n,
             "tokens": d, "tokens_per_param": round(d / n, 2), "epochs": round(d / corpus.train.numel(), 3),
             "steps": steps, "warmup_steps": pcfg.warmup_steps, "heldout_loss": m["heldout_loss"],
             "initial_heldout_loss": m["initial_heldout_loss"],
             "tokens_per_s": round(d / max(1e-9, wall - m["heldout_s"])), "wall_s": round(wall, 1),
             "heldout_s": m["heldout_s"], "history": m["history"]}
    if sft:
        point.update(gold_after_sft(model, corpus.tokenizer, pcfg, cfg, tag=f"{size[0]}x{size[1]}"))
    return point


def gold_after_sft(model, tokenizer, pcfg: PretrainConfig, cfg: ScalingConfig, tag: str) -> dict:
    """Lesson 02's SFT (`sft.run`, `cfg.sft_epochs` epochs) from `model`, then the gold labeler on the 320 held-out
    prompts (`evaluation.evaluate_stage`). The point is saved as stage `scaling_<tag>` in a temporary artifacts
    folder, removed afterwards: the course's stages are not touched. Returns the SFT's held-out loss and the gold."""
    from . import evaluation
    from .sft import SFTConfig
    from .sft import run as sft_run
    t0, name = time.time(), f"scaling_{tag}"
    with tempfile.TemporaryDirectory(prefix="rlhf-scaling-") as tmp, stages.located(stages.DATA_DIR, Path(tmp)):
        save_stage(LOCAL, name, model, tokenizer, stage_info(name, pcfg, ["tokenizer"], prompt_format="plain"), {})
        scfg = SFTConfig(init=name, out=f"{name}_sft", epochs=cfg.sft_epochs, seed=cfg.seed,
                         max_len=pcfg.model.max_len)
        m = sft_run(scfg)
        ev = evaluation.evaluate_stage(scfg.out, seed=cfg.seed)
    return {"sft_epochs": cfg.sft_epochs, "sft_heldout_loss": m["heldout_loss"], "gold_mean": ev["gold_mean"],
            "failure_rate": ev["failure_rate"], "sft_eval_wall_s": round(time.time() - t0, 1)}


def sweep(cfg: ScalingConfig, on_point=None) -> dict:
    """Every budget × size of `cfg` (SFT and gold for the points of `cfg.sft_budgets`), smallest budget first.
    Returns {"lesson00": N₀, D₀, C₀, "points": [...]}; `on_point(point)` after each one (the benchmark prints)."""
    corpus = load_corpus(cfg.pretrain)
    points = []
    for budget in sorted(cfg.budgets):
        for size in cfg.sizes:
            points.append(train_point(cfg, size, budget, corpus=corpus, sft=budget in cfg.sft_budgets))
            if on_point is not None:
                on_point(points[-1])
    return {"lesson00": lesson_flops(cfg, corpus), "corpus_tokens": int(corpus.train.numel()),
            "heldout_tokens": int(corpus.held.numel()), "points": points}


def summary(point: dict) -> str:
    """One line of a point: its shape, N, D and held-out loss (and gold after SFT, when measured)."""
    gold = f", gold after SFT {point['gold_mean']:.3f}" if "gold_mean" in point else ""
    return (f"C = {point['budget']:g} C₀: d={point['hidden_size']} L={point['num_layers']}, "
            f"N = {point['n_params'] / 1e6:.2f} M, D = {point['tokens'] / 1e6:.2f} M tokens "
            f"({point['tokens_per_param']:.1f}/param), held-out loss {point['heldout_loss']:.3f}{gold}, "
            f"{point['wall_s']} s")
