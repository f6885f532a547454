"""Lessons 07–08: DPO's log-ratio curves, the reward–KL frontier of every method on one plot, the methods table."""
from __future__ import annotations

import matplotlib.pyplot as plt

MARKERS = {"SFT": ("k", "s"), "DPO": ("tab:blue", "o"), "PPO": ("tab:red", "^"), "PPO-ptx": ("tab:orange", "^"),
           "GRPO": ("tab:green", "D"), "RLOO": ("tab:purple", "v")}


def plot_logratios(history: dict, axes=None):
    """Left: log π/π_ref of the labeler's best and worst held-out answer (their difference, times β, is the margin
    DPO widens). Right: the log-probs themselves — where both fall, DPO widened the margin by pushing the worse
    answer down faster than the better one, and the probability went somewhere else."""
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(12, 3.4))
    for ax, (key, ylabel) in zip(axes, (("logratio", "log π/π_ref (nats)"), ("logp", "log π(y|x) (nats)"))):
        for side, color in (("chosen", "tab:green"), ("rejected", "tab:red")):
            ax.plot(history["step"], history[f"{side}_{key}"], marker=".", color=color,
                    label=f"{'best' if side == 'chosen' else 'worst'} answer ({side})")
        ax.set(xlabel="optimizer step", ylabel=ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].axhline(0, color="grey", lw=0.8, ls=":")
    axes[0].set_title("held-out answers, relative to the reference")
    axes[1].set_title("held-out answers, absolute")
    return axes


def plot_frontier(recorded: list[dict], live: list[dict] = (), ax=None, title: str = "reward–KL frontier"):
    """Gold of held-out samples against KL(π‖π_SFT): `recorded` points (faint; PPO's joined in update order, each
    DPO point labelled with its β) and `live` points of this run (large, outlined). Up and to the left is better."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 4.6))
    by_run: dict = {}
    for p in recorded:
        by_run.setdefault((p["method"], p.get("beta")), []).append(p)
    for (method, beta), pts in by_run.items():
        color, marker = MARKERS.get(method, ("tab:gray", "x"))
        if method == "PPO":
            pts = sorted(pts, key=lambda p: p.get("update", 0))
            ax.plot([p["kl"] for p in pts], [p["gold"] for p in pts], color=color, marker=marker, alpha=0.45,
                    ms=5, ls="-" if beta else "--", label=f"PPO β = {beta}, recorded (every few updates)")
            last = pts[-1]
            ax.annotate(f"update {last.get('update')}", (last["kl"], last["gold"]), fontsize=7, alpha=0.7,
                        xytext=(4, -8), textcoords="offset points")
        else:
            ax.scatter([p["kl"] for p in pts], [p["gold"] for p in pts], color=color, marker=marker, alpha=0.45,
                       s=30, label=f"{method}, recorded" if method != "SFT" else "SFT")
            if method != "SFT":
                for p in pts:
                    ax.annotate(f"β={beta}", (p["kl"], p["gold"]), fontsize=7, alpha=0.7, xytext=(4, 3),
                                textcoords="offset points")
    for p in live:
        color, marker = MARKERS.get(p["method"], ("tab:gray", "x"))
        ax.scatter([p["kl"]], [p["gold"]], color=color, marker=marker, s=140, edgecolor="k", linewidth=1.2, zorder=5,
                   label=f"{p['label']} (this run)")
    ax.set(xlabel="KL(π ‖ π_SFT) per response (nats)", ylabel="gold score of held-out samples", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return ax


def training_seconds(m: dict) -> float | None:
    """Seconds a stage spent training, from its metrics.json: updates × seconds per update for the RL trainers (their
    phases, without the final evaluation), the reference pass plus the loop for DPO, the whole run for SFT."""
    if "s_per_update" in m:
        return round(m["s_per_update"] * m["updates"], 1)
    if "train_s" in m:
        return round(m.get("reference_s", 0.0) + m["train_s"], 1)
    return m.get("wall_s")


def models_held(name: str, m: dict) -> int:
    """Models in memory while the stage trains: the RL trainers count theirs (`models`); PPO holds policy, reference,
    reward model and critic; DPO and SFT hold one (DPO's reference log-probs are computed before training starts)."""
    if m.get("models"):
        return len(m["models"])
    return 4 if name.startswith("PPO") else 1


def method_rows(results: dict[str, dict]) -> list[dict]:
    """One table row per policy: `results[name]` holds win (win_rate, ci95, or None for the baseline), gold, kl,
    models and train_s."""
    rows = []
    for name, r in results.items():
        w = r.get("win")
        rows.append({"policy": name,
                     "win rate vs SFT [95 % CI]": (f"{w['win_rate']:.3f} [{w['ci95'][0]:.3f}, {w['ci95'][1]:.3f}]"
                                                   if w else "—"),
                     "gold (frontier batch)": f"{r['gold']:.3f}", "KL to SFT (nats)": f"{r['kl']:.2f}",
                     "models in memory": r["models"],
                     "training s": "—" if r["train_s"] is None else f"{r['train_s']:.0f}"})
    return rows
