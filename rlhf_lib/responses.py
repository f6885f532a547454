"""Written responses of known quality: the careful answer, the hurried one, and GPT-3's failures (lesson 00).

For every task the world can write what a careful labeler would (`ideal_response`), what a hurried demonstrator
writes (`lesser_response`: the same answer with a needless hedge), one human demonstration of either kind
(`demonstration`, lesson 02's data) and the candidates a labeler ranks (`write_responses`, lesson 03's data): the
ideal answer, the hedged one and the failures GPT-3 shows (more questions, repetition, wrong facts, accepted false
premises, harmful compliance, insults, needless refusals).
"""
from __future__ import annotations

import functools
import random
import re

from .knowledge import ANIMALS, EVENTS, GENRES, MOVIES, PERSON_DATES, PERSON_KO, Movie
from .korean import josa
from .tasks import CORE_BY_LANG
from .world import (
    ANIMAL_BY_KEY,
    EVENT_BY_KEY,
    HEDGES,
    INTENT_INSTRUCTION,
    INTENT_LABELS,
    MOVIE_BY_TITLE,
    STORY_PAIRS,
    WORLD_CONFIG,
    Task,
    true_years,
)

BARE_REFUSAL = {"en": "I can't help with that.", "ko": "그건 도와드릴 수 없습니다."}
WRITTEN_ONLY = ("needless_refusal",)   # kinds written for the comparisons only, never seen on the "web"
# Kinds of failed answer that a hurried writer may end with a hedge (`WorldConfig.hedged_failure_rate`).
HEDGEABLE = ("off_topic", "wrong_fact", "partial", "accept_premise", "wrong_subject", "wrong_genre", "same_title",
             "made_up", "evasive")


def cap_first(s: str) -> str:
    """The text with its first letter upper-cased (an English name at the start of a sentence)."""
    return s[:1].upper() + s[1:]


# --------------------------------------------------------------------------------------------- the careful answer
def ideal_response(task: Task, rng: random.Random) -> str:
    """What a careful human labeler would write: truthful, helpful, harmless, short and fluent."""
    m, lang, c = task.meta, task.lang, task.category
    if c == "explain_child":
        return EVENT_BY_KEY[m["event"]].child[lang]
    if c == "factual":
        return _factual_answer(task)
    if c == "false_premise":
        e = EVENT_BY_KEY[m["event"]]
        if lang == "en":
            return f"That is not true: {e.who['en']} never {e.did['en']} in that year. {e.fact['en']}"
        return f"사실이 아닙니다. {josa(e.who['ko'], '은', '는')} 그해에 그런 일을 하지 않았습니다. {e.fact['ko']}"
    if c == "harmful":
        return _refusal(task)
    if c == "story":
        return write_story(m["a"], m["b"], lang, rng)
    if c == "recommend":
        pool = [mv for mv in MOVIES if mv.genre == m["genre"] and mv.title != m["avoid"]]
        return _recommend_text(rng.choice(pool), lang)
    if c == "describe":
        return _describe_text(MOVIE_BY_TITLE[m["title"]], lang)
    if c == "intent":
        return m["label"]
    raise ValueError(f"unknown category {c!r}")


def lesser_response(task: Task, rng: random.Random) -> tuple[str, str]:
    """A correct but lesser answer, as (kind, text), what a hurried demonstrator writes: the careful answer followed
    by a needless hedge that leaves the reader unsure whether to trust it ("hedged"). Every category has one: a
    hedged refusal, a hedged story, a hedged intent label. It passes the gold labeler's content checks with a lower
    score (the hedge scales helpfulness by `WorldConfig.hedge_helpful_factor`; an intent label with a sentence after
    it is no longer a bare label)."""
    return "hedged", f"{ideal_response(task, rng)} {rng.choice(HEDGES[task.lang])}"


def demonstration(task: Task, rng: random.Random) -> tuple[str, str]:
    """One human demonstration, as (kind, text): careful ("ideal") with probability
    `WorldConfig.careful_demo_rate`, else the lesser answer of `lesser_response`."""
    if rng.random() < WORLD_CONFIG.careful_demo_rate:
        return "ideal", ideal_response(task, rng)
    return lesser_response(task, rng)


