"""LLaMA's lesson at our scale: held-out loss of model sizes at fixed compute C ≈ 6·N·D (lesson 10).

Each point is a fresh LLaMA of one (hidden_size, num_layers) trained from scratch by pretraining's loop on
D = C / (6N) tokens of the web corpus, with lesson 00's tokenizer and held-out blocks (`rlhf_lib.compute_optimal`).
The budgets are fractions of lesson 00's C₀ = 6 · 1.33 M · 1.09 M; the points of `--sft-budgets` also get a short SFT
(lesson 02's loop) and the gold labeler's mean on the 320 held-out prompts. Nothing is written to `artifacts/`
(the SFT runs in a temporary folder). Recorded with the machine in `benchmarks/llama_scaling.json`.

    python benchmarks/llama_scaling.py                        # 5 budgets × 4 sizes, SFT at C₀/4 (≈ 10 min, 2 cores)
    python benchmarks/llama_scaling.py --budgets 0.0625 --sizes 32x2 64x2 --sft-budgets 0.0625
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rlhf_lib import compute_optimal, stages  # noqa: E402
from rlhf_lib.config import to_dict  # noqa: E402
from rlhf_lib.machine import describe  # noqa: E402

OUT = Path(__file__).with_name("llama_scaling.json")


def size_arg(text: str) -> tuple[int, int]:
    """'64x2' -> (64, 2): hidden_size × num_layers."""
    try:
        width, depth = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give hidden_size x num_layers, e.g. 64x2") from None
    return width, depth


def lesson00_loss() -> float | None:
    """Lesson 00's recorded held-out loss (artifacts/base/metrics.json, read only), or None without the stage."""
    return stages.metrics("base")["heldout_loss"] if stages.exists("base") else None


def main(argv=None) -> None:
    defaults = compute_optimal.ScalingConfig()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budgets", type=float, nargs="+", default=list(defaults.budgets), help="fractions of C₀")
    ap.add_argument("--sizes", type=size_arg, nargs="+", default=list(defaults.sizes), help="e.g. 32x2 64x2")
    ap.add_argument("--sft-budgets", type=float, nargs="*", default=list(defaults.sft_budgets))
    ap.add_argument("--sft-epochs", type=float, default=defaults.sft_epochs)
    ap.add_argument("--seed", type=int, default=defaults.seed)
    args = ap.parse_args(argv)
    cfg = replace(defaults, budgets=tuple(args.budgets), sizes=tuple(args.sizes), sft_budgets=tuple(args.sft_budgets),
                  sft_epochs=args.sft_epochs, seed=args.seed)
    t0 = time.time()
    result = compute_optimal.sweep(cfg, on_point=lambda p: print(compute_optimal.summary(p), flush=True))
    for p in result["points"]:                  # the loss curve, without the training-loss and lr columns
        p["history"] = {k: p["history"][k] for k in ("step", "heldout_loss")}
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    record = {"machine": {**describe(), "load_average_5min": round(load[1], 2) if load else None}, "seed": cfg.seed,
              "commands": [" ".join(["python benchmarks/llama_scaling.py"] + (argv if argv is not None else
                                                                              sys.argv[1:]))],
              "config": to_dict(cfg), "wall_s": round(time.time() - t0, 1),
              "lesson00": {**result["lesson00"], "heldout_loss": lesson00_loss()},
              "corpus_tokens": result["corpus_tokens"], "heldout_tokens": result["heldout_tokens"],
              "points": result["points"]}
    OUT.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {OUT} ({record['wall_s']} s)")


if __name__ == "__main__":
    main()
