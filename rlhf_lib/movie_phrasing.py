"""How users talk about movies: the names they give a genre and how they ask for an intent label (lesson 00).

Nobody says only "horror": people ask for "a scary movie", "something spooky", "공포물", "무서운 영화". Each genre
has a few names per language (`GENRE_WORDS`, said before "movie", and `GENRE_PHRASES`, said on their own), the first
word the catalog's own (`knowledge.GENRES`); a request draws one per phrasing (`genre_slots`) and the task keeps the
catalog's genre in its meta, so the gold labeler judges the answer as before. The intent family's instruction is a
grammar too (`intent_instruction`): a frame ("Label the request below as …", "아래 문장을 … 중 하나로 분류해 줘"),
the three labels quoted or not, in any order, joined by commas, "/" or "or" (always all three, spelled exactly), and
a closer ("Just the label."); the seed deck's instruction is one wording among them (`DECK_SHARE`). The sentences to
label (`INTENT_SENTENCES`, `INTENT_GENRE`) vary the same way.
"""
from __future__ import annotations

import random

from .knowledge import GENRES, MOVIES
from .phrasing import Grammar, article, ko_forms, tidy
from .world import INTENT_INSTRUCTION, INTENT_LABELS

# --------------------------------------------------------------------------------------------- genre names
# genre → words said before "movie" / "영화" (the catalog's word first)
GENRE_WORDS = {
    "en": {"superhero": ("superhero", "hero", "comic book"), "comedy": ("comedy", "funny", "hilarious"),
           "horror": ("horror", "scary", "creepy", "spooky"), "romance": ("romance", "romantic", "love"),
           "science fiction": ("science fiction", "sci-fi", "SF", "space"),
           "animation": ("animation", "animated", "cartoon"), "drama": ("drama", "emotional", "serious")},
    "ko": {"superhero": ("슈퍼히어로", "히어로", "영웅"), "comedy": ("코미디", "웃긴", "코믹"),
           "horror": ("공포", "무서운", "호러"), "romance": ("로맨스", "멜로", "로맨틱한"),
           "science fiction": ("공상과학", "SF", "우주"), "animation": ("애니메이션", "만화", "애니"),
           "drama": ("드라마", "감동적인", "눈물 나는")},
}
# genre → what people ask for on its own ("I'm in the mood for …", "… 추천해 줘")
GENRE_PHRASES = {
    "en": {"superhero": ("a superhero flick", "something with superheroes", "a movie about people with superpowers"),
           "comedy": ("something that makes me laugh", "a comedy", "a funny movie"),
           "horror": ("a scary movie", "something scary", "a horror flick", "something that gives me chills"),
           "romance": ("a love story", "something romantic", "a romantic film"),
           "science fiction": ("a sci-fi movie", "an SF film", "something set in space or the future"),
           "animation": ("a cartoon", "an animated film", "something animated"),
           "drama": ("a tearjerker", "a drama", "something that makes me cry")},
    "ko": {"superhero": ("히어로물", "슈퍼히어로물", "초능력자가 나오는 영화"),
           "comedy": ("웃긴 영화", "코미디물", "빵 터지는 영화"), "horror": ("공포물", "무서운 영화", "오싹한 영화"),
           "romance": ("로맨스물", "사랑 이야기", "설레는 영화"),
           "science fiction": ("SF 영화", "공상과학물", "미래가 배경인 영화"),
           "animation": ("애니", "만화 영화", "애니메이션 영화"),
           "drama": ("감동적인 영화", "눈물 나는 영화", "드라마 영화")},
}


def genre_names(genre: str, lang: str) -> tuple[str, ...]:
    """Every name of the genre in the language, once each: its words, then its phrases."""
    return tuple(dict.fromkeys(GENRE_WORDS[lang][genre] + GENRE_PHRASES[lang][genre]))


def genre_slots(genre: str, lang: str) -> list[dict]:
    """The slot choices of a request about the genre, one per (word, phrase) pair, the catalog's word first:
    `g` (before "movie"), `a_g` (with its article) and `thing` (on its own; Korean with its particles)."""
    out = []
    for w in GENRE_WORDS[lang][genre]:
        for p in GENRE_PHRASES[lang][genre]:
            out.append({"g": w, "a_g": article(w), "thing": p} if lang == "en" else {"g": w, **ko_forms(thing=p)})
    return out


