"""Comparison data — InstructGPT step 2, phases 1–2 (lesson 03): collect K responses per prompt and rank them.

For each prompt of `data/comparisons.jsonl` the K responses are the world's written ones (the first `written`) plus
samples from the SFT policy (K ≤ 9), all ranked by ONE simulated labeler (the record's `labeler`, from the
calibrated pool of `data/world.json`), who perceives the gold criteria with his own weights and noise. The
noise-free gold order is kept beside it, and a second, independent labeler ranks the held-out prompts too: their
agreement is the measured human ceiling (`pair_metrics`).
"""
from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import AutoConfig, AutoTokenizer

from .build_data import task_from_record
from .data import K_MAX, DataError, read_comparisons
from .generation import GenerationConfig, generate_runs
from .labelers import YEAR, SimulatedLabeler, judge
from .reward_model import encode, quiet_loading


@dataclass
class Comparison:
    """One prompt and its K ranked responses: one batch element."""
    record: dict           # the comparisons.jsonl record (id, category, lang, prompt, meta …)
    responses: list        # K responses: the world's written ones, then the SFT samples
    kinds: list            # who wrote each: 'ideal', 'toxic', 'wrong_fact' … or 'sft'
    ranking: list          # response indices, best first, by this prompt's labeler (the training label)
    scores: list           # that labeler's perceived scores; the ranking sorts them (ChatLLaMA's regression target)
    gold: list             # gold scores, noise-free
    second: list           # ranking by a second, independent labeler (the measured agreement)
    source: str            # "file:line"


@dataclass
class ComparisonData:
    train: list
    heldout: list
    built_with: dict       # the config fields that built it (DATA_FIELDS)
    prepare_s: float = 0.0                          # wall time of phases 1–2
    features: dict = field(default_factory=dict)    # frozen-backbone features by stage: computed once, reused



def load_comparisons(path: Path, tokenizer, max_len: int, n: int | None = None,
                     n_labelers: int = 10) -> list[tuple[dict, str]]:
    """(record, "file:line") of the first `n` comparisons, validated before anything is trained: the whole file
    (`data.read_comparisons`: K = 4..9 non-empty responses, the ranking a permutation, the category and the meta the
    gold labeler judges by, unique ids, at least one record), then `kinds`, `labeler` and the length of every
    prompt ⊕ response ⊕ EOS. The first problem raises DataError naming the file, its physical line and the field."""
    path = Path(path)
    rows = read_comparisons(path, task=task_from_record)[:n]
    for line, rec in rows:
        k = len(rec["responses"])
        if "kinds" in rec and (not isinstance(rec["kinds"], list) or len(rec["kinds"]) != k):
            raise DataError(path, line, "kinds", f"must list one kind per response ({k}), got {rec['kinds']!r}")
        if not 0 <= rec.get("labeler", 0) < n_labelers:
            raise DataError(path, line, "labeler", f"{rec['labeler']} is not a labeler of the pool 0..{n_labelers - 1}")
    flat = [(rec, line, i, r) for line, rec in rows for i, r in enumerate(rec["responses"])]
    ids = encode(tokenizer, [x[0]["prompt"] for x in flat], [x[3] for x in flat])
    for (_rec, line, i, _), x in zip(flat, ids):
        if len(x) > max_len:
            raise DataError(path, line, f"responses[{i}]", f"prompt + response + EOS is {len(x)} tokens > max_len = "
                                                           f"{max_len}; shorten the response or raise RMConfig.max_len")
    return [(rec, f"{path}:{line}") for line, rec in rows]


def labeler_pool(world: dict, n_labelers: int = 10) -> list[SimulatedLabeler]:
    """The simulated labelers of data/world.json (the same pool build_data ranked the written responses with)."""
    return [SimulatedLabeler.draw(world["seed"] * 1000 + i, world["labeler_noise"]) for i in range(n_labelers)]


