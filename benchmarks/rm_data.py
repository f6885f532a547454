"""The reward model's data curve: held-out accuracy, its labeler ceiling and prompt sensitivity against the number
of comparison prompts, and what each kind of candidate adds (lesson 03 plots the recorded curve).

For each setting the script collects the comparisons from the SFT stage (`reward.prepare_comparisons`), trains a
reward model (`reward.fit`, not saved), and measures on the held-out prompts: accuracy against the labeler, the
second labeler's agreement on the same pairs (the ceiling), accuracy against the gold order, and two probes — does it
prefer an answer to its own prompt over another prompt's answer (`probes.prompt_sensitivity`, on the SFT stage's
eval.json samples), and the hedge-free version of a hedged answer (`probes.hedge_probe`). Figures are printed as a
table and recorded with the machine in `benchmarks/rm_data_curve.json`.

    python benchmarks/rm_data.py                                  # the recorded sweep (≈ 15 min on 2 cores)
    python benchmarks/rm_data.py --prompts 300 1200 --mixes default sft_only
    python benchmarks/rm_data.py --points default:300 default:600 default:1200 sft_only:1200    # the recorded file
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

from rlhf_lib import evaluation, probes, reward, stages  # noqa: E402
from rlhf_lib.machine import describe  # noqa: E402

CURVE = Path(__file__).with_name("rm_data_curve.json")
# Candidate mixes per prompt (K = 9 at most): what the reward model is shown beside the SFT policy's own samples.
MIXES = {
    "default": {},                                                       # RMConfig's defaults
    "sft_only": {"written": 0, "sft_samples": 8, "other_prompts": 0, "wrong_years": 0},   # the earlier default
    "no_other_prompts": {"other_prompts": 0},
    "no_wrong_years": {"wrong_years": 0},
}


def measure(cfg: reward.RMConfig, rows: list[dict], records: list[dict]) -> dict:
    """Collect, train and probe one reward model (nothing saved)."""
    t0 = time.time()
    data = reward.prepare_comparisons(cfg)
    model, tok, m, norm = reward.fit(cfg, data)
    sens = probes.prompt_sensitivity(model, tok, norm, rows, records, seed=cfg.seed)
    hedge = probes.hedge_probe(model, tok, norm, data.heldout)
    return {"heldout_accuracy": m["heldout_accuracy"], "labeler_agreement": m["labeler_agreement"],
            "gold_accuracy": m["gold_accuracy"], "rm_prefers_own_prompt": sens["rm"],
            "prefers_hedge_free": hedge["prefers_hedge_free"], "n_heldout_pairs": m["n_heldout_pairs"],
            "reward_by_kind": m["reward_by_kind"], "prepare_s": data.prepare_s, "train_s": m["train_s"],
            "wall_s": round(time.time() - t0, 1)}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--prompts", type=int, nargs="+", default=[150, 300, 600, 1200])
    p.add_argument("--mixes", nargs="+", default=list(MIXES), choices=list(MIXES))
    p.add_argument("--points", nargs="+", metavar="MIX:PROMPTS", help="measure only these (mix, prompts) pairs")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    todo = ([(m, int(n)) for m, n in (x.split(":") for x in args.points)] if args.points
            else [(m, n) for m in args.mixes for n in args.prompts])
    rows = stages.read_json("sft", "eval.json")["samples"]
    records = evaluation.eval_prompts()
    base = reward.RMConfig(seed=args.seed)
    points = []
    for mix, n in todo:
        cfg = replace(base, n_prompts=n, **MIXES[mix])
        point = {"mix": mix, "n_prompts": n, **measure(cfg, rows, records)}
        points.append(point)
        print(json.dumps({k: v for k, v in point.items() if k != "reward_by_kind"}), flush=True)
    CURVE.write_text(json.dumps({"machine": describe(), "seed": args.seed, "config": repr(base),
                                 "mixes": {k: MIXES[k] for k in dict.fromkeys(m for m, _ in todo)}, "points": points},
                                indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print("\n| mix | prompts | held-out acc | ceiling | gap | gold acc | own prompt | hedge-free | s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for q in points:
        print(f"| {q['mix']} | {q['n_prompts']} | {q['heldout_accuracy']:.3f} | {q['labeler_agreement']:.3f} | "
              f"{q['labeler_agreement'] - q['heldout_accuracy']:.3f} | {q['gold_accuracy']:.3f} | "
              f"{q['rm_prefers_own_prompt']:.3f} | {q['prefers_hedge_free']:.3f} | {q['wall_s']} |")
    print(f"\nmachine: {describe()}; recorded in {CURVE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
