"""PPO's diagnostics (lesson 04): one number per update for each of HISTORY_KEYS, agreed across ranks, and the
warnings that name a likely cause and fix when one of them looks wrong (Huang et al. 2023 list what to watch: KL,
ratio, EOS rate, length, explained variance)."""
from __future__ import annotations

import math

import torch

from .rl import explained_variance
from .rollout import Memory

HISTORY_KEYS = ("update", "score", "gold", "gold_eval", "kl", "kl_k3", "kl_seq", "kl_seq_se", "beta", "policy_loss",
                "value_loss", "clip_frac", "approx_kl", "ratio_mean", "ratio_max", "vf_clip_frac",
                "explained_var", "entropy", "eos_rate", "length", "ptx_loss", "t_generate", "t_score", "t_forward",
                "t_update")
BY_MAX = ("ratio_max",)                     # the diagnostics agreed across ranks by their max, not their mean


FIXES = {"2. score (reward model)": "the reward model returned NaN/inf: check its normalisation (gain/bias) and "
                                     "that it was trained to the end",
          "3. forward (log-probs, values)": "the policy or critic weights diverged in the previous update: lower lr "
                                            "(now {lr}) or clip_eps",
          "5. advantages": "check the scores and β; a huge β or score makes GAE overflow",
          "6. update": "the loss diverged: lower lr (now {lr}), fewer ppo_epochs, smaller clip_eps"}


def health_warnings(h: dict, i: int, cfg) -> list[str]:
    """Warnings (likely cause and fix) for the diagnostics of update i in history `h`."""
    out = []
    kl, se = h["kl_seq"][i], h["kl_seq_se"][i]
    if kl < -max(3 * se, 0.05):
        out.append(f"update {i}: KL to the reference is {kl:.3f} nats (noise ±{se:.3f}). A negative KL estimate "
                   "beyond noise means the log-probs are not those of the sampling distribution: sample with "
                   "top_k = 0 and top_p = 1 (truncated sampling makes k1 biased) and score with the same temperature")
    if h["ratio_mean"][i] > 1.2 or h["ratio_max"][i] > 50:        # a few rare tokens reaching ~10–20 is normal
        out.append(f"update {i}: ratio π/π_old reached mean {h['ratio_mean'][i]:.2f}, max {h['ratio_max'][i]:.1f}. "
                   f"The policy moves too far within one batch: lower lr (now {cfg.lr}) or ppo_epochs "
                   f"(now {cfg.ppo_epochs}), or lower clip_eps")
    eos0, eos = h["eos_rate"][0], h["eos_rate"][i]
    if eos < 0.8 and eos < eos0 - 0.1:
        out.append(f"update {i}: only {eos:.0%} of responses end with EOS (first batch: {eos0:.0%}). The policy learns "
                   "to ramble past max_new_tokens: make no_eos_penalty more negative or raise β")
    len0, length = h["length"][0], h["length"][i]
    if length > 1.5 * len0 or length < 0.5 * len0:
        out.append(f"update {i}: mean response length drifted from {len0:.1f} to {length:.1f} tokens. The policy is "
                   "probably exploiting a length bias of the reward model: raise β, lower lr or stop earlier")
    return out


def log_update(h: dict, i: int, mem: Memory, kl: dict, kl_per_seq, step_stats: list[dict], timings: dict) -> None:
    """Append update i's diagnostics to the history `h`: one value per key of HISTORY_KEYS."""
    mean = lambda k: float(torch.stack([s[k] for s in step_stats]).mean())   # noqa: E731
    h["update"].append(i)
    h["score"].append(float(mem.scores.mean()))
    h["kl"].append(float(kl["k1"])), h["kl_k3"].append(float(kl["k3"]))
    h["kl_seq"].append(float(kl_per_seq.mean()))
    h["kl_seq_se"].append(float(kl_per_seq.std() / math.sqrt(len(mem))))
    for k in ("policy_loss", "value_loss", "clip_frac", "approx_kl", "ratio_mean", "vf_clip_frac", "entropy"):
        h[k].append(mean(k))
    h["ratio_max"].append(max(float(s["ratio_max"]) for s in step_stats))
    h["ptx_loss"].append(mean("ptx_loss") if "ptx_loss" in step_stats[0] else float("nan"))
    h["explained_var"].append(explained_variance(mem.values, mem.returns, mem.mask))
    h["eos_rate"].append(float(mem.ended.float().mean()))
    h["length"].append(float(mem.mask.sum(-1).mean()))
    for k in ("generate", "score", "forward", "update"):
        h[f"t_{k}"].append(round(timings[k], 3))


def agree(h: dict, par) -> None:
    """Replace this update's diagnostics by their mean over the ranks (those of BY_MAX by their max)."""
    keys = [k for k in HISTORY_KEYS if k not in ("update", *BY_MAX) and h[k]]
    for k, v in zip(keys, par.reduce([h[k][-1] for k in keys])):
        h[k][-1] = v
    for k, v in zip(BY_MAX, par.reduce([h[k][-1] for k in BY_MAX], "max")):
        h[k][-1] = v
