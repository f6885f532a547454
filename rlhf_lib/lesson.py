"""How every lesson notebook starts (all lessons): `lesson.setup()` in the first code cell.

    %matplotlib inline
    from rlhf_lib import lesson
    lesson.setup()              # before anything imports torch
    ...

It does four things, the same in every lesson:

* **CPU threads.** PyTorch's threads wait for each other by spinning. With a second job on the machine, a spinning
  thread waits for one that is not running, and the tiny model ran 9× (training) to 50× (sampling) slower on two
  threads than on one (measured on the course's 2-core machine). With `OMP_WAIT_POLICY=PASSIVE` a waiting thread
  sleeps instead: two threads then cost nothing when the machine is busy and help training when it is quiet. The
  variable is read once, when torch loads, so `setup` must run first; if torch is already loaded it falls back to one
  thread. The thread count does not change the numbers (the same losses and gradients, bit for bit).
* **Memory kept for reuse.** Each training step frees and allocates the same large tensors; glibc would hand them
  back to the kernel and fault the pages in again (a step of 32 × 128 tokens: 0.81 s, 0.67 s with memory kept, on
  an AMD EPYC). `memory.py` says how it is kept instead; the floats are unchanged.
* **Figures with Korean text.** Matplotlib's default font has no Hangul. `setup` puts the first installed Korean font
  (`fonts-nanum` on Debian: `apt-get install fonts-nanum`) behind the default one, so Latin text keeps its look and
  Hangul falls back to it. Without one, figures still draw (Hangul as empty boxes) and `setup` says how to fix it.
* **Quiet loading.** transformers draws a progress bar for every model it loads or saves ("Loading weights",
  "Writing model shards"), a dozen per lesson; they are turned off, so the bars left are the course's own.
"""
from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

from .memory import keep_freed_memory

# Fonts with Hangul, in order of preference: Debian's fonts-nanum, Noto CJK, then the ones macOS and Windows ship.
HANGUL_FONTS = ("NanumGothic", "NanumBarunGothic", "Noto Sans CJK KR", "Noto Sans KR", "Apple SD Gothic Neo",
                "AppleGothic", "Malgun Gothic", "UnDotum")
FONT_HINT = ("no font with Hangul found: Korean text in figures shows as empty boxes. Install one (Debian/Ubuntu: "
             "apt-get install fonts-nanum) and restart the kernel.")
MAX_THREADS = 2          # the course is sized for 2 cores; the tiny model gains nothing from more


def threads() -> int:
    """Set how many CPU threads torch uses and how they wait (see the module docstring). Returns the count."""
    n = max(1, min(MAX_THREADS, os.cpu_count() or 1))
    if "torch" in sys.modules and os.environ.get("OMP_WAIT_POLICY", "").upper() != "PASSIVE":
        n = 1                                          # too late to make threads sleep: one thread never spins
    else:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    import torch
    torch.set_num_threads(n)
    return n


def hangul_font(candidates: tuple[str, ...] = HANGUL_FONTS) -> str | None:
    """Make matplotlib fall back to the first installed font of `candidates` for glyphs the default font lacks
    (Hangul). Returns its name, or None (figures still draw; Hangul shows as boxes, without a warning per glyph)."""
    import matplotlib
    from matplotlib import font_manager
    known = {f.name for f in font_manager.fontManager.ttflist}
    if not known & set(candidates):                    # installed after matplotlib cached its font list?
        for path in font_manager.findSystemFonts():
            if any(Path(path).stem.replace(" ", "").startswith(c.replace(" ", "")) for c in candidates):
                try:
                    font_manager.fontManager.addfont(path)
                except (OSError, RuntimeError, ValueError):
                    continue                            # unreadable font file: try the next one
        known = {f.name for f in font_manager.fontManager.ttflist}
    name = next((c for c in candidates if c in known), None)
    if name is None:
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from (current )?font")
        return None
    families = [f for f in matplotlib.rcParams["font.family"] if f != name]
    matplotlib.rcParams["font.family"] = [*families, name]     # matplotlib falls back along this list, glyph by glyph
    return name


def quiet_loading() -> None:
    """No progress bars from transformers' model loading and saving (the course's own bars stay)."""
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()


def setup() -> dict:
    """The first call of every lesson: threads, memory, the Korean font, quiet loading. Returns what it set."""
    n = threads()
    kept = keep_freed_memory()
    font = hangul_font()
    quiet_loading()
    if font is None:
        print(FONT_HINT)
    return {"threads": n, "memory_kept": kept, "hangul_font": font}
