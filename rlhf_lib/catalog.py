"""The world's movie catalog as a SQLite database (lesson 09): 100 films, a read-only connection, a retriever.

The first 22 films are `knowledge.MOVIES` (title, year, genre and plot unchanged); 78 more are generated from small
hand-written word lists, and every film gets a director and a rating. All of it is drawn from one seeded generator,
so the catalog, and the database file built from it, are the same on every machine:

    catalog = films()
    digest = build_db("data/catalog.sqlite", catalog)     # sha256 of the file: byte-identical on every rebuild
    conn = connect("data/catalog.sqlite")                  # read-only: model-written SQL never writes
    similar(conn, "Iron Falcon")                           # recommendation with SQL: same genre, shared plot words
    retrieve(catalog, "Who directed Iron Falcon?")         # the lexical retriever of the query-rewriting lesson

`card` and `feature` are the two ways an answer or a slide shows a film.
"""
from __future__ import annotations

import hashlib
import os
import random
import re
import sqlite3
import string
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .knowledge import GENRES, MOVIES
from .korean import josa
from .sql_guard import connect_read_only


@dataclass(frozen=True)
class Film:
    id: int                     # 1..N_FILMS, the row id in the database
    title: str
    year: int
    genre: str                  # a key of knowledge.GENRES
    director: str               # English name, e.g. "Mira Holt"
    director_ko: str            # Korean transliteration, e.g. "미라 홀트"
    rating: float               # one decimal, 5.0 .. 9.5
    plot: dict[str, str]        # {"en": ..., "ko": ...}, one line each


N_FILMS = 100
MIN_PER_GENRE = 10
MIN_PER_DIRECTOR = 3

DIRECTORS: tuple[tuple[str, str], ...] = (     # invented directors (en, ko), distinct surnames
    ("Mira Holt", "미라 홀트"), ("Jonas Reed", "요나스 리드"), ("Ada Lind", "아다 린드"), ("Theo Marsh", "테오 마시"),
    ("Nina Cole", "니나 콜"), ("Oscar Vale", "오스카 베일"), ("Lena Brook", "레나 브룩"),
    ("Felix Grant", "펠릭스 그랜트"), ("Iris Dunn", "아이리스 던"), ("Hugo Stone", "휴고 스톤"),
    ("Clara Wells", "클라라 웰스"), ("Ravi Shore", "라비 쇼어"), ("Ines Ford", "이네스 포드"),
    ("Milo Hart", "마일로 하트"), ("Sofia Lane", "소피아 레인"), ("Emil Frost", "에밀 프로스트"),
)

SCHEMA_SQL = ("CREATE TABLE movies (id INTEGER PRIMARY KEY, title TEXT NOT NULL UNIQUE, year INTEGER NOT NULL, "
              "genre TEXT NOT NULL, director TEXT NOT NULL, director_ko TEXT NOT NULL, rating REAL NOT NULL, "
              "plot TEXT NOT NULL, plot_ko TEXT NOT NULL)")
# The form a text-to-SQL prompt carries: the model's context is only 256 tokens, so no types, no Korean columns.
COMPACT_SCHEMA = "movies(id, title, year, genre, director, rating, plot)"

# Title words (no apostrophes or quotes: a title must fit in an SQL string literal as it is).
_ADJECTIVES = ("Crimson", "Silver", "Blue", "Hidden", "Broken", "Golden", "Distant", "Burning", "Frozen", "Wild",
               "Quiet", "Lonely", "Secret", "Electric", "Velvet", "Hollow", "Scarlet", "Endless", "Northern", "Bright")
_NOUNS = ("Harbor", "Lantern", "Horizon", "Compass", "Orchard", "Mirror", "Kingdom", "Bridge", "River", "Tower",
          "Engine", "Island", "Window", "Meadow", "Garden", "Canyon", "Anchor", "Voyage", "Echo", "Lighthouse")
_VEHICLES = ("Train", "Bus", "Boat", "Flight", "Ferry", "Call")
_PLACES = ("Juno", "Avalon", "Marlow", "Kestrel Bay", "Orion", "Bellhaven", "Tinder Falls", "Nova", "Eastwick",
           "Ashgrove")
