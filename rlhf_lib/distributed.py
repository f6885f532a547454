"""The same trainers on several processes with DeepSpeed (lesson 06).

Data parallelism: every process (a *rank*) holds the models, takes its share of every batch, and the gradients are
averaged across ranks before each optimizer step, so W ranks with micro-batches of M examples and G accumulation
steps train like one process with batches of

    train_batch_size = train_micro_batch_size_per_gpu × gradient_accumulation_steps × world_size   (M × G × W)

DeepSpeed's ZeRO (Rajbhandari et al., 2020) then removes the redundant copies: stage 1 partitions the Adam states
across the ranks, stage 2 the gradients too, stage 3 the weights as well (each layer's weights are gathered from all
ranks just before the layer runs, and freed after). Offload moves the partitioned optimizer states to CPU memory.

    python -m rlhf_lib.distributed sft --deepspeed zero2                                # one process
    torchrun --nproc_per_node 2 -m rlhf_lib.distributed sft rm ppo --deepspeed zero3    # two; stages in turn
    deepspeed --num_gpus 8 --module rlhf_lib.distributed ppo --deepspeed zero2_bf16 --set ppo.batch_size=256
    distributed.launch(["sft"], nproc=2, deepspeed="zero3")                              # from Python

`run_sft`, `run_rm` and `run_ppo` are the trainers' loops with the optimizer step handed to a DeepSpeed engine. They
call the trainers' own pieces (`sft.batch_loss`, `reward.batch_loss`, `ppo.make_memory`, `ppo.ppo_step` …) and write
the same stage folders. The DeepSpeed config (`configs/deepspeed/*.json`) says *how* to train; the trainer's config
says *what*: its batch size and gradient clip fill the config's "auto" entries, and a number that contradicts them
is an error naming both (`resolve_config`). The trainers build their own torch AdamW (no DeepSpeed op is compiled)
and set its learning rate each step.

What differs from one process, and why:

* SFT: none in the maths. Each micro-batch's loss is weighted by its share of the step's response tokens, so the
  gradient is the token mean over the whole batch, as in `sft.run` (DeepSpeed itself averages micro-batches).
* Reward model: the last, incomplete batch of an epoch is dropped (it would not split evenly over the ranks), and
  every micro-batch is scored in one forward pass. The comparisons are sampled once, on rank 0, and sent to all.
* PPO: each rank samples its share of the prompts with its own seed; advantages are whitened per rank; the policy
  and the critic form one engine (one optimizer, as in `ppo.train`), so the gradient clip applies to their joint
  norm. The reference and reward models are frozen copies; under ZeRO-3 they are partitioned too. The fixed
  gold-evaluation batch and the web loss (alignment tax) are not measured during the run, and a non-finite number
  stops it without a last-good checkpoint; with `cfg.evaluate`, rank 0 evaluates the saved stage as `ppo.run` does.
* Under ZeRO-3 every rank must run the same forward passes, because each pass gathers weights from all ranks.
  Sampling breaks that: a rank whose responses have all ended would stop while the others still need its slices,
  and the run hangs (wrapping `generate` in `GatheredParameters` does not help: ZeRO-3's hooks free the weights
  after each layer). So under ZeRO-3 the policy generates with `synced_gpus=True`, which Hugging Face provides for
  exactly this: a finished rank keeps stepping until every rank is done. It costs one all-gather per layer per
  token; DeepSpeed-Chat's Hybrid Engine instead gathers the actor once per rollout and samples from a full copy,
  faster but with a whole actor in each GPU's memory. Held-out measurements run on every rank over the same data.

Metrics are averaged across ranks (all-reduce), so every rank returns the same numbers. The stage is written once,
by rank 0, as an ordinary `save_pretrained` folder that one plain process loads; under ZeRO-3 the ranks first gather
the (16-bit, under bf16) weights. Without a GPU, DeepSpeed's CPU accelerator runs over gloo; on GPUs, NCCL, and the
tensors the trainers' functions create go to the process's GPU (`on_device`).
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import json
import logging
import math
import os
import random
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from tqdm.auto import tqdm

from . import stages
from .config import from_dict, parse_overrides, to_dict

if TYPE_CHECKING:
    from .ppo import PPOConfig
    from .reward import ComparisonData, RMConfig
    from .sft import SFTConfig

CONFIG_DIR = stages.ROOT / "configs" / "deepspeed"
BATCH_KEYS = ("train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps")
STAGES = ("sft", "rm", "ppo")


# ------------------------------------------------------------------------------------------------ the config
def load_config(spec: str | Path | dict) -> dict:
    """A DeepSpeed config: a dict (copied), a path to a JSON file, or the name of one in `configs/deepspeed/`."""
    if isinstance(spec, dict):
        return copy.deepcopy(spec)
    path = Path(spec)
    if path.suffix != ".json" and len(path.parts) == 1:
        path = CONFIG_DIR / f"{spec}.json"
    if not path.is_file():
        names = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.json")))
        raise FileNotFoundError(f"DeepSpeed config {str(spec)!r} not found ({path}); give a JSON file or one of: "
                                f"{names}")
    return json.loads(path.read_text(encoding="utf-8"))


def zero_stage(ds: dict) -> int:
    return int(ds.get("zero_optimization", {}).get("stage", 0))


def _positive_int_or_auto(ds: dict, key: str) -> int | None:
    value = ds.get(key, "auto")
    if value == "auto":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f'DeepSpeed {key} = {value!r}: give a positive integer or "auto" (filled in from the trainer)')
    return value


def resolve_config(ds: dict, *, batch: tuple[str, int], clip: tuple[str, float], world_size: int) -> dict:
    """A copy of the DeepSpeed config `ds` with its batch sizes and gradient clip checked against the trainer's and
    its "auto" (or missing) entries filled in.

    `batch` = (name, value) of the trainer's examples per optimizer step, e.g. ("SFTConfig.batch_size", 32), and
    `clip` = (name, value) of its gradient-norm clip. DeepSpeed needs
    train_batch_size = train_micro_batch_size_per_gpu × gradient_accumulation_steps × world_size, and that must be
    the trainer's batch; gradient_clipping must be its clip. A contradiction raises ValueError naming both values.
    The trainer builds its own optimizer and learning-rate schedule, so "optimizer" and "scheduler" are errors too."""
    (batch_name, n), (clip_name, max_norm) = batch, clip
    for key in ("optimizer", "scheduler"):
        if key in ds:
            raise ValueError(f"the DeepSpeed config has a {key!r} block, but the trainer builds its own AdamW and "
                             f"learning-rate schedule from its config (lr, warmup); remove {key!r}")
    total, micro, accum = (_positive_int_or_auto(ds, k) for k in BATCH_KEYS)
    if total is not None and total != n:
        raise ValueError(f"DeepSpeed train_batch_size = {total} contradicts {batch_name} = {n}: an optimizer step "
                         f'must see the trainer\'s batch; set train_batch_size to {n} or "auto"')
    if micro is None or accum is None:
        known = micro or accum or 1
        other, rest = divmod(n, known * world_size)
        if rest or other < 1:
            given = (f"train_micro_batch_size_per_gpu = {micro}" if micro else
                     f"gradient_accumulation_steps = {accum}" if accum else "one micro-batch per rank")
            raise ValueError(f"{batch_name} = {n} cannot be split evenly into {given} on world_size = {world_size} "
                             f"ranks; make {batch_name} a multiple of {known * world_size} or change the DeepSpeed "
                             "config's micro-batch size and accumulation steps")
        micro, accum = (micro, other) if micro else (other, accum or 1)
    if micro * accum * world_size != n:
        raise ValueError(f"DeepSpeed train_micro_batch_size_per_gpu × gradient_accumulation_steps × world_size = "
                         f"{micro} × {accum} × {world_size} = {micro * accum * world_size} contradicts {batch_name} = "
                         f"{n}; change the micro-batch size or the accumulation steps so that the product is {n}")
    given_clip = ds.get("gradient_clipping", "auto")
    if given_clip != "auto" and float(given_clip) != float(max_norm):
        raise ValueError(f"DeepSpeed gradient_clipping = {given_clip} contradicts {clip_name} = {max_norm}; set "
                         f'gradient_clipping to {max_norm} or "auto"')
    out = copy.deepcopy(ds)
    out.update(train_batch_size=n, train_micro_batch_size_per_gpu=micro, gradient_accumulation_steps=accum,
               gradient_clipping=float(max_norm))
    out.setdefault("steps_per_print", 10 ** 9)              # the trainers log their own progress
    return out


def stage_config(name: str, cfg: SFTConfig | RMConfig | PPOConfig, ds_config: str | Path | dict, world: int) -> dict:
    """The resolved DeepSpeed config for training stage `name` ('sft', 'rm' or 'ppo') with its trainer config `cfg`
    on `world` processes: `resolve_config` with the trainer's batch and gradient clip, plus each trainer's own
    conditions. Raises ValueError naming the values, before any process group exists."""
    ds = load_config(ds_config)
    if name == "sft":
        return resolve_config(ds, batch=("SFTConfig.batch_size", cfg.batch_size),
                              clip=("the SFT trainer's gradient clip", 1.0), world_size=world)
    if name == "rm":
        if cfg.freeze_backbone:
            raise ValueError("RMConfig.freeze_backbone = True trains only the head, on features computed once; it "
                             "takes seconds in one process: use reward.run, not the distributed trainer")
        return resolve_config(ds, batch=("RMConfig.prompts_per_batch", cfg.prompts_per_batch),
                              clip=("the reward trainer's gradient clip", 1.0), world_size=world)
    if name != "ppo":
        raise ValueError(f"unknown stage {name!r}; the distributed trainers are {', '.join(STAGES)}")
    ds = resolve_config(ds, batch=("PPOConfig.minibatch_size", cfg.minibatch_size),
                        clip=("PPOConfig.max_grad_norm", cfg.max_grad_norm), world_size=world)
    if cfg.batch_size % cfg.minibatch_size:
        raise ValueError(f"PPOConfig.batch_size = {cfg.batch_size} is not a multiple of minibatch_size = "
                         f"{cfg.minibatch_size}: on several processes every rank must take the same number of "
                         "optimizer steps per rollout; make batch_size a multiple of minibatch_size")
    if zero_stage(ds) == 3 and cfg.critic == "policy_head":
        raise ValueError("PPOConfig.critic = 'policy_head' shares the policy's backbone, which ZeRO-3 cannot "
                         "partition twice; use critic = 'rm' or a ZeRO stage below 3")
    return ds


# ------------------------------------------------------------------------------------------------ processes
def world_size() -> int:
    """Processes in the run, as the launcher announced it (1 without a launcher)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def free_port() -> int:
    """A TCP port free on this machine right now (for the process group's rendezvous)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init() -> tuple[int, int]:
    """Join the process group that the launcher described in the environment (`deepspeed` and `torchrun` both set
    RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT), or make a group of one without a launcher.
    Returns (rank, world_size).

    Without a GPU this is DeepSpeed's CPU accelerator over gloo (Intel's oneCCL is used only if installed), with its
    shared-memory all-reduce switched off: that C++ op would be compiled on first use, and gloo does the job."""
    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    if "RANK" not in os.environ:
        os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1",
                          MASTER_PORT=os.environ.get("MASTER_PORT", str(free_port())))
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.distributed")
    import deepspeed
    from deepspeed.accelerator import get_accelerator
    deepspeed.utils.logger.setLevel(logging.WARNING)
    if get_accelerator().device_name() == "cpu":
        deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
    else:
        get_accelerator().set_device(int(os.environ["LOCAL_RANK"]))        # this process's GPU
    if not torch.distributed.is_initialized():
        deepspeed.init_distributed(dist_backend=get_accelerator().communication_backend_name())
    return torch.distributed.get_rank(), torch.distributed.get_world_size()


def device() -> torch.device:
    """This process's device: its GPU, or the CPU."""
    from deepspeed.accelerator import get_accelerator
    return torch.device(get_accelerator().current_device_name())


