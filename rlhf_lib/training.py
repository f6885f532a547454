"""What every trainer's loop needs besides its loss (lessons 00–06): one of each.

    opt = adamw(model.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    engine = par.engine([model], opt, clip=[(params, cfg.max_grad_norm)])
    for step in range(total):
        loss = engine(batch_loss, batch)                          # forward through the engine
        engine.step(loss, warmup_cosine_lr(cfg.lr, cfg.warmup_steps, step, total))
        ensure_finite(par.reduce([loss.item()])[0], "SFT", step, f"lower lr (now {cfg.lr})")
    save_stage(par, cfg.out, model, tokenizer, stage_info(cfg, ...), metrics)

**`Parallel`** is where a loop meets the hardware, the only places where one process and a DeepSpeed group differ:
how a loss becomes an optimizer step (`engine`), which rows a rank takes (`shard`), how the logged numbers agree
across ranks (`reduce`), and who runs one-off work and writes the stage (`once`, `save`). Its defaults are one
process; `distributed.py` builds the same dataclass with DeepSpeed's pieces, so each trainer's loop exists once.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import stages
from .config import to_dict


# ------------------------------------------------------------------------------------------------ the optimizer
def adamw(params, *, lr: float, betas: tuple[float, float], weight_decay: float, eps: float = 1e-8):
    """torch AdamW over `params` with the trainer's settings (weight_decay = 0 is plain Adam)."""
    return torch.optim.AdamW(params, lr=lr, betas=tuple(betas), weight_decay=weight_decay, eps=eps)


def warmup_cosine_lr(lr: float, warmup_steps: int, step: int, total: int, *, decay_after_warmup: bool = False) -> float:
    """Learning rate at optimizer step `step` of `total`: linear warm-up over `warmup_steps`, cosine decay to 10 %.

        lr_t = lr · min(1, (t + 1) / W) · (0.1 + 0.9 · ½ (1 + cos(π t / total)))            SFT, reward model
        lr_t = lr · (t + 1) / W  for t < W,  else  lr · (0.1 + 0.9 · ½ (1 + cos(π p))),      pretraining
               p = (t − W) / (total − W)                                                   (decay_after_warmup)

    The two differ only in whether the cosine starts at step 0 (under the warm-up) or after it."""
    if decay_after_warmup:
        if step < warmup_steps:
            return lr * (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total - warmup_steps)
        return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
    return lr * min(1.0, (step + 1) / max(1, warmup_steps)) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / total)))


# ------------------------------------------------------------------------------------------------ finite checks
class NonFinite(Exception):
    """A NaN or inf in `names` during `phase`; the trainer turns it into a message that says what to change."""

    def __init__(self, phase: str, names: list[str]):
        super().__init__(f"non-finite {', '.join(names)} in {phase}")
        self.phase, self.names = phase, names


class TrainingError(RuntimeError):
    """A run stopped on a non-finite loss; the message names the trainer, the step and the likely fix."""


def check_finite(phase: str, **tensors: torch.Tensor) -> None:
    """Raise NonFinite(phase, names) if any of the named tensors holds a NaN or an inf."""
    bad = [k for k, v in tensors.items() if not torch.isfinite(v).all()]
    if bad:
        raise NonFinite(phase, bad)


def ensure_finite(value: float, what: str, step: int, fix: str) -> None:
    """Stop a run whose loss `value` (a float, already agreed across ranks) is NaN or inf, before anything is saved."""
    if not math.isfinite(value):
        raise TrainingError(f"{what}: loss is {value} at step {step}; {fix}. Nothing was saved.")


# ------------------------------------------------------------------------------------------------ one process
class LocalEngine:
    """One process's optimizer step: zero_grad → backward → clip each group's gradient norm → step.

    `engine(fn, *args)` computes `fn(*models, *args)` (under DeepSpeed the engine's forward, where ZeRO-3 sees it)."""

    def __init__(self, models: Sequence[torch.nn.Module], optimizer: torch.optim.Optimizer,
                 clip: Sequence[tuple[list, float]] = ()):
        self.models, self.optimizer, self.clip = list(models), optimizer, list(clip)

    def __call__(self, fn: Callable, *args):
        return fn(*self.models, *args)

    def step(self, loss: torch.Tensor, lr: float | None = None) -> None:
        if lr is not None:
            for group in self.optimizer.param_groups:
                group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for params, max_norm in self.clip:
            if params:
                torch.nn.utils.clip_grad_norm_(params, max_norm)
        self.optimizer.step()


