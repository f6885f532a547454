"""Reference figures: the course's headline numbers, per seed, with the machine they came from.

The same seed gives the same numbers on the same CPU model; another CPU model sums its matrix products in another
order, and the floats part from the third digit of a long run onwards. So a figure quoted in the README is only
meaningful with its machine and beside its spread. This script runs the whole pipeline (`rlhf all`, the lessons'
default settings) once per seed into `runs/reference/seed-<S>/` (the world's data is the committed one; every
training stage and the evaluation take the seed), computes the headline figures from the stage files, and records
them under this machine's CPU model in `benchmarks/reference_figures.json`, the file the README cites. The figures
of other machines already in the file are kept. The notebooks' assert thresholds are chosen from the spread printed
here (the table's min–max column), not from one run.

    python benchmarks/reference.py --seeds 0 1           # ≈ 10 min a seed on 2 cores
    python benchmarks/reference.py --seeds 0 --reuse     # recompute the figures from existing runs/reference/ runs
    python benchmarks/reference.py --seeds 0 --artifacts artifacts     # the figures of the lessons' own seed-0 run
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rlhf_lib import evaluation, paraphrases, probes, stages  # noqa: E402
from rlhf_lib.machine import describe  # noqa: E402
from rlhf_lib.reward_model import load_reward_model  # noqa: E402

FIGURES = Path(__file__).with_name("reference_figures.json")
TRAINING_STAGES = ("pretrain", "sft", "rm", "ppo", "eval")


def run_pipeline(seed: int, artifacts: Path) -> None:
    """`rlhf all` with `seed` for every training stage and the evaluation (the world's data stays seed 0)."""
    sets = [x for stage in TRAINING_STAGES for x in ("--set", f"{stage}.seed={seed}")]
    subprocess.run([sys.executable, "-m", "rlhf_lib", "all", "--artifacts", str(artifacts), *sets], check=True,
                   cwd=ROOT)


def figures(seed: int) -> dict:
    """The headline figures of the stages in the current artifacts folder."""
    metrics = {n: stages.read_json(n, "metrics.json") for n in ("base", "sft", "rm", "ppo")}
    base, rm, ppo = metrics["base"], metrics["rm"], metrics["ppo"]
    ev = {n: stages.read_json(n, "eval.json") for n in ("base", "sft", "ppo")}
    win = evaluation.win_rate(ev["ppo"]["samples"], ev["sft"]["samples"], seed=seed)
    model, tok, norm = load_reward_model(stages.stage_dir("rm"))
    sens = probes.prompt_sensitivity(model, tok, norm, ev["sft"]["samples"], evaluation.eval_prompts(), seed=seed)
    para = {n: paraphrases.evaluate_stage(n, seed=seed)["pass_rate"] for n in ("base", "sft", "ppo")}
    return {
        "base_heldout_loss": base["heldout_loss"],
        "sft_gold_mean": ev["sft"]["gold_mean"], "ppo_gold_mean": ev["ppo"]["gold_mean"],
        "rm_heldout_accuracy": rm["heldout_accuracy"], "rm_labeler_agreement": rm["labeler_agreement"],
        "rm_gold_accuracy": rm["gold_accuracy"], "rm_prefers_own_prompt": sens["rm"],
        "win_rate_ppo_vs_sft": win["win_rate"], "win_rate_ppo_vs_sft_ci95": win["ci95"],
        "truthful_sft": ev["sft"]["truthful"], "truthful_ppo": ev["ppo"]["truthful"],
        **{f"truthfulness_{n}": evaluation.alignment_axes(ev[n]["samples"])["truthfulness"] for n in ("sft", "ppo")},
        "truthfulness_change_ppo_vs_sft": evaluation.truthfulness_change(ev["ppo"]["samples"], ev["sft"]["samples"],
                                                                         seed=seed),
        "failure_rate_sft": ev["sft"]["failure_rate"], "failure_rate_ppo": ev["ppo"]["failure_rate"],
        "gold_change_ppo_vs_sft_by_category": evaluation.gold_change_by_category(ev["ppo"]["samples"],
                                                                                 ev["sft"]["samples"], seed=seed),
        "ppo_final_kl_seq": ppo["final_kl_seq"], "ppo_updates": ppo["updates"],
        "ppo_lr": stages.info("ppo")["config"]["lr"],
        **{f"paraphrase_pass_{n}": v for n, v in para.items()},
        "wall_s": {n: m.get("wall_s") for n, m in metrics.items()},
    }


def record(entries: dict[int, dict]) -> dict:
    """Merge this machine's figures into reference_figures.json (other machines' entries are kept)."""
    ref = json.loads(FIGURES.read_text(encoding="utf-8")) if FIGURES.is_file() else {"machines": []}
    machine = describe()
    mine = next((m for m in ref["machines"] if m["machine"]["cpu"] == machine["cpu"]), None)
    if mine is None:
        mine = {"machine": machine, "seeds": {}}
        ref["machines"].append(mine)
    mine["machine"], mine["date"] = machine, datetime.date.today().isoformat()
    mine["commit"] = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True,
                                    cwd=ROOT).stdout.strip()          # "-dirty": made with uncommitted changes
    mine["seeds"].update({str(s): f for s, f in entries.items()})
    FIGURES.write_text(json.dumps(ref, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    return ref


def report(ref: dict) -> str:
    """A markdown table: each scalar figure per machine and seed, with the min–max over all of them."""
    cols = [(m["machine"]["cpu"], s, f) for m in ref["machines"] for s, f in sorted(m["seeds"].items())]
    keys = [k for k, v in cols[0][2].items() if isinstance(v, (int, float))]
    lines = ["| figure | " + " | ".join(f"{cpu} seed {s}" for cpu, s, _ in cols) + " | spread |",
             "|---" * (len(cols) + 2) + "|"]
    for k in keys:
        vals = [f[k] for _, _, f in cols if isinstance(f.get(k), (int, float))]
        lines.append(f"| {k} | " + " | ".join(f"{f.get(k, float('nan')):.3f}" for _, _, f in cols) +
                     f" | {min(vals):.3f}–{max(vals):.3f} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--reuse", action="store_true", help="use existing runs/reference/seed-<S> runs")
    p.add_argument("--artifacts", type=Path, help="read the stages of this folder (made with the one seed given) "
                                                  "instead of running the pipeline")
    args = p.parse_args(argv)
    if args.artifacts and len(args.seeds) != 1:
        p.error("--artifacts reads one run: give the one seed it was made with")
    entries = {}
    for seed in args.seeds:
        artifacts = args.artifacts or ROOT / "runs" / "reference" / f"seed-{seed}"
        if not args.artifacts and not (args.reuse and (artifacts / "ppo" / "eval.json").is_file()):
            run_pipeline(seed, artifacts)
        with stages.located(stages.DATA_DIR, artifacts):
            entries[seed] = figures(seed)
        print(f"seed {seed}: " + json.dumps({k: v for k, v in entries[seed].items() if k != "wall_s"}), flush=True)
    print(report(record(entries)))
    print(f"\nmachine: {describe()}; recorded in {FIGURES.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
