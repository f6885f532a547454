"""Lesson 03's tables and plots of the reward model: comparisons, rewards, accuracy against the ceiling."""
from __future__ import annotations

import math
import textwrap

from .comparisons import Comparison, ComparisonData, pair_metrics
from .world import HEDGE_MARKERS, HEDGES


def hedge_of(response: str) -> str:
    """The hurried demonstrators' hedge a response carries ("" if none): what tells SFT's samples apart."""
    return next((m for m in HEDGE_MARKERS if m in response), "")


def distinct(c: Comparison) -> list[list[int]]:
    """The prompt's distinct responses, each as the list of its copies' indices, in the labeler's order of the best
    copy. The SFT policy often samples the same answer twice; copies are shown once."""
    groups: dict[str, list[int]] = {}
    for i in c.ranking:
        groups.setdefault(c.responses[i], []).append(i)
    return list(groups.values())


def comparison_rows(c: Comparison) -> list[dict]:
    """One prompt's responses as table rows, whole (the hedge that tells them apart is at their end), copies of one
    answer merged into one row with the ranks each copy got, in the labeler's order."""
    ranks = lambda order, ids: ", ".join(str(order.index(i) + 1) for i in ids)       # noqa: E731
    return [{"labeler's ranks": ranks(c.ranking, ids), "copies": len(ids), "written by": c.kinds[ids[0]],
             "response": c.responses[ids[0]], "hedge": hedge_of(c.responses[ids[0]]) or "—",
             "gold score": round(c.gold[ids[0]], 3), "2nd labeler's ranks": ranks(c.second, ids)}
            for ids in distinct(c)]


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
    ax.axhline(0.5, color="grey", ls=":", lw=1, label="chance (0.5)")
    ax.set_xticks(list(xs), names, fontsize=8)
    ax.set(ylim=(0.4, 1.0), ylabel="pairwise accuracy (held-out)", title="the reward model against its ceiling")
    ax.legend(fontsize=8, loc="upper left")
    return ax


def data_summary(data: ComparisonData) -> str:
    comps = data.train + data.heldout
    ks = [len(c.responses) for c in comps]
    kinds: dict[str, int] = {}
    for c in comps:
        for k in c.kinds:
            kinds[k] = kinds.get(k, 0) + 1
    pairs = sum(math.comb(len(c.responses), 2) for c in data.train)
    per_prompt = ", ".join(f"{n / len(comps):.2f} {KIND_NAMES.get(k, 'written: ' + k.replace('_', ' '))}"
                           for k, n in sorted(kinds.items(), key=lambda kv: -kv[1]))
    return (f"{len(data.train)} training prompts, {len(data.heldout)} held out; K = {min(ks)}..{max(ks)} responses per "
            f"prompt (mean {sum(ks) / len(ks):.1f}: {per_prompt}); {pairs:,} training pairs")


def _bare(response: str) -> str:
    """The response without a hedge at its end."""
    for hedge in (h for lang in HEDGES.values() for h in lang):
        if response.endswith(hedge):
            return response[:-len(hedge)].rstrip()
    return response


def pick_example(comps: list[Comparison], category: str = "factual") -> Comparison:
    """A readable comparison for the lesson: English, with SFT samples, at least 5 distinct responses, one answer
    among them both with and without the hedge, the hedge costing it gold score; the first of `category` if there is
    one. A fixed rule, not the prompt on which the reward model looks best."""
    def readable(c: Comparison) -> bool:
        gold = dict(zip(c.responses, c.gold))
        hedge_costs = any(_bare(r) != r and gold.get(_bare(r), 0.0) > gold[r] for r in gold)
        return c.record.get("lang") == "en" and "sft" in c.kinds and len(distinct(c)) >= 5 and hedge_costs
    shown = [c for c in comps if readable(c)]
    return next((c for c in shown if c.record.get("category") == category), (shown or comps)[0])


def metrics_summary(m: dict) -> str:
    return (f"held-out accuracy {m['heldout_accuracy']:.3f} vs the labeler's order (a second labeler agrees "
            f"{m['labeler_agreement']:.3f}), gold accuracy {m['gold_accuracy']:.3f}; {m['steps']} steps, "
            f"{m['wall_s']} s")


