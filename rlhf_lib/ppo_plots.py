"""Plots for PPO and its evaluation (lessons 04–05). Matplotlib figures, shown as PNG.

`PPODashboard` is the `on_log` callback of `ppo.run`: it redraws every diagnostic in place every few updates and at
the last one, and leaves that final figure in the notebook. The other functions draw lesson 04's and 05's
comparisons.
"""
from __future__ import annotations

import math

import matplotlib.pyplot as plt

from .plots import UpdateDashboard
from .world import CATEGORIES

# (title, [(history key, label)], y label) — one panel each
PANELS = (
    ("reward", [("score", "RM score (proxy)"), ("gold", "gold score (rollouts)"),
                ("gold_eval", "gold score (fixed held-out batch)")], "score"),
    ("KL to the reference", [("kl", "k1 per token"), ("kl_k3", "k3 per token")], "nats per token"),
    ("KL per response and β", [("kl_seq", "KL per response"), ("beta", "β (×100)")], "nats; β × 100"),
    ("losses", [("policy_loss", "policy loss"), ("value_loss", "value loss"), ("ptx_loss", "ptx loss")], "loss"),
    ("PPO ratio", [("clip_frac", "clip fraction"), ("ratio_mean", "ratio mean"), ("ratio_max", "ratio max")],
     "ratio; fraction"),
    ("critic", [("explained_var", "explained variance")], "explained variance"),
    ("entropy", [("entropy", "entropy per token")], "nats per token"),
    ("responses", [("eos_rate", "EOS rate"), ("length", "length / 64 tokens")], "rate; length / 64"),
)
_SCALE = {"beta": 100.0, "length": 1 / 64}


def _series(h: dict, key: str):
    pts = [(u, v * _SCALE.get(key, 1.0)) for u, v in zip(h["update"], h.get(key, [])) if v == v]  # skip NaN
    return list(zip(*pts)) if pts else None


def dashboard_figure(h: dict, title: str = "PPO", updates: int | None = None):
    """All diagnostics of a PPO history, two panels a row, each with its y label and legend; the title says how
    far training has got (update n of `updates`)."""
    fig, axes = plt.subplots(4, 2, figsize=(10, 10.5), sharex=True)
    n = len(h["update"])
    for ax, (name, keys, ylabel) in zip(axes.flat, PANELS):
        for key, label in keys:
            s = _series(h, key)
            if s:
                sparse = len(s[0]) < n / 2                       # measured every few updates: draw the points
                ax.plot(*s, marker="o" if sparse else "." if n < 40 else None, label=label)
        ax.set(title=name, ylabel=ylabel)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8.5, loc="best")
    for ax in axes[-1]:
        ax.set_xlabel("update")
    last = h["update"][-1] + 1 if n else 0
    fig.suptitle(f"{title}: update {last}" + (f" of {updates}" if updates else ""), fontsize=12)
    fig.tight_layout()
    return fig


class PPODashboard(UpdateDashboard):
    """`on_log` callback: redraws `dashboard_figure` in place every `every` updates and at the last one."""

    def __init__(self, title: str = "PPO", every: int = 1, updates: int | None = None):
        super().__init__(title, every, updates)

    def figure(self, h: dict):
        return dashboard_figure(h, self.title, self.updates)


