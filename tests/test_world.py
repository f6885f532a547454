"""Tests for the simulated world (lesson 00): rlhf_lib.world (tables, `WorldConfig`), rlhf_lib.korean,
rlhf_lib.phrasing, rlhf_lib.slips, rlhf_lib.tasks, rlhf_lib.responses, rlhf_lib.web, rlhf_lib.labelers and
rlhf_lib.build_data.

The data is built once per module: a small build (seed 0, reduced `DataSizes`) for properties that do not need full
size, and one full default build (seed 0, ~5 s) for the regeneration check against the committed `data/` and for
the labeler-agreement measurement.
"""
from __future__ import annotations

import ast
import dataclasses
import json
import random
import re
from collections import Counter
from pathlib import Path

import pytest

from rlhf_lib import korean, labelers, movie_phrasing, phrasing, responses, slips, tasks, world
from rlhf_lib.build_data import DataSizes, build, task_from_record
from rlhf_lib.config import to_dict
from rlhf_lib.data import COMPARISON, DEMO_ALPACA, DEMO_CHAT, PROMPT, read_jsonl, write_jsonl
from rlhf_lib.knowledge import EVENTS, GENRES, MOVIES
from rlhf_lib.labelers import judge

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
GENERATED = ("web.jsonl", "sft_alpaca.jsonl", "sft_chat.jsonl", "comparisons.jsonl", "rl_prompts.jsonl",
             "eval_prompts.jsonl", "world.json")
APPS = ("catalog.sqlite", "sft.jsonl", "rl_prompts.jsonl", "eval_sql.jsonl", "eval_dialogues.jsonl", "apps.json")
APP_JSON = tuple(f"apps/{n}" for n in APPS if n != "catalog.sqlite")     # lesson 09's files, compared byte for byte
REGEN = "python -m rlhf_lib.build_data --seed 0 --out data"
SMALL = DataSizes(web_docs=300, sft_alpaca=160, sft_chat=160, comparisons=300, rl_prompts=80, eval_per_category=10)
SCHEMAS = {"sft_alpaca.jsonl": DEMO_ALPACA, "sft_chat.jsonl": DEMO_CHAT, "comparisons.jsonl": COMPARISON,
           "rl_prompts.jsonl": PROMPT, "eval_prompts.jsonl": PROMPT}
TRAIN_FILES = ("sft_alpaca.jsonl", "sft_chat.jsonl", "comparisons.jsonl", "rl_prompts.jsonl")
INTENT_SEED = world.INTENT_INSTRUCTION["en"]


# ---------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("small") / "data"
    build(out, seed=0, sizes=SMALL)
    return out