_SEASONS = ("Autumn", "Winter", "July", "December", "the Rain")
_PATTERNS = ("{adj} {noun}", "The {adj} {noun}", "Last {vehicle} to {place}", "The {noun} of {place}",
             "{noun} of {place}", "{noun} in {season}")

# Plot slots, each (en, ko). Subjects are one word so that every plot stays within 12 English words.
_SUBJECTS = (("firefighter", "소방관"), ("pilot", "조종사"), ("teacher", "선생님"), ("nurse", "간호사"),
             ("detective", "형사"), ("farmer", "농부"), ("student", "학생"), ("baker", "제빵사"), ("painter", "화가"),
             ("sailor", "선원"), ("doctor", "의사"), ("singer", "가수"), ("mechanic", "정비공"),
             ("librarian", "사서"), ("engineer", "엔지니어"), ("driver", "운전기사"))
_SETTINGS = (("a burning city", "불타는 도시"), ("a small island", "작은 섬"), ("an old hotel", "낡은 호텔"),
             ("a mountain village", "산골 마을"), ("a frozen harbor", "얼어붙은 항구"), ("a night train", "밤 기차"),
             ("a crowded market", "붐비는 시장"), ("a quiet school", "조용한 학교"), ("a desert town", "사막 마을"),
             ("a space station", "우주 정거장"), ("a flooded subway", "물에 잠긴 지하철"),
             ("a seaside town", "바닷가 마을"))
# genre -> (English template, Korean template, goals); {a} "a pilot", {s} "한 조종사가", {p}/{g} the place and goal,
# {p_obj}/{g_obj}/{g_and} the Korean word with its particle (을/를, 을/를, 과/와)
_PLOTS: dict[str, tuple[str, str, tuple[tuple[str, str], ...]]] = {
    "superhero": ("{a} gains the power of {g} to protect {p}", "{s} {p_obj} 지키려고 {g}의 힘을 얻는다",
                  (("fire", "불"), ("ice", "얼음"), ("lightning", "번개"), ("wind", "바람"), ("light", "빛"))),
    "comedy": ("{a} accidentally {g} in {p}", "{s} {p}에서 우연히 {g}",
               (("wins a cooking contest", "요리 대회에서 우승한다"), ("becomes the town mayor", "마을 시장이 된다"),
                ("adopts a noisy goose", "시끄러운 거위를 입양한다"), ("swaps lives with a dog", "개와 삶이 바뀐다"),
                ("plans the worst party", "최악의 파티를 준비한다"))),
    "horror": ("{a} is trapped in {p} with {g}", "{s} {g_and} 함께 {p}에 갇힌다",
               (("a faceless ghost", "얼굴 없는 유령"), ("a whispering shadow", "속삭이는 그림자"),
                ("a hungry creature", "굶주린 괴물"), ("a silent stranger", "말 없는 낯선 사람"),
                ("a cursed doll", "저주받은 인형"))),
    "romance": ("{a} falls for {g} in {p}", "{s} {p}에서 {g}에게 반한다",
                (("a shy musician", "수줍은 음악가"), ("a rival chef", "경쟁자 요리사"), ("an old friend", "오랜 친구"),
                 ("a mysterious neighbor", "수수께끼의 이웃"), ("a kind stranger", "친절한 낯선 사람"))),
    "science fiction": ("{a} finds {g} in {p}", "{s} {p}에서 {g_obj} 발견한다",
                        (("a door to the future", "미래로 가는 문"), ("a signal from space", "우주에서 온 신호"),
                         ("a robot twin", "로봇 쌍둥이"), ("a broken time machine", "고장 난 타임머신"),
                         ("a map of the stars", "별들의 지도"))),
    "animation": ("{a} and a talking {g} explore {p}", "{s} 말하는 {g_and} 함께 {p_obj} 탐험한다",
                  (("cat", "고양이"), ("fox", "여우"), ("turtle", "거북이"), ("owl", "부엉이"), ("penguin", "펭귄"))),
    "drama": ("{a} returns to {p} to find {g}", "{s} {g_obj} 찾으려고 {p}에 돌아온다",
              (("a missing brother", "실종된 동생"), ("an old letter", "오래된 편지"),
               ("a childhood friend", "어린 시절 친구"), ("a forgotten song", "잊힌 노래"),
               ("an estranged father", "연락이 끊긴 아버지"))),
}

