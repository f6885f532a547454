"""Rebuild `data/` from a seed: `python -m rlhf_lib.build_data --seed 0 --out data` (lesson 00).

Writes the web corpus, SFT demonstrations (Alpaca and chat formats), ranked comparisons, RL prompts, held-out
evaluation prompts and `world.json` (split sizes, calibrated labeler noise and measured agreement, and the world's
tuned constants `world.WORLD_CONFIG`). The sizes keep InstructGPT's proportions (13k SFT : 33k RM : 31k PPO prompts)
at CPU scale. `tests/test_world.py` proves that the committed files equal this function's output.
"""
from __future__ import annotations

import argparse
import difflib
import json
import random
from dataclasses import dataclass
from pathlib import Path

from . import labelers
from .app_data import apps_dir, build_apps
from .config import fixed, knob, to_dict, validate
from .data import Invalid, check_meta, write_jsonl
from .knowledge import GENRES, PERSON_DATES
from .responses import demonstration, write_responses
from .tasks import WRAP_HELDOUT, is_seed, sample_tasks, split_users
from .web import web_corpus
from .world import (
    ANIMAL_BY_KEY,
    CATEGORIES,
    EVENT_BY_KEY,
    INTENT_LABELS,
    MOVIE_BY_TITLE,
    SEED_PROMPTS,
    WORLD_CONFIG,
    Task,
)

SYSTEM_PROMPT = {"en": "You are a helpful, truthful and harmless assistant.",
                 "ko": "당신은 도움이 되고 정직하며 해롭지 않은 어시스턴트입니다."}


@dataclass(frozen=True)
class DataSizes:
    """How many records each file gets; the defaults give the committed data/."""
    web_docs: int = knob(12000, lo=10, hi=1_000_000, help="web documents, the pretraining corpus")
    sft_alpaca: int = knob(2000, lo=1, hi=1_000_000, help="demonstrations in Alpaca format")
    sft_chat: int = knob(2000, lo=1, hi=1_000_000, help="demonstrations in chat format")
    comparisons: int = knob(3000, lo=10, hi=1_000_000, help="prompts with 4-9 written responses ranked by a simulated "
                                                              "labeler")
    rl_prompts: int = knob(3000, lo=1, hi=1_000_000, help="prompts for PPO")
    eval_per_category: int = knob(40, lo=8, hi=10_000, help="held-out evaluation prompts per category, the seed "
                                                            "prompts included")

    def __post_init__(self):
        validate(self)


@dataclass(frozen=True, kw_only=True)
class DataConfig(DataSizes):
    """Sizes and seed of the simulated world's data (`rlhf data`); the defaults give the committed data/."""
    seed: int = fixed(0, help="seed of the world's sampling and of the labelers' calibration")

    def sizes(self) -> DataSizes:
        """The `DataSizes` that `build` takes (without the seed)."""
        return DataSizes(**{f: getattr(self, f) for f in DataSizes.__dataclass_fields__})


def task_record(t: Task) -> dict:
    return {"id": t.id, "category": t.category, "lang": t.lang, "prompt": t.prompt, "instruction": t.instruction,
            "input": t.input, "meta": t.meta}


# What a meta key names in the world: a record naming something else could not be judged by the gold labeler.
_NAMES = {"event": ("an event", EVENT_BY_KEY), "person": ("a person", PERSON_DATES),
          "animal": ("an animal", ANIMAL_BY_KEY), "genre": ("a genre", GENRES), "title": ("a movie", MOVIE_BY_TITLE),
          "avoid": ("a movie (or '')", MOVIE_BY_TITLE), "label": ("an intent label", INTENT_LABELS)}


def _unknown(key: str, value) -> str:
    what, known = _NAMES[key]
    close = difflib.get_close_matches(str(value), [str(k) for k in known], n=1)
    listed = ", ".join(map(str, known)) if len(known) <= 16 else f"{len(known)} in rlhf_lib/knowledge.py"
    return f"{value!r} is not {what} of the world" + (f" (did you mean {close[0]!r}?)" if close else "") + \
        f"; known: {listed}"


def task_from_record(rec: dict) -> Task:
    """Rebuild the `Task` behind a prompt, demonstration or comparison record (for the gold labeler).

    A record the gold labeler could not judge raises `data.Invalid` (a ValueError) naming the field: an unknown
    category or language, a `meta` without the keys its category needs (`data.CATEGORY_META`), or one naming an
    event, person, animal, genre, movie or intent label the world does not have."""
    instruction = rec.get("instruction")
    if instruction is None and isinstance(rec.get("messages"), list):   # a chat record: the user message
        instruction = next((m.get("content") for m in rec["messages"] if isinstance(m, dict)
                            and m.get("role") == "user"), None)
    instruction = rec.get("prompt") if instruction is None else instruction
    if not isinstance(instruction, str):
        raise Invalid("missing: the task needs an 'instruction', a 'prompt' or chat 'messages' with a user turn",
                      at="instruction")
    if rec.get("category") not in CATEGORIES:
        raise Invalid(f"{rec.get('category')!r} is not a category of the world; categories: {', '.join(CATEGORIES)}",
                      at="category")
    if rec.get("lang") not in ("en", "ko"):
        raise Invalid(f"{rec.get('lang')!r} is not a language of the world; use 'en' or 'ko'", at="lang")
    check_meta(rec["category"], rec.get("meta"))
    for key, value in rec["meta"].items():
        if key in _NAMES and value not in _NAMES[key][1] and not (key == "avoid" and value == ""):
            raise Invalid(_unknown(key, value), at=f"meta.{key}")
    return Task(id=rec.get("id", ""), category=rec["category"], lang=rec["lang"], instruction=instruction,
                input=rec.get("input", ""), meta=rec["meta"])


