"""Keep freed memory for reuse (every stage, every lesson): glibc's allocator, told not to hand large blocks back.

A training step of the tiny model allocates the same large tensors every time: the logits of a batch of 32 × 128
tokens over 4,096 token ids are 64 MiB, their softmax and gradients as much again. glibc's `malloc` serves a block
above its mmap threshold (at most 32 MiB) with a fresh `mmap` and returns it with `munmap` when torch frees it, so
the next step asks the kernel for the same pages again and the kernel zeroes every one. `keep_freed_memory()`
turns that off in this process (`mallopt`: no mmap for large blocks, no trimming of the heap below 1 GiB) and in the
processes it starts (the same settings as glibc's `MALLOC_*_` variables, which a new process reads when it starts:
DeepSpeed's workers, the model server). Measured on an AMD EPYC, 2 cores (`benchmarks/memory.py`, a step of 32 × 128
tokens on two threads): 0.812 → 0.670 s a step, the kernel's time 4.6 → 0.7 s over 15 steps, peak resident memory
866 → 996 MiB. Floats are unchanged: the allocator decides where a tensor lives, never what is computed.

Elsewhere (macOS, Windows, musl) it does nothing and says so in its return value.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD = -1        # glibc's mallopt parameters (malloc.h)
M_MMAP_MAX = -4
TRIM_THRESHOLD = 1 << 30     # free memory at the heap's top is kept up to this many bytes
ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(TRIM_THRESHOLD)}


def keep_freed_memory() -> bool:
    """Make glibc keep freed blocks for reuse, here and in child processes. Returns whether it applied (False where
    the C library is not glibc). Safe to call more than once."""
    for name, value in ENV.items():
        os.environ.setdefault(name, value)             # a value the user set (to tune or turn it off) wins
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(M_MMAP_MAX, _setting("MALLOC_MMAP_MAX_"))
                and mallopt(M_TRIM_THRESHOLD, _setting("MALLOC_TRIM_THRESHOLD_")))


def release_freed_memory() -> bool:
    """Hand the free memory glibc kept back to the kernel now (`malloc_trim(0)`), so that the resident set counts
    only live memory: a measurement of one run's peak memory starts with it (`grpo.PeakMemory`). Returns whether
    anything was released (False where the C library is not glibc)."""
    try:
        trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return False
    trim.argtypes, trim.restype = (ctypes.c_size_t,), ctypes.c_int
    return bool(trim(0))


def _setting(name: str) -> int:
    value = os.environ[name]
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not a whole number: unset it (the course sets "
                         f"{ENV[name]}) or set a number of bytes or blocks, as glibc reads it") from None