_STOPWORDS = frozenset(
    "a an the of to in on at for and or but is are was be it its his her their he she they i me my you your we "
    "this that these those with by from as about what which who how can could would will please tell describe show "
    "give recommend movie movies film films some any one 영화 그 이 저 한 좀 대해 줘 주세요 알려 어떤".split())
_PUNCTUATION = string.punctuation + "“”‘’…·"


def films(seed: int = 0) -> tuple[Film, ...]:
    """The catalog: `knowledge.MOVIES` first, then generated films up to N_FILMS; every genre has at least
    MIN_PER_GENRE films and every director at least MIN_PER_DIRECTOR. Deterministic in `seed`."""
    rng = random.Random(f"{seed}:catalog")
    n_new = N_FILMS - len(MOVIES)
    counts = {g: sum(m.genre == g for m in MOVIES) for g in GENRES}
    genres = [g for g in GENRES for _ in range(max(0, MIN_PER_GENRE - counts[g]))]
    genres += [list(GENRES)[i % len(GENRES)] for i in range(n_new - len(genres))]
    rng.shuffle(genres)
    titles = [m.title for m in MOVIES]
    rows = [(m.title, m.year, m.genre, dict(m.plot)) for m in MOVIES]
    for genre in genres:
        title = _new_title(rng, titles)
        titles.append(title)
        rows.append((title, rng.randint(1980, 2024), genre, _plot(rng, genre)))
    directors = [d for d in DIRECTORS for _ in range(MIN_PER_DIRECTOR)]
    directors += [rng.choice(DIRECTORS) for _ in range(N_FILMS - len(directors))]
    rng.shuffle(directors)
    return tuple(Film(i + 1, title, year, genre, en, ko, rng.randint(50, 95) / 10, plot)
                 for i, ((title, year, genre, plot), (en, ko)) in enumerate(zip(rows, directors)))


def _new_title(rng: random.Random, taken: list[str]) -> str:
    """A title no other title contains or is contained in (so a title named in a query points to one film)."""
    lowered = [t.lower() for t in taken]
    while True:
        title = rng.choice(_PATTERNS).format(adj=rng.choice(_ADJECTIVES), noun=rng.choice(_NOUNS),
                                             vehicle=rng.choice(_VEHICLES), place=rng.choice(_PLACES),
                                             season=rng.choice(_SEASONS))
        low = title.lower()
        if not any(low in t or t in low for t in lowered):
            return title


def _plot(rng: random.Random, genre: str) -> dict[str, str]:
    """A one-line plot from the genre's template, its slots drawn: {"en": ..., "ko": ...}."""
    en_template, ko_template, goals = _PLOTS[genre]
    (s_en, s_ko), (p_en, p_ko), (g_en, g_ko) = rng.choice(_SUBJECTS), rng.choice(_SETTINGS), rng.choice(goals)
    article = "an" if s_en[0] in "aeiou" else "a"
    en = en_template.format(a=f"{article} {s_en}", p=p_en, g=g_en)
    ko = ko_template.format(s="한 " + josa(s_ko, "이", "가"), p=p_ko, g=g_ko, p_obj=josa(p_ko, "을", "를"),
                            g_obj=josa(g_ko, "을", "를"), g_and=josa(g_ko, "과", "와"))
    return {"en": en, "ko": ko}


def build_db(path: str | Path, catalog: tuple[Film, ...] | None = None) -> str:
    """Write the catalog as a SQLite file at `path`, replacing any file there atomically (a temporary file in the same
    folder, then `os.replace`); rows go in id order and nothing time-dependent is stored, so a rebuild is
    byte-identical. Returns the sha256 hex digest of the file."""
    path = Path(path)
    catalog = films() if catalog is None else catalog
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        conn = sqlite3.connect(tmp)
        try:
            conn.execute("PRAGMA journal_mode=DELETE")
            conn.execute(SCHEMA_SQL)
            conn.executemany("INSERT INTO movies VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             [(f.id, f.title, f.year, f.genre, f.director, f.director_ko, f.rating, f.plot["en"],
                               f.plot["ko"]) for f in sorted(catalog, key=lambda f: f.id)])
            conn.commit()
        finally:
            conn.close()
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return hashlib.sha256(path.read_bytes()).hexdigest()