def win_rate_bars(results: dict[str, dict], title: str = "gold win rate against SFT", ax=None):
    """Grouped bars with 95 % bootstrap intervals: `results[policy][category] = {"win_rate", "ci95"}`; the key
    "overall" is drawn first. 0.5 = as good as the baseline."""
    names = list(results)
    cats = ["overall"] + [c for c in CATEGORIES if all(c in results[n] for n in names)]
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 3.6))
    width = 0.8 / len(names)
    for i, n in enumerate(names):
        wr = [results[n][c]["win_rate"] for c in cats]
        lo = [w - results[n][c]["ci95"][0] for c, w in zip(cats, wr)]
        hi = [results[n][c]["ci95"][1] - w for c, w in zip(cats, wr)]
        ax.bar([j + i * width for j in range(len(cats))], wr, width, yerr=[lo, hi], capsize=2,
               label=f"{n} ({results[n]['overall']['win_rate']:.2f} overall)")
    ax.axhline(0.5, color="k", lw=0.8, ls="--")
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(cats))], [c.replace("_", "\n") for c in cats], fontsize=8)
    ax.set(ylabel="win rate (ties = ½)", ylim=(0, 1.05), title=title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def failure_shift_rows(before: list[dict], after: list[dict], names: tuple[str, str] = ("SFT", "PPO")) -> list[dict]:
    """Per category, two policies' eval samples on the same prompts: failure rates, answers that newly fail and newly
    pass, and what the new failures lack: nothing of what was asked (helpful part 0: an answer to another question)
    or the truth (truthful part below 0.5). A response fails when any gold part is below 0.5."""
    old = {r["id"]: r for r in before}
    a, b = names
    rows = []
    for cat in dict.fromkeys(r["category"] for r in after):
        rs = [r for r in after if r["category"] == cat]
        new = [r for r in rs if r["failed"] and not old[r["id"]]["failed"]]
        rows.append({"category": cat, f"{a} failure rate": sum(old[r["id"]]["failed"] for r in rs) / len(rs),
                     f"{b} failure rate": sum(r["failed"] for r in rs) / len(rs), "newly failed": len(new),
                     "newly passing": sum(old[r["id"]]["failed"] and not r["failed"] for r in rs),
                     "new failures: helpful 0": sum(r["parts"]["helpful"] == 0 for r in new),
                     "new failures: untruthful": sum(r["parts"]["truthful"] < 0.5 for r in new)})
    return rows


def new_failure_examples(before: list[dict], after: list[dict], names: tuple[str, str] = ("SFT", "PPO"),
                         per_category: int = 1, lang: str = "en") -> list[dict]:
    """Answers that passed before and fail after, side by side: the first `per_category` of each category, those in
    `lang` first."""
    old = {r["id"]: r for r in before}
    a, b = names
    out, seen = [], {}
    for r in sorted(after, key=lambda r: r["lang"] != lang):
        o = old[r["id"]]
        if r["failed"] and not o["failed"] and seen.get(r["category"], 0) < per_category:
            seen[r["category"]] = seen.get(r["category"], 0) + 1
            out.append({"category": r["category"], "prompt": r["prompt"], a: o["response"], f"{a} gold": o["score"],
                        b: r["response"], f"{b} gold": r["score"],
                        f"{b} fails on": ", ".join(p for p, v in r["parts"].items() if v < 0.5)})
    return out


def overoptimization_plot(runs: dict[str, dict], axes=None):
    """Gao et al. 2022: proxy (RM) and gold score against d = √KL(π ‖ π_SFT) along PPO runs.
    `runs[label]` is a PPO history (per-update `kl_seq`, `score`, `gold`)."""
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for label, h in runs.items():
        d = [math.sqrt(max(k, 0.0)) for k in h["kl_seq"]]
        axes[0].plot(d, h["score"], marker=".", label=label)
        axes[1].plot(d, h["gold"], marker=".", label=label)
    axes[0].set(title="proxy: reward-model score", xlabel="√KL per response (nats^½)", ylabel="RM score")
    axes[1].set(title="gold score (what people would prefer)", xlabel="√KL per response (nats^½)", ylabel="gold score")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return axes


def phase_time_bars(per_phase: dict[str, dict], ax=None):
    """Stacked seconds per PPO update by phase: `per_phase[run] = {"generate": s, "score": s, ...}`."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 2.6))
    names = list(per_phase)
    left = [0.0] * len(names)
    for phase in ("generate", "score", "forward", "update"):
        vals = [per_phase[n][phase] for n in names]
        ax.barh(names, vals, left=left, label=phase)
        left = [a + b for a, b in zip(left, vals)]
    ax.set(xlabel="seconds per PPO update", title="where the time goes")
    ax.legend(fontsize=8, ncol=4)
    return ax


def token_plot(mem, tokenizer, row: int | None = None, ax=None):
    """One response of a rollout token by token: the critic's value V_t, the per-token reward r_t (KL penalty, plus
    the score on the last token) and the whitened advantage A_t. `row` defaults to the longest response under 30
    tokens (readable labels)."""
    import torch
    lengths = mem.mask.sum(-1)
    b = int(torch.argmax(lengths * (lengths < 30))) if row is None else row
    T = int(mem.mask[b].sum())
    labels = [tokenizer.decode([i]) for i in mem.actions[b, :T].tolist()]
    if ax is None:
        _, ax = plt.subplots(figsize=(12, 3))
    ax.plot(mem.values[b, :T], marker="o", label="value V_t (critic = RM)")
    ax.bar(range(T), mem.rewards[b, :T], alpha=0.4, label="reward r_t")
    ax.plot(mem.adv[b, :T], marker=".", label="advantage A_t (whitened)")
    ax.axhline(float(mem.scores[b]), color="gray", ls=":", label=f"RM score {float(mem.scores[b]):.2f}")
    ax.set_xticks(range(T), labels, rotation=90, fontsize=7)
    ax.set_title(mem.records[b]["prompt"].split("\n")[0][:90])            # the first line: the request
    ax.legend(fontsize=7, ncol=4)
    ax.grid(alpha=0.3)
    ax.figure.tight_layout()
    return ax