def reduce_here(values: Sequence[float], op: str = "mean") -> list[float]:
    """One process: the numbers are already everyone's."""
    return [float(v) for v in values]


def run_here(fn: Callable):
    """One process: run it."""
    return fn()


def save_here(name: str, models: Sequence[torch.nn.Module], write: Callable[[Path], None]) -> None:
    """One process: `write(folder)` inside `stages.writing(name)`, which renames the folder into place when done."""
    with stages.writing(name) as tmp:
        write(tmp)


@dataclass(frozen=True)
class Parallel:
    """How a trainer's loop runs: on one process (the defaults) or on every rank of a DeepSpeed group.

    `accum` micro-batches per rank make one optimizer step, so a step of B examples gives each rank
    B / (world · accum) per micro-batch. `even_split`: every rank must take as many optimizer steps and forward
    passes as the others, so loops drop an incomplete last batch and score a micro-batch in one pass. `lockstep`
    (ZeRO-3 on several ranks, which gathers each layer's weights from all ranks): sampling must keep stepping until
    every rank is done. `info` (a dict, under DeepSpeed) is recorded in the stage's stage.json and metrics.json."""
    rank: int = 0
    world: int = 1
    accum: int = 1
    even_split: bool = False
    lockstep: bool = False
    engine: Callable[..., LocalEngine] = LocalEngine       # (models, optimizer, clip) -> engine
    reduce: Callable[..., list[float]] = reduce_here       # (values, op 'mean' | 'sum' | 'max') -> the same on all
    once: Callable = run_here                              # fn -> rank 0's fn() on every rank
    save: Callable[..., None] = save_here                  # (name, models to gather, write) on rank 0
    gather: Callable[[object], list] = field(default=lambda obj: [obj])   # obj -> [every rank's obj]
    frozen: Callable = field(default=lambda model: model)  # a model that does not train (PPO's reference and RM)
    device: Callable = nullcontext                         # context in which new tensors land on the engine's device
    to_device: Callable = field(default=lambda x: x)       # a batch (dict of tensors) or a tensor, moved there
    checkpoints: bool = True                               # a copy of this process's weights is the whole model
    info: dict | None = None

    def shard(self, rows: list) -> list:
        """This rank's rows of a batch every rank sees whole: rows rank, rank + W, rank + 2W, …"""
        return rows[self.rank::self.world]

    def progress(self, iterable, desc: str):
        """A progress bar on rank 0 (none on the others), naming the processes when there are several."""
        hide = {"disable": True} if self.rank else {}                     # else tqdm's default (and TQDM_DISABLE)
        return tqdm(iterable, desc=desc + (f" on {self.world} processes" if self.world > 1 else ""), **hide)

    def micro(self, batch: int) -> int:
        """Examples per micro-batch on this rank for optimizer steps of `batch` examples."""
        return batch // (self.world * self.accum)


LOCAL = Parallel()


# ------------------------------------------------------------------------------------------------ the stage
def stage_info(name: str, cfg, upstream: list[str], *, prompt_format: str = "chat", **extra) -> dict:
    """stage.json's content: the stage, its config, its upstream stages and prompt format, and any `extra` keys."""
    return {"stage": name, "config": to_dict(cfg), "prompt_format": prompt_format, "upstream": list(upstream),
            **extra}


def save_stage(par: Parallel, name: str, model, tokenizer, info: dict, metrics: dict,
               write_model: Callable[[Path], None] | None = None, gather: Sequence[torch.nn.Module] = ()) -> None:
    """Write stage `name` once, atomically: the model (safetensors; `write_model(folder)` instead if given), the
    tokenizer, stage.json and metrics.json. Under DeepSpeed `info` and `metrics` also get `par.info`, and the
    weights of `gather` (default: the model) are gathered from every rank first."""
    if par.info is not None:                      # the caller's metrics gain it too: they are what `run` returns
        info = {**info, "distributed": par.info}
        metrics["distributed"] = par.info

    def write(tmp: Path) -> None:
        if write_model is not None:
            write_model(tmp)
        else:
            model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        stages.write_json(tmp / "stage.json", info)
        stages.write_json(tmp / "metrics.json", metrics)
    par.save(name, list(gather) or [model], write)
