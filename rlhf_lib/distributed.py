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
    launcher.launch(["sft"], nproc=2, deepspeed="zero3")                                 # from Python

`run(name, cfg)` runs the trainer's own loop (`sft.run`, `reward.run`, `ppo.run`) with a `training.Parallel` whose
pieces are DeepSpeed's: the optimizer step is the engine's, each rank takes its rows of every batch, the logged
numbers are all-reduced, rank 0 does one-off work (training a missing upstream stage, sampling the comparisons,
evaluating) and writes the stage. The DeepSpeed config is checked against the trainer's in `deepspeed_config.py`.

What differs from one process, and why:

* SFT: none in the maths. Each micro-batch's loss is weighted by its share of the step's response tokens, so the
  gradient is the token mean over the whole batch, as in `sft.run` (DeepSpeed itself averages micro-batches).
* Reward model: the last, incomplete batch of an epoch is dropped (it would not split evenly over the ranks), and
  every micro-batch is scored in one forward pass. The comparisons are sampled once, on rank 0, and sent to all.
* PPO: each rank samples its share of the prompts with its own seed; advantages are whitened per rank; the policy
  and the critic form one engine (one optimizer, as in `ppo.train`), so the gradient clip applies to their joint
  norm. The reference and reward models are frozen copies; under ZeRO-3 they are partitioned too. The fixed
  gold-evaluation batch is sampled on every rank and its gold means averaged; a non-finite number stops the run
  without a last-good checkpoint (under ZeRO-3 no rank holds the whole policy); with `cfg.evaluate`, rank 0
  evaluates the saved stage.
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
import json
import logging
import os
import socket
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from . import stages
from .config import from_dict, parse_overrides
from .deepspeed_config import load_config, resolve_config, stage_config, zero_stage  # noqa: F401 (lesson 06 API)
from .pipeline import STAGES as REGISTRY
from .pipeline import run_stage
from .training import Parallel

STAGES = tuple(name for name, s in REGISTRY.items() if s.batch_field)     # the trainers DeepSpeed can run


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


def run_info(ds: dict, world: int) -> dict:
    return {"world_size": world, "device": device().type, "zero_stage": zero_stage(ds),
            "train_batch_size": ds["train_batch_size"],
            "micro_batch_per_rank": ds["train_micro_batch_size_per_gpu"],
            "grad_accum": ds["gradient_accumulation_steps"], "bf16": bool(ds.get("bf16", {}).get("enabled"))}


def moved(batch):
    """A tensor, or a dict of tensors, on this process's device."""
    dev = device()
    return batch.to(dev) if isinstance(batch, torch.Tensor) else {k: v.to(dev) for k, v in batch.items()}


class DeepSpeedEngine:
    """The trainers' engine (`engine(fn, *args)`, `engine.step(loss, lr)`) as a DeepSpeed engine around their own
    optimizer: the forward runs through the engine, where ZeRO-3's hooks see it, and `step` is engine.backward +
    engine.step (which steps the optimizer once every gradient_accumulation_steps micro-batches and clips the
    gradient norm to the config's gradient_clipping)."""

    def __init__(self, models: Sequence[torch.nn.Module], optimizer: torch.optim.Optimizer, ds: dict):
        self.engine = make_engine(models, optimizer, ds)

    def __call__(self, fn: Callable, *args):
        return self.engine(fn, *args)

    def step(self, loss: torch.Tensor, lr: float | None = None) -> None:
        if lr is not None:
            for group in self.engine.optimizer.param_groups:
                group["lr"] = lr
        self.engine.backward(loss)
        self.engine.step()


def once(fn: Callable, rank: int):
    """`fn()` on rank 0, its result sent to every rank (the others wait)."""
    return broadcast(fn() if rank == 0 else None, rank)


def gather_objects(obj: Any) -> list:
    """Every rank's `obj`, in rank order, on every rank."""
    every = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(every, obj)
    return every


