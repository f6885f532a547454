"""PPO against a perfect reward model: the gold labeler itself (an upper bound for lessons 04-05).

    .venv/bin/python notebooks/drafts/gold_reward_ppo.py --updates 32

Trains stage `ppo_gold` with `ppo.gold_reward_fn` (gold scores standardised with the SFT policy's held-out mean and
standard deviation) instead of the reward model, then prints its held-out gold win rate against SFT, per category.
What PPO cannot reach here, no reward model will let it reach in the same budget.
"""
import argparse
import dataclasses
import statistics

import torch

from rlhf_lib import evaluation, ppo, stages

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--updates", type=int, default=32)
ap.add_argument("--lr", type=float, default=ppo.PPOConfig().lr)
ap.add_argument("--threads", type=int, default=1)
args = ap.parse_args()
torch.set_num_threads(args.threads)

sft = evaluation.stage_eval("sft")
gold = [r["score"] for r in sft["samples"]]
center, scale = statistics.mean(gold), statistics.pstdev(gold)
cfg = dataclasses.replace(ppo.PPOConfig(), updates=args.updates, lr=args.lr, out="ppo_gold")
m = ppo.run(cfg, reward_fn=ppo.gold_reward_fn(center, scale))
h = m["history"]
print(f"gold reward (standardised with SFT's mean {center:.3f} and std {scale:.3f}): "
      f"{h['score'][0]:+.2f} -> {h['score'][-1]:+.2f}; KL {m['final_kl_seq']:.2f} nats/response; {m['wall_s']} s")
rows = stages.read_json("ppo_gold", "eval.json")["samples"]
print(f"held-out gold mean SFT {sft['gold_mean']:.3f} -> PPO(gold reward) {m['eval_gold_mean']:.3f}; "
      f"failure rate {sft['failure_rate']:.3f} -> {m['eval_failure_rate']:.3f}")
print("win rate against SFT:", evaluation.win_rate(rows, sft["samples"]),
      "ceiling", round(evaluation.max_win_rate(sft["samples"]), 3))
print({c: v["win_rate"] for c, v in evaluation.win_rates_by_category(rows, sft["samples"]).items()})