# --------------------------------------------------------------------------------------------- intent instruction
DECK_SHARE = 0.25      # share of intent tasks asked with the seed deck's instruction (`world.INTENT_INSTRUCTION`)
_OBJ_EN = ("the sentence below", "this sentence", "the request below", "the following message", "the text below",
           "this query", "the line below", "the user's message below")
_OBJ_KO = ("아래 문장", "다음 문장", "아래 요청", "이 문장", "다음 메시지", "아래 글")
INTENT_GRAMMARS = {
    "en": (Grammar(
        ("Label {obj} as {labels}.", "Classify {obj} as {labels}.", "Classify {obj}: {labels}?",
         "Which intent fits {obj}: {labels}?", "What is the intent of {obj}: {labels}?", "Is {obj} {labels}?",
         "Tag {obj} with one of {labels}.", "Pick the category of {obj} from {labels}.",
         "Sort {obj} into one of three intents: {labels}.", "Read {obj} and say whether it is {labels}.",
         "Intent of {obj}? Options: {labels}.", "Choose one label for {obj}: {labels}.",
         "Which of {labels} describes {obj} best?", "Categorize {obj} as {labels}.",
         "What does the user want in {obj}? Answer {labels}.", "which one is {obj}, {labels}?",
         "{labels}: which label fits {obj}?"),
        {"obj": _OBJ_EN},
        ("",) * 8 + ("Intent check. ", "Quick labeling task. ", "Classification task. "),
        ("",) * 3 + (" Answer with the label only.", " Just the label.", " Reply with one word.",
                     " Only the label, nothing else.", " Give only the category.", " One word, please.",
                     " No explanation needed.", " Output just the category name.", " just the label pls")),),
    "ko": (Grammar(       # 존댓말
        ("{obj을} {labels} 중 하나로 분류해 주세요.", "{obj은} {labels} 중 무엇인가요?",
         "{obj}의 의도가 {labels} 중 어느 것인지 골라 주세요.", "{obj}에 {labels} 중 알맞은 라벨을 붙여 주세요.",
         "{obj}의 의도를 {labels} 중에서 골라 주시겠어요?", "{obj은} {labels} 가운데 어디에 해당하나요?",
         "{labels} 중 {obj}에 맞는 것은 무엇일까요?"),
        {"obj": _OBJ_KO}, ("",) * 6 + ("분류 문제예요. ", "의도 분류를 부탁드려요. "),
        ("",) * 3 + (" 라벨만 답해 주세요.", " 범주 이름만 써 주세요.", " 한 단어로만 답해 주세요.",
                     " 설명 없이 라벨만 주세요.")),
           Grammar(       # 반말
        ("{obj을} {labels} 중 하나로 분류해 줘.", "{obj은} {labels} 중 뭐야?",
         "{obj}의 의도가 {labels} 중 뭔지 골라 줘.",
         "{obj}에 {labels} 중 맞는 라벨 붙여 줘.", "{obj은} {labels} 중에 어디에 속해?",
         "{labels} 중에 {obj은} 뭐야?"),
        {"obj": _OBJ_KO}, ("",) * 6 + ("분류 문제야. ", "의도 분류 좀 해 줘. "),
        ("",) * 3 + (" 라벨만 말해 줘.", " 한 단어로만 답해.", " 설명은 빼고 라벨만.", " 범주 이름만 써 줘."))),
}
_JOINS = {"en": (lambda ws: ", ".join(ws), lambda ws: f"{ws[0]}, {ws[1]} or {ws[2]}", lambda ws: " / ".join(ws),
                 lambda ws: " or ".join(ws), lambda ws: f"{ws[0]}, {ws[1]}, or {ws[2]}"),
          "ko": (lambda ws: ", ".join(ws), lambda ws: " / ".join(ws), lambda ws: f"{ws[0]}, {ws[1]} 또는 {ws[2]}",
                 lambda ws: "·".join(ws))}


def label_list(lang: str, rng: random.Random) -> str:
    """The three intent labels, spelled exactly: in the deck's order or another, quoted or not, joined one way."""
    order = INTENT_LABELS if rng.random() < 0.6 else tuple(rng.sample(INTENT_LABELS, 3))
    q = rng.choice(("'", "'", '"', ""))
    return rng.choice(_JOINS[lang])([f"{q}{w}{q}" for w in order])