@contextlib.contextmanager
def on_device() -> Iterator[None]:
    """Tensors the trainers' functions create (batches, masks, positions) land on the engine's device: the trainers
    were written for the CPU, and on a GPU `torch.set_default_device` moves them without touching their code."""
    dev = device()
    if dev.type == "cpu":
        yield
        return
    torch.set_default_device(dev)
    try:
        yield
    finally:
        torch.set_default_device(None)


def all_reduce(values: Sequence[float], op: str = "mean") -> list[float]:
    """Element-wise mean, sum or max of `values` over all ranks: the same numbers on every rank."""
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device())
    reduce_op = torch.distributed.ReduceOp
    torch.distributed.all_reduce(t, op=reduce_op.MAX if op == "max" else reduce_op.SUM)
    if op == "mean":
        t /= torch.distributed.get_world_size()
    return t.tolist()


def broadcast(obj: Any, rank: int) -> Any:
    """Rank 0's `obj` on every rank (pickled)."""
    box = [obj if rank == 0 else None]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def require(name: str, rank: int) -> Path:
    """`stages.require` on rank 0 only (it may train the stage), the others waiting for it."""
    if rank == 0:
        stages.require(name)
    torch.distributed.barrier()
    return stages.stage_dir(name)


class Models(torch.nn.Module):
    """The trained models as one module, so one DeepSpeed engine (one optimizer, one ZeRO partition) holds them all.
    `engine(fn, *args)` runs `fn(*models, *args)` through the engine's forward, where ZeRO-3's hooks see it."""

    def __init__(self, *models: torch.nn.Module):
        super().__init__()
        self.models = torch.nn.ModuleList(models)

    def forward(self, fn: Callable, *args):
        return fn(*self.models, *args)


