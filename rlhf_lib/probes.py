"""Probes of what training produced (lessons 03 and 05): does the reward model see the flaw PPO must remove
(`hedge_probe`), does it read the prompt (`prompt_sensitivity`), and how does an over-optimised policy fail
(`exploit_profile`)?"""
from __future__ import annotations

import random

from .build_data import task_from_record
from .comparisons import Comparison
from .labelers import judge
from .reward_model import score_texts
from .world import HEDGES, INTENT_LABELS


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


def judged(samples: list[dict], records: list[dict]) -> list[dict]:
    """Samples ({"id", "category", "response"}, e.g. a PPO run's last rollout) with the gold labeler's parts of each
    response, judged against the task of the record with the same id."""
    by_id = {r["id"]: r for r in records}
    return [{"category": s["category"], "response": s["response"],
             "parts": judge(task_from_record(by_id[s["id"]]), s["response"]).parts} for s in samples]


def exploit_profile(rows: list[dict]) -> dict:
    """How a policy's answers fail (lesson 05's over-optimisation): the share of non-intent prompts answered with a
    bare intent label, and the share of answers whose helpful, truthful, fluent or format part is below 0.5. Rows
    carry "category", "response" and the gold "parts" (eval.json samples, or `judged`)."""
    non_intent = [r for r in rows if r["category"] != "intent"]
    bare = sum(r["response"].strip().strip(".'\" ").lower() in INTENT_LABELS for r in non_intent)
    return {"bare intent label on a non-intent prompt": bare / max(1, len(non_intent)),
            **{f"{part} < 0.5": sum(r["parts"][part] < 0.5 for r in rows) / len(rows)
               for part in ("helpful", "truthful", "fluent", "format")}}


def prompt_sensitivity(model, tokenizer, norm: dict | None, rows: list[dict], records: list[dict],
                       seed: int = 0) -> dict:
    """Does the reward model read the prompt? Each answer of `rows` (eval.json samples, with their gold "score") is
    scored under its own prompt and as the answer to another prompt (a seeded shuffle). Returns the share of answers
    the reward model scores higher under their own prompt, the same share for the gold labeler, and n."""
    other = list(range(len(rows)))
    random.Random(seed).shuffle(other)
    prompts = [r["prompt"] for r in rows]
    own = score_texts(model, tokenizer, prompts, [r["response"] for r in rows], norm)
    swapped = score_texts(model, tokenizer, prompts, [rows[j]["response"] for j in other], norm)
    by_id = {r["id"]: r for r in records}
    gold_swapped = [judge(task_from_record(by_id[r["id"]]), rows[j]["response"]).score for r, j in zip(rows, other)]
    return {"rm": sum(a > b for a, b in zip(own, swapped)) / len(rows),
            "gold": sum(r["score"] > g for r, g in zip(rows, gold_swapped)) / len(rows), "n": len(rows)}