def intent_instruction(lang: str, key: str) -> str:
    """The instruction over one sentence to label (`key`): the seed deck's for `DECK_SHARE` of them, otherwise a
    draw of (register, frame, object, label list, opener, closer) seeded by the key; it always names all three
    labels exactly and never spells out the English deck instruction by chance."""
    rng = random.Random(f"intent-instruction:{lang}:{key}")
    if rng.random() < DECK_SHARE:
        return INTENT_INSTRUCTION[lang]
    g = rng.choice(INTENT_GRAMMARS[lang])
    obj, frame = rng.choice(g.parts["obj"]), rng.choice(g.frames)
    body = frame.format(**ko_forms(obj=obj), labels=label_list(lang, rng))
    text = tidy(rng.choice(g.leads) + body + rng.choice(g.closes))
    return INTENT_INSTRUCTION[lang] if text == INTENT_INSTRUCTION["en"] else text


# --------------------------------------------------------------------------------------------- sentences to label
# Sentences for the intent family, by label ({t}: title, {y}: year, {g}: a genre word; Korean also {t은}, {t과}).
INTENT_SENTENCES = {
    "en": {"description": ("Tell me about the movie {t}.", "What is {t} about?", "What's the story of {t}?",
                           "Give me the plot of {t}.", "Describe the movie {t}.", "I want to know what {t} is about.",
                           "What happens in {t}?", "Can you sum up {t} for me?", "What kind of story is {t}?"),
           "recommended": ("What should I watch if I liked {t}?", "Recommend something like {t}.",
                           "Any movies similar to {t}?", "I loved {t}. What else would I enjoy?",
                           "Suggest a film like {t}.", "After {t}, what would be a good next watch?"),
           "search": ("Find movies released in {y}.", "Search for {g} movies from {y}.",
                      "Show me all movies from {y}.", "List {g} films released in {y}.",
                      "Which movies came out in {y}?", "Look up {g} movies made in {y}.", "Find {g} movies from {y}.",
                      "Pull up every {g} title from {y}.")},
    "ko": {"description": ("{t은} 어떤 영화야?", "{t} 줄거리를 알려 줘.", "{t} 줄거리가 뭐예요?",
                           "{t은} 무슨 내용이에요?", "{t}에 대해 설명해 줘.", "{t은} 무슨 이야기야?"),
           "recommended": ("{t과} 비슷한 영화 추천해 줘.", "{t} 같은 영화 또 있어?",
                           "{t} 재미있게 봤는데 비슷한 영화 추천해 주세요.", "{t} 좋아하는데 비슷한 거 뭐 볼까?"),
           "search": ("{y}년에 개봉한 {g} 영화를 찾아 줘.", "{y}년에 나온 영화를 검색해 줘.",
                      "{y}년 {g} 영화 목록을 보여 주세요.", "{y}년에 개봉한 영화 찾아 주세요.",
                      "{y}년에 나온 {g} 영화 전부 검색해 줘.")},
}
INTENT_GENRE = {"en": (("recommended", "Can you recommend {a_g} movie?"), ("recommended", "Suggest a good {g} film."),
                       ("recommended", "I'm in the mood for {thing}."), ("search", "Find all {g} movies."),
                       ("search", "Show me every {g} film in the catalog.")),
                "ko": (("recommended", "{g} 영화 추천해 줘."), ("recommended", "볼 만한 {g} 영화 추천해 주세요."),
                       ("recommended", "{thing} 하나 골라 줘."), ("search", "{g} 영화 전부 찾아 줘."),
                       ("search", "{g} 영화 목록 좀 보여 줘."))}


def intent_items(lang: str) -> list[tuple[str, str]]:
    """(label, sentence) for every intent sentence: each of `INTENT_SENTENCES` for every movie and of `INTENT_GENRE`
    for every genre, each naming its genre by a name drawn for that sentence (`genre_slots`)."""
    out = []
    for m in MOVIES:
        for label, frames in INTENT_SENTENCES[lang].items():
            for i, s in enumerate(frames):
                g = random.Random(f"intent-genre:{lang}:{m.title}:{label}:{i}").choice(GENRE_WORDS[lang][m.genre])
                out.append((label, s.format(**ko_forms(t=m.title), y=m.year, g=g)))
    for genre in GENRES:
        choices = genre_slots(genre, lang)
        for i, (label, s) in enumerate(INTENT_GENRE[lang]):
            out.append((label, s.format(**random.Random(f"intent-genre:{lang}:{genre}:{i}").choice(choices))))
    return out