def make_engine(models: Sequence[torch.nn.Module], optimizer: torch.optim.Optimizer, ds: dict):
    """A DeepSpeed engine training `models` with the trainer's own `optimizer` (over their parameters)."""
    import deepspeed
    engine, *_ = deepspeed.initialize(model=Models(*models), optimizer=optimizer, config=copy.deepcopy(ds))
    return engine


def frozen(model: torch.nn.Module, ds: dict) -> torch.nn.Module:
    """A frozen model (reference, reward model): under ZeRO-3 partitioned like the trained ones (an engine without
    an optimizer), otherwise a plain copy on every rank. Returns the module to call."""
    import deepspeed
    model.eval().requires_grad_(False)
    if zero_stage(ds) != 3:
        return model.to(device())
    cfg = copy.deepcopy(ds)
    cfg["zero_optimization"].pop("offload_optimizer", None)                 # it has no optimizer
    engine, *_ = deepspeed.initialize(model=model, config=cfg)
    return engine.module


def set_lr(engine, lr: float) -> None:
    """The trainer's learning rate for the next optimizer step (DeepSpeed wraps the trainer's optimizer)."""
    for group in engine.optimizer.param_groups:
        group["lr"] = lr


def save_stage(name: str, models: Sequence[torch.nn.Module], stage: int, rank: int,
               write: Callable[[Path], None]) -> None:
    """Write stage `name` once: rank 0 calls `write(folder)` inside `stages.writing`. Under ZeRO-3 every rank holds a
    slice of each weight, so all ranks first gather the full weights (all must call this)."""
    import deepspeed
    params = [p for m in models for p in m.parameters()]
    with deepspeed.zero.GatheredParameters(params, enabled=stage == 3):
        if rank == 0:
            with stages.writing(name) as tmp:
                write(tmp)
    torch.distributed.barrier()