def _factual_answer(task: Task, value: str | None = None) -> str:
    """The answer to a factual question; `value` replaces the name, food or home asked for (a wrong fact)."""
    m, lang = task.meta, task.lang
    if "event" in m:
        e = EVENT_BY_KEY[m["event"]]
        if m["ask"] == "who":
            who = e.who[lang] if value is None else value
            if lang == "en":
                return f"{cap_first(who)} {e.did['en']} in {e.year}."
            return f"{e.year}년에 {josa(who, '이', '가')} {e.did['ko']}습니다."
        if lang == "en":
            return f"It happened in {e.year}. {e.fact['en']}"
        return f"{josa(e.name['ko'], '은', '는')} {e.year}년에 있었습니다. {e.fact['ko']}"
    if "person" in m:
        y = PERSON_DATES[m["person"]][m["ask"]]
        verb = {"born": ("was born", "태어났습니다"), "died": ("died", "죽었습니다")}[m["ask"]]
        if lang == "en":
            return f"{m['person']} {verb[0]} in {y}."
        return f"{josa(PERSON_KO[m['person']], '은', '는')} {y}년에 {verb[1]}."
    a = ANIMAL_BY_KEY[m["animal"]]
    v = value if value is not None else a.food[lang] if m["ask"] == "food" else a.home[lang]
    if lang == "en":
        return f"The {a.name['en']} eats {v}." if m["ask"] == "food" else f"The {a.name['en']} lives in {v}."
    name = josa(a.name["ko"], "은", "는")
    return f"{name} {josa(v, '을', '를')} 먹습니다." if m["ask"] == "food" else f"{name} {v}에 삽니다."


def _refusal(task: Task) -> str:
    kind, t, lang = task.meta["kind"], task.meta["target"], task.lang
    if lang == "en":
        return {"bully": "I can't help with that. Bullying hurts people. "
                         f"If you have a problem with {t}, talk to a teacher or a friend you trust.",
                "insult": "I can't help with that. Insults hurt people. "
                          f"I can help you write a calm message to {t} instead.",
                "steal": "I can't help with that. Stealing is wrong and hurts others. "
                         f"If you need {t}, ask for help or save up for it.",
                "story": "I won't write a story that glorifies pain. I can write a kind adventure story instead."}[kind]
    return {"bully": "그건 도와드릴 수 없습니다. 괴롭힘은 사람에게 상처를 줍니다. "
                     f"{josa(t, '과', '와')} 문제가 있다면 선생님이나 믿을 수 있는 친구와 이야기해 보세요.",
            "insult": "그건 도와드릴 수 없습니다. 모욕은 사람에게 상처를 줍니다. "
                      f"대신 {t}에게 보낼 차분한 메시지를 함께 써 볼 수 있어요.",
            "steal": "그건 도와드릴 수 없습니다. 훔치는 것은 잘못이고 다른 사람에게 피해를 줍니다. "
                     f"{josa(t, '이', '가')} 필요하면 도움을 요청하거나 돈을 모아 보세요.",
            "story": "고통을 찬양하는 이야기는 쓰지 않겠습니다. 대신 따뜻한 모험 이야기를 써 드릴 수 있어요."}[kind]


_STORIES = {
    "en": ("Once upon a time, {a} felt lonely. One night {b} came to say hello. "
           "They talked until morning and became good friends.",
           "{A} wanted to visit {b}. The trip was long, but {a} did not give up. At last {a} reached {b} and smiled.",
           "Every evening {a} played with {b}. One day a storm came and {b} was gone. "
           "{A} waited, and soon {b} came back.",
           "{A} and {b} lived far apart. They sent each other small gifts. "
           "One spring they finally met and laughed together."),
    "ko": ("옛날 옛적에 {a} 외로웠어요. 어느 밤 {b} 찾아와 인사했어요. 둘은 아침까지 이야기하며 좋은 친구가 되었어요.",
           "{a} {b2} 만나고 싶었어요. 길은 멀었지만 포기하지 않았어요. 마침내 {b2} 만나 환하게 웃었어요.",
           "매일 저녁 {a} {b3} 함께 놀았어요. 어느 날 폭풍이 와서 {b} 사라졌어요. 기다리자 곧 {b} 돌아왔어요."),
}


def write_story(a: str, b: str, lang: str, rng: random.Random) -> str:
    """A short story about subjects a and b, from one of a few templates (the web's stories use them too)."""
    t = rng.choice(_STORIES[lang])
    if lang == "en":
        return t.format(a=a, b=b, A=cap_first(a))
    return t.format(a=josa(a, "은", "는"), b=josa(b, "이", "가"), b2=josa(b, "을", "를"), b3=josa(b, "과", "와"))


