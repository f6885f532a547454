"""DeepSpeed configs checked against the trainer's (lesson 06): `configs/deepspeed/*.json` say *how* to train, the
trainer's config says *what*.

The trainer's batch size (the registry's `batch_field`) and gradient clip (`max_grad_norm`) fill the DeepSpeed
config's "auto" entries, and a number that contradicts them is an error naming both (`resolve_config`). The trainers
build their own torch AdamW (no DeepSpeed op is compiled) and set its learning rate each step, so an "optimizer" or
"scheduler" block is an error too. Everything here is checked before any process group exists.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

from . import stages
from .pipeline import STAGES

CONFIG_DIR = stages.ROOT / "configs" / "deepspeed"
BATCH_KEYS = ("train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps")


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


def positive_int_or_auto(ds: dict, key: str) -> int | None:
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
    total, micro, accum = (positive_int_or_auto(ds, k) for k in BATCH_KEYS)
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



def stage_config(name: str, cfg, ds_config: str | Path | dict, world: int) -> dict:
    """The resolved DeepSpeed config for training registry stage `name` with its trainer config `cfg` on `world`
    processes: `resolve_config` with the trainer's batch and gradient clip, plus each trainer's own conditions.
    Raises ValueError naming the values, before any process group exists."""
    stage = STAGES.get(name)
    if stage is None or stage.batch_field is None:
        runs = ", ".join(n for n, s in STAGES.items() if s.batch_field)
        raise ValueError(f"unknown stage {name!r}; the distributed trainers are {runs}")
    cls = type(cfg).__name__
    ds = resolve_config(load_config(ds_config), batch=(f"{cls}.{stage.batch_field}", getattr(cfg, stage.batch_field)),
                        clip=(f"{cls}.max_grad_norm", cfg.max_grad_norm), world_size=world)
    if name == "rm" and cfg.freeze_backbone:
        raise ValueError("RMConfig.freeze_backbone = True trains only the head, on features computed once; it "
                         "takes seconds in one process: use reward.run, not the distributed trainer")
    if name == "ppo":
        if cfg.batch_size % cfg.minibatch_size:
            raise ValueError(f"PPOConfig.batch_size = {cfg.batch_size} is not a multiple of minibatch_size = "
                             f"{cfg.minibatch_size}: on several processes every rank must take the same number of "
                             "optimizer steps per rollout; make batch_size a multiple of minibatch_size")
        if zero_stage(ds) == 3 and cfg.critic == "policy_head":
            raise ValueError("PPOConfig.critic = 'policy_head' shares the policy's backbone, which ZeRO-3 cannot "
                             "partition twice; use critic = 'rm' or a ZeRO stage below 3")
    return ds
