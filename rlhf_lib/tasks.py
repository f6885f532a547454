"""The world's tasks: every prompt a user may send, and the split into training and held-out users (lesson 00).

The facts of `knowledge.py` become core prompts in 8 families (`world.CATEGORIES`), in English and Korean:
children's explanations, factual questions, false premises, harmful requests, stories, recommendations, movie
descriptions and intent labels. Each request (one event to explain, one premise with its fake year, one target to
bully …) is phrased many ways from its family's grammar (`phrasing.py`: questions and imperatives, synonyms, who the
answer is for, how long, openers and closers, 반말 and 존댓말), so a model has to learn the family, not a template;
`PHRASINGS` says how many phrasings each request gets. Genres go by many names ("scary movie", "공포물") and the
intent family varies both the sentence to label and the instruction over it (`movie_phrasing.py`). On top of that,
politeness wrappers ("Hi! …", "… 고마워요!") and, for `SLIP_SHARE` of the sampled prompts, one slip of a hurried
typist (`slips.py`: a typo, lower case, no final punctuation, "u", "해줘"), never inside the names, titles,
subjects or years the gold labeler checks. Held-out users wrap their requests in words no training prompt uses.
"""
from __future__ import annotations

import random

from .knowledge import ANIMALS, EVENTS, GENRES, MOVIES, PERSON_DATES, PERSON_KO, Event
from .korean import josa
from .movie_phrasing import genre_names, genre_slots, intent_instruction, intent_items
from .phrasing import article, cap, compose, ko_forms
from .slips import slip
from .world import (
    ANIMAL_BY_KEY,
    CATEGORIES,
    EVENT_BY_KEY,
    INTENT_INSTRUCTION,
    INTENT_LABELS,
    SEED_PROMPTS,
    STORY_PAIRS,
    WORLD_CONFIG,
    Task,
)

# Politeness wrappers (opener, closer) of the training users.
WRAP = {
    "en": (("", ""), ("Please help me. ", ""), ("Hi! ", ""), ("Quick question: ", ""), ("", " Thanks!"),
           ("I have a request. ", ""), ("", " Please keep it short.")),
    "ko": (("", ""), ("안녕하세요! ", ""), ("", " 고마워요!"), ("부탁이 있어요. ", ""), ("", " 짧게 부탁해요.")),
}
# Openers and closers that no training prompt uses: how the held-out users phrase their requests.
WRAP_HELDOUT = {"en": (("Hey there! ", ""), ("Can you help me? ", ""), ("", " Thank you so much.")),
                "ko": (("저기요, ", ""), ("", " 감사합니다."))}
SLIP_SHARE = 0.2    # share of sampled prompts (training and held-out users alike) with one slip (`slips.slip`)


def fake_years(e: Event) -> list[int]:
    """Years a false premise puts the event in: five shared ones (the seed deck's 2015 among them) and the rest of
    `WorldConfig.fake_years_per_event` drawn for this event, none within five years of a true one. So many years
    that a model has to *copy* the year from the question to correct it, rather than remember one wrong year per
    event."""
    rng = random.Random(f"fake-years:{e.key}")
    years = [1820, 1975, 2003, 2015, 2021]
    while len(years) < WORLD_CONFIG.fake_years_per_event:
        y = rng.randint(1800, 2024)
        if y not in years:
            years.append(y)
    return [y for y in years if abs(y - e.year) >= 5]


# --------------------------------------------------------------------------------------------- core prompts
# Phrasings per request (`phrasing.compose`), by grammar: a request is one thing asked for (one event to explain, one
# (event, fake year) premise, one target to bully …); where the grammar allows fewer, all of them.
PHRASINGS = {"explain": 30, "year": 12, "who": 8, "born": 10, "died": 10, "food": 10, "home": 10, "premise": 4,
             "bully": 12, "insult": 12, "steal": 6, "cruel": 40, "story": 20, "similar": 8, "marvel": 6, "genre": 16,
             "describe": 10}
LANGS = ("en", "ko")


def _task(cat: str, lang: str, instr: str, inp: str = "", **meta) -> Task:
    """A core task (no id yet)."""
    return Task(id="", category=cat, lang=lang, instruction=instr, input=inp, meta=meta)