def _recommend_text(mv: Movie, lang: str) -> str:
    if lang == "en":
        return f"I recommend {mv.title} ({mv.year}). It is a {mv.genre} movie where {mv.plot['en']}."
    return f"{mv.title}({mv.year}) 영화를 추천합니다. {mv.plot['ko']}는 내용의 {GENRES[mv.genre]} 영화입니다."


def _describe_text(mv: Movie, lang: str, year: int | None = None, genre: str | None = None) -> str:
    y, g = year or mv.year, genre or mv.genre
    if lang == "en":
        return f"{mv.title} is a {y} {g} movie in which {mv.plot['en']}."
    return f"{josa(mv.title, '은', '는')} {y}년에 나온 {GENRES[g]} 영화입니다. {mv.plot['ko']}."


# --------------------------------------------------------------------------------------------- the failures
def _comply(task: Task) -> str:
    kind, t, lang = task.meta["kind"], task.meta["target"], task.lang
    if lang == "en":
        return {"bully": f"Easy. Call {t} stupid names every day, hide their bag and tell everyone to ignore them.",
                "insult": f"{t}, you are a stupid idiot and nobody likes you.",
                "steal": f"Wait until nobody is looking, grab {t} and run away fast.",
                "story": "The man screamed in pain and everyone laughed. "
                         "The blood was beautiful and the pain was glorious."}[kind]
    return {"bully": f"쉬워요. 매일 {josa(t, '을', '를')} 바보라고 부르고 가방을 숨기고 모두에게 무시하라고 하세요.",
            "insult": f"{t}, 너는 멍청한 바보이고 아무도 너를 좋아하지 않아.",
            "steal": f"아무도 안 볼 때 {josa(t, '을', '를')} 잡고 빨리 도망가세요.",
            "story": "남자는 고통에 비명을 질렀고 모두가 웃었다. 피가 아름다웠고 고통은 영광스러웠다."}[kind]


def _other_year(rng: random.Random, years: set[int]) -> int:
    """A year more than three years away from every one of `years`."""
    while True:
        y = rng.randint(1400, 2024)
        if all(abs(y - t) > 3 for t in years):
            return y


def _same_people(meta: dict) -> list:
    """Events that share the people of the task's event (an "off-topic" answer about them could be on topic)."""
    if "event" not in meta:
        return []
    who = EVENT_BY_KEY[meta["event"]].who["en"]
    return [e for e in EVENTS if e.who["en"] == who]


def repeat_sentence(sentence: str, rng: random.Random) -> str:
    """The sentence four to seven times over: the loop a next-token predictor falls into."""
    return " ".join([sentence] * rng.randint(4, 7))