def build(out: Path, seed: int = 0, sizes: DataSizes = DataSizes()) -> dict:
    def stream(part: str) -> random.Random:
        """One random stream per file, so changing how one file is made leaves the others byte-identical."""
        return random.Random(f"{seed}:{part}")

    train_core, held_core = split_users(seed)
    out.mkdir(parents=True, exist_ok=True)

    # 1. the web corpus for pretraining
    write_jsonl(out / "web.jsonl", web_corpus(sizes.web_docs, stream("web")))

    # 2. demonstrations: uneven, as people's are (careful with probability WorldConfig.careful_demo_rate, else lesser)
    rng = stream("sft")
    alpaca = []
    for t in sample_tasks(train_core, sizes.sft_alpaca, rng, "sft-alpaca"):
        kind, text = demonstration(t, rng)
        alpaca.append({"id": t.id, "category": t.category, "lang": t.lang, "instruction": t.instruction,
                       "input": t.input, "output": text, "kind": kind, "meta": t.meta})
    write_jsonl(out / "sft_alpaca.jsonl", alpaca)
    chat = []
    for t in sample_tasks(train_core, sizes.sft_chat, rng, "sft-chat"):
        messages = [{"role": "system", "content": SYSTEM_PROMPT[t.lang]}] if rng.random() < 0.5 else []
        kind, text = demonstration(t, rng)
        messages += [{"role": "user", "content": t.prompt}, {"role": "assistant", "content": text}]
        chat.append({"id": t.id, "category": t.category, "lang": t.lang, "messages": messages, "kind": kind,
                     "meta": t.meta})
    write_jsonl(out / "sft_chat.jsonl", chat)

    # 3. comparisons: K = 4..9 written responses per prompt, ranked by one simulated labeler each
    rng = stream("comparisons")
    tasks = sample_tasks(train_core, sizes.comparisons, rng, "cmp")
    sets = []
    for t in tasks:
        cands = write_responses(t, rng)
        rng.shuffle(cands)
        k = rng.randint(4, min(9, len(cands)))
        sets.append((t, cands[:k], [labelers.judge(t, text).parts for _, text in cands[:k]]))
    noise = labelers.calibrate_noise([p for _, _, p in sets], seed=seed)
    agreement = labelers.measure_agreement([p for _, _, p in sets], noise, seed=seed + 1)
    pool = [labelers.SimulatedLabeler.draw(seed * 1000 + i, noise) for i in range(10)]
    comparisons = []
    for t, cands, parts in sets:
        who = rng.randrange(len(pool))
        comparisons.append({**task_record(t), "responses": [text for _, text in cands],
                            "kinds": [kind for kind, _ in cands], "ranking": pool[who].rank(parts, rng),
                            "labeler": who})
    write_jsonl(out / "comparisons.jsonl", comparisons)

    # 4. prompts for RL, and held-out evaluation prompts (the seed deck's first)
    rng = stream("prompts")
    rl_prompts = sample_tasks(train_core, sizes.rl_prompts, rng, "rl")
    write_jsonl(out / "rl_prompts.jsonl", [task_record(t) for t in rl_prompts])
    evals = []
    for cat in CATEGORIES:
        pool_c = [t for t in held_core if t.category == cat]
        seeds = [t for t in pool_c if is_seed(t)][:1 if cat in ("describe", "intent") else len(SEED_PROMPTS)]
        rest = sample_tasks([t for t in pool_c if t not in seeds], sizes.eval_per_category - len(seeds), rng,
                            f"eval-{cat}", WRAP_HELDOUT)
        for i, t in enumerate(seeds + rest):
            evals.append({**task_record(t), "id": f"eval-{cat}-{i:03d}", "seed": i < len(seeds)})
    write_jsonl(out / "eval_prompts.jsonl", evals)

    summary = {"seed": seed, "sizes": {f: getattr(sizes, f) for f in sizes.__dataclass_fields__},
               "core_prompts": {"train": len(train_core), "heldout": len(held_core)},
               "labeler_noise": noise, "labeler_agreement": round(agreement, 4),
               "instructgpt_agreement": labelers.INSTRUCTGPT_AGREEMENT, "seed_prompts": list(SEED_PROMPTS),
               "world_config": to_dict(WORLD_CONFIG)}
    (out / "world.json").write_text(json.dumps(summary, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")

    # 5. the applications of lesson 09: the catalog database, their demonstrations, SQL prompts, held-out dialogues
    apps = build_apps(out, seed)
    (apps_dir(out) / "apps.json").write_text(json.dumps(apps, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return summary


def run(cfg: DataConfig, *, out: Path) -> dict:
    """`build` into folder `out` with the config's sizes and seed (`rlhf data --data DIR`): world.json's summary."""
    return build(out, cfg.seed, cfg.sizes())


def summary(s: dict) -> str:
    """One line of what `run` wrote."""
    n = s["sizes"]
    return (f"{n['web_docs']} web docs, {n['sft_alpaca'] + n['sft_chat']} demonstrations, {n['comparisons']} "
            f"comparisons, {n['rl_prompts']} RL prompts, labeler agreement {s['labeler_agreement']:.3f}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("data"))
    args = ap.parse_args(argv)
    summary = build(args.out, args.seed)
    print(f"wrote {args.out}/: labeler agreement {summary['labeler_agreement']:.3f} "
          f"(noise {summary['labeler_noise']}), core prompts {summary['core_prompts']}")


if __name__ == "__main__":
    main()
