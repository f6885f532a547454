"""Starting a multi-process run from a notebook or a test, and following it (lesson 06): `launch`.

`launch` runs `python -m rlhf_lib.distributed` (`distributed.main`, one process per rank) under `torchrun` or
DeepSpeed's own launcher, in its own process group, and waits for it: while it runs it hands rank 0's history of
each stage named in `on_log` to a callback (a live curve), an interrupt or a timeout stops every rank, and a failure
raises with the first traceback a rank printed (`failure_report`), not only the launcher's own last lines.

    runs = launch(["sft", "ppo"], nproc=2, deepspeed="zero3", on_log={"sft": LiveCurves(...)})
    runs["sft"][0]                  # rank 0's metrics (every rank holds the same numbers)
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from . import stages
from .config import to_dict
from .distributed import free_port

LIVE_POLL_S = 0.5                         # how often `launch` looks for a new history of a stage followed live


def launch(names: str | Sequence[str], *, nproc: int = 2, deepspeed: str | Path = "zero2", configs: dict | None = None,
           overrides: Sequence[str] = (), max_steps: int | None = None, launcher: str = "torchrun",
           metrics_dir: Path | None = None, env: dict | None = None, timeout: float | None = None,
           on_log: dict[str, Callable[[dict], Any]] | None = None) -> dict:
    """Run `python -m rlhf_lib.distributed` on `nproc` local processes, started by `torchrun` or by DeepSpeed's
    `deepspeed` launcher, and wait for it. `configs` = {stage: config object} to start from (else the defaults),
    `overrides` = ["STAGE.FIELD=VALUE", …] on top. Returns {stage: [metrics of rank 0, rank 1, …]}.

    `on_log` = {stage: callback} follows stages live: while the processes run, each callback gets rank 0's history
    every time that stage's trainer logs, as `on_log` does on one process (e.g. a `plots.LiveCurves`). The processes'
    output (progress bars, DeepSpeed's messages, tracebacks) goes to `metrics_dir/log.txt` (default
    `runs/distributed/STAGES/`), not to the caller's output; a failure or a timeout raises RuntimeError with its last
    lines. Interrupting the caller (Kernel → Interrupt) stops every rank."""
    names = [names] if isinstance(names, str) else list(names)
    on_log = dict(on_log or {})
    if set(on_log) - set(names):
        raise ValueError(f"on_log names {sorted(set(on_log) - set(names))}, which this run does not train "
                         f"(stages: {', '.join(names)})")
    metrics_dir = Path(metrics_dir or stages.ROOT / "runs" / "distributed" / "-".join(names))
    metrics_dir.mkdir(parents=True, exist_ok=True)
    for old in [*metrics_dir.glob("*.rank*.json"), *metrics_dir.glob("*.live.json")]:   # never a previous run's
        old.unlink()
    args = [*names, "--deepspeed", str(deepspeed), "--metrics-dir", str(metrics_dir)]
    args += [f"--live={n}" for n in on_log]
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
    seen: dict[str, int] = {}

    def relay() -> None:                                  # each stage's history, when rank 0 has written a new one
        for name, callback in on_log.items():
            path = metrics_dir / f"{name}.live.json"
            stamp = path.stat().st_mtime_ns if path.exists() else None
            if stamp is not None and stamp != seen.get(name):
                seen[name] = stamp
                callback(stages.nan_numbers(json.loads(path.read_text(encoding="utf-8"))))

    with open(log, "w", encoding="utf-8") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=run_env, cwd=stages.ROOT,
                                start_new_session=True)            # its own process group: a timeout ends every rank
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            status = None
            while status is None and (deadline is None or time.monotonic() < deadline):
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                wait_s = left if not on_log else LIVE_POLL_S if left is None else min(LIVE_POLL_S, left)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    status = proc.wait(timeout=wait_s)
                relay()
        except BaseException:                  # an interrupted kernel, a failing callback: leave no rank running
            stop_group(proc)
            raise
        if status is None:
            stop_group(proc)
            status = f"timed out after {timeout} s"
    if status != 0:
        raise RuntimeError(f"{' '.join(cmd[2:])} failed ({status}); {failure_report(log)}")
    return {n: [stages.nan_numbers(json.loads((metrics_dir / f"{n}.rank{r}.json").read_text(encoding="utf-8")))
                for r in range(nproc)] for n in names}                    # write_json wrote NaN as null


def failure_report(log: Path, frames: int = 30, tail: int = 15) -> str:
    """What a failed launch's log says, for its error: the first traceback a rank printed (its last `frames` lines,
    down to the exception), then the log's last `tail` lines. The first rank to fail holds the cause: the others then
    fail in a collective it left, and the launcher's own traceback and summary come last and name no cause. Progress
    bars are shown as a terminal leaves them (the text after a line's last carriage return)."""
    lines = [line.rsplit("\r", 1)[-1] for line in log.read_text(encoding="utf-8", errors="replace").split("\n")]
    while lines and not lines[-1].strip():
        lines.pop()
    report = f"the end of {log}:\n" + "\n".join(lines[-tail:])
    start = next((i for i, line in enumerate(lines) if line.endswith("Traceback (most recent call last):")), None)
    if start is None:
        return report
    prefix = lines[start][:-len("Traceback (most recent call last):")]      # "[rank0]: " under torchrun, or ""
    end = start + 1
    while end < len(lines) and lines[end].startswith(prefix) and lines[end][len(prefix):][:1] in (" ", "\t"):
        end += 1                                                               # the frames, indented
    end += 1                                                                   # the exception's line
    while end < len(lines) and prefix and lines[end].startswith(prefix) and end - start < frames + 20 \
            and not lines[end].endswith("Traceback (most recent call last):"):
        end += 1                                                               # the rest of its message
    first = lines[start:end]
    shown = "\n".join(first if len(first) <= frames else [first[0], f"{prefix}  …", *first[-frames + 2:]])
    return f"the first error in {log}:\n{shown}\n\n{report}"


def stop_group(proc: subprocess.Popen) -> None:
    """End a launch and every rank it started (they share its process group): SIGTERM, SIGKILL after 30 s."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=30)
            return