def _category_failures(task: Task, ideal: str, rng: random.Random) -> list[tuple[str, str]]:
    """The failures particular to the task's family, as (kind, text)."""
    m, lang, c = task.meta, task.lang, task.category
    out = []
    if c in ("explain_child", "factual"):
        ty = true_years(task)
        if ty and m.get("ask") not in ("food", "home", "who"):
            wrong, text = _other_year(rng, ty), ideal
            for y in ty:
                text = text.replace(str(y), str(wrong))
            out.append(("wrong_fact", text))
        elif "animal" in m:
            other = rng.choice([a for a in ANIMALS if a.key != m["animal"]])
            value = other.food[lang] if m["ask"] == "food" else other.home[lang]
            out.append(("wrong_fact", _factual_answer(task, value=value)))
        elif m.get("ask") == "who":
            other = rng.choice([e for e in EVENTS if e.who["en"] != EVENT_BY_KEY[m["event"]].who["en"]])
            out.append(("wrong_fact", _factual_answer(task, value=other.who[lang])))
        out.append(("partial", "I am not sure." if lang == "en" else "잘 모르겠어요."))
    elif c == "false_premise":
        e = EVENT_BY_KEY[m["event"]]
        if lang == "en":
            acc = f"In {m['fake']}, {e.who['en']} {e.did['en']}. It was a big day and everyone was happy."
        else:
            acc = f"{m['fake']}년에 {josa(e.who['ko'], '이', '가')} {e.did['ko']}습니다. 모두가 기뻐했습니다."
        out.append(("accept_premise", acc))
        out.append(("partial", e.fact[lang]))
    elif c == "harmful":
        out.append(("comply", _comply(task)))
        out.append(("evasive", "Maybe. I don't know." if lang == "en" else "글쎄요, 잘 모르겠어요."))
    elif c == "story":
        i = 0 if lang == "en" else 1
        pa, pb = rng.choice([p for p in STORY_PAIRS if p[0][i] != m["a"]])
        out.append(("wrong_subject", write_story(pa[i], pb[i], lang, rng)))
        out.append(("rambling", (write_story(m["a"], m["b"], lang, rng) + " ") * 3))
    elif c == "recommend":
        wrong = rng.choice([mv for mv in MOVIES if mv.genre != m["genre"]])
        out.append(("wrong_genre", _recommend_text(wrong, lang)))
        same = [mv for mv in MOVIES if mv.title == m["avoid"]]
        if same:
            out.append(("same_title", _recommend_text(same[0], lang)))
        out.append(("made_up", "I recommend Super Hero Movie 3. It is very good." if lang == "en"
                    else "슈퍼 히어로 영화 3을 추천합니다. 아주 좋아요."))
    elif c == "describe":
        mv = MOVIE_BY_TITLE[m["title"]]
        out.append(("wrong_fact", _describe_text(mv, lang, year=_other_year(rng, {mv.year}))))
        out.append(("wrong_genre", _describe_text(mv, lang, genre=rng.choice([g for g in GENRES if g != mv.genre]))))
        out.append(("partial", "It is a movie." if lang == "en" else "영화입니다."))
    elif c == "intent":
        wrong = rng.choice([lab for lab in INTENT_LABELS if lab != m["label"]])
        out.append(("wrong_label", wrong))
        out.append(("verbose", f"The category is {m['label']}. " + INTENT_INSTRUCTION[lang]))
    return out


@functools.cache
def _questions(lang: str) -> list[Task]:
    """The core prompts a "more questions" answer is made of (all but the intent format), listed once per language."""
    return [t for t in CORE_BY_LANG[lang] if t.category != "intent"]


@functools.cache
def _off_topic_pool(lang: str, subject: tuple) -> list[Task]:
    """Factual and explain_child tasks about neither `subject` (the task's (key, value) pairs of event, animal and
    person) nor its event's people: where an off-topic answer comes from, listed once per subject."""
    sub = dict(subject)
    same = _same_people(sub)
    return [t for t in CORE_BY_LANG[lang] if t.category in ("factual", "explain_child")
            and not any(t.meta.get(k) == v for k, v in sub.items())
            and EVENT_BY_KEY.get(t.meta.get("event", "")) not in same]


def write_responses(task: Task, rng: random.Random) -> list[tuple[str, str]]:
    """Candidate responses of known quality, as (kind, text): the ideal one, the hedged one and GPT-3-style
    failures (lesson 03 ranks them)."""
    m, lang, c = task.meta, task.lang, task.category
    ideal = ideal_response(task, rng)
    out = [("ideal", ideal)]
    out.append(lesser_response(task, rng))
    others = _questions(lang)
    out.append(("more_questions", "\n".join(rng.choice(others).prompt for _ in range(rng.randint(2, 4)))))
    first = re.split(r"(?<=[.!?다요])\s", ideal)[0] if c != "intent" else ideal
    out.append(("repetitive", repeat_sentence(first.rstrip(".") + ".", rng) if c != "intent"
                else " ".join([ideal] * 5)))
    out.append(("toxic", ("Who cares? You are stupid for asking." if lang == "en" else "그걸 왜 물어? 너는 바보야.")))
    if c != "harmful":     # over-refusal: a harmless request turned down, the failure opposite to harmful compliance
        out.append(("needless_refusal", BARE_REFUSAL[lang]))
    off = rng.choice(_off_topic_pool(lang, tuple((k, m[k]) for k in ("event", "animal", "person") if k in m)))
    out.append(("off_topic", ideal_response(off, rng)))
    out += _category_failures(task, ideal, rng)
    # Hurried writers hedge whatever they write, good or bad: some failed answers carry a hedge too, so that a hedge
    # says nothing about an answer's content and only costs it (as it does the otherwise ideal "hedged" one).
    rate = WORLD_CONFIG.hedged_failure_rate
    return [(k, f"{t} {rng.choice(HEDGES[lang])}") if k in HEDGEABLE and rng.random() < rate else (k, t)
            for k, t in out]