def _both(**meta) -> dict:
    """The same meta in both languages."""
    return {lang: meta for lang in LANGS}


def _phrased(cat: str, kind: str, slots: dict, key: str, meta: dict, inp: dict | None = None) -> list[Task]:
    """The tasks of one request in both languages: `slots[lang]` fill grammar `kind` (`phrasing.GRAMMARS`),
    `meta[lang]` is what the gold labeler needs, `inp[lang]` the input (a movie card)."""
    return [_task(cat, lang, text, (inp or {}).get(lang, ""), **meta[lang])
            for lang in LANGS for text in compose(kind, lang, slots[lang], PHRASINGS[kind], key)]


def _event_tasks(e: Event) -> list[Task]:
    """Children's explanations, factual questions and false premises about one event."""
    en, ko = e.name["en"], e.name["ko"]
    name = {"en": {"n": en, "N": cap(en)}, "ko": ko_forms(n=ko)}
    out = _phrased("explain_child", "explain", name, e.key, _both(event=e.key))
    out += _phrased("factual", "year", name, e.key, _both(event=e.key, ask="year"))
    out += _phrased("factual", "who", name, e.key, _both(event=e.key, ask="who"))
    who_did = f"{e.who['en']} {e.did['en']}"
    for fake in fake_years(e):
        slots = {"en": {"who_did": who_did, "Who_did": cap(who_did), "fake": fake},
                 "ko": {**ko_forms(who=e.who["ko"]), "did": e.did["ko"], "fake": fake}}
        out += _phrased("false_premise", "premise", slots, f"{e.key}:{fake}", _both(event=e.key, fake=fake))
    return out


def _person_and_animal_tasks() -> list[Task]:
    """When a person was born or died; what an animal eats and where it lives."""
    out = []
    for person in PERSON_DATES:
        slots = {"en": {"p": person}, "ko": ko_forms(p=PERSON_KO[person])}
        for ask in ("born", "died"):
            out += _phrased("factual", ask, slots, person, _both(person=person, ask=ask))
    for a in ANIMALS:
        en = a.name["en"]
        slots = {"en": {"a": en, "as": en + "s", "an": article(en)}, "ko": ko_forms(a=a.name["ko"])}
        for ask in ("food", "home"):
            out += _phrased("factual", ask, slots, a.key, _both(animal=a.key, ask=ask))
    return out


def _harmful_tasks() -> list[Task]:
    """Requests to bully, insult or steal, and for stories that glorify pain."""
    out = []
    targets = (("Hong Gildong", "홍길동"), ("my classmate", "반 친구"), ("the new kid at school", "전학 온 친구"),
               ("my little brother", "남동생"), ("Kim Minsu", "김민수"))
    for en, ko in targets:
        slots = {"en": {"t": en}, "ko": ko_forms(t=ko)}
        for kind in ("bully", "insult"):
            out += _phrased("harmful", kind, slots, en, {"en": {"kind": kind, "target": en},
                                                          "ko": {"kind": kind, "target": ko}})
    for en, ko in (("a bike", "자전거"), ("money", "돈"), ("candy", "사탕")):
        for pen, pko in (("the store", "가게"), ("my neighbor", "이웃집"), ("school", "학교")):
            slots = {"en": {"x": en, "place": pen}, "ko": {**ko_forms(x=ko), "place": pko}}
            out += _phrased("harmful", "steal", slots, f"{en}:{pen}", {"en": {"kind": "steal", "target": en},
                                                                       "ko": {"kind": "steal", "target": ko}})
    return out + _phrased("harmful", "cruel", {"en": {}, "ko": {}}, "story", _both(kind="story", target=""))


def _story_tasks() -> list[Task]:
    """A short story about two subjects (`world.STORY_PAIRS`)."""
    out = []
    for a, b in STORY_PAIRS:
        sko = f"{josa(a[1], '과', '와')} {b[1]}"
        slots = {"en": {"s": f"{a[0]} and {b[0]}", "a": a[0], "b": b[0]},
                 "ko": {**ko_forms(s=sko, a=a[1], b=b[1]), "s": sko}}
        out += _phrased("story", "story", slots, a[0], {"en": {"a": a[0], "b": b[0]},
                                                          "ko": {"a": a[1], "b": b[1]}})
    return out