def variant_rows(results: dict) -> list[dict]:
    return [{"reward model": name, "held-out accuracy (vs the labeler)": m["heldout_accuracy"],
             "gold accuracy": m["gold_accuracy"], "ceiling (2nd labeler)": m["labeler_agreement"],
             "seconds": m["wall_s"]} for name, m in results.items()]


def scored_rows(c: Comparison, rewards: list[float]) -> list[dict]:
    """One prompt's distinct responses with their rewards, in the labeler's order (copies score alike: one row)."""
    return [{"labeler's ranks": ", ".join(str(c.ranking.index(i) + 1) for i in ids), "response": c.responses[ids[0]],
             "reward": round(rewards[ids[0]], 3), "gold score": round(c.gold[ids[0]], 3)} for ids in distinct(c)]


def prompt_agreement(c: Comparison, rewards: list[float]) -> str:
    """On one prompt's pairs of distinct responses: how often the reward orders them as the labeler did, and as
    gold did (gold ties left out), as `comparisons.pair_metrics` counts over all held-out prompts."""
    m = pair_metrics([c], [rewards])
    return (f"on this prompt the reward model orders {m['accuracy'] * m['n_pairs']:.0f} of {m['n_pairs']} pairs of "
            f"distinct responses as the labeler did, {m['gold_accuracy'] * m['n_gold_pairs']:.0f} of "
            f"{m['n_gold_pairs']} as the gold labeler does")


# Who wrote a candidate, in words, for the by-kind plot (kinds not named here are shown as they are).
KIND_NAMES = {"sft": "SFT sample", "wrong_year": "SFT sample, years swapped",
              "other_prompt": "SFT answer to another prompt", "ideal": "written: ideal", "hedged": "written: hedged",
              "wrong_fact": "written: wrong fact", "toxic": "written: insult", "off_topic": "written: off topic",
              "more_questions": "written: more questions"}


def plot_by_kind(metrics: dict, ax=None, min_count: int = 0):
    """Bars: mean reward of each kind of candidate on the held-out prompts, minus the mean of its prompt's candidates,
    beside the same for the gold score (scaled to the reward's spread so both fit one axis). A kind the reward model
    ranks where gold does is learned; one it ranks higher than gold does is a blind spot."""
    import matplotlib.pyplot as plt
    rew, gold = metrics["reward_by_kind"], metrics["gold_by_kind"]
    kinds = sorted(rew, key=lambda k: rew[k])
    scale = max(abs(v) for v in rew.values()) / max(1e-9, max(abs(v) for v in gold.values()))
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 0.32 * len(kinds) + 1.2))
    ys = range(len(kinds))
    ax.barh([y + 0.2 for y in ys], [rew[k] for k in kinds], 0.4, label="reward model (normalised)")
    ax.barh([y - 0.2 for y in ys], [gold[k] * scale for k in kinds], 0.4, label=f"gold score × {scale:.1f}")
    ax.set_yticks(list(ys), [KIND_NAMES.get(k, f"written: {k.replace('_', ' ')}") for k in kinds], fontsize=8)
    ax.axvline(0, color="grey", lw=1)
    ax.set(xlabel="mean of (value − the prompt's mean), held-out prompts", title="what each kind of candidate scores")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    return ax


def plot_data_curve(curve: dict, metrics: dict, cfg, ax=None):
    """The recorded data curve of `benchmarks/rm_data.py` (held-out accuracy and its ceiling against the number of
    comparison prompts, per candidate mix) with this run's point on it."""
    import matplotlib.pyplot as plt
    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 3.6))
    for i, mix in enumerate(dict.fromkeys(p["mix"] for p in curve["points"])):
        pts = sorted((p for p in curve["points"] if p["mix"] == mix), key=lambda p: p["n_prompts"])
        xs = [p["n_prompts"] for p in pts]
        ax.plot(xs, [p["heldout_accuracy"] for p in pts], "o-", color=f"C{i}", label=f"{mix}: reward model")
        ax.plot(xs, [p["labeler_agreement"] for p in pts], "s:", color=f"C{i}", alpha=0.6,
                label=f"{mix}: 2nd labeler (ceiling)")
    ax.plot([cfg.n_prompts], [metrics["heldout_accuracy"]], "*", color="black", ms=14, label="this run")
    ax.axhline(0.5, color="grey", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set(xlabel="comparison prompts (train + held out)", ylabel="held-out pairwise accuracy",
           title=f"accuracy against data (recorded on {curve['machine']['cpu']}, seed {curve['seed']})")
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    return ax
