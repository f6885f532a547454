"""Lesson 08's views: GRPO and RLOO next to PPO (tables and matplotlib figures, shown as PNG).

`GroupDashboard` is the `on_log` callback of `grpo.run` and `rloo.run`; the other functions draw the lesson's
comparisons from the runs' metrics (`history`, `s_per_phase`, `groups_by_category`) and eval.json samples.
"""
from __future__ import annotations

import matplotlib.pyplot as plt

from .evaluation import win_rates_by_category
from .grpo import held_out_verifiable, verifiable_score
from .plots import UpdateDashboard
from .world import CATEGORIES

PHASES = ("generate", "score", "forward", "update")


def _points(h: dict, key: str):
    pts = [(u, v) for u, v in zip(h["update"], h[key]) if v is not None and v == v]      # skip NaN and null
    return list(zip(*pts)) if pts else ([], [])


def dashboard_figure(h: dict, title: str, updates: int | None = None):
    """Reward, gold, KL and the share of zero-advantage groups of a GRPO or RLOO history, one panel each."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.3))
    axes[0].plot(*_points(h, "score"), marker=".", label="reward of the rollouts")
    axes[0].plot(*_points(h, "gold"), marker=".", label="gold (rollouts)")
    axes[0].plot(*_points(h, "gold_eval"), marker="o", label="gold (fixed held-out batch)")
    axes[1].plot(*_points(h, "kl_seq"), marker=".", label="KL per response (k1)")
    axes[2].plot(*_points(h, "zero_adv_frac"), marker=".", color="C3", label="all rewards equal")
    axes[2].set_ylim(-0.03, 1.03)
    for ax, name in zip(axes, ("reward", "KL to the reference (nats)", "zero-advantage groups (share)")):
        ax.set(title=name, xlabel="update")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    last = h["update"][-1] + 1 if h["update"] else 0
    fig.suptitle(f"{title}: update {last}" + (f" of {updates}" if updates else ""), fontsize=11)
    fig.tight_layout()
    return fig


class GroupDashboard(UpdateDashboard):
    """`on_log` callback: redraws `dashboard_figure` in place every `every` updates and at the last one."""

    def __init__(self, title: str, every: int = 3, updates: int | None = None):
        super().__init__(title, every, updates)

    def figure(self, h: dict):
        return dashboard_figure(h, self.title, self.updates)


def phase_bars(per_phase: dict[str, dict], ax=None):
    """Stacked seconds per update by phase: `per_phase[method] = {"generate": s, "score": s, ...}`."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 2.4))
    names, left = list(per_phase), [0.0] * len(per_phase)
    for phase in PHASES:
        vals = [per_phase[n][phase] for n in names]
        ax.barh(names, vals, left=left, label=phase)
        left = [a + b for a, b in zip(left, vals)]
    ax.invert_yaxis()
    ax.set(xlabel="seconds per update", title="where the time goes (same number of responses per update)")
    ax.legend(fontsize=8, ncol=4, loc="lower right")
    return ax


def first_updates(metrics: dict, n: int) -> dict:
    """Mean seconds per phase and generated tokens over a run's first `n` updates (every method starts from the same
    SFT policy, so its first updates generate about as many tokens)."""
    h = metrics["history"]
    out = {p: round(sum(h[f"t_{p}"][:n]) / n, 3) for p in PHASES}
    tokens = h["tokens"][:n] if "tokens" in h else [x * metrics["responses_per_update"] for x in h["length"][:n]]
    return {**out, "total": round(sum(out.values()), 3), "tokens": round(sum(tokens) / n)}


def worse_categories(rows: list[dict], sft_rows: list[dict]) -> list[str]:
    """Categories where the policy loses to SFT beyond noise: the upper end of the win rate's 95 % interval < 0.5."""
    return [c for c, w in win_rates_by_category(rows, sft_rows).items() if c != "overall" and w["ci95"][1] < 0.5]


def category_deltas(evals: dict[str, dict], sft_eval: dict) -> list[dict]:
    """Table rows: per category, SFT's gold mean and each policy's difference from it."""
    return [{"category": c, "SFT gold": sft_eval["per_category"][c]["gold_mean"],
             **{f"{name} − SFT": round(ev["per_category"][c]["gold_mean"] - sft_eval["per_category"][c]["gold_mean"],
                                       3) for name, ev in evals.items()}}
            for c in CATEGORIES if c in sft_eval["per_category"]]


def zero_advantage_figure(runs: dict[str, dict]):
    """Left: the share of groups whose rewards are all equal, per update, for each run (`runs[name]` = metrics).
    Right: that share per category over the whole run (`groups_by_category`)."""
    fig, axes = plt.subplots(1, 2, figsize=(13, 3.5))
    for name, m in runs.items():
        axes[0].plot(*_points(m["history"], "zero_adv_frac"), marker=".", label=name)
    axes[0].set(title="groups with zero advantage", xlabel="update", ylabel="share of the update's groups",
                ylim=(-0.03, 1.03))
    width = 0.8 / len(runs)
    for k, (name, m) in enumerate(runs.items()):
        cats = [c for c in CATEGORIES if c in m["groups_by_category"]]
        share = [m["groups_by_category"][c]["zero_adv"] / m["groups_by_category"][c]["groups"] for c in cats]
        axes[1].bar([CATEGORIES.index(c) + (k - (len(runs) - 1) / 2) * width for c in cats], share, width,
                    label=name)
    axes[1].set_xticks(range(len(CATEGORIES)), CATEGORIES, rotation=30, fontsize=8)
    axes[1].set(title="by category, whole run", ylabel="share of groups", ylim=(0, 1.03))
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def verifiable_accuracy(rows: list[dict]) -> dict:
    """Share of right answers (`grpo.verifiable_score`) among eval.json samples whose prompt the world can check:
    {"all", "intent", "year": {"accuracy", "n"}}."""
    records = {r["id"]: r for r in held_out_verifiable()}
    right = [(records[r["id"]], verifiable_score(records[r["id"]], r["response"])) for r in rows if r["id"] in records]
    fams = {"all": right, "intent": [x for x in right if x[0]["category"] == "intent"],
            "year": [x for x in right if x[0]["category"] == "factual"]}
    return {k: {"accuracy": round(sum(s for _, s in v) / len(v), 4), "n": len(v)} for k, v in fams.items() if v}


def solved_or_hopeless_figure(h: dict, ax=None):
    """For a 0/1 reward, the zero-advantage groups split in two: all right (solved, nothing left to learn) and all
    wrong (no right answer to reinforce). Per update, with the reward of the rollouts (the share right)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.2))
    u, zero = _points(h, "zero_adv_frac")
    _, best = _points(h, "zero_adv_best_frac")
    ax.stackplot(u, best, [z - b for z, b in zip(zero, best)], labels=["all right (solved)", "all wrong (hopeless)"],
                 colors=["C2", "C3"], alpha=0.5)
    ax.plot(*_points(h, "score"), color="k", marker=".", label="share of right answers")
    ax.set(xlabel="update", ylabel="share", ylim=(0, 1.03), title="verifiable reward: groups with zero advantage")
    ax.legend(fontsize=8, loc="center right")
    ax.grid(alpha=0.3)
    return ax