def dump(path: str | Path) -> str:
    """The database's content as SQL text (`iterdump`): compares two databases independent of SQLite's version."""
    conn = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
    try:
        return "\n".join(conn.iterdump())
    finally:
        conn.close()


def connect(path: str | Path) -> sqlite3.Connection:
    """The catalog database, opened read-only with the query guard's authorizer (`sql_guard.connect_read_only`)."""
    return connect_read_only(path)


def card(film: Film, lang: str) -> str:
    """The item card a description answer shows, in English ("en") or Korean ("ko")."""
    if lang == "ko":
        return (f"제목: {film.title}\n연도: {film.year}\n장르: {GENRES[film.genre]}\n감독: {film.director_ko}\n"
                f"평점: {film.rating}\n줄거리: {film.plot['ko']}")
    return (f"Title: {film.title}\nYear: {film.year}\nGenre: {film.genre}\nDirector: {film.director}\n"
            f"Rating: {film.rating}\nPlot: {film.plot['en']}")


def feature(film: Film) -> str:
    """The slides' item feature: "Superhero / Iron Falcon / a pilot builds a flying suit to save her city"."""
    return f"{film.genre.title()} / {film.title} / {film.plot['en']}"


def by_title(catalog: tuple[Film, ...]) -> dict[str, Film]:
    """The catalog keyed by title."""
    return {f.title: f for f in catalog}


def _tokens(text: str) -> set[str]:
    """Lowercase whitespace tokens stripped of punctuation, without stopwords."""
    words = (w.strip(_PUNCTUATION) for w in text.lower().split())
    return {w for w in words if w and w not in _STOPWORDS}


def _occurs(name: str, text: str) -> bool:
    """Does `name` occur in `text` (case-insensitive) as whole words? Korean particles may follow it."""
    return re.search(rf"(?<![a-z0-9]){re.escape(name.lower())}(?![a-z0-9])", text.lower()) is not None


def similar(conn: sqlite3.Connection, title: str, k: int = 3) -> list[str]:
    """Up to `k` other films of the genre of `title`, by shared plot words, then rating (high first), then id."""
    row = conn.execute("SELECT genre, plot FROM movies WHERE title = ?", (title,)).fetchone()
    if row is None:
        raise KeyError(f"{title!r} is not in the movie catalog")
    genre, plot = row
    words = _tokens(plot)
    others = conn.execute("SELECT id, title, rating, plot FROM movies WHERE genre = ? AND title <> ?",
                          (genre, title)).fetchall()
    ranked = sorted(others, key=lambda r: (-len(words & _tokens(r[3])), -r[2], r[0]))
    return [r[1] for r in ranked[:k]]


def _score(film: Film, query: str, query_tokens: set[str]) -> int:
    score = 10 if _occurs(film.title, query) else 0
    score += 3 if _occurs(film.director, query) or _occurs(film.director_ko, query) else 0
    score += 2 if _occurs(film.genre, query) or _occurs(GENRES[film.genre], query) else 0
    return score + len(query_tokens & _tokens(f"{film.title} {film.plot['en']} {film.plot['ko']}"))


def retrieve(catalog: tuple[Film, ...], query: str, k: int = 1) -> list[Film]:
    """The `k` best films for `query` by a lexical score: 10 if the full title occurs, 3 if the director's name (en
    or ko) does, 2 if the genre (en or Korean) does, 1 per shared non-stopword token with the title and plot; ties by
    rating (high first), then id. A film scoring 0 is never returned, so a query that names nothing ("Can you
    describe the above?") retrieves nothing: the reason to rewrite the query first."""
    query_tokens = _tokens(query)
    scored = [(_score(f, query, query_tokens), f) for f in catalog]
    ranked = sorted((sf for sf in scored if sf[0] > 0), key=lambda sf: (-sf[0], -sf[1].rating, sf[1].id))
    return [f for _, f in ranked[:k]]
