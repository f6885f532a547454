"""`memory.keep_freed_memory`: a large tensor comes from the heap, not a fresh mmap, in this process and in the ones
it starts; a bad setting is named. Each check runs in a fresh Python so that glibc starts from its defaults."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

glibc = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator (Linux) only")

# Bytes glibc holds in mmapped blocks (mallinfo2, glibc >= 2.33) before and after a 64 MiB tensor is allocated.
PROBE = textwrap.dedent("""
    import ctypes, sys
    class MallInfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                  "fsmblks", "uordblks", "fordblks", "keepcost")]
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2
    if sys.argv[1] == "keep":
        from rlhf_lib.memory import keep_freed_memory
        assert keep_freed_memory()
    import torch
    before = libc.mallinfo2().hblkhd
    x = torch.empty(64 << 20, dtype=torch.uint8)
    print(before, libc.mallinfo2().hblkhd)
""")


def _mmapped(mode: str, **env: str) -> tuple[int, int]:
    """Run PROBE in a fresh Python with glibc's own defaults, plus `env`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True,
                         env={**clean, **env}, check=True)
    before, after = map(int, out.stdout.split())
    return before, after


@glibc
def test_a_large_tensor_comes_from_the_heap_once_memory_is_kept():
    before, after = _mmapped("default")
    assert after - before >= 64 << 20                 # glibc's default: a fresh mmap, returned when freed
    before, after = _mmapped("keep")
    assert after == before                            # kept: served from the heap, reused by the next step


@glibc
def test_processes_it_starts_keep_memory_too(monkeypatch):
    """DeepSpeed's workers and the model server are new processes: glibc reads the settings from their environment."""
    from rlhf_lib import memory
    for name in memory.ENV:
        monkeypatch.delenv(name, raising=False)
    memory.keep_freed_memory()
    assert {k: os.environ[k] for k in memory.ENV} == memory.ENV
    before, after = _mmapped("default", **memory.ENV)  # a child that never calls it
    assert after == before


def test_a_setting_that_is_not_a_number_is_named(monkeypatch):
    from rlhf_lib import memory
    monkeypatch.setenv("MALLOC_MMAP_MAX_", "none")
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", memory.ENV["MALLOC_TRIM_THRESHOLD_"])
    if not sys.platform.startswith("linux"):
        assert memory.keep_freed_memory() is False
        return
    with pytest.raises(ValueError, match=r"MALLOC_MMAP_MAX_='none' is not a whole number: unset it"):
        memory.keep_freed_memory()