def parallel(ds: dict, rank: int, world: int) -> Parallel:
    """The `training.Parallel` of a resolved DeepSpeed config `ds` on this rank of `world`."""
    stage = zero_stage(ds)
    return Parallel(rank=rank, world=world, accum=ds["gradient_accumulation_steps"], even_split=True,
                    lockstep=stage == 3 and world > 1,
                    engine=lambda models, optimizer, clip=(): DeepSpeedEngine(models, optimizer, ds),
                    reduce=all_reduce, once=lambda fn: once(fn, rank),
                    save=lambda name, models, write: save_stage(name, models, stage, rank, write),
                    gather=gather_objects, frozen=lambda model: frozen(model, ds), device=on_device,
                    to_device=moved, checkpoints=False, info=run_info(ds, world))


def run(name: str, cfg, ds_config: str | Path | dict = "zero2", **kwargs) -> dict:
    """Train registry stage `name` ('sft', 'rm' or 'ppo') with config `cfg` on every process of the group (a group
    of one without a launcher). The DeepSpeed config is checked first, before any process group exists. Returns the
    metrics, the same on every rank; rank 0 writes the stage. `kwargs` go to the trainer (e.g. `max_steps` for SFT,
    `data` for the reward model)."""
    ds = stage_config(name, cfg, ds_config, world_size())
    rank, world = init()
    return run_stage(name, cfg, par=parallel(ds, rank, world), **kwargs)


# ------------------------------------------------------------------------------------------------ command line
def stage_configs(names: Sequence[str], overrides: Sequence[str] = (), base: dict | None = None) -> dict:
    """Each stage's config: `base[stage]` (a dict of fields, as `config.to_dict` writes it) or the defaults, then
    the `STAGE.FIELD=VALUE` overrides (`FIELD=VALUE` alone when only one stage runs). An unknown stage or field, or a
    bad value, raises ValueError."""
    classes = {n: REGISTRY[n].load() for n in STAGES}
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


def history_writer(path: Path) -> Callable[[dict], None]:
    """An `on_log` that writes the history so far to `path`, atomically (a reader never sees half a file)."""
    return lambda history: stages.replace_json(path, history)


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
    parser.add_argument("--live", action="append", default=[], choices=STAGES, metavar="STAGE",
                        help="rank 0 writes STAGE.live.json to --metrics-dir, the history so far, every time the "
                             "trainer logs (repeatable; `launch(on_log=...)` reads it)")
    parser.add_argument("--local_rank", type=int, default=None, help=argparse.SUPPRESS)   # from the deepspeed launcher
    args = parser.parse_args(argv)
    try:
        base = json.loads(args.configs.read_text(encoding="utf-8")) if args.configs else None
        configs = stage_configs(args.stages, args.set, base)
        for name, cfg in configs.items():                     # every config checked before any work starts
            stage_config(name, cfg, args.deepspeed, world_size())
    except (ValueError, TypeError, OSError) as e:
        parser.error(str(e))
    if args.live and args.metrics_dir is None:
        parser.error("--live needs --metrics-dir (the folder it writes STAGE.live.json to)")
    for name, cfg in configs.items():
        kwargs: dict[str, Any] = {"max_steps": args.max_steps} if name == "sft" else {}
        if name in args.live and os.environ.get("RANK", "0") == "0":      # the numbers are all-reduced: one writer
            args.metrics_dir.mkdir(parents=True, exist_ok=True)
            kwargs["on_log"] = history_writer(args.metrics_dir / f"{name}.live.json")
        metrics = run(name, cfg, args.deepspeed, **kwargs)
        rank = torch.distributed.get_rank()
        if args.metrics_dir is not None:
            args.metrics_dir.mkdir(parents=True, exist_ok=True)
            stages.write_json(args.metrics_dir / f"{name}.rank{rank}.json", metrics)
        if rank == 0:
            summary = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)}
            print(f"[{name}] " + json.dumps(summary), flush=True)
    torch.distributed.barrier()
    return 0


if __name__ == "__main__":
    status = main()
    # Every rank has saved, written its metrics and passed the last barrier. Tearing down the process group and the
    # interpreter can still abort a rank ("terminate called without an active exception": a gloo or ZeRO-3 thread
    # destroyed while joinable), which the launcher would report as a failed run: leave without it.
    sys.stdout.flush(), sys.stderr.flush()
    os._exit(status)