def _movie_tasks() -> list[Task]:
    """Recommendations (like a title, or of a genre), then descriptions of a movie card."""
    out = _phrased("recommend", "marvel", {"en": {}, "ko": {}}, "marvel", _both(genre="superhero", avoid=""))
    for m in MOVIES:
        slots = {"en": {"title": m.title}, "ko": ko_forms(title=m.title)}
        out += _phrased("recommend", "similar", slots, m.title, _both(genre=m.genre, avoid=m.title))
    for g in GENRES:
        slots = {lang: genre_slots(g, lang) for lang in LANGS}      # the genre's names, one drawn per phrasing
        out += _phrased("recommend", "genre", slots, g, _both(genre=g, avoid=""))
    for m in MOVIES:
        cards = {"en": f"Title: {m.title}\nYear: {m.year}\nGenre: {m.genre}\nPlot: {m.plot['en']}",
                 "ko": f"제목: {m.title}\n연도: {m.year}\n장르: {GENRES[m.genre]}\n줄거리: {m.plot['ko']}"}
        out += _phrased("describe", "describe", {"en": {}, "ko": {}}, m.title, _both(title=m.title), cards)
    return out


def _intent_tasks() -> list[Task]:
    """Sentences to label 'description', 'recommended' or 'search' (`movie_phrasing.intent_items`), each under an
    instruction drawn for it (`movie_phrasing.intent_instruction`: the seed deck's, which stays as it is, for a
    share of them, otherwise a wording of the intent grammar)."""
    return [_task("intent", lang, intent_instruction(lang, s), s, label=label)
            for lang in LANGS for label, s in intent_items(lang)]


def is_seed(task: Task) -> bool:
    """Is this one of the seed deck's prompts (for `describe` and `intent`: its English instruction)?"""
    return task.prompt in SEED_PROMPTS or (task.category in ("describe", "intent")
                                           and task.instruction in SEED_PROMPTS and task.lang == "en")


def _hides_a_seed(t: Task) -> bool:
    """Does the prompt contain one of the seed deck's prompts without being it? Such a prompt would put the held-out
    seed into training."""
    return not is_seed(t) and any(s in t.prompt for s in SEED_PROMPTS if s != INTENT_INSTRUCTION["en"])


def core_tasks() -> list[Task]:
    """Every core prompt of the world (before politeness wrappers and slips), deterministic and de-duplicated by
    prompt; none hides a seed prompt inside a longer one."""
    out = [t for e in EVENTS for t in _event_tasks(e)]
    out += _person_and_animal_tasks() + _harmful_tasks() + _story_tasks() + _movie_tasks() + _intent_tasks()
    seen, uniq = set(), []
    for t in out:
        if t.prompt not in seen and not _hides_a_seed(t):
            seen.add(t.prompt)
            uniq.append(t)
    return uniq


CORE_TASKS: list[Task] = core_tasks()
CORE_BY_LANG = {lang: [t for t in CORE_TASKS if t.lang == lang] for lang in LANGS}


# --------------------------------------------------------------------------------------------- splits
def split_core(seed: int, heldout_frac: float = WORLD_CONFIG.heldout_frac) -> tuple[list[Task], list[Task]]:
    """Split core prompts into train and held-out, per category. The seed deck's prompts are always held out (for
    "Can you describe the above?" that is every movie card under that phrasing), so evaluation prompts never appear
    in any training split."""
    rng = random.Random(seed)
    train, held = [], []
    for cat in CATEGORIES:
        tasks = [t for t in CORE_TASKS if t.category == cat]
        rng.shuffle(tasks)
        for lang in ("en", "ko"):
            group = [t for t in tasks if t.lang == lang]
            seeds = [t.prompt in SEED_PROMPTS or (cat == "describe" and t.instruction in SEED_PROMPTS) for t in group]
            n_more = max(1, round(heldout_frac * len(group)) - sum(seeds))
            for t, seed_task in zip(group, seeds):
                if seed_task:
                    held.append(t)
                elif n_more > 0:
                    held.append(t)
                    n_more -= 1
                else:
                    train.append(t)
    return train, held


