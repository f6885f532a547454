"""LoRA against full fine-tuning for the course's SFT (Hu et al. 2021; KoAlpaca trained its largest model this way).

The course's SFT (lesson 02's defaults: 4 epochs over the 4,000 demonstrations, from stage `base`) once with every
weight trained and once per LoRA rank with `SFTConfig.lora_rank` (the adapters merged into the saved model),
each in a private artifacts folder: trainable parameters, seconds per step, peak resident memory, held-out loss, and
the gold labeler's mean score on lesson 05's 320 held-out prompts with the win rate against the fully fine-tuned
policy. Recorded with the machine in `benchmarks/lora.json`.

    python benchmarks/lora.py                          # full fine-tuning and LoRA r = 16 (≈ 7 min, 2 cores)
    python benchmarks/lora.py --ranks 4 16 --lr 3e-3
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rlhf_lib import evaluation, sft, stages  # noqa: E402
from rlhf_lib.grpo import PeakMemory  # noqa: E402
from rlhf_lib.machine import describe  # noqa: E402
from rlhf_lib.models import load_causal_lm  # noqa: E402

OUT = Path(__file__).with_name("lora.json")


def one_run(name: str, cfg: sft.SFTConfig, work: Path, seed: int) -> tuple[dict, list[dict]]:
    """SFT with `cfg` from a copy of stage `base` in its own artifacts folder; its figures and held-out answers."""
    arts = work / name
    for stage in ("tokenizer", "base"):
        shutil.copytree(stages.stage_dir(stage), arts / stage)
    with stages.located(stages.DATA_DIR, arts):
        memory, t0 = PeakMemory(), time.time()
        m = sft.run(cfg)
        peak = memory.peak()
        model, tok = load_causal_lm(stages.existing(cfg.out))
        summary, rows = evaluation.evaluate(model, tok, fmt="chat", seed=seed)
    return {"run": name, "lora_rank": cfg.lora_rank, "lr": cfg.lr, "trainable_params": m["trainable_params"],
            "params": m["params"], "steps": m["steps"], "s_per_step": round(m["wall_s"] / m["steps"], 3),
            "wall_s": round(time.time() - t0, 1), "peak_rss_mb": round(peak, 1),
            "heldout_loss": round(m["heldout_loss"], 4), "gold_mean": round(summary["gold_mean"], 4)}, rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ranks", type=int, nargs="*", default=[16])
    ap.add_argument("--lr", type=float, default=3e-3, help="LoRA's learning rate (full fine-tuning keeps 1e-3)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    stages.existing("base")
    work = Path(tempfile.mkdtemp(prefix="rlhf-lora-"))
    try:
        full, full_rows = one_run("full", sft.SFTConfig(seed=args.seed), work, args.seed)
        runs = [full]
        for r in args.ranks:
            fig, rows = one_run(f"lora_r{r}", sft.SFTConfig(seed=args.seed, lora_rank=r, lr=args.lr), work, args.seed)
            win = evaluation.win_rate(rows, full_rows)
            runs.append({**fig, "win_rate_vs_full": win["win_rate"], "ci95": win["ci95"]})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    record = {"machine": describe(), "seed": args.seed, "commands": [" ".join(["python benchmarks/lora.py"] + (
        argv if argv is not None else sys.argv[1:]))], "runs": runs}
    OUT.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    for r in runs:
        print({k: v for k, v in r.items() if k != "run"} | {"run": r["run"]})
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