def rank_responses(record: dict, responses: list[str], kinds: list[str], source: str, pool: list,
                   seed: int) -> Comparison:
    """Gold parts of every response; one labeler's perceived scores and ranking; a second labeler's ranking."""
    task = task_from_record(record)
    judged = [judge(task, r) for r in responses]
    rng = random.Random(f"rm-{seed}-{record['id']}")                          # per prompt: independent of n_prompts
    who = record["labeler"] if "labeler" in record else rng.randrange(len(pool))
    scores = [pool[who].perceive(j.parts, rng) for j in judged]               # what SimulatedLabeler.rank sorts
    ranking = sorted(range(len(responses)), key=lambda i: -scores[i])
    other = pool[rng.choice([i for i in range(len(pool)) if i != who])]
    return Comparison(record, responses, kinds, ranking, scores, [j.score for j in judged],
                      other.rank([j.parts for j in judged], rng), source)


def sample_sft(init: Path, prompts: list[str], counts: list[int], *, temperatures: tuple[float, ...], seed: int,
               max_new_tokens: int, batch_size: int = 256, processes: int = 1) -> list[list[str]]:
    """counts[i] responses to prompts[i] from the SFT policy in folder `init`; sample s uses temperature
    temperatures[s % …] and seed `seed + s`. The passes are independent seeded runs, so `processes` of them run at
    once with the same responses (`generation.generate_runs`)."""
    passes = [[i for i, c in enumerate(counts) if c > s] for s in range(max(counts, default=0))]
    runs = [([prompts[i] for i in todo],
             GenerationConfig(temperature=temperatures[s % len(temperatures)], max_new_tokens=max_new_tokens,
                              batch_size=batch_size), seed + s) for s, todo in enumerate(passes)]
    with tqdm(total=sum(counts), desc="sampling the SFT policy") as bar:
        results = generate_runs(init, runs, fmt="chat", processes=processes, progress=bar)
    out = [[] for _ in prompts]
    for todo, samples in zip(passes, results):
        for i, smp in zip(todo, samples):
            out[i].append(smp.response)
    return out


def written_subset(record: dict, written: int) -> tuple[list[str], list[str]]:
    """(responses, kinds): the first `written` written responses of a comparison record and who wrote each
    ('written' where the record names no kinds). build_data shuffled them, so the first ones are a random subset."""
    k = min(written, len(record["responses"]))
    kinds = record.get("kinds", ["written"] * len(record["responses"]))
    return list(record["responses"][:k]), list(kinds[:k])


def other_prompt_answers(samples: list[list[str]], n: int, seed: int, kinds: list | None = None) -> list[list[str]]:
    """For each prompt, `n` of the SFT samples drawn for *another* prompt (a seeded derangement: prompt i borrows
    from prompt perm[i] ≠ i). A fluent, confident answer to the wrong question is the candidate that teaches a reward
    model to read the prompt: judged against this prompt it is unhelpful, yet nothing in the response alone says so.

    With `kinds` (one key per prompt, e.g. its category and language) the donor is another prompt of the same kind
    where there is one: an answer about another event to a factual question, the mistake a policy makes when its
    reward model only checks that an answer is a confident date (lesson 05). A kind with a single prompt borrows from
    any prompt."""
    m = len(samples)
    if n == 0 or m < 2:
        return [[] for _ in samples]
    perm = torch.randperm(m, generator=torch.Generator().manual_seed(seed + 7919)).tolist()
    cycle = lambda order: {i: order[(k + 1) % len(order)] for k, i in enumerate(order)}   # noqa: E731  never itself
    donor = cycle(perm)
    if kinds is not None:
        by_kind: dict = {}
        for i in perm:                                                       # each kind's prompts in perm's order
            by_kind.setdefault(kinds[i], []).append(i)
        for group in by_kind.values():
            if len(group) > 1:
                donor.update(cycle(group))
    return [samples[donor[i]][:n] for i in range(m)]


def swap_years(text: str, rng: random.Random) -> str:
    """The text with every year moved by 5–60 years (one shift for the whole text, keeping every year in
    1400–2029, the years the gold labeler reads): a fluent, confident answer that
    is now factually wrong. It looks exactly like the answer it came from, so only a reward model that knows the
    fact (and reads which event the prompt asks about) can rank it lower."""
    years = [int(y) for y in YEAR.findall(text)]
    shifts = [d for d in range(-60, 61) if abs(d) >= 5 and all(1400 <= y + d <= 2029 for y in years)]
    if not years or not shifts:
        return text
    shift = rng.choice(shifts)
    return YEAR.sub(lambda m: str(int(m.group()) + shift), text)


