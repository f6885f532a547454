"""The machine a figure came from: the same seed gives the same numbers on the same CPU model, and slightly
different floats on another (its matrix kernels sum in another order). Reference figures (`benchmarks/reference.py`,
`tests/invariants.json`) are recorded with this description, so a reader can tell a real change from a move to
another CPU."""
from __future__ import annotations

import os
import platform
from pathlib import Path

import torch


def cpu_model() -> str:
    """The CPU's model name ("AMD EPYC 7B13", "Intel(R) Xeon(R) CPU @ 2.20GHz" …) from /proc/cpuinfo, or what the
    platform reports where there is none."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe() -> dict:
    """CPU model, logical cores, torch threads, torch version and Python version."""
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version()}