def _run_info(ds: dict, world: int) -> dict:
    return {"world_size": world, "device": device().type, "zero_stage": zero_stage(ds),
            "train_batch_size": ds["train_batch_size"],
            "micro_batch_per_rank": ds["train_micro_batch_size_per_gpu"],
            "grad_accum": ds["gradient_accumulation_steps"], "bf16": bool(ds.get("bf16", {}).get("enabled"))}


def _moved(batch: dict) -> dict:
    dev = device()
    return {k: v.to(dev) for k, v in batch.items()}


# ------------------------------------------------------------------------------------------------ SFT
def run_sft(cfg: SFTConfig, ds_config: str | Path | dict = "zero2", *, max_steps: int | None = None) -> dict:
    """`sft.run` on every process of the group: the same split, batches and learning-rate schedule, each rank taking
    its share of every batch. `max_steps` stops early (the schedule stays that of the full run). Returns the metrics
    (the same on every rank); rank 0 writes stage `cfg.out`."""
    from . import sft
    from .models import load_causal_lm
    ds = stage_config("sft", cfg, ds_config, world_size())
    rank, world = init()
    t0 = time.time()
    # 1. data: the split and the epoch shuffles of sft.run (same seed, on every rank)
    model, tokenizer = load_causal_lm(require(cfg.init, rank))
    train, held, gen = sft.split_demos(cfg, tokenizer)
    # 2. the engine around the trainer's optimizer
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.95), weight_decay=0.0)
    engine = make_engine([model], opt, ds)
    micro, accum = ds["train_micro_batch_size_per_gpu"], ds["gradient_accumulation_steps"]
    total = max(1, int(cfg.epochs * len(train) / cfg.batch_size))
    steps = min(total, max_steps or total)
    pad = tokenizer.pad_token_id
    with on_device():
        history = {"step": [0], "train_loss": [float("nan")], "heldout_loss": [sft.heldout_loss(model, held, pad)]}
        # 3. the loop: every rank sees the whole batch order and takes examples rank, rank + W, …
        order, pos, running, seen = [], 0, 0.0, 0
        for step in tqdm(range(steps), desc=f"SFT on {world} processes", disable=rank != 0):
            if pos + cfg.batch_size > len(order):
                order, pos = torch.randperm(len(train), generator=gen, device="cpu").tolist(), 0
            mine = [train[i] for i in order[pos:pos + cfg.batch_size]][rank::world]
            pos += cfg.batch_size
            parts = [sft.collate(mine[k * micro:(k + 1) * micro], pad, cfg.mask_prompt) for k in range(accum)]
            n_tok = [float(b["loss_mask"][:, 1:].sum()) for b in parts]
            n_all = all_reduce([sum(n_tok)], "sum")[0]                           # response tokens in the whole step
            set_lr(engine, sft.warmup_cosine_lr(cfg.lr, cfg.warmup_steps, step, total))
            model.train()
            step_loss = 0.0
            for b, n in zip(parts, n_tok):
                loss, _ = engine(sft.batch_loss, _moved(b))
                engine.backward(loss * (n * world * accum / n_all))               # token-weighted, as in sft.run
                engine.step()
                step_loss += loss.item() * n / n_all
            step_loss = all_reduce([step_loss], "sum")[0]
            if not math.isfinite(step_loss):
                raise RuntimeError(f"SFT: loss is {step_loss} at step {step}; lower lr (now {cfg.lr}). "
                                   "Nothing was saved.")
            running, seen = running + step_loss, seen + 1
            if (step + 1) % cfg.eval_every == 0 or step + 1 == steps:
                history["step"].append(step + 1)
                history["train_loss"].append(running / seen)
                history["heldout_loss"].append(sft.heldout_loss(model, held, pad))   # every rank, the same data
                running, seen = 0.0, 0
    # 4. save the stage once
    metrics = {"final_loss": history["train_loss"][-1], "heldout_loss": history["heldout_loss"][-1],
               "initial_heldout_loss": history["heldout_loss"][0], "steps": steps, "n_train": len(train),
               "n_heldout": len(held), "wall_s": round(time.time() - t0, 1), "history": history,
               "distributed": _run_info(ds, world)}

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        stages.write_json(tmp / "stage.json", {"stage": cfg.out, "config": to_dict(cfg), "prompt_format": "chat",
                                               "upstream": [cfg.init], "distributed": metrics["distributed"]})
        stages.write_json(tmp / "metrics.json", metrics)
    save_stage(cfg.out, [model], zero_stage(ds), rank, write)
    return metrics