def wrong_fact_variants(samples: list[list[str]], n: int, seed: int, ids: list[str]) -> list[list[str]]:
    """For each prompt, up to `n` of its own SFT samples that mention a year, with the years swapped
    (`swap_years`); prompts whose samples name no year get none."""
    out = []
    for rid, own in zip(ids, samples):
        rng = random.Random(f"wrong-year-{seed}-{rid}")
        dated = [s for s in dict.fromkeys(own) if YEAR.search(s)]
        out.append([swap_years(s, rng) for s in dated[:n]])
    return out


def collect(init: Path, path: Path, world_file: Path, *, n_prompts: int, written: int, sft_samples: int,
            max_len: int, temperatures: tuple[float, ...], max_new_tokens: int, n_heldout: int, seed: int,
            other_prompts: int = 0, other_from: str = "any", wrong_years: int = 0, sample_batch_size: int = 256,
            built_with: dict | None = None, processes: int = 1) -> ComparisonData:
    """Phases 1–2 from the SFT policy in folder `init`: validate the first `n_prompts` comparisons of `path`, keep
    `written` written responses each, add up to `sft_samples` SFT samples, `wrong_years` of those with the years
    swapped and `other_prompts` SFT answers to other prompts (any prompt, or with `other_from="same_kind"` one of
    the same category and language: `other_prompt_answers`) (K ≤ 9), rank all of them with the labeler pool of
    `world_file`, and split off `n_heldout` prompts (a seeded permutation). The SFT samples are drawn on
    `processes` processes at once (the same samples for any number: `sample_sft`)."""
    t0 = time.time()
    path = Path(path)
    # 1. every comparison used is validated before any model is loaded, sampled or trained
    tokenizer = AutoTokenizer.from_pretrained(init, trust_remote_code=False)
    records = load_comparisons(path, tokenizer, max_len, n_prompts)
    if len(records) < n_prompts:
        raise ValueError(f"RMConfig.n_prompts = {n_prompts} but {path} has {len(records)} comparisons; "
                         "lower n_prompts")
    context = AutoConfig.from_pretrained(init, trust_remote_code=False).max_position_embeddings
    if max_len > context:
        raise ValueError(f"RMConfig.max_len = {max_len} exceeds the model's context of {context} tokens; "
                         "lower max_len")
    prompt_len = max(len(x) for x in encode(tokenizer, [r["prompt"] for r, _ in records], [""] * len(records)))
    max_new = min(max_new_tokens, max_len - prompt_len)
    if max_new < 8:
        raise ValueError(f"RMConfig.max_len = {max_len} leaves {max_new} tokens for SFT samples after the longest "
                         f"prompt ({prompt_len - 1} tokens); raise max_len")
    # 2. K responses per prompt: the written ones + SFT samples, ranked by one simulated labeler
    kept = [written_subset(r, written) for r, _ in records]
    counts = [min(sft_samples, K_MAX - len(responses)) for responses, _ in kept]
    with quiet_loading():
        samples = sample_sft(init, [r["prompt"] for r, _ in records], counts, temperatures=temperatures, seed=seed,
                             max_new_tokens=max_new, batch_size=sample_batch_size, processes=processes)
    kinds = [(r["category"], r["lang"]) for r, _ in records] if other_from == "same_kind" else None
    borrowed = other_prompt_answers(samples, other_prompts, seed, kinds)
    wrong = wrong_fact_variants(samples, wrong_years, seed, [r["id"] for r, _ in records])
    pool = labeler_pool(json.loads(Path(world_file).read_text(encoding="utf-8")))
    comps = []
    for (r, src), (responses, kinds), own, other, swapped in zip(records, kept, samples, borrowed, wrong):
        extra = [(x, "wrong_year") for x in swapped] + [(x, "other_prompt") for x in other]
        extra = extra[:K_MAX - len(responses) - len(own)]
        comps.append(rank_responses(r, responses + own + [x for x, _ in extra],
                                    kinds + ["sft"] * len(own) + [k for _, k in extra], src, pool, seed))
    perm = torch.randperm(len(comps), generator=torch.Generator().manual_seed(seed)).tolist()
    return ComparisonData(train=[comps[i] for i in perm[n_heldout:]], heldout=[comps[i] for i in perm[:n_heldout]],
                          built_with=dict(built_with or {}), prepare_s=round(time.time() - t0, 1))


