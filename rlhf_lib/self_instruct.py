"""Alpaca's data by self-instruct, and KoAlpaca's by translation (lesson 10): demonstrations no person wrote.

Self-instruct (Wang et al. 2022) starts from 175 human-written seed tasks; a model proposes new instructions, writes
their outputs, and a new instruction is kept only if it is not a near-duplicate of one already kept:

    keep x_new  ⇔  max_{x ∈ kept} ROUGE-L(x_new, x) < 0.7,     ROUGE-L = F-measure of the longest common subsequence

Stanford Alpaca ran it with text-davinci-003 as the teacher (52,002 records for under $500) and fine-tuned LLaMA-7B
on the result. KoAlpaca v1.0 translated Alpaca's instructions to Korean (DeepL) and let gpt-3.5-turbo write the
outputs again. Here, at the world's scale:

* **seed tasks** — `seeds_per_family` human-written demonstrations per family and language from the world's SFT
  data (`data/sft_alpaca.jsonl`): the only text people wrote;
* **new instructions** — the world's request generator (`tasks.sample_tasks` over the training users' requests)
  stands in for the teacher writing instructions: a 1.3M-parameter policy cannot invent requests, and this keeps the
  instructions as far from the held-out prompts as SFT's are. Only the *outputs* are the teacher's;
* **the ROUGE-L filter** — `rouge_score` (Google's implementation, which self-instruct used) with a tokenizer that
  keeps Hangul, against every kept instruction of the same family (near-duplicates never cross families);
* **the teacher** — the course's aligned policy (`teacher`, PPO of lesson 04) answers every kept instruction greedily;
  an output is dropped when it is cut at the length limit, empty, repeats itself, echoes its instruction or answers in
  the other language (the gold labeler is never asked: a real pipeline has no gold);
* **KoAlpaca** (`translate`) — every kept English instruction again in Korean: the world's Korean request with the
  same facts (for stories and some harmful requests the world has no word-for-word counterpart, so another Korean
  request of that family), and the teacher writes the Korean output anew, as KoAlpaca regenerated its outputs.

    metrics = run(SelfInstructConfig())     # writes artifacts/self_instruct/alpaca_data.jsonl (Alpaca's format)
"""
from __future__ import annotations

import json
import random
import re
import time
from collections import Counter, defaultdict
from dataclasses import dataclass

from . import stages
from .config import fixed, knob, to_dict, validate
from .data import check_stage_fields, read_demos, write_jsonl
from .generation import GenerationConfig, generate
from .labelers import repetition
from .tasks import WRAP, sample_tasks, split_users, wrap

DATA_FILE = "alpaca_data.jsonl"      # Stanford Alpaca's file name; records {instruction, input, output, …}
HANGUL = re.compile(r"[가-힣]")
REASONS = ("cut at the length limit", "empty", "repeats itself", "echoes the instruction", "wrong language")


@dataclass(frozen=True, kw_only=True)
class SelfInstructConfig:
    """Self-instruct with the aligned policy as the teacher (lesson 10)."""
    seeds_per_family: int = knob(3, lo=1, hi=20, help="human-written seed tasks per family and language "
                                                      "(self-instruct started from 175 in all)")
    instructions: int = knob(2400, lo=16, hi=6000, step=16,
                             help="new English instructions proposed (the ROUGE-L filter keeps about 1,000)")
    rouge_threshold: float = knob(0.7, lo=0.1, hi=1.0, step=0.05,
                                  help="keep an instruction only if its ROUGE-L with every kept one of its family "
                                       "is below this (self-instruct: 0.7)")
    translate: bool = knob(True, help="KoAlpaca: every kept instruction also in Korean, its output written anew")
    max_repetition: float = fixed(0.2, help="an output with more repeated trigrams than this is dropped")
    max_new_tokens: int = fixed(64, help="length limit of the teacher's outputs (an output cut there is dropped)")
    batch_size: int = fixed(128, help="instructions the teacher answers together")
    teacher: str = fixed("ppo", help="stage that writes the outputs: the course's aligned policy")
    seed: int = fixed(0, help="seed of the instructions drawn and of the translations picked")
    out: str = fixed("self_instruct", help="stage written (its alpaca_data.jsonl)")

    def __post_init__(self):
        validate(self)
        check_stage_fields(self, "teacher", "out")