# ------------------------------------------------------------------------------------------------ reward model
def _rewards(model, scorer, which: list[int]) -> torch.Tensor:
    """Raw rewards of the responses of prompts `which` (concatenated), in ONE forward pass: under ZeRO-3 every rank
    must run as many passes as the others, which `reward.rewards_of`'s length-sorted chunks would not guarantee."""
    from .reward import pad_right, score_batch
    ids = [scorer.ids[k] for g in which for k in range(scorer.offsets[g], scorer.offsets[g + 1])]
    return score_batch(model, _moved(pad_right(ids, scorer.pad)))


def _rm_loss(model, scorer, which: list[int], comps: list, loss: str):
    from .reward import batch_loss
    return batch_loss(_rewards(model, scorer, which), comps, loss)


def run_rm(cfg: RMConfig, ds_config: str | Path | dict = "zero2", *, data: ComparisonData | None = None) -> dict:
    """`reward.run` on every process of the group. Phases 1–2 (sampling the SFT policy, ranking) run on rank 0 and
    the comparisons are sent to every rank; each rank trains on its share of every batch of prompts. Returns the
    metrics (the same on every rank); rank 0 writes stage `cfg.out`."""
    from transformers import AutoTokenizer
    from . import reward, sft
    ds = stage_config("rm", cfg, ds_config, world_size())
    rank, world = init()
    t0 = time.time()
    # 1.–2. the comparisons, once
    init_dir = require(cfg.init, rank)
    if data is None and rank == 0:
        data = reward.prepare_comparisons(cfg)
    data = broadcast(data, rank)
    reward._check_data(cfg, data)
    # 3. train
    tokenizer = AutoTokenizer.from_pretrained(init_dir, trust_remote_code=False)
    model = reward.build_reward_model(init_dir, tokenizer, cfg.head, cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.95), weight_decay=0.0)
    engine = make_engine([model], opt, ds)
    micro, accum = ds["train_micro_batch_size_per_gpu"], ds["gradient_accumulation_steps"]
    train_scorer = reward._Scorer(model, tokenizer, data.train, False)
    curve = data.heldout[:cfg.curve_prompts]
    curve_scorer = reward._Scorer(model, tokenizer, curve, False)
    per_epoch = len(data.train) // cfg.prompts_per_batch        # the incomplete last batch is dropped
    total = cfg.epochs * per_epoch
    gen = torch.Generator().manual_seed(cfg.seed)
    with on_device():
        h_loss, h_acc = reward._heldout_point(model, curve_scorer, curve, cfg.loss)
        history = {"step": [0], "train_loss": [float("nan")], "train_accuracy": [float("nan")],
                   "heldout_loss": [h_loss], "heldout_accuracy": [h_acc]}
        running, seen, order = [0.0, 0.0], 0, []
        for step in tqdm(range(total), desc=f"reward model on {world} processes", disable=rank != 0):
            if step % per_epoch == 0:
                order = torch.randperm(len(data.train), generator=gen, device="cpu").tolist()
            which = order[(step % per_epoch) * cfg.prompts_per_batch:][:cfg.prompts_per_batch][rank::world]
            set_lr(engine, sft.warmup_cosine_lr(cfg.lr, cfg.warmup_steps, step, total))
            model.train()
            loss_acc = [0.0, 0.0]
            for k in range(accum):                   # each micro-batch holds `micro` prompts: equal weights
                part = which[k * micro:(k + 1) * micro]
                loss, acc = engine(_rm_loss, train_scorer, part, [data.train[g] for g in part], cfg.loss)
                engine.backward(loss)
                engine.step()
                loss_acc = [loss_acc[0] + loss.item() / accum, loss_acc[1] + acc.item() / accum]
            loss_acc = all_reduce(loss_acc)
            if not math.isfinite(loss_acc[0]):
                raise RuntimeError(f"reward model: loss is {loss_acc[0]} at step {step}; lower lr (now {cfg.lr}). "
                                   "Nothing was saved.")
            running, seen = [running[0] + loss_acc[0], running[1] + loss_acc[1]], seen + 1
            if (step + 1) % cfg.eval_every == 0 or step + 1 == total:
                h_loss, h_acc = reward._heldout_point(model, curve_scorer, curve, cfg.loss)
                for key, value in (("step", step + 1), ("train_loss", running[0] / seen),
                                   ("train_accuracy", running[1] / seen), ("heldout_loss", h_loss),
                                   ("heldout_accuracy", h_acc)):
                    history[key].append(value)
                running, seen = [0.0, 0.0], 0
        # 4. measure on the held-out prompts (every rank, the same data) and normalise
        metrics, norm = reward.measure(cfg, data, model, tokenizer)
    metrics.update({"final_loss": history["train_loss"][-1], "heldout_loss": history["heldout_loss"][-1],
                    "train_accuracy": history["train_accuracy"][-1], "steps": total,
                    "n_train_prompts": len(data.train), "n_heldout_prompts": len(data.heldout), "norm": norm,
                    "prepare_s": data.prepare_s, "wall_s": round(time.time() - t0, 1), "history": history,
                    "distributed": _run_info(ds, world)})

    # 5. save the stage once
    def write(tmp: Path) -> None:
        reward.save_reward_model(model, tokenizer, tmp, norm)
        stages.write_json(tmp / "stage.json", {"stage": cfg.out, "config": to_dict(cfg), "prompt_format": "chat",
                                               "upstream": [cfg.init], "reward_head": cfg.head,
                                               "distributed": metrics["distributed"]})
        stages.write_json(tmp / "metrics.json", metrics)
    save_stage(cfg.out, [model], zero_stage(ds), rank, write)
    return metrics