def ranking_pairs(rankings: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All C(K,2) pairs of each ranking (best first) as indices into the concatenation of every prompt's responses
    (prompt g's K_g responses follow prompt g−1's): chosen, rejected, group (prompt of the pair), each (N,)."""
    chosen, rejected, group, offset = [], [], [], 0
    for g, ranking in enumerate(rankings):
        for i, j in combinations(range(len(ranking)), 2):          # i is ranked above j
            chosen.append(offset + ranking[i])
            rejected.append(offset + ranking[j])
            group.append(g)
        offset += len(ranking)
    as_long = lambda xs: torch.tensor(xs, dtype=torch.long)       # noqa: E731
    return as_long(chosen), as_long(rejected), as_long(group)


# ------------------------------------------------------------------------------------------------ kept with the RM
SAVED = "comparisons.json"                        # in the reward model's stage: what it learned from, for DPO


def to_json(data: ComparisonData) -> dict:
    """The collected comparisons as JSON (the reward model's stage keeps them: DPO learns from the same ones)."""
    fields = ("record", "responses", "kinds", "ranking", "scores", "gold", "second", "source")
    part = lambda comps: [{f: getattr(c, f) for f in fields} for c in comps]      # noqa: E731
    return {"built_with": data.built_with, "prepare_s": data.prepare_s, "train": part(data.train),
            "heldout": part(data.heldout)}


def from_json(obj: dict, where: str) -> ComparisonData:
    """`to_json`'s output back as ComparisonData; a malformed file raises DataError naming `where` and the field."""
    comps = {}
    for split in ("train", "heldout"):
        rows = obj.get(split)
        if not isinstance(rows, list) or not rows:
            raise DataError(Path(where), None, split, "missing or empty: this file was not written by the reward "
                            "model's stage; train the reward model again (rlhf rm)")
        try:
            comps[split] = [Comparison(**row) for row in rows]
        except TypeError as e:
            raise DataError(Path(where), None, split, f"a comparison has other fields ({e}); train the reward "
                            "model again (rlhf rm)") from None
        for i, c in enumerate(comps[split]):
            if sorted(c.ranking) != list(range(len(c.responses))):
                raise DataError(Path(where), None, f"{split}[{i}].ranking", "is not a permutation of the responses; "
                                "train the reward model again (rlhf rm)")
    return ComparisonData(train=comps["train"], heldout=comps["heldout"], built_with=obj.get("built_with", {}),
                          prepare_s=obj.get("prepare_s", 0.0))


def pair_metrics(comparisons: list[Comparison], rewards: list[list[float]]) -> dict:
    """Over every ranked pair of the given prompts: the reward model's agreement with the labeler (accuracy), with
    the gold order (gold pairs only: gold ties excluded), the second labeler's agreement with the first (the
    ceiling), and the first labeler's own agreement with gold. Pairs of two identical responses are left out: the
    policy often samples the same answer twice, and no one can prefer one copy of it to the other."""
    n = acc = agree = n_gold = rm_gold = lab_gold = 0
    for c, r in zip(comparisons, rewards):
        pos2 = {resp: i for i, resp in enumerate(c.second)}
        for i, j in combinations(range(len(c.ranking)), 2):
            win, lose = c.ranking[i], c.ranking[j]                             # the labeler prefers win over lose
            if c.responses[win] == c.responses[lose]:
                continue
            n, acc, agree = n + 1, acc + (r[win] > r[lose]), agree + (pos2[win] < pos2[lose])
            if abs(c.gold[win] - c.gold[lose]) > 1e-9:
                better, worse = (win, lose) if c.gold[win] > c.gold[lose] else (lose, win)
                n_gold, rm_gold, lab_gold = n_gold + 1, rm_gold + (r[better] > r[worse]), lab_gold + (better == win)
    return {"accuracy": acc / max(1, n), "gold_accuracy": rm_gold / max(1, n_gold),
            "labeler_agreement": agree / max(1, n), "labeler_gold_accuracy": lab_gold / max(1, n_gold),
            "n_pairs": n, "n_gold_pairs": n_gold}
