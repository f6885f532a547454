"""Probes of a trained reward model (lessons 03 and 05): does it see the flaws PPO must remove, and does it read the
prompt?"""
from __future__ import annotations

from .comparisons import Comparison
from .reward_model import score_texts
from .world import HEDGES

def strip_hedge(text: str) -> str:
    """The response without the hurried demonstrators' hedge ("… I'm not completely sure, though.")."""
    for h in HEDGES["en"] + HEDGES["ko"]:
        text = text.replace(" " + h, "").replace(h, "")
    return text.strip()


def hedge_probe(model, tokenizer, norm: dict | None, comps: list[Comparison]) -> dict:
    """How often the reward model scores the hedge-free version of a hedged response above the response itself, over
    the distinct hedged responses of `comps`. The hedge is the flaw SFT copies from its hurried demonstrators (lesson
    02): the one PPO most needs the reward model to see. {"prefers_hedge_free", "mean_gain", "n"}."""
    pairs = [(c.record["prompt"], r) for c in comps for r in dict.fromkeys(c.responses) if strip_hedge(r) != r]
    if not pairs:
        return {"prefers_hedge_free": float("nan"), "mean_gain": float("nan"), "n": 0}
    prompts = [p for p, _ in pairs]
    with_hedge = score_texts(model, tokenizer, prompts, [r for _, r in pairs], norm)
    without = score_texts(model, tokenizer, prompts, [strip_hedge(r) for _, r in pairs], norm)
    gains = [b - a for a, b in zip(with_hedge, without)]
    return {"prefers_hedge_free": sum(g > 0 for g in gains) / len(gains), "mean_gain": sum(gains) / len(gains),
            "n": len(gains)}