# ------------------------------------------------------------------------------------------------ PPO
_BY_MAX = ("ratio_max",)


def _agree(h: dict) -> None:
    """Replace this update's diagnostics by their mean over the ranks (`ratio_max` by the max)."""
    from .ppo import HISTORY_KEYS
    keys = [k for k in HISTORY_KEYS if k != "update" and h[k]]
    means = all_reduce([h[k][-1] for k in keys])
    maxes = all_reduce([h[k][-1] for k in _BY_MAX], "max")
    for k, v in zip(keys, means):
        h[k][-1] = v
    for k, v in zip(_BY_MAX, maxes):
        h[k][-1] = v


def run_ppo(cfg: PPOConfig, ds_config: str | Path | dict = "zero2") -> dict:
    """`ppo.run` on every process of the group: each rank rolls out batch_size / W prompts per update and trains on
    them, and DeepSpeed averages the gradients. Returns the metrics (the same on every rank); rank 0 writes stage
    `cfg.out` (unless it is '') and, if `cfg.evaluate`, evaluates it."""
    from . import ppo
    from .data import PROMPT, read_jsonl
    from .rl import AdaptiveKLController, FixedKLController, kl_estimates
    ds = stage_config("ppo", cfg, ds_config, world_size())
    stage = zero_stage(ds)
    rank, world = init()
    t0 = time.time()
    # 0. the four models: policy and critic in one engine, reference and reward model frozen
    require(cfg.init, rank)
    require(cfg.reward, rank)
    policy, ref, rm, critic, tokenizer, rm_tok, norm = ppo.load_models(cfg)
    prompts = read_jsonl(stages.DATA_DIR / "rl_prompts.jsonl", PROMPT)
    ptx_blocks = ppo.web_blocks(tokenizer)[0] if cfg.ptx_coef > 0 else None
    params = list({id(p): p for m in (policy, critic) for p in m.parameters()}.values())   # a shared backbone once
    engine = make_engine([policy, critic], torch.optim.Adam(params, lr=cfg.lr, eps=1e-5), ds)
    ref, rm = frozen(ref, ds), frozen(rm, ds)
    if stage == 3 and world > 1:                      # see the module docstring: every rank runs every forward pass
        policy.generate = functools.partial(policy.generate, synced_gpus=True)
    reward_fn = ppo.reward_model_fn(rm, rm_tok, norm)
    micro, accum = ds["train_micro_batch_size_per_gpu"], ds["gradient_accumulation_steps"]
    kl_ctl = (AdaptiveKLController(cfg.beta, cfg.kl_target, cfg.kl_horizon) if cfg.kl_mode == "adaptive"
              else FixedKLController(cfg.beta))
    rng = random.Random(cfg.seed)                     # the same prompt order on every rank …
    torch.manual_seed(cfg.seed + rank)                # … and different samples
    h: dict = {k: [] for k in ppo.HISTORY_KEYS}
    h["warnings"] = []
    order: list[int] = []
    with on_device():
        for i in tqdm(range(cfg.updates), desc=f"PPO on {world} processes", disable=rank != 0):
            if len(order) < cfg.batch_size:
                order += rng.sample(range(len(prompts)), len(prompts))
            batch, order = order[:cfg.batch_size], order[cfg.batch_size:]
            records = [prompts[j] for j in batch[rank::world]]
            timings: dict = {}
            try:
                # 1.–5. rollout, score, forward passes, rewards, advantages: ppo.make_memory on this rank's prompts
                mem = ppo.make_memory(policy, ref, critic, tokenizer, records, reward_fn, cfg, kl_ctl.value, timings)
                kl = kl_estimates(mem.logp, mem.ref_logp, mem.mask)
                kl_per_seq = (mem.logp - mem.ref_logp).mul(mem.mask).sum(-1)               # (B/W,)
                # 6. K epochs of minibatches: each optimizer step takes micro × accum rows on every rank
                t = time.perf_counter()
                policy.train(), critic.train()
                step_stats = []
                for _ in range(cfg.ppo_epochs):
                    perm = torch.randperm(len(mem), device="cpu")
                    for start in range(0, len(mem), micro):
                        ptx = None
                        if ptx_blocks is not None:
                            ptx = ptx_blocks[torch.randint(len(ptx_blocks), (cfg.ptx_batch_size,), device="cpu")]
                            ptx = ptx.to(device())
                        loss, stats = engine(ppo.ppo_step, mem[perm[start:start + micro]], cfg, ptx)
                        ppo._check_finite("6. update", loss=loss)
                        engine.backward(loss)
                        engine.step()
                        step_stats.append(stats)
                timings["update"] = time.perf_counter() - t
            except ppo._NonFinite as e:
                raise ppo.PPOError(f"PPO stopped: non-finite {', '.join(e.names)} in phase '{e.phase}' at update "
                                   f"{i} on rank {rank}. Nothing was saved. Likely fix: "
                                   f"{ppo._FIXES[e.phase].format(lr=cfg.lr)}.") from None
            # 7. KL controller, on the mean KL over all ranks
            h["beta"].append(kl_ctl.value)
            kl_ctl.update(all_reduce([kl_per_seq.mean().item()])[0], cfg.batch_size)
            ppo._log_update(h, i, mem, kl, kl_per_seq, step_stats, timings)
            gold = ppo.gold_scores(mem.records, mem.texts)
            h["gold"].append(sum(gold) / len(gold))
            h["gold_eval"].append(float("nan"))
            _agree(h)
            for msg in ppo.health_warnings(h, i, cfg):
                if rank == 0:
                    warnings.warn(msg, ppo.PPOWarning, stacklevel=2)
                h["warnings"].append(msg)
    samples = [{"id": r.get("id", ""), "category": r.get("category", ""), "prompt": r["prompt"], "response": t,
                "score": float(s), "gold": g} for r, t, s, g in zip(mem.records, mem.texts, mem.scores, gold)]
    every = [None] * world
    torch.distributed.all_gather_object(every, samples)
    t_phase = {k: round(sum(h[f"t_{k}"]) / len(h["update"]), 3) for k in ("generate", "score", "forward", "update")}
    metrics = {"final_score": h["score"][-1], "initial_score": h["score"][0], "final_gold": h["gold"][-1],
               "initial_gold": h["gold"][0], "final_kl_seq": h["kl_seq"][-1], "final_beta": h["beta"][-1],
               "updates": cfg.updates, "s_per_update": round(sum(t_phase.values()), 3), "s_per_phase": t_phase,
               "wall_s": round(time.time() - t0, 1), "warnings": h["warnings"],
               "samples": [s for part in every for s in part], "history": {k: h[k] for k in ppo.HISTORY_KEYS},
               "distributed": _run_info(ds, world)}
    if cfg.out:
        def write(tmp: Path) -> None:
            policy.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
            stages.write_json(tmp / "stage.json", {"stage": cfg.out, "config": to_dict(cfg), "prompt_format": "chat",
                                                   "upstream": [cfg.init, cfg.reward],
                                                   "distributed": metrics["distributed"]})
            stages.write_json(tmp / "metrics.json", metrics)
        save_stage(cfg.out, [policy], stage, rank, write)
        if cfg.evaluate:
            if rank == 0:
                from .evaluation import evaluate_stage
                ev = evaluate_stage(cfg.out)
                metrics.update(eval_gold_mean=ev["gold_mean"], eval_failure_rate=ev["failure_rate"])
                stages.write_json(stages.stage_dir(cfg.out) / "metrics.json", metrics)
            metrics = broadcast(metrics, rank)
    return metrics


