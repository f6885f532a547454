"""The "web" corpus that "our GPT-3" is pretrained on (lessons 00 and 01).

Encyclopedia and catalog pages, FAQ lists of instructions, Q&A pages, forum threads with wrong claims, insults and
harmful advice, and rambling repetitive stories, in English and Korean. The failures are common here, as they are
on the real web, so a next-token predictor trained on it shows GPT-3's failures: lesson 01 measures them.
"""
from __future__ import annotations

import random
import re

from .knowledge import ANIMALS, EVENTS, GENRES, MOVIES
from .korean import josa
from .responses import WRITTEN_ONLY, cap_first, repeat_sentence, write_responses, write_story
from .tasks import CORE_BY_LANG
from .world import STORY_PAIRS

# The page mix (kind, weight), set by hand to look like a web of questions, forums and loops; not tuned.
PAGE_KINDS = (("encyclopedia", 0.30), ("catalog", 0.10), ("faq", 0.16), ("qa", 0.12), ("forum", 0.17),
              ("story", 0.15))


def web_corpus(n_docs: int, rng: random.Random) -> list[dict]:
    """Pretraining "web" pages: encyclopedia and catalog pages, FAQ lists of instructions, forum threads with wrong
    claims, insults and harmful advice, and rambling repetitive stories, in English and Korean (35 % Korean).

    A next-token predictor trained on this reproduces GPT-3's failures: it continues an instruction with more
    instructions, repeats itself, accepts false premises and complies with harmful requests."""
    names, weights = zip(*PAGE_KINDS)
    docs = []
    for i in range(n_docs):
        lang = "ko" if rng.random() < 0.35 else "en"
        kind = rng.choices(names, weights)[0]
        docs.append({"id": f"web-{i:05d}", "kind": kind, "lang": lang, "text": _WRITERS[kind](lang, rng)})
    return docs


def _encyclopedia(lang: str, rng: random.Random) -> str:
    """An event's page (60 %) or an animal's."""
    if rng.random() < 0.6:
        e = rng.choice(EVENTS)
        head = cap_first(e.name[lang]) if lang == "en" else e.name["ko"]
        return f"{head}\n{e.fact[lang]} {e.child[lang]}"
    a = rng.choice(ANIMALS)
    if lang == "en":
        return (f"{cap_first(a.name['en'])}\nThe {a.name['en']} lives in {a.home['en']} and eats {a.food['en']}. "
                f"{a.trait['en']}")
    return (f"{a.name['ko']}\n{josa(a.name['ko'], '은', '는')} {a.home['ko']}에 살며 "
            f"{josa(a.food['ko'], '을', '를')} 먹습니다. {a.trait['ko']}")


def _catalog(lang: str, rng: random.Random) -> str:
    films = rng.sample(MOVIES, rng.randint(3, 5))
    if lang == "en":
        return "Movie catalog\n" + "\n".join(f"{m.title} ({m.year}), {m.genre}: {m.plot['en']}." for m in films)
    return "영화 목록\n" + "\n".join(f"{m.title} ({m.year}), {GENRES[m.genre]}: {m.plot['ko']}." for m in films)


def _faq(lang: str, rng: random.Random) -> str:
    """A list of questions and no answers: what teaches a model to answer a question with more questions."""
    qs = [t.prompt for t in rng.sample(CORE_BY_LANG[lang], rng.randint(3, 6)) if not t.input]
    if lang == "en":
        head = rng.choice(("Frequently asked questions", "Homework questions", "Questions people ask"))
    else:
        head = rng.choice(("자주 묻는 질문", "숙제 질문", "사람들이 묻는 질문"))
    return head + "\n" + "\n".join(qs)


def _qa(lang: str, rng: random.Random) -> str:
    """One question and one answer, good or bad."""
    cats = ("factual", "explain_child", "describe", "recommend")
    t = rng.choice([t for t in CORE_BY_LANG[lang] if t.category in cats])
    first = [r for r in write_responses(t, rng) if r[0] not in WRITTEN_ONLY]   # its ideal answer, twice as likely
    second = [r for r in write_responses(t, rng) if r[0] not in WRITTEN_ONLY]  # as each answer of a second set
    _, text = rng.choice(first[:1] * 2 + second[1:])
    q, a = ("Q", "A") if lang == "en" else ("질문", "답변")
    return f"{q}: {t.prompt}\n{a}: {text}"


def _forum(lang: str, rng: random.Random) -> str:
    """A thread: a question, a bad reply (accepted premise, compliance, wrong fact or insult), then an insult (half
    the time) or another question."""
    t = rng.choice([t for t in CORE_BY_LANG[lang] if t.category in ("false_premise", "harmful", "factual")])
    bad = dict(write_responses(t, rng))
    reply = bad.get("accept_premise") or bad.get("comply") or bad.get("wrong_fact") or bad["toxic"]
    extra = bad["toxic"] if rng.random() < 0.5 else bad["more_questions"].split("\n")[0]
    u = [f"user{rng.randint(10, 99)}" for _ in range(3)]
    return f"{u[0]}: {t.prompt}\n{u[1]}: {reply}\n{u[2]}: {extra}"


def _story(lang: str, rng: random.Random) -> str:
    """A story, which 60 % of the time falls into a loop of its first sentence."""
    a, b = [x[0 if lang == "en" else 1] for x in rng.choice(STORY_PAIRS)]
    s = write_story(a, b, lang, rng)
    if rng.random() < 0.6:   # the web is full of loops
        first = re.split(r"(?<=[.다요])\s", s)[0]
        return s + " " + repeat_sentence(first, rng)
    return s


_WRITERS = {"encyclopedia": _encyclopedia, "catalog": _catalog, "faq": _faq, "qa": _qa, "forum": _forum,
            "story": _story}