def split_users(seed: int, heldout_frac: float = WORLD_CONFIG.heldout_frac) -> tuple[list[Task], list[Task]]:
    """The course's split, by *users* as InstructGPT's was (train and held-out prompts come from different
    customers): (train core prompts, held-out core prompts).

    Held-out users ask the same kinds of requests as the training users, so every core request except the seed
    deck's may appear on both sides; what no training prompt ever has is their wording around it (`WRAP_HELDOUT`),
    so no evaluation prompt is ever seen in training. The seed deck's prompts, and `heldout_frac` of the intent
    sentences (which take no wrapper), stay out of training entirely. `split_core` is the stricter split by
    phrasing: the 1.3M-parameter model does not carry facts over to templates it never saw (lesson 02 measures it).
    """
    train, held = split_core(seed, heldout_frac)
    held_keep = [t for t in held if is_seed(t) or t.category == "intent"]
    train = train + [t for t in held if t not in held_keep]
    return train, held_keep + [t for t in train if t.category != "intent"]


def wrap(task: Task, pre: str, post: str, tid: str) -> Task:
    """The task under id `tid`, its instruction between an opener and a closer (the seed deck's prompts and the
    intent format stay verbatim)."""
    if task.prompt in SEED_PROMPTS or task.category == "intent":
        pre = post = ""
    return Task(id=tid, category=task.category, lang=task.lang, instruction=pre + task.instruction + post,
                input=task.input, meta=dict(task.meta))


def facts(task: Task) -> list[str]:
    """The words of the task's prompt that carry what the gold labeler checks or the answer names: the event, its
    people and deed, the person, the animal, the target, the story's subjects, the title, every name of the genre,
    the intent labels (and every number, which `slips.slip` always keeps)."""
    m, lang = task.meta, task.lang
    out = [str(m[k]) for k in ("target", "a", "b", "title", "avoid") if m.get(k)] + ["marvel heroes", "마블 히어로"]
    if "event" in m:
        e = EVENT_BY_KEY[m["event"]]
        out += [e.name[lang], e.who[lang], e.did[lang]]
    if "person" in m:
        out.append(m["person"] if lang == "en" else PERSON_KO[m["person"]])
    if "animal" in m:
        out.append(ANIMAL_BY_KEY[m["animal"]].name[lang])
    if "genre" in m:
        out += [m["genre"] if lang == "en" else GENRES[m["genre"]], *genre_names(m["genre"], lang)]
    if "label" in m:
        out += list(INTENT_LABELS)
    return out


def slipped(task: Task, rng: random.Random) -> Task:
    """The task with one slip in its instruction (`slips.slip`), keeping `facts(task)`; the seed deck's phrasings
    and the intent format stay verbatim, and a slip that would spell out a seed prompt is not made."""
    if is_seed(task) or task.category == "intent":
        return task
    text = slip(task.instruction, facts(task), task.lang, rng)
    if any(s in text for s in SEED_PROMPTS):
        return task
    return Task(id=task.id, category=task.category, lang=task.lang, instruction=text, input=task.input,
                meta=dict(task.meta))


def sample_tasks(core: list[Task], n: int, rng: random.Random, prefix: str, wraps: dict = WRAP,
                 slips: float = SLIP_SHARE) -> list[Task]:
    """n prompts drawn from core prompts, balanced over categories, each with a random politeness wrapper and, with
    probability `slips`, one slip."""
    by_cat = {c: [t for t in core if t.category == c] for c in CATEGORIES}
    cats = [c for c in CATEGORIES if by_cat[c]]
    out = []
    for i in range(n):
        cat = cats[i % len(cats)]
        t = rng.choice(by_cat[cat])
        pre, post = rng.choice(wraps[t.lang])
        t = wrap(t, pre, post, f"{prefix}-{i:05d}")
        out.append(slipped(t, rng) if rng.random() < slips else t)
    return out
