"""Korean particles for the world's prompts and answers (lesson 00).

A Korean particle changes with the sound it follows: 은/는, 이/가, 을/를, 과/와. The world writes Korean around
Korean words, numbers and English movie titles alike, so `josa` decides by how the word ends when read aloud.
"""
from __future__ import annotations


def batchim(word: str) -> bool:
    """Does the last syllable end in a consonant (batchim), as read aloud? That decides 은/는, 이/가, 을/를, 과/와."""
    stripped = word.rstrip(" .)")
    if not stripped:
        return False
    c = stripped[-1]
    if "가" <= c <= "힣":
        return (ord(c) - 0xAC00) % 28 != 0
    if c.isdigit():
        return c in "013678"                     # 영 일 삼 육 칠 팔 end in a consonant
    w = stripped.lower()                          # English: how the word ends when written in Hangul
    if w.endswith(("ng", "ck", "m", "n", "l", "k", "p")) or (w.endswith("t") and w[-2:-1] in "aeiou"):
        return True                               # Room 룸, Spring 스프링, Girl 걸, Cat 캣 (but Forest 포레스트)
    return w.endswith(("me", "ne"))               # Home 홈, Time 타임


def josa(word: str, with_final: str, without_final: str) -> str:
    """The word with its particle: `josa("판다", "은", "는")` is "판다는", `josa("Cat", "과", "와")` is "Cat과"."""
    return word + (with_final if batchim(word) else without_final)
