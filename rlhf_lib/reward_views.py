"""Lesson 03's tables and plots of the reward model: comparisons, rewards, accuracy against the ceiling."""
from __future__ import annotations

import math
import textwrap

from .comparisons import Comparison, ComparisonData


def comparison_rows(c: Comparison, max_chars: int = 110) -> list[dict]:
    """One prompt's K responses as table rows, in the labeler's order."""
    gold_order = sorted(range(len(c.gold)), key=lambda i: -c.gold[i])
    rows = []
    for rank, i in enumerate(c.ranking, 1):
        text = c.responses[i] if len(c.responses[i]) <= max_chars else c.responses[i][:max_chars] + " …"
        rows.append({"labeler rank": rank, "written by": c.kinds[i], "response": text,
                     "labeler's score": round(c.scores[i], 3), "gold score": round(c.gold[i], 3),
                     "gold rank": gold_order.index(i) + 1, "2nd labeler rank": c.second.index(i) + 1})
    return rows


def plot_reward_hist(metrics: dict, ax=None):
    """Histogram of held-out rewards: each prompt's labeler-best vs labeler-worst response (normalised)."""
    import matplotlib.pyplot as plt
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 3.4))
    best, worst = metrics["rewards_best"], metrics["rewards_worst"]
    lo, hi = min(best + worst), max(best + worst)
    bins = [lo + (hi - lo) * k / 30 for k in range(31)]
    ax.hist(worst, bins=bins, alpha=0.6, label=f"ranked worst (mean {sum(worst) / len(worst):+.2f})", color="tab:red")
    ax.hist(best, bins=bins, alpha=0.6, label=f"ranked best (mean {sum(best) / len(best):+.2f})", color="tab:green")
    ax.set(xlabel="normalised reward r(x, y)", ylabel="held-out prompts", title="rewards of chosen vs rejected")
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


def plot_ceiling(results: dict, labeler: dict, ax=None):
    """Bars: held-out accuracy vs the labels and vs gold for each model in `results`, beside the labelers' own."""
    import matplotlib.pyplot as plt
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 3.8))
    names = ["labelers\n(2nd vs 1st;\n1st vs gold)", *(textwrap.fill(n, 24) for n in results)]
    vs_labels = [labeler["labeler_agreement"], *(m["heldout_accuracy"] for m in results.values())]
    vs_gold = [labeler["labeler_gold_accuracy"], *(m["gold_accuracy"] for m in results.values())]
    xs = range(len(names))
    ax.bar([x - 0.2 for x in xs], vs_labels, 0.4, label="agrees with the labeler's order")
    ax.bar([x + 0.2 for x in xs], vs_gold, 0.4, label="agrees with the gold order")
    for x, a, g in zip(xs, vs_labels, vs_gold):
        ax.text(x - 0.2, a + 0.01, f"{a:.3f}", ha="center", fontsize=8)
        ax.text(x + 0.2, g + 0.01, f"{g:.3f}", ha="center", fontsize=8)
    ax.axhline(0.5, color="grey", ls=":", lw=1)
    ax.set_xticks(list(xs), names, fontsize=8)
    ax.set(ylim=(0.4, 1.0), ylabel="pairwise accuracy (held-out)", title="the reward model against its ceiling")
    ax.legend(fontsize=8, loc="upper left")
    return ax


def data_summary(data: ComparisonData) -> str:
    comps = data.train + data.heldout
    ks = [len(c.responses) for c in comps]
    n_sft = sum(c.kinds.count("sft") for c in comps)
    pairs = sum(math.comb(len(c.responses), 2) for c in data.train)
    return (f"{len(data.train)} training prompts, {len(data.heldout)} held out; K = {min(ks)}..{max(ks)} responses per "
            f"prompt (mean {sum(ks) / len(ks):.1f}, of which {n_sft / len(comps):.1f} sampled from the SFT policy); "
            f"{pairs:,} training pairs")


def pick_example(comps: list[Comparison], category: str = "false_premise") -> Comparison:
    """A readable comparison for the lesson: English, with SFT samples, K ≥ 7, preferably of `category`."""
    readable = [c for c in comps if c.record.get("lang") == "en" and "sft" in c.kinds and len(c.responses) >= 7]
    return next((c for c in readable if c.record.get("category") == category), (readable or comps)[0])


def metrics_summary(m: dict) -> str:
    return (f"held-out accuracy {m['heldout_accuracy']:.3f} vs the labeler's order (a second labeler agrees "
            f"{m['labeler_agreement']:.3f}), gold accuracy {m['gold_accuracy']:.3f}; {m['steps']} steps, "
            f"{m['wall_s']} s")




def variant_rows(results: dict) -> list[dict]:
    return [{"reward model": name, "held-out accuracy (vs the labeler)": m["heldout_accuracy"],
             "gold accuracy": m["gold_accuracy"], "ceiling (2nd labeler)": m["labeler_agreement"],
             "seconds": m["wall_s"]} for name, m in results.items()]


def scored_rows(c: Comparison, rewards: list[float], max_chars: int = 110) -> list[dict]:
    """One prompt's responses with their rewards, in the labeler's order."""
    return [{"labeler rank": rank, "written by": c.kinds[i], "response": c.responses[i][:max_chars],
             "reward": rewards[i], "gold score": c.gold[i]} for rank, i in enumerate(c.ranking, 1)]