# ------------------------------------------------------------------------------------------------ command line
def stage_configs(names: Sequence[str], overrides: Sequence[str] = (), base: dict | None = None) -> dict:
    """Each stage's config: `base[stage]` (a dict of fields, as `config.to_dict` writes it) or the defaults, then
    the `STAGE.FIELD=VALUE` overrides (`FIELD=VALUE` alone when only one stage runs). An unknown stage or field, or a
    bad value, raises ValueError."""
    from .ppo import PPOConfig
    from .reward import RMConfig
    from .sft import SFTConfig
    classes = {"sft": SFTConfig, "rm": RMConfig, "ppo": PPOConfig}
    per: dict[str, list[str]] = {n: [] for n in names}
    for item in overrides:
        head, _, rest = item.partition(".")
        if head in classes and "=" not in head and rest:
            if head not in per:
                raise ValueError(f"--set {item}: stage {head!r} is not run here (stages: {', '.join(names)})")
            per[head].append(rest)
        elif len(names) == 1:
            per[names[0]].append(item)
        else:
            raise ValueError(f"--set {item}: with several stages, prefix the field with its stage, e.g. sft.lr=1e-3")
    base = base or {}
    return {n: parse_overrides(from_dict(classes[n], base[n]) if n in base else classes[n](), per[n]) for n in names}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rlhf_lib.distributed",
        description="Run course stages on every process of a DeepSpeed group (start it with torchrun or deepspeed).")
    parser.add_argument("stages", nargs="+", choices=STAGES, help="stages to train, in this order")
    parser.add_argument("--deepspeed", default="zero2", metavar="CONFIG",
                        help="a config of configs/deepspeed/ by name (zero0, zero1, zero2, zero3, zero3_offload, "
                             "zero2_bf16) or a path to a JSON file (default: zero2)")
    parser.add_argument("--set", action="append", default=[], metavar="STAGE.FIELD=VALUE",
                        help="override a field of a stage's config, e.g. --set sft.lr=1e-3 (repeatable)")
    parser.add_argument("--configs", type=Path, default=None, metavar="JSON",
                        help='a JSON file {"STAGE": {field: value, ...}} of configs to start from (then --set)')
    parser.add_argument("--max-steps", type=int, default=None, help="SFT: stop after this many optimizer steps")
    parser.add_argument("--metrics-dir", type=Path, default=None,
                        help="each rank writes STAGE.rankR.json there (all ranks hold the same metrics)")
    parser.add_argument("--local_rank", type=int, default=None, help=argparse.SUPPRESS)   # from the deepspeed launcher
    args = parser.parse_args(argv)
    try:
        base = json.loads(args.configs.read_text(encoding="utf-8")) if args.configs else None
        configs = stage_configs(args.stages, args.set, base)
        for name, cfg in configs.items():                     # every config checked before any work starts
            stage_config(name, cfg, args.deepspeed, world_size())
    except (ValueError, TypeError, OSError) as e:
        parser.error(str(e))
    for name, cfg in configs.items():
        if name == "sft":
            metrics = run_sft(cfg, args.deepspeed, max_steps=args.max_steps)
        elif name == "rm":
            metrics = run_rm(cfg, args.deepspeed)
        else:
            metrics = run_ppo(cfg, args.deepspeed)
        rank = torch.distributed.get_rank()
        if args.metrics_dir is not None:
            args.metrics_dir.mkdir(parents=True, exist_ok=True)
            stages.write_json(args.metrics_dir / f"{name}.rank{rank}.json", metrics)
        if rank == 0:
            summary = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)}
            print(f"[{name}] " + json.dumps(summary), flush=True)
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
    return 0