# ------------------------------------------------------------------------------------------------ ROUGE-L
class WordTokenizer:
    """Lower-cased words, Hangul included (`rouge_score`'s default tokenizer keeps only a–z and 0–9, so every Korean
    instruction would be empty to it)."""
    def tokenize(self, text: str) -> list[str]:
        return re.findall(r"\w+", text.lower())


def rouge_scorer():
    from rouge_score import rouge_scorer as rs
    return rs.RougeScorer(["rougeL"], tokenizer=WordTokenizer())


def rouge_l(a: str, b: str, scorer=None) -> float:
    """ROUGE-L F-measure of two texts (symmetric)."""
    return (scorer or rouge_scorer()).score(a, b)["rougeL"].fmeasure


def novel(candidates: list[tuple[str, str]], kept: dict[str, list[str]], threshold: float,
          ) -> tuple[list[bool], list[float]]:
    """Self-instruct's filter, in order: candidate i = (family, instruction) is kept if its ROUGE-L with every
    instruction kept so far in its family (`kept`, seeded with the seed tasks, extended as it goes) is below
    `threshold`. Returns (kept?, highest ROUGE-L) per candidate.

    The longest common subsequence is at most the words two texts share, so 2·shared / (|a| + |b|) bounds ROUGE-L
    from above; `rouge_score` is asked only about pairs whose bound beats the best score found so far (the same
    result, several times faster)."""
    scorer, words, keep, best = rouge_scorer(), WordTokenizer().tokenize, [], []
    pool = defaultdict(list)
    for family, texts in kept.items():
        pool[family] = [(t, Counter(words(t))) for t in texts]
    for family, text in candidates:
        bag, top = Counter(words(text)), 0.0
        n = sum(bag.values())
        for other, other_bag in pool[family]:
            shared = sum((bag & other_bag).values())
            if shared and 2 * shared / (n + sum(other_bag.values())) > top:
                top = max(top, rouge_l(text, other, scorer))
        keep.append(top < threshold)
        best.append(round(top, 4))
        if top < threshold:
            pool[family].append((text, bag))
    return keep, best


# ------------------------------------------------------------------------------------------------ the steps
def seed_tasks(k: int) -> list[tuple[int, dict]]:
    """The first `k` demonstrations of each family and language in data/sft_alpaca.jsonl: (line, record)."""
    seen, out = Counter(), []
    for line, r in read_demos(stages.DATA_DIR / "sft_alpaca.jsonl", "alpaca"):
        if seen[(r["category"], r["lang"])] < k:
            seen[(r["category"], r["lang"])] += 1
            out.append((line, r))
    return out


def propose(n: int, seed: int) -> list:
    """n new English instructions from the world's training users' requests (tasks), balanced over families."""
    train, _ = split_users(seed)
    return sample_tasks([t for t in train if t.lang == "en"], n, random.Random(f"self-instruct:{seed}"), "si")


def _key(task) -> tuple:
    return task.category, json.dumps(task.meta, sort_keys=True)


def translate(tasks: list, seed: int) -> list:
    """Each English task as a Korean request of the world with the same facts (category and meta); where the world
    has no such request (stories, some harmful ones), another Korean request of the same family (and kind)."""
    train, _ = split_users(seed)
    ko = [t for t in train if t.lang == "ko"]
    by_key, by_kind = defaultdict(list), defaultdict(list)
    for t in ko:
        by_key[_key(t)].append(t)
        by_kind[(t.category, t.meta.get("kind"))].append(t)
    rng, out = random.Random(f"translate:{seed}"), []
    for t in tasks:
        pool = by_key.get(_key(t)) or by_kind.get((t.category, t.meta.get("kind"))) or \
            [k for k in ko if k.category == t.category]
        pre, post = rng.choice(WRAP["ko"])
        out.append(wrap(rng.choice(pool), pre, post, t.id.replace("si-", "si-ko-")))
    return out


def invalid(task, output: str, ended: bool, max_repetition: float, scorer) -> str | None:
    """Why the teacher's output is no demonstration (one of REASONS), or None. No gold labeler is asked."""
    if not ended:
        return REASONS[0]
    if not output.strip():
        return REASONS[1]
    if repetition(output) > max_repetition:
        return REASONS[2]
    if rouge_l(output, task.prompt, scorer) >= 0.7:
        return REASONS[3]
    if task.category != "intent" and bool(HANGUL.search(output)) != (task.lang == "ko"):
        return REASONS[4]
    return None


