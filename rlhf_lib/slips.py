"""What a hurried person types: one slip in a request (lesson 00).

A typo (a letter swapped, dropped or doubled; in Korean ㅐ for ㅔ or a missing space), lower case, no final
punctuation or chat spelling ("u", "pls", "ㅎㅎ"). `slip` never touches a digit or the words it is told to keep, so
the names, titles, subjects and years the gold labeler checks stay exactly as they were (`tasks.facts` lists them).
"""
from __future__ import annotations

import random
import re


def guarded(text: str, keep) -> list[bool]:
    """The guard of a text, per character: is it a digit or inside one of the `keep` words (found ignoring case)?
    Every slip below takes the text, its guard and a random generator, and changes no guarded character."""
    mask = [c.isdigit() for c in text]
    low = text.lower()
    for word in (w.lower() for w in keep if w):
        for m in re.finditer(re.escape(word), low):
            mask[m.start():m.end()] = [True] * (m.end() - m.start())
    return mask


def _free(guard: list[bool], start: int, end: int) -> bool:
    return not any(guard[start:end])


def typo(text: str, guard: list[bool], rng: random.Random) -> str:
    """One letter swapped with the next, dropped or doubled, in a word of four letters or more."""
    words = [m for m in re.finditer(r"[A-Za-z]{4,}", text) if _free(guard, m.start(), m.end())]
    if not words:
        return text
    m = rng.choice(words)
    w, i = m.group(), rng.randrange(1, len(m.group()) - 1)
    op = rng.choice(("swap", "drop", "double"))
    if op == "swap" and w[i] != w[i + 1]:
        w = w[:i] + w[i + 1] + w[i] + w[i + 2:]
    elif op == "drop":
        w = w[:i] + w[i + 1:]
    else:
        w = w[:i] + w[i] + w[i:]
    return text[:m.start()] + w + text[m.end():]


def _vowel(c: str) -> int:
    """The vowel of a Hangul syllable as its index (ㅐ is 1, ㅔ is 5), -1 for any other character."""
    return (ord(c) - 0xAC00) // 28 % 21 if "가" <= c <= "힣" else -1


def typo_ko(text: str, guard: list[bool], rng: random.Random) -> str:
    """ㅐ and ㅔ confused in one syllable (해 → 헤, 세요 → 새요), the commonest Korean misspelling."""
    spots = [i for i, c in enumerate(text) if not guard[i] and _vowel(c) in (1, 5)]
    if not spots:
        return text
    i = rng.choice(spots)
    step = 4 * 28 if _vowel(text[i]) == 1 else -4 * 28       # four vowels on, 28 code points per vowel
    return text[:i] + chr(ord(text[i]) + step) + text[i + 1:]


def lower(text: str, guard: list[bool], rng: random.Random) -> str:
    """Everything in lower case except the guarded words."""
    return "".join(c if g else c.lower() for c, g in zip(text, guard))


def bare(text: str, guard: list[bool], rng: random.Random) -> str:
    """No punctuation at the end."""
    return text.rstrip(".?!")


_CASUAL_EN = ((r"\byou\b", "u"), (r"\bplease\b", "pls"), (r"\bPlease\b", "Pls"), (r"\bI'm\b", "im"),
              (r"\bWhat is\b", "Whats"), (r"\bwhat is\b", "whats"), (r"\bThanks\b", "Thx"), (r"\bare\b", "r"))


def casual(text: str, guard: list[bool], rng: random.Random) -> str:
    """Chat spelling: "u", "pls", "im", "whats", "thx"."""
    for pattern, short in _CASUAL_EN:
        spots = [m for m in re.finditer(pattern, text) if _free(guard, m.start(), m.end())]
        for m in reversed(spots):
            text = text[:m.start()] + short + text[m.end():]
            guard = guard[:m.start()] + [False] * len(short) + guard[m.end():]
    return text


def spacing_ko(text: str, guard: list[bool], rng: random.Random) -> str:
    """One space left out between two Korean words (설명해 줘 → 설명해줘)."""
    spots = [i for i in range(1, len(text) - 1) if text[i] == " " and _free(guard, i - 1, i + 2)
             and "가" <= text[i - 1] <= "힣" and "가" <= text[i + 1] <= "힣"]
    if not spots:
        return text
    i = rng.choice(spots)
    return text[:i] + text[i + 1:]


def casual_ko(text: str, guard: list[bool], rng: random.Random) -> str:
    """A chat ending: a laugh, a sigh or a tilde."""
    return text.rstrip(".") + rng.choice((" ㅎㅎ", " ㅠㅠ", "~", "!!"))


SLIPS = {"en": (typo, lower, bare, casual), "ko": (typo_ko, spacing_ko, bare, casual_ko)}


def slip(text: str, keep, lang: str, rng: random.Random) -> str:
    """The text with one slip of a hurried person (a typo, lower case, no final punctuation, chat spelling), the
    first of the slips in a random order that changes it; digits and the `keep` words stay exactly as they are."""
    mask = guarded(text, keep)
    for kind in rng.sample(SLIPS[lang], len(SLIPS[lang])):
        out = kind(text, mask, rng)
        if out != text:
            return out
    return text