def launch(names: str | Sequence[str], *, nproc: int = 2, deepspeed: str | Path = "zero2", configs: dict | None = None,
           overrides: Sequence[str] = (), max_steps: int | None = None, launcher: str = "torchrun",
           metrics_dir: Path | None = None, env: dict | None = None, timeout: float | None = None) -> dict:
    """Run `python -m rlhf_lib.distributed` on `nproc` local processes, started by `torchrun` or by DeepSpeed's
    `deepspeed` launcher, and wait for it. `configs` = {stage: config object} to start from (else the defaults),
    `overrides` = ["STAGE.FIELD=VALUE", …] on top. Returns {stage: [metrics of rank 0, rank 1, …]}. The processes'
    output goes to `metrics_dir/log.txt` (default `runs/distributed/STAGES/`); a failure raises RuntimeError with
    its last lines."""
    names = [names] if isinstance(names, str) else list(names)
    metrics_dir = Path(metrics_dir or stages.ROOT / "runs" / "distributed" / "-".join(names))
    metrics_dir.mkdir(parents=True, exist_ok=True)
    for old in metrics_dir.glob("*.rank*.json"):                  # never read a previous run's numbers
        old.unlink()
    args = [*names, "--deepspeed", str(deepspeed), "--metrics-dir", str(metrics_dir)]
    if configs:
        stages.write_json(metrics_dir / "configs.json", {n: to_dict(c) for n, c in configs.items()})
        args += ["--configs", str(metrics_dir / "configs.json")]
    args += [f"--set={o}" for o in overrides] + ([f"--max-steps={max_steps}"] if max_steps else [])
    if launcher == "torchrun":
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "rlhf_lib.distributed", *args]
    elif launcher == "deepspeed":
        cmd = [sys.executable, "-m", "deepspeed.launcher.runner", f"--num_gpus={nproc}", f"--master_port={free_port()}",
               "--module", "rlhf_lib.distributed", *args]
    else:
        raise ValueError(f"launcher {launcher!r} is unknown; use 'torchrun' or 'deepspeed'")
    run_env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), **(env or {})}
    if not torch.cuda.is_available():
        run_env.setdefault("DS_ACCELERATOR", "cpu")
    log = metrics_dir / "log.txt"
    with open(log, "w", encoding="utf-8") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=run_env, cwd=stages.ROOT,
                                start_new_session=True)            # its own process group: a timeout ends every rank
        try:
            status = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()
            status = f"timed out after {timeout} s"
    if status != 0:
        tail = "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-40:])
        raise RuntimeError(f"{' '.join(cmd[2:])} failed ({status}); the end of {log}:\n{tail}")
    return {n: [json.loads((metrics_dir / f"{n}.rank{r}.json").read_text(encoding="utf-8")) for r in range(nproc)]
            for n in names}


if __name__ == "__main__":
    sys.exit(main())