def answer(tasks: list, cfg: SelfInstructConfig, model, tokenizer, fmt: str) -> list:
    """The teacher's greedy outputs for `tasks` (Samples, in order)."""
    gen = GenerationConfig(temperature=0.0, max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size)
    return generate(model, tokenizer, [t.prompt for t in tasks], gen, fmt=fmt, seed=cfg.seed)


def run(cfg: SelfInstructConfig, on_log=None) -> dict:
    """Seeds → proposed instructions → ROUGE-L filter → (Korean translations) → the teacher's outputs → validity
    filter; write stage `cfg.out` with alpaca_data.jsonl and the funnel's counts in metrics.json."""
    t0 = time.time()
    seeds = seed_tasks(cfg.seeds_per_family)
    proposed = propose(cfg.instructions, cfg.seed)
    kept_seeds = defaultdict(list)
    for _, r in seeds:
        if r["lang"] == "en":
            kept_seeds[r["category"]].append(r["instruction"])
    keep, best = novel([(t.category, t.prompt) for t in proposed], kept_seeds, cfg.rouge_threshold)
    english = [t for t, k in zip(proposed, keep) if k]
    korean = translate(english, cfg.seed) if cfg.translate else []
    t_filter = time.time() - t0
    model, tokenizer, meta = stages.load_model(cfg.teacher)
    t1 = time.time()
    samples = answer(english + korean, cfg, model, tokenizer, meta["prompt_format"])
    t_teacher = time.time() - t1
    scorer, records, dropped = rouge_scorer(), [], []
    for task, s in zip(english + korean, samples):
        why = invalid(task, s.response, s.ended, cfg.max_repetition, scorer)
        if why:
            dropped.append({"id": task.id, "lang": task.lang, "category": task.category, "prompt": task.prompt,
                            "output": s.response, "why": why})
            continue
        records.append({"id": task.id, "category": task.category, "lang": task.lang, "instruction": task.instruction,
                        "input": task.input, "output": s.response, "kind": "teacher", "meta": task.meta})
    if not records:
        raise ValueError(f"self_instruct: the teacher '{cfg.teacher}' wrote no valid output for "
                         f"{len(samples)} instructions ({dict(Counter(d['why'] for d in dropped))}); use an aligned "
                         "teacher (ppo) or raise max_new_tokens")
    metrics = {
        "seed_tasks": len(seeds), "proposed": len(proposed), "kept_by_rouge": len(english),
        "rouge_max": best, "translated": len(korean), "answered": len(samples), "demonstrations": len(records),
        "by_lang": {lang: sum(r["lang"] == lang for r in records) for lang in ("en", "ko")},
        "by_family": dict(Counter(f"{r['lang']}:{r['category']}" for r in records)),
        "dropped": dict(Counter(d["why"] for d in dropped)),
        "dropped_examples": dropped[:40], "written_by_people": len(seeds),
        "filter_s": round(t_filter, 1), "teacher_s": round(t_teacher, 1), "wall_s": round(time.time() - t0, 1),
    }
    with stages.writing(cfg.out) as tmp:
        write_jsonl(tmp / DATA_FILE, records)
        read_demos(tmp / DATA_FILE, "alpaca")                     # what the student will read, checked now
        stages.write_json(tmp / "stage.json", {"stage": cfg.out, "config": to_dict(cfg),
                                               "upstream": [cfg.teacher], "prompt_format": meta["prompt_format"]})
        stages.write_json(tmp / "metrics.json", metrics)
    if on_log is not None:
        on_log(metrics)
    return metrics


def summary(m: dict) -> str:
    """One line of the funnel."""
    return (f"{m['seed_tasks']} seed tasks; {m['proposed']} instructions proposed, {m['kept_by_rouge']} kept by "
            f"ROUGE-L, {m['translated']} translated; {m['demonstrations']} demonstrations "
            f"({m['by_lang']['en']} English, {m['by_lang']['ko']} Korean) after dropping {sum(m['dropped'].values())}"
            f" outputs; teacher {m['teacher_s']} s, {m['wall_s']} s in all")


def demonstrations(name: str = "self_instruct") -> list[dict]:
    """The teacher's demonstrations of stage `name`, validated (`data.read_demos`)."""
    return [r for _, r in read_demos(stages.existing(name) / DATA_FILE, "alpaca")]