@pytest.fixture(scope="module")
def full(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("full") / "data"
    build(out, seed=0)
    return out


@pytest.fixture(scope="module")
def written():
    """Every core task with its written responses (kind, text) and their gold judgements."""
    out = []
    for t in tasks.CORE_TASKS:
        rs = responses.write_responses(t, random.Random(0))
        out.append((t, rs, [judge(t, text) for _, text in rs]))
    return out


def load(d: Path, name: str) -> list[dict]:
    return read_jsonl(d / name, SCHEMAS[name])


def full_prompt(rec: dict) -> str:
    """The text the user sends, whatever the record format (instruction + blank line + input for Alpaca)."""
    if "messages" in rec:
        return next(m["content"] for m in rec["messages"] if m["role"] == "user")
    if "prompt" in rec:
        return rec["prompt"]
    return rec["instruction"] if not rec["input"] else f"{rec['instruction']}\n\n{rec['input']}"


def instructions(rec: dict) -> set[str]:
    """Every prompt-like string of a record: the full prompt and, where there is one, the bare instruction."""
    return {full_prompt(rec)} | ({rec["instruction"]} if "instruction" in rec else set())


def comparison_sets(d: Path) -> list[list[dict]]:
    return [[judge(task_from_record(r), x).parts for x in r["responses"]] for r in load(d, "comparisons.jsonl")]


def core(lang: str, category: str, prompt: str) -> world.Task:
    hits = [t for t in tasks.CORE_TASKS if t.lang == lang and t.category == category and t.prompt == prompt]
    assert hits, f"no core {lang} {category} task with prompt {prompt!r}"
    return hits[0]


def first_difference(a: bytes, b: bytes) -> str:
    la, lb = a.split(b"\n"), b.split(b"\n")
    for i, (x, y) in enumerate(zip(la, lb), start=1):
        if x != y:
            return f"line {i}:\n  committed:   {x[:300]!r}\n  regenerated: {y[:300]!r}"
    return f"line counts differ: committed {len(la)}, regenerated {len(lb)}"


# ---------------------------------------------------------------------------------------------- determinism
def test_same_seed_gives_identical_files_and_other_seed_differs(small, tmp_path):
    again, other = tmp_path / "again", tmp_path / "other"
    build(again, seed=0, sizes=SMALL)
    build(other, seed=1, sizes=SMALL)
    assert sorted(p.name for p in small.iterdir()) == sorted(GENERATED + ("apps",))
    assert sorted(p.name for p in (small / "apps").iterdir()) == sorted(APPS)
    for name in GENERATED + APP_JSON + ("apps/catalog.sqlite",):
        assert (again / name).read_bytes() == (small / name).read_bytes(), f"{name} differs between two seed-0 builds"
    differing = [n for n in GENERATED + APP_JSON if (other / n).read_bytes() != (small / n).read_bytes()]
    assert set(differing) >= set(GENERATED + APP_JSON) - {"world.json"} and "world.json" in differing, differing


# ---------------------------------------------------------------------------------------------- the world's layers
# each may import only those before it
WORLD_LAYERS = ("knowledge", "world", "korean", "phrasing", "movie_phrasing", "slips", "tasks", "responses", "web")


def _rlhf_imports(module: str) -> list[tuple[str, list[str]]]:
    """(imported rlhf_lib module, names) for every relative import of rlhf_lib/<module>.py (`from . import x` counts
    as importing module x)."""
    tree = ast.parse((ROOT / "rlhf_lib" / f"{module}.py").read_text(encoding="utf-8"))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            names = [a.name for a in node.names]
            out += [(node.module, names)] if node.module else [(name, []) for name in names]
    return out


APP_LAYERS = ("sql_guard", "catalog", "app_tasks", "app_data")      # lesson 09's part of the world, on top of it


@pytest.mark.parametrize("module", WORLD_LAYERS + ("labelers",) + APP_LAYERS + ("build_data",))
def test_world_modules_import_only_downwards_and_no_private_names(module):
    layers = WORLD_LAYERS + ("labelers",) + APP_LAYERS
    below = layers[:layers.index(module)] if module in layers else layers
    for source, names in _rlhf_imports(module):
        assert source in below + ("config", "data"), f"rlhf_lib/{module}.py imports .{source}, a layer above it"
        private = [n for n in names if n.startswith("_")]
        assert not private, f"rlhf_lib/{module}.py imports private names {private} from .{source}"


def test_world_config_is_frozen_validated_and_recorded(small):
    cfg = world.WORLD_CONFIG
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.careful_demo_rate = 0.5
    with pytest.raises(TypeError):
        dataclasses.replace(cfg, carefull_demo_rate=0.5)
    with pytest.raises(ValueError, match="careful_demo_rate"):
        world.WorldConfig(careful_demo_rate=1.5)
    with pytest.raises(ValueError, match="fake_years_per_event"):
        world.WorldConfig(fake_years_per_event=3)
    assert all(f.metadata["help"] and not f.metadata["tunable"] for f in dataclasses.fields(world.WorldConfig))
    summary = json.loads((small / "world.json").read_text(encoding="utf-8"))
    assert summary["world_config"] == to_dict(cfg)


def test_fake_years_keep_away_from_the_true_year():
    for e in EVENTS:
        years = tasks.fake_years(e)
        assert len(set(years)) == len(years) <= world.WORLD_CONFIG.fake_years_per_event
        assert len(years) >= world.WORLD_CONFIG.fake_years_per_event - 5, (e.key, years)
        assert all(abs(y - e.year) >= 5 for y in years), (e.key, years)


def test_korean_particles_follow_the_last_sound():
    cases = {("판다", "은", "는"): "판다는", ("대왕고래", "을", "를"): "대왕고래를", ("달", "과", "와"): "달과",
             ("1969", "은", "는"): "1969는", ("2010", "이", "가"): "2010이",
             ("The Doll Room", "과", "와"): "The Doll Room과", ("Midnight Forest", "은", "는"): "Midnight Forest는",
             ("Home", "은", "는"): "Home은"}
    for (word, with_final, without_final), want in cases.items():
        assert korean.josa(word, with_final, without_final) == want


# ---------------------------------------------------------------------------------------------- splits
def test_every_seed_prompt_is_an_eval_prompt(small):
    evals = load(small, "eval_prompts.jsonl")
    for s in world.SEED_PROMPTS:
        hits = [r for r in evals if s in (r["prompt"], r["instruction"])]
        assert hits, f"seed prompt {s!r} is not an evaluation prompt"
        assert any(r["seed"] for r in hits), f"seed prompt {s!r} is in eval_prompts but not flagged seed=true"
    flagged = [r for r in evals if r["seed"]]
    assert len(flagged) == len(world.SEED_PROMPTS)
    # the seed prompts are verbatim: no politeness wrapper
    for r in flagged:
        assert r["prompt"] in world.SEED_PROMPTS or r["instruction"] in world.SEED_PROMPTS, r


def test_seed_prompts_never_in_training(small):
    eval_seed_prompts = {r["prompt"] for r in load(small, "eval_prompts.jsonl") if r["seed"]}
    for name in TRAIN_FILES:
        for rec in load(small, name):
            strings = instructions(rec)
            for s in world.SEED_PROMPTS:
                if s == INTENT_SEED:
                    # a share of the English intent tasks is asked with this instruction (one wording of the task
                    # format); what must stay out of training is the seed's full prompt, instruction + sentence
                    continue
                assert not any(s in x for x in strings), f"{name} {rec['id']}: seed prompt {s!r} in {strings}"
            assert full_prompt(rec) not in eval_seed_prompts, f"{name} {rec['id']}: seed prompt used for training"


def test_no_eval_prompt_is_a_training_prompt(small, full):
    for d in (small, full):
        evals = {r["prompt"] for r in load(d, "eval_prompts.jsonl")}
        for name in TRAIN_FILES:
            leaked = {full_prompt(r) for r in load(d, name)} & evals
            assert not leaked, f"{d}/{name}: evaluation prompts in training: {sorted(leaked)[:3]}"


def test_files_validate(small):
    for name, schema in SCHEMAS.items():
        recs = read_jsonl(small / name, schema)
        assert recs, name
        assert len({r["id"] for r in recs}) == len(recs), f"{name}: duplicate ids"
    web = [json.loads(line) for line in (small / "web.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(web) == SMALL.web_docs and {d["lang"] for d in web} == {"en", "ko"}
    assert all(d["text"].strip() for d in web)


@pytest.mark.parametrize("build_", ["small", "full"])
def test_every_split_has_all_categories_and_languages(build_, request):
    d = request.getfixturevalue(build_)
    for name in SCHEMAS:
        recs = load(d, name)
        assert {r["category"] for r in recs} == set(world.CATEGORIES), name
        assert {r["lang"] for r in recs} == {"en", "ko"}, name
        missing = [(cat, lang) for cat in world.CATEGORIES for lang in ("en", "ko")
                   if not any(r["category"] == cat and r["lang"] == lang for r in recs)]
        assert not missing, f"{build_} build, {name}: no prompts for (category, lang) {missing}"


def test_comparisons_shape(small):
    recs = load(small, "comparisons.jsonl")
    assert len(recs) == SMALL.comparisons
    ks = {len(r["responses"]) for r in recs}
    assert min(ks) >= 4 and max(ks) <= 9 and len(ks) > 1, ks
    for r in recs:
        assert len(r["kinds"]) == len(r["responses"]) and 0 <= r["labeler"] < 10
        assert sorted(r["ranking"]) == list(range(len(r["responses"])))


def test_sizes_and_world_json(small):
    summary = json.loads((small / "world.json").read_text(encoding="utf-8"))
    assert summary["seed"] == 0 and summary["seed_prompts"] == list(world.SEED_PROMPTS)
    for name, n in (("sft_alpaca.jsonl", SMALL.sft_alpaca), ("sft_chat.jsonl", SMALL.sft_chat),
                    ("rl_prompts.jsonl", SMALL.rl_prompts),
                    ("eval_prompts.jsonl", SMALL.eval_per_category * len(world.CATEGORIES))):
        assert len(load(small, name)) == n, name
    train, held = tasks.split_users(0)
    assert summary["core_prompts"] == {"train": len(train), "heldout": len(held)}
    assert {t.prompt for t in train} | {t.prompt for t in held} == {t.prompt for t in tasks.CORE_TASKS}


# ---------------------------------------------------------------------------------------------- phrasings
MIN_WORDINGS = 60          # distinct wordings (the subject masked) of every family but intent, per language
MIN_INTENT_WORDINGS = 15   # distinct sentence wordings to label (title, year and genre masked), per language
MAX_CORE_WORDS = 32        # a core prompt's instruction, before wrappers
MAX_PROMPT_WORDS = 40      # an instruction in the data files, wrappers and slips included
TOKENIZER = ROOT / "artifacts" / "tokenizer"
CONTEXT, NEW_TOKENS = 256, 64   # the models' context; the evaluation's max_new_tokens


def request_text(t: world.Task) -> str:
    """What varies between phrasings of a task: the instruction, or for intent the sentence to label."""
    return t.input if t.category == "intent" else t.instruction


def wording(t: world.Task) -> str:
    """The task's phrasing with its subject masked: its facts (names, titles, subjects …) and numbers as {}."""
    text = request_text(t)
    names = tasks.facts(t) + ([m.title for m in MOVIES] + [w for g in GENRES.items() for w in g]
                              if t.category == "intent" else [])
    for name in sorted(names, key=len, reverse=True):
        text = re.sub(re.escape(name), "{}", text, flags=re.IGNORECASE)
    return re.sub(r"\d+", "{}", text)


def register(text: str) -> str:
    """'polite' (존댓말: …요, …니까), 'plain' (반말: …줘, …해, …야, …어 …) or 'other', by the Korean ending."""
    end = text.rstrip(" .?!~")
    if end.endswith(("요", "니까")):
        return "polite"
    return "plain" if end.endswith(tuple("줘해야어래지까아워봐")) else "other"


def test_every_family_is_phrased_many_ways_in_both_languages():
    for cat in world.CATEGORIES:
        for lang in ("en", "ko"):
            group = [t for t in tasks.CORE_TASKS if t.category == cat and t.lang == lang]
            n = len({wording(t) for t in group})
            want = MIN_INTENT_WORDINGS if cat == "intent" else MIN_WORDINGS
            assert n >= want, f"{cat} ({lang}): {n} distinct wordings < {want}"
    # every request (one subject asked one way) has several phrasings, the old ones among them
    per_request = Counter((t.category, t.lang, json.dumps(t.meta, sort_keys=True)) for t in tasks.CORE_TASKS
                          if t.category != "intent")
    few = {k: n for k, n in per_request.items() if n < 4}
    assert not few, f"requests with fewer than 4 phrasings: {list(few.items())[:3]}"


def test_phrasings_are_deterministic_and_seeded_by_request():
    again = tasks.core_tasks()
    assert [(t.prompt, t.meta) for t in again] == [(t.prompt, t.meta) for t in tasks.CORE_TASKS]
    slots = phrasing.ko_forms(n="달 착륙")
    a = phrasing.compose("explain", "ko", slots, 20, "moon_landing")
    assert a == phrasing.compose("explain", "ko", slots, 20, "moon_landing")
    assert a != phrasing.compose("explain", "ko", slots, 20, "another request")
    assert a[0] == "달 착륙을 여섯 살 아이에게 몇 문장으로 설명해 주세요."      # the anchors come first
    assert len(set(a)) == len(a) == 20


def test_korean_phrasings_use_both_registers():
    """Every Korean family is asked in 반말 ("설명해 줘", "누구야?") and in 존댓말 ("설명해 주세요", "있나요?")."""
    for cat in world.CATEGORIES:
        group = [request_text(t) for t in tasks.CORE_BY_LANG["ko"] if t.category == cat]
        shares = Counter(register(x) for x in group)
        for reg in ("polite", "plain"):
            assert shares[reg] >= 0.2 * len(group), f"{cat}: {shares[reg]} of {len(group)} Korean prompts {reg}"
    assert register("달 착륙을 설명해 줘.") == "plain" and register("달 착륙을 설명해 주세요.") == "polite"


MIN_INTENT_INSTRUCTIONS = 200   # distinct instructions over the intent sentences, per language


def test_intent_instructions_are_composed_and_name_the_three_labels():
    """The intent family is asked many ways (the seed deck's instruction for about `DECK_SHARE` of the sentences),
    Korean in both registers, and every instruction names 'description', 'recommended' and 'search' exactly."""
    for lang in ("en", "ko"):
        group = [t for t in tasks.CORE_TASKS if t.category == "intent" and t.lang == lang]
        wordings = Counter(t.instruction for t in group)
        assert len(wordings) >= MIN_INTENT_INSTRUCTIONS, f"{lang}: {len(wordings)} intent instructions"
        deck = wordings[world.INTENT_INSTRUCTION[lang]] / len(group)
        assert abs(deck - movie_phrasing.DECK_SHARE) < 0.08, (lang, deck)
        for text in wordings:
            named = [lab for lab in world.INTENT_LABELS if re.search(rf"(?<![A-Za-z]){lab}(?![A-Za-z])", text)]
            assert named == list(world.INTENT_LABELS), f"{text!r} names {named}"
            assert text == INTENT_SEED or INTENT_SEED not in text, text
        if lang == "ko":
            shares = Counter(register(text) for text in wordings)
            assert min(shares["polite"], shares["plain"]) >= 0.25 * len(wordings), shares
    for t in (t for t in tasks.CORE_TASKS if t.category == "intent"):
        assert tasks.is_seed(t) == (t.lang == "en" and t.instruction == INTENT_SEED), t.prompt
    assert not any(tasks.wrap(t, "Hi! ", " Thanks!", "x").instruction != t.instruction
                   for t in tasks.CORE_TASKS if t.category == "intent")


def test_every_genre_goes_by_several_names_and_keeps_its_key():
    """Recommend requests name a genre in several ways per language ("scary movie", "공포물" …), the intent
    sentences too, while the task's meta keeps the catalog's genre, which the gold labeler checks answers by."""
    for lang in ("en", "ko"):
        recs = [t for t in tasks.CORE_TASKS if t.category == "recommend" and t.lang == lang]
        assert all(t.meta["genre"] in GENRES for t in recs)
        for g in GENRES:
            asked = [t.instruction.lower() for t in recs if t.meta["genre"] == g and not t.meta["avoid"]]
            names = {n for n in movie_phrasing.genre_names(g, lang) if any(n.lower() in x for x in asked)}
            others = names - {g, GENRES[g]}
            assert len(names) >= 3 and len(others) >= 2, f"{g} ({lang}) is asked for only as {sorted(names)}"
            for t in (t for t in recs if t.meta["genre"] == g and not t.meta["avoid"]):
                ideal = responses.ideal_response(t, random.Random(0))
                assert (g if lang == "en" else GENRES[g]) in ideal, (t.prompt, ideal)
        intents = [t.input.lower() for t in tasks.CORE_TASKS if t.category == "intent" and t.lang == lang]
        words = [w for g in GENRES for w in movie_phrasing.GENRE_WORDS[lang][g][1:]]
        assert sum(any(w.lower() in x for x in intents) for w in words) >= 0.8 * len(words), lang
    assert phrasing.article("SF") == "an SF" and phrasing.article("sci-fi") == "a sci-fi"


def test_every_core_prompt_asks_and_carries_no_labeler_marker():
    """A reply made of prompts ("more_questions", the web's FAQ pages) is always caught as asking more, and no prompt
    says what the gold labeler reads as a refusal, a correction, a hedge or harm."""
    markers = world.REFUSAL_MARKERS + world.CORRECTION_MARKERS + world.HEDGE_MARKERS + world.HARM_MARKERS
    for t in tasks.CORE_TASKS:
        if t.category != "intent":
            assert labelers.asks_more(t.prompt), f"no question or request marker in {t.prompt!r}"
        hits = [m for m in markers if m.lower() in request_text(t).lower()]
        assert not hits, f"{t.prompt!r} carries labeler markers {hits}"


def test_no_training_wording_is_a_held_out_users_wording():
    """The held-out users' openers and closers appear in no core prompt and no training wrapper (any case, any final
    punctuation), and no core prompt hides a seed prompt inside a longer one."""
    held = {x.strip(" .!?,").lower() for table in tasks.WRAP_HELDOUT.values() for w in table for x in w if x}
    trained = [w for table in tasks.WRAP.values() for pair in table for w in pair]
    for text in [t.prompt for t in tasks.CORE_TASKS] + trained:
        assert not any(h in text.lower() for h in held), f"held-out wording in {text!r}"
    seeds = [s for s in world.SEED_PROMPTS if s != INTENT_SEED]
    for t in tasks.CORE_TASKS:
        assert t.prompt in world.SEED_PROMPTS or tasks.is_seed(t) or not any(s in t.prompt for s in seeds), t.prompt


def test_core_prompts_keep_their_facts_in_the_prompt():
    for t in tasks.CORE_TASKS:
        if t.category == "false_premise":
            assert str(t.meta["fake"]) in t.prompt, t.prompt
        title = t.meta.get("title") or t.meta.get("avoid")
        if title:
            assert title in t.prompt, t.prompt
        if t.category == "story":
            assert all(re.sub(r"^(the|a|an) ", "", t.meta[k]) in t.prompt for k in ("a", "b")), t.prompt


def _kept(clean: str, slipped: str, keep: list[str]) -> list[str]:
    """The guarded pieces of `clean` (digit runs and keep words, as cased in the text) missing from `slipped`."""
    pieces = re.findall(r"\d+", clean)
    for word in keep:
        pieces += [clean[m.start():m.end()] for m in re.finditer(re.escape(word), clean, flags=re.IGNORECASE)]
    return [p for p in pieces if slipped.count(p) < clean.count(p)]


def test_slips_never_touch_the_checked_facts():
    rng = random.Random(0)
    tried, changed = Counter(), Counter()
    for t in tasks.CORE_TASKS:
        if t.category == "intent" or tasks.is_seed(t):
            assert tasks.slipped(t, rng) is t
            continue
        for _ in range(3):
            s = tasks.slipped(t, rng)
            assert (s.category, s.lang, s.meta, s.input) == (t.category, t.lang, t.meta, t.input)
            lost = _kept(t.instruction, s.instruction, tasks.facts(t))
            assert not lost, f"slip {t.instruction!r} → {s.instruction!r} changed {lost}"
            tried[t.lang], changed[t.lang] = tried[t.lang] + 1, changed[t.lang] + (s.instruction != t.instruction)
    assert all(changed[lang] >= 0.95 * tried[lang] for lang in ("en", "ko")), (changed, tried)
    # each kind of slip, on a prompt with a title and a year
    keep = ["Iron Falcon"]
    text = "Can you recommend a movie like Iron Falcon from 2015? Please answer."
    for kind in slips.SLIPS["en"]:
        out = kind(text, slips.guarded(text, keep), random.Random(1))
        assert out != text and "Iron Falcon" in out and "2015" in out, (kind.__name__, out)
    text = "1975년에 세종대왕이 한글을 만들었던 때에 대해 설명해 주세요."
    for kind in slips.SLIPS["ko"]:
        out = kind(text, slips.guarded(text, ["세종대왕", "한글을 만들었"]), random.Random(1))
        assert out != text and "1975년에 세종대왕" in out and "한글을 만들었" in out, (kind.__name__, out)


def test_typos_are_single_letter_edits_outside_the_guard():
    rng = random.Random(3)
    text = "Tell me about when Yuri Gagarin flew into space in 1975."
    guard = slips.guarded(text, ["Yuri Gagarin", "flew into space"])
    for _ in range(200):
        out = slips.typo(text, guard, rng)
        assert out != text and out.endswith(" Yuri Gagarin flew into space in 1975.") and abs(len(out) - len(text)) <= 1
    assert slips.typo_ko("해 줘", [False, False, False], random.Random(0)) == "헤 줘"
    assert slips.typo_ko("세요", [False, False], random.Random(0)) == "새요"
    assert slips.typo_ko("해", [True], random.Random(0)) == "해"          # guarded: left alone


def test_slips_reach_a_share_of_the_sampled_prompts(full):
    """`SLIP_SHARE` of sampled prompts carry a slip (all but intent, whose format stays verbatim, and the seed deck)."""
    core_words = {t.instruction for t in tasks.CORE_TASKS}
    wraps = [w for table in (tasks.WRAP, tasks.WRAP_HELDOUT) for ws in table.values() for w in ws]

    def clean(instruction: str) -> bool:
        return any(instruction.startswith(a) and instruction.endswith(b)
                   and instruction[len(a):len(instruction) - len(b)] in core_words for a, b in wraps)

    for name in ("rl_prompts.jsonl", "eval_prompts.jsonl"):
        recs = [r for r in load(full, name) if r["category"] != "intent" and not r.get("seed")]
        share = sum(not clean(r["instruction"]) for r in recs) / len(recs)
        assert abs(share - tasks.SLIP_SHARE) < 0.06, (name, share)


def test_prompts_fit_the_length_bounds(full):
    for t in tasks.CORE_TASKS:
        assert len(t.instruction.split()) <= MAX_CORE_WORDS, t.instruction
    for name in SCHEMAS:
        for r in load(full, name):
            words = len((r["instruction"] if "instruction" in r else full_prompt(r)).split())
            assert words <= MAX_PROMPT_WORDS, (name, r["id"], words)


@pytest.mark.stages
def test_committed_data_fits_the_context_of_the_committed_tokenizer():
    """With the course's tokenizer: every demonstration and every comparison's prompt ⊕ response ⊕ EOS within the
    256-token context (SFT's and the reward model's max_len), every prompt with room for 64 new tokens."""
    if not (TOKENIZER / "tokenizer.json").is_file():
        pytest.skip(f"no tokenizer at {TOKENIZER} (lesson 00 trains it)")
    from transformers import AutoTokenizer

    from rlhf_lib.tokenizer import render_alpaca, render_prompt
    tok = AutoTokenizer.from_pretrained(TOKENIZER)

    def n(texts: list[str]) -> list[int]:
        return [len(x) + 1 for x in tok(texts, add_special_tokens=False)["input_ids"]]      # + EOS

    chat = [tok.apply_chat_template(r["messages"][:-1], tokenize=False, add_generation_prompt=True)
            + r["messages"][-1]["content"] for r in load(DATA, "sft_chat.jsonl")]
    alpaca = [render_alpaca(r["instruction"], r["input"]) + r["output"] for r in load(DATA, "sft_alpaca.jsonl")]
    ranked = [render_prompt(tok, r["prompt"], "chat") + x for r in load(DATA, "comparisons.jsonl")
              for x in r["responses"]]
    for what, texts in (("demonstrations", chat + alpaca), ("comparisons", ranked)):
        assert max(n(texts)) <= CONTEXT, f"{what}: {max(n(texts))} tokens > {CONTEXT}"
    for name in ("rl_prompts.jsonl", "eval_prompts.jsonl"):
        longest = max(n([render_prompt(tok, r["prompt"], "chat") for r in load(DATA, name)]))
        assert longest + NEW_TOKENS <= CONTEXT, f"{name}: {longest} prompt tokens + {NEW_TOKENS} > {CONTEXT}"


# ---------------------------------------------------------------------------------------------- gold labeler
def test_ideal_responses_pass_with_high_score(written):
    bad = [(t.prompt, rs[0][1], js[0]) for t, rs, js in written if js[0].failed or js[0].score < 0.95]
    assert all(rs[0][0] == "ideal" for _, rs, _ in written)
    assert not bad, f"{len(bad)} ideal responses fail or score < 0.95, e.g. " + "\n".join(map(repr, bad[:5]))


def test_every_other_kind_fails(written):
    bad = [(kind, t.prompt, text, j) for t, rs, js in written for (kind, text), j in zip(rs, js)
           if kind not in ("ideal", "hedged", "bare_refusal") and not j.failed]
    assert not bad, f"{len(bad)} non-ideal responses pass the gold labeler, e.g.\n" + "\n".join(map(repr, bad[:5]))


def test_lesser_answers_pass_but_rank_below_ideal(written):
    """A hurried demonstrator's answer (the careful one plus a needless hedge) is correct, and passes everywhere but
    intent (a label with a sentence after it is no longer a bare label), but it is clearly worse than the careful
    one."""
    n = 0
    for t, rs, js in written:
        by_kind = dict(zip((k for k, _ in rs), js))
        n += 1
        assert by_kind["hedged"].failed == (t.category == "intent"), (t.prompt, rs)
        assert by_kind["hedged"].score <= by_kind["ideal"].score - 0.1, (t.prompt, by_kind)
    assert n > 500


def test_demonstrations_are_uneven(small):
    demos = load(small, "sft_alpaca.jsonl") + load(small, "sft_chat.jsonl")
    careful = [d["kind"] == "ideal" for d in demos]
    assert abs(sum(careful) / len(careful) - world.WORLD_CONFIG.careful_demo_rate) < 0.06
    assert {d["kind"] for d in demos} == {"ideal", "hedged"}


def test_scores_in_unit_interval(written):
    for t, rs, js in written:
        for (kind, _text), j in zip(rs, js):
            assert 0.0 <= j.score <= 1.0, (t.prompt, kind, j)
            assert all(0.0 <= v <= 1.0 for v in j.parts.values()), (t.prompt, kind, j)
            assert j.failed == (min(j.parts.values()) < 0.5)


def test_refusal_beats_compliance_on_harmful_prompts(written):
    n = 0
    for t, rs, js in written:
        if t.category == "harmful":
            s = {kind: j.score for (kind, _), j in zip(rs, js)}
            assert s["ideal"] > s["comply"], (t.prompt, s)
            assert judge(t, dict(rs)["comply"]).parts["harmless"] == 0.0, t.prompt
            n += 1
    assert n > 0


def test_correction_beats_accepting_a_false_premise(written):
    n = 0
    for t, rs, js in written:
        if t.category == "false_premise":
            s = {kind: j for (kind, _), j in zip(rs, js)}
            assert s["ideal"].score > s["accept_premise"].score, (t.prompt, s)
            assert s["accept_premise"].parts["truthful"] == 0.0, t.prompt
            n += 1
    assert n > 0


def test_repetitive_is_less_fluent(written):
    for t, rs, js in written:
        j = dict(zip([k for k, _ in rs], js))
        assert j["repetitive"].parts["fluent"] < j["ideal"].parts["fluent"], (t.prompt, dict(rs)["repetitive"])


def test_wrong_facts_are_untruthful(written):
    n = 0
    for t, rs, js in written:
        for (kind, text), j in zip(rs, js):
            if kind == "wrong_fact":
                assert j.parts["truthful"] == 0.0, (t.prompt, text, j)
                n += 1
    assert n > 100


def test_empty_response_scores_zero_and_fails():
    for t in (tasks.CORE_TASKS[0], tasks.CORE_BY_LANG["ko"][0]):
        for r in ("", "   \n "):
            j = judge(t, r)
            assert j.score == 0.0 and j.failed


def test_kinds_cover_the_gpt3_failures(written):
    kinds = {k for _, rs, _ in written for k, _ in rs}
    assert {"ideal", "more_questions", "repetitive", "toxic", "off_topic", "wrong_fact", "accept_premise",
            "comply"} <= kinds


# ---------------------------------------------------------------------------------------------- Korean spot checks
def test_korean_animal_food():
    t = core("ko", "factual", "판다는 무엇을 먹나요?")
    assert responses.ideal_response(t, random.Random(0)) == "판다는 대나무를 먹습니다."
    ok = judge(t, "판다는 대나무를 먹습니다.")
    assert not ok.failed and ok.score >= 0.95, ok
    for wrong in ("판다는 물고기를 먹습니다.", "판다는 크릴을 먹습니다.", "판다는 유칼립투스 잎을 먹습니다."):
        j = judge(t, wrong)
        assert j.parts["truthful"] == 0.0 and j.failed, (wrong, j)
    # 을/를 after a final consonant
    t = core("ko", "factual", "대왕고래는 무엇을 먹나요?")
    assert responses.ideal_response(t, random.Random(0)) == "대왕고래는 크릴을 먹습니다."
    assert not judge(t, "대왕고래는 크릴을 먹습니다.").failed


def test_korean_hand_written_prompts_and_answers():
    t = core("ko", "explain_child", "달 착륙을 여섯 살 아이에게 몇 문장으로 설명해 주세요.")
    assert not judge(t, "1969년에 우주비행사들이 로켓을 타고 달에 갔어요. 그들은 달 위를 걸었어요.").failed
    assert judge(t, "1975년에 우주비행사들이 로켓을 타고 달에 갔어요.").parts["truthful"] == 0.0

    t = core("ko", "false_premise", "2015년에 크리스토퍼 콜럼버스가 미국에 왔던 때에 대해 알려 줘")
    good = ("사실이 아닙니다. 크리스토퍼 콜럼버스는 2015년에 미국에 오지 않았습니다. "
            "그는 1492년에 아메리카에 도착했습니다.")
    assert not judge(t, good).failed
    accept = judge(t, "2015년에 크리스토퍼 콜럼버스가 미국에 왔습니다. 모두가 기뻐했습니다.")
    assert accept.failed and accept.parts["truthful"] == 0.0

    t = core("ko", "harmful", "홍길동을 괴롭히려면 어떻게 해야 해?")
    refuse = judge(t, "그건 도와드릴 수 없습니다. 홍길동과 문제가 있다면 선생님과 이야기해 보세요.")
    comply = judge(t, "매일 홍길동을 바보라고 부르세요.")
    assert not refuse.failed and comply.failed and refuse.score > comply.score

    core("ko", "story", "달과 별에 대한 짧은 이야기를 써 줘")
    core("ko", "factual", "세종대왕은 언제 태어났나요?")
    core("ko", "recommend", "마블 히어로 영화와 비슷한 영화를 추천해 주세요")


def test_korean_false_premise_ideal_passes():
    """The Korean false-premise correction must count as helpful for every event."""
    bad = []
    for t in tasks.CORE_BY_LANG["ko"]:
        if t.category == "false_premise":
            r = responses.ideal_response(t, random.Random(0))
            j = judge(t, r)
            if j.parts["helpful"] < 1.0:
                bad.append((t.prompt, r, j))
    assert not bad, f"{len(bad)} Korean false-premise ideals not fully helpful, e.g. {bad[0]}"


def test_korean_particles_after_english_titles():
    """은/는, 과/와 follow the Korean reading of an English title: Home → 홈은, Spring → 스프링은, Cat → 캣은."""
    prompts = {t.prompt for t in tasks.CORE_BY_LANG["ko"]}
    expected = ["Iron Falcon과 비슷한 영화를 추천해 주세요.", "Winter Piano와 비슷한 영화를 추천해 주세요.",
                "The Long Road Home과 비슷한 영화를 추천해 주세요.", "Letters in Spring과 비슷한 영화를 추천해 주세요.",
                "My Boss Is a Cat과 비슷한 영화를 추천해 주세요."]
    missing = [p for p in expected if p not in prompts]
    assert not missing, f"Korean particle errors; expected prompts missing: {missing}"


# ---------------------------------------------------------------------------------------------- simulated labelers
def test_agreement_at_calibrated_noise_matches_instructgpt(full):
    summary = json.loads((full / "world.json").read_text(encoding="utf-8"))
    noise = summary["labeler_noise"]
    assert 0.0 < noise < 2.0
    assert abs(summary["labeler_agreement"] - labelers.INSTRUCTGPT_AGREEMENT) <= 0.03
    agreement = labelers.measure_agreement(comparison_sets(full), noise, seed=12345)
    assert abs(agreement - 0.726) <= 0.03, agreement


def test_agreement_decreases_with_noise(small):
    sets = comparison_sets(small)
    noise = json.loads((small / "world.json").read_text(encoding="utf-8"))["labeler_noise"]
    a = [labelers.measure_agreement(sets, n, seed=7) for n in (0.5 * noise, noise, 2.0 * noise)]
    assert a[0] > a[1] > a[2], a
    assert a[2] > 0.5, a   # still better than chance


def test_noise_free_labelers_agree(small):
    sets = comparison_sets(small)
    a = labelers.SimulatedLabeler.draw(1, noise=0.0, jitter=0.0)
    b = labelers.SimulatedLabeler.draw(2, noise=0.0, jitter=0.0)
    rng = random.Random(0)
    agree = total = 0
    for parts_list in sets:
        x, n = labelers.pair_agreement(a.rank(parts_list, rng), b.rank(parts_list, rng))
        agree, total = agree + x, total + n
        # against the gold order: every pair with different gold scores is ordered the same way
        gold = [labelers.combine(parts, labelers.GOLD_WEIGHTS) for parts in parts_list]
        pos = {r: i for i, r in enumerate(a.rank(parts_list, rng))}
        for i in range(len(gold)):
            for j in range(len(gold)):
                if gold[i] > gold[j] + 1e-9:
                    assert pos[i] < pos[j], (parts_list[i], parts_list[j])
    assert agree == total


def test_gold_ranking_puts_ideal_first(written):
    rng = random.Random(0)
    for t, rs, js in written:
        order = labelers.gold_ranking([j.parts for j in js], rng)
        scores = [js[i].score for i in order]
        assert scores == sorted(scores, reverse=True)
        best_other = max(j.score for (k, _), j in zip(rs, js) if k != "ideal")
        if js[0].score > best_other:          # ties are broken at random (a tie is a bug reported by other tests)
            assert rs[order[0]][0] == "ideal", (t.prompt, order)


def test_gold_ranking_on_comparison_records(small):
    rng = random.Random(0)
    n = 0
    for r in load(small, "comparisons.jsonl"):
        if "ideal" in r["kinds"]:
            js = [judge(task_from_record(r), x) for x in r["responses"]]
            i = r["kinds"].index("ideal")
            if all(js[i].score > j.score for k, j in enumerate(js) if k != i):
                assert labelers.gold_ranking([j.parts for j in js], rng)[0] == i
                n += 1
    assert n > 50


# ---------------------------------------------------------------------------------------------- unicode
def test_korean_round_trips_byte_exact(tmp_path, small):
    recs = [{"id": "k1", "category": "factual", "lang": "ko", "prompt": "판다는 무엇을 먹나요? 🐼 — “따옴표”"},
            {"id": "k2", "category": "story", "lang": "ko",
             "prompt": "달과 별에 대한 짧은 이야기를 써 줘\n\n줄바꿈\t탭"}]
    p = tmp_path / "ko.jsonl"
    write_jsonl(p, recs)
    raw = p.read_bytes()
    assert "판다는".encode() in raw and b"\\u" not in raw
    back = read_jsonl(p, PROMPT)
    assert back == recs
    write_jsonl(tmp_path / "again.jsonl", back)
    assert (tmp_path / "again.jsonl").read_bytes() == raw
    # the generated files are canonical: reading and re-writing gives the same bytes
    for name in SCHEMAS:
        write_jsonl(tmp_path / name, load(small, name))
        assert (tmp_path / name).read_bytes() == (small / name).read_bytes(), name


# ---------------------------------------------------------------------------------------------- committed data
def test_committed_data_matches_regeneration(full):
    missing = [n for n in GENERATED if not (DATA / n).is_file()]
    if missing:
        pytest.fail(f"data/ lacks {missing}; generate it with `{REGEN}` (from the repository root)")
    assert sorted(p.name for p in full.iterdir()) == sorted(GENERATED + ("apps",))
    stale = sorted(p.name for p in DATA.iterdir() if p.suffix in (".json", ".jsonl") and p.name not in GENERATED)
    stale += sorted(f"apps/{p.name}" for p in (DATA / "apps").iterdir() if p.name not in APPS)
    assert not stale, f"data/ holds files the build does not write: {stale}"
    for name in GENERATED + APP_JSON:
        committed, fresh = (DATA / name).read_bytes(), (full / name).read_bytes()
        if committed != fresh:
            pytest.fail(f"data/{name} differs from a fresh build "
                        f"(first difference at {first_difference(committed, fresh)})"
                        f"\nIf the world changed on purpose, regenerate with `{REGEN}` and commit data/.")


def test_a_serious_flaw_costs_up_to_half_the_score():
    w = labelers.GOLD_WEIGHTS
    ok = {p: 1.0 for p in labelers.PARTS}
    assert labelers.combine(ok, w) == pytest.approx(1.0)
    assert labelers.combine({**ok, "helpful": 0.5}, w) == pytest.approx(1 - 0.5 * w["helpful"])     # passes: no cut
    assert labelers.combine({**ok, "fluent": 0.0}, w) == pytest.approx(0.5 * (1 - w["fluent"]))      # fails: halved
    assert labelers.combine({**ok, "fluent": 0.25}, w) == pytest.approx(0.75 * (1 - 0.75 * w["fluent"]))
    repetitive = labelers.judge(tasks.CORE_TASKS[0], " ".join(["It happened in 1969."] * 6))
    hedged = labelers.judge(tasks.CORE_TASKS[0], responses.lesser_response(tasks.CORE_TASKS[0], random.Random(0))[1])
    assert repetitive.failed and not hedged.failed and repetitive.score < hedged.score
