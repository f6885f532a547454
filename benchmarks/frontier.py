"""The reward–KL frontier of DPO and PPO (lesson 07 plots the recorded points beside the learner's own run).

DPO at several β (each also with its gold win rate against SFT) and PPO checkpoints along one run, each
measured the same way (`frontier.point`): one sample per
prompt of the same fixed held-out batch (`ppo.fixed_eval_records`, balanced over the categories), at PPO's sampling
settings and seed, scored by the gold labeler, with KL(π‖π_SFT) of the same samples. DPO trains on the comparisons
of stage `rm` (`dpo.fit`, nothing saved); PPO trains from stage `sft` against stage `rm` with its default config
except `updates` and `beta` (nothing saved), measured every `--every` updates. Recorded with the machine in
`benchmarks/frontier.json`.

    python benchmarks/frontier.py                                          # the recorded sweep (≈ 15 min, 2 cores)
    python benchmarks/frontier.py --betas 0.1 --ppo-betas                  # one DPO point, no PPO run
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

from rlhf_lib import dpo, evaluation, frontier, ppo, stages  # noqa: E402
from rlhf_lib.machine import describe  # noqa: E402
from rlhf_lib.models import load_causal_lm  # noqa: E402

OUT = Path(__file__).with_name("frontier.json")


def dpo_points(betas: list[float], records: list[dict], sampling, seed: int, ref) -> list[dict]:
    """One DPO run per β (the default config otherwise): its frontier point, and its gold win rate against SFT on
    the evaluation's 320 held-out prompts (`evaluation.evaluate`, the SFT stage's eval.json as the baseline)."""
    sft_rows = evaluation.stage_eval("sft", seed=seed)["samples"]
    out = []
    for beta in betas:
        t0 = time.time()
        cfg = dpo.DPOConfig(beta=beta, seed=seed, out="")
        model, tok, m = dpo.fit(cfg)
        _, rows = evaluation.evaluate(model, tok, fmt="chat", seed=seed)                   # lesson 05's prompts
        win = evaluation.win_rate(rows, sft_rows)
        p = {"method": "DPO", "beta": beta, **frontier.point(model, ref, tok, records, sampling, seed=seed),
             "win_rate_vs_sft": win["win_rate"], "ci95": win["ci95"],
             "heldout_accuracy": round(m["heldout_accuracy"], 4), "steps": m["steps"],
             "chosen_logratio": round(m["chosen_logratio"], 3), "rejected_logratio": round(m["rejected_logratio"], 3),
             "wall_s": round(time.time() - t0, 1)}
        print(json.dumps(p), flush=True)
        out.append(p)
    return out


def ppo_points(beta: float, updates: int, every: int, records: list[dict], seed: int) -> list[dict]:
    """One PPO run (defaults but `updates` and `beta`), measured before its first update and every `every`."""
    cfg = replace(ppo.PPOConfig(), updates=updates, beta=beta, seed=seed, out="", gold_every=0, evaluate=False)
    prompts = ppo.checked_prompts(cfg)
    policy, ref, rm, critic, tok, rm_tok, norm = ppo.load_models(cfg)
    reward_fn = ppo.reward_model_fn(rm, rm_tok, norm, cfg.score_batch_size)
    out = []

    def measure(update: int) -> None:
        p = {"method": "PPO", "beta": beta, "update": update,
             **frontier.point(policy, ref, tok, records, cfg.sampling, seed=seed)}
        print(json.dumps(p), flush=True)
        out.append(p)
        policy.train()

    measure(0)
    ppo.train(cfg, policy, ref, critic, tok, prompts, reward_fn,
              on_log=lambda h: measure(len(h["score"])) if len(h["score"]) % every == 0 else None)
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--betas", type=float, nargs="*", default=[0.03, 0.1, 0.3, 1.0], help="DPO's β values")
    p.add_argument("--ppo-betas", type=float, nargs="*", default=[0.05, 0.0], help="one PPO run per β")
    p.add_argument("--updates", type=int, default=24, help="PPO updates per run")
    p.add_argument("--every", type=int, default=3, help="PPO updates between frontier points")
    p.add_argument("--prompts", type=int, default=160, help="held-out prompts per point")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    sampling = ppo.PPOConfig().sampling
    records = ppo.fixed_eval_records(args.prompts, args.seed)
    ref, tok = load_causal_lm(stages.existing("sft"))
    sft = {"method": "SFT", **frontier.point(ref, ref, tok, records, sampling, seed=args.seed)}
    points = [sft] + dpo_points(args.betas, records, sampling, args.seed, ref)
    for beta in args.ppo_betas:
        points += ppo_points(beta, args.updates, args.every, records, args.seed)
    OUT.write_text(json.dumps({"machine": describe(), "seed": args.seed, "prompts": args.prompts,
                               "sampling": repr(sampling), "points": points}, indent=1, ensure_ascii=False) + "\n",
                   encoding="utf-8")
    print("\n| method | β | update | gold | KL (nats) | win rate vs SFT |\n|---|---|---|---|---|---|")
    for q in points:
        win = f"{q['win_rate_vs_sft']:.3f} {q['ci95']}" if "win_rate_vs_sft" in q else ""
        print(f"| {q['method']} | {q.get('beta', '')} | {q.get('update', '')} | {q['gold']:.3f} | {q['kl']:.2f} | "
              f"{win} |")
    print(f"\nwritten to {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
