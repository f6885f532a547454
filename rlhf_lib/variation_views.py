"""Tables and figures of lesson 10 (Alpaca, KoAlpaca, LoRA): the self-instruct funnel and scores per language."""
from __future__ import annotations

import matplotlib.pyplot as plt

from .evaluation import summarize, win_rate
from .world import CATEGORIES

LANG_NAMES = {"en": "English prompts", "ko": "Korean prompts"}


def funnel_bars(m: dict, ax=None):
    """Self-instruct's funnel (`self_instruct.run`'s metrics): proposed → kept by ROUGE-L → translated → kept
    demonstrations per language."""
    steps = [("proposed (en)", m["proposed"]), ("kept by ROUGE-L", m["kept_by_rouge"]),
             ("translated (ko)", m["translated"]), ("demonstrations en", m["by_lang"]["en"]),
             ("demonstrations ko", m["by_lang"]["ko"])]
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 2.8))
    ax.barh([s for s, _ in steps][::-1], [n for _, n in steps][::-1], color="tab:blue")
    for i, (_, n) in enumerate(steps[::-1]):
        ax.text(n, i, f" {n}", va="center", fontsize=8)
    ax.set(xlabel="records", title=f"self-instruct from {m['seed_tasks']} seed tasks written by people")
    return ax


def rouge_hist(m: dict, threshold: float, ax=None):
    """Each proposed instruction's highest ROUGE-L against the kept ones of its family, and the threshold."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 2.8))
    ax.hist(m["rouge_max"], bins=20, range=(0, 1), color="tab:gray")
    ax.axvline(threshold, color="tab:red", ls="--", label=f"threshold {threshold} (kept left of it)")
    ax.set(xlabel="highest ROUGE-L against the kept instructions", ylabel="proposed instructions",
           title="near-duplicates")
    ax.legend(fontsize=8)
    return ax


def by_lang(ev: dict, lang: str) -> dict:
    """An eval.json's summary over the prompts of one language (overall and per category)."""
    return summarize([r for r in ev["samples"] if r["lang"] == lang])


def lang_rows(evals: dict[str, dict]) -> list[dict]:
    """One row per policy: gold mean on English and on Korean prompts, overall."""
    return [{"policy": name, **{LANG_NAMES[lang]: by_lang(ev, lang)["gold_mean"] for lang in ("en", "ko")},
             "all prompts": ev["gold_mean"]} for name, ev in evals.items()]


def category_lang_rows(evals: dict[str, dict]) -> list[dict]:
    """One row per category and language, one column per policy: the gold mean."""
    rows = []
    for lang in ("en", "ko"):
        parts = {name: by_lang(ev, lang)["per_category"] for name, ev in evals.items()}
        rows += [{"language": lang, "category": c, **{name: parts[name][c]["gold_mean"] for name in evals}}
                 for c in CATEGORIES if all(c in p for p in parts.values())]
    return rows


def lang_bars(evals: dict[str, dict], ax=None):
    """Gold mean per policy on English and on Korean prompts."""
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3))
    names, width = list(evals), 0.38
    for i, lang in enumerate(("en", "ko")):
        vals = [by_lang(evals[n], lang)["gold_mean"] for n in names]
        ax.bar([j + i * width for j in range(len(names))], vals, width, label=LANG_NAMES[lang])
    ax.set_xticks([j + width / 2 for j in range(len(names))], names, fontsize=8)
    ax.set(ylabel="gold mean", ylim=(0, 1), title="does alignment transfer across languages?")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def lang_win_rates(rows_a: list[dict], rows_b: list[dict]) -> dict:
    """`win_rate` of A over B overall and on each language's prompts."""
    out = {"overall": win_rate(rows_a, rows_b)}
    for lang in ("en", "ko"):
        out[lang] = win_rate([r for r in rows_a if r["lang"] == lang], rows_b)
    return out
