"""The applications' task families (lesson 09): routing, query rewriting, text-to-SQL and SQL repair.

The deck's first half builds three applications on the ChatGPT API. The world writes what they need, in English and
Korean, the way it writes every other family: demonstrations (what a careful person would answer), prompts for RL,
and **held-out dialogues** no training record contains. Everything is a deterministic function of a seed and of the
catalog (`catalog.py`), and every SQL string is executed on the catalog's database while it is written, so a gold
query always returns rows and a repair demonstration carries SQLite's real error text.

* **route** — the deck's intent prompt ("Which category does the sentence below belong to: 'description',
  'recommended', 'search'? Show only categories.") over a user's turn → the bare label;
* **greet** — the deck's greeting prompts (`MSG_PROMPT['recom']`, `['desc']`) → a one-line greeting;
* **rewrite** — a dialogue whose last turn depends on the history ("Can you describe the above?", "Something older
  than that?", "그 영화 감독이 누구야?") → a self-contained query (Ma et al. 2023, Rewrite-Retrieve-Read);
* **sql** — a question with the schema in the system message → one `SELECT` (`SQL_KINDS`: eight question kinds),
  its keywords in lower case (SQLite reads either; the course's tokenizer, trained on the world's web, splits
  `SELECT` into six one-letter tokens and `select` into three);
* **repair** — the question, a broken query and the error SQLite raised on it (or "returned no rows") → the fixed
  query (DIN-SQL's self-correction; Chen et al. 2023's self-debugging).

The split is by *what is asked*, not by wording: a held-out SQL question asks about a (kind, value) pair — a title,
a director, a genre and year — that no training question asks about, and the RL prompts ask about a third share of
pairs that no demonstration asks about; dialogues are held out by the film they start from.
"""
from __future__ import annotations

import random
import re
import zlib

from .catalog import COMPACT_SCHEMA, Film, similar
from .knowledge import GENRES
from .phrasing import ko_forms
from .sql_guard import QueryError, run_select
from .world import INTENT_INSTRUCTION

APP_CATEGORIES = ("route", "greet", "rewrite", "sql", "repair")
HELDOUT_FRAC = 0.2

# The deck's prompt dictionary. The intent prompt and the recommendation greeting are the deck's words; the other
# system and user messages follow its pattern (a system role per intent, a user message asking for one greeting).
MSG_PROMPT = {
    "recom": {"system": "You are a helpful assistant who recommend movie based on user question.",
              "user": "Write 1 sentence of a very simple greeting that starts with 'Of course!' to recommend movie "
                      "items to users."},
    "desc": {"system": "You are a helpful assistant who kindly answers.",
             "user": "Please write a simple greeting starting with 'Of course' to explain the item to the user."},
    "intent": {"system": "You are a helpful assistant who understands the intent of the user's question.",
               "user": INTENT_INSTRUCTION["en"]},
}
# The same prompts for a Korean user (the course's own translation).
MSG_PROMPT_KO = {
    "recom": {"system": "당신은 사용자의 질문에 맞춰 영화를 추천하는 친절한 어시스턴트입니다.",
              "user": "'물론이죠!'로 시작하는 아주 간단한 인사 한 문장을 써서 사용자에게 영화를 추천해 주세요."},
    "desc": {"system": "당신은 친절하게 답하는 어시스턴트입니다.",
             "user": "'물론이죠'로 시작하는 간단한 인사를 써서 사용자에게 영화를 설명해 주세요."},
    "intent": {"system": "당신은 사용자 질문의 의도를 이해하는 어시스턴트입니다.", "user": INTENT_INSTRUCTION["ko"]},
}
GREETINGS = {"recom": {"en": "Of course! Here are some top-rated movie items that you might enjoy.",
                       "ko": "물론이죠! 좋아하실 만한 평점 높은 영화를 골라 봤어요."},
             "desc": {"en": "Of course! Here is the movie you asked about.",
                      "ko": "물론이죠! 물어보신 영화를 소개해 드릴게요."}}
GREETING_MARKERS = ("Of course", "물론이죠")
# The application's own system messages are written once, in English, as the deck's are; the user may write in
# either language. (A Korean system message would also cost twice the tokens: the tokenizer splits Hangul finely.)
SQL_SYSTEM = {lang: f"You write SQLite queries for the table {COMPACT_SCHEMA}. Answer with one SELECT."
              for lang in ("en", "ko")}
REWRITE_SYSTEM = {lang: "Rewrite the user's last message as a self-contained search query." for lang in ("en", "ko")}
REPAIR_ASK = {"en": "The query failed: {error}. Fix the SQL.", "ko": "쿼리 오류: {error}. SQL을 고쳐 주세요."}
NO_ROWS = "the query returned no rows"

# --------------------------------------------------------------------------------------------- SQL questions
# kind -> (English phrasings, Korean phrasings, gold SQL); slots t title, d/dk director, g/gk genre, y year, r rating
SQL_KINDS = {
    "director": (("Who directed {t}?", "Who is the director of {t}?", "Tell me who made {t}."),
                 ("{t} 감독이 누구야?", "{t}의 감독은 누구인가요?", "{t} 만든 감독 알려 줘."),
                 "select director from movies where title = '{t}'"),
    "year": (("When was {t} released?", "What year did {t} come out?", "Which year is {t} from?"),
             ("{t} 개봉 연도가 언제야?", "{t은} 몇 년에 나왔어?", "{t}의 개봉 연도를 알려 줘."),
             "select year from movies where title = '{t}'"),
    "by_director": (("Which movies did {d} direct?", "List the films by {d}.", "Show me movies directed by {d}."),
                    ("{dk} 감독의 영화를 보여 줘.", "{dk} 감독이 만든 영화는 뭐가 있어?",
                     "{dk} 감독 작품 목록 알려 줘."),
                    "select title from movies where director = '{d}'"),
    "genre_after": (("Which {g} movies came out after {y}?", "Show {g} films released after {y}.",
                     "{g} movies newer than {y}, please."),
                    ("{y}년 이후에 나온 {gk} 영화 알려 줘.", "{y}년보다 나중에 개봉한 {gk} 영화는?",
                     "{gk} 영화 중 {y}년 이후 작품 보여 줘."),
                    "select title from movies where genre = '{g}' and year > {y}"),
    "genre_before": (("Which {g} movies came out before {y}?", "Show {g} films released before {y}.",
                      "{g} movies older than {y}, please.", "{g} movies released before {y}"),
                     ("{y}년 이전에 나온 {gk} 영화 알려 줘.", "{y}년보다 먼저 개봉한 {gk} 영화는?",
                      "{gk} 영화 중 {y}년 이전 작품 보여 줘.", "{y}년 이전에 나온 {gk} 영화"),
                     "select title from movies where genre = '{g}' and year < {y}"),
    "count_genre": (("How many {g} movies are there?", "Count the {g} films.", "How many {g} films do you have?"),
                    ("{gk} 영화는 몇 편이야?", "{gk} 영화가 모두 몇 개야?", "{gk} 영화 개수 알려 줘."),
                    "select count(*) from movies where genre = '{g}'"),
    "best_genre": (("What is the highest rated {g} movie?", "Which {g} film has the best rating?",
                    "Top rated {g} movie?"),
                   ("평점이 가장 높은 {gk} 영화는?", "{gk} 영화 중에 평점이 제일 높은 건 뭐야?",
                    "최고 평점 {gk} 영화 알려 줘."),
                   "select title from movies where genre = '{g}' order by rating desc limit 1"),
    "rated_above": (("Which {g} movies have a rating above {r}?", "Show {g} films rated higher than {r}.",
                     "{g} movies with a rating over {r}?"),
                    ("평점이 {r}보다 높은 {gk} 영화는?", "{gk} 영화 중 평점 {r} 넘는 거 보여 줘.",
                     "평점 {r} 초과인 {gk} 영화 알려 줘."),
                    "select title from movies where genre = '{g}' and rating > {r}"),
}
YEARS = tuple(range(1985, 2025))
RATINGS = (6.0, 7.0, 8.0)


def _per_mille(key: str) -> int:
    return zlib.crc32(key.encode()) % 1000          # the same on every machine and Python


def heldout(key: str, frac: float = HELDOUT_FRAC) -> bool:
    """Is this (kind, value) held out for evaluation? A hash of the key."""
    return _per_mille(key) < frac * 1000


def split_of(key: str) -> str:
    """'heldout' (evaluation), 'rl' (questions only RL from execution feedback sees: values no demonstration asks
    about, so the reward teaches the skill rather than recalls a demonstration) or 'sft'."""
    return "heldout" if heldout(key) else "rl" if _per_mille(key) < 2 * HELDOUT_FRAC * 1000 else "sft"


def genre_ko(g: str) -> str:
    return GENRES[g]


def sql_instances(catalog: tuple[Film, ...]) -> list[dict]:
    """Every (kind, slots) the questions can ask about, with its gold SQL and split."""
    directors = sorted({(f.director, f.director_ko) for f in catalog})
    out = []
    for f in catalog:
        for kind in ("director", "year"):
            out.append({"kind": kind, "slots": {"t": f.title}})
    for d, dk in directors:
        out.append({"kind": "by_director", "slots": {"d": d, "dk": dk}})
    for g in GENRES:
        for kind in ("count_genre", "best_genre"):
            out.append({"kind": kind, "slots": {"g": g, "gk": genre_ko(g)}})
        for y in YEARS:
            for kind in ("genre_after", "genre_before"):
                out.append({"kind": kind, "slots": {"g": g, "gk": genre_ko(g), "y": y}})
        for r in RATINGS:
            out.append({"kind": "rated_above", "slots": {"g": g, "gk": genre_ko(g), "r": r}})
    for inst in out:
        inst["sql"] = SQL_KINDS[inst["kind"]][2].format(**inst["slots"])
        key = inst["kind"] + ":" + ":".join(str(v) for k, v in sorted(inst["slots"].items()) if k not in ("dk", "gk"))
        inst["split"] = split_of(key)
    return out


def question(inst: dict, lang: str, rng: random.Random) -> str:
    en, ko, _ = SQL_KINDS[inst["kind"]]
    slots = {**inst["slots"], **(ko_forms(t=inst["slots"]["t"]) if "t" in inst["slots"] else {})}   # 은/는 …
    text = rng.choice(en if lang == "en" else ko).format(**slots)
    return text[0].upper() + text[1:]


def sql_messages(q: str, lang: str) -> list[dict]:
    """The prompt of a text-to-SQL call: the schema in the system message, the question as the user's."""
    return [{"role": "system", "content": SQL_SYSTEM[lang]}, {"role": "user", "content": q}]


ORDERED = re.compile(r"\border\s+by\b", re.IGNORECASE)


def result_key(conn, sql: str, ordered: bool | None = None):
    """The result set of a query as a comparable value, or None if it fails: its rows in order if `ordered`, else
    sorted (a multiset). `ordered=None` asks the query itself (does it say ORDER BY?)."""
    try:
        res = run_select(conn, sql)
    except QueryError:
        return None
    rows = [tuple(r) for r in res.rows]
    ordered = bool(ORDERED.search(sql)) if ordered is None else ordered
    return rows if ordered else sorted(rows, key=repr)


def same_result(conn, sql: str, reference: str) -> bool:
    """Execution match: does `sql` run and return the reference query's rows? In order only where the reference
    orders them (a right query that adds an ORDER BY of its own still matches)."""
    ordered = bool(ORDERED.search(reference))
    got = result_key(conn, sql, ordered)
    return got is not None and got == result_key(conn, reference, ordered)


# --------------------------------------------------------------------------------------------- broken queries
COLUMN_TYPOS = {"director": "directer", "year": "yaer", "title": "titel", "genre": "genra", "rating": "ratting"}


def breakages(inst: dict) -> list[str]:
    """Broken versions of a gold query; those that fail on the catalog (an error or no rows: `error_text`) become
    repair demonstrations (a count over a misspelt genre returns a row, 0, and fails nothing)."""
    sql, out = inst["sql"], []
    for col, typo in COLUMN_TYPOS.items():
        if f"{col} " in sql:
            out.append(sql.replace(col, typo, 1))
    out.append(sql.replace("from movies", "from movie"))
    out.append(sql.replace("select", "selct"))
    if "'" in sql:
        value = sql.split("'")[1]
        out.append(sql.replace(f"'{value}'", value))                           # the quotes forgotten
        out.append(sql.replace(f"'{value}'", f"'{value.upper()}'"))            # the value in the wrong case
    if "g" in inst["slots"]:
        out.append(sql.replace(f"'{inst['slots']['g']}'", f"'{inst['slots']['gk']}'"))   # the Korean genre name
    return out


def error_text(conn, sql: str) -> str | None:
    """What the repair loop shows the model: SQLite's error, `NO_ROWS` for an empty result, None if it ran."""
    try:
        res = run_select(conn, sql)
    except QueryError as e:
        return str(e)
    return None if res.rows else NO_ROWS


def repair_messages(q: str, lang: str, broken: str, error: str) -> list[dict]:
    """The follow-up turn of the repair loop: the question, the failed query, the error; the model answers."""
    return sql_messages(q, lang) + [{"role": "assistant", "content": broken},
                                    {"role": "user", "content": REPAIR_ASK[lang].format(error=error)}]


# --------------------------------------------------------------------------------------------- dialogues
RECOMMEND = {"en": ("Please recommend a movie similar to {t}", "Any movies like {t}?",
                    "I loved {t}. What should I watch next?"),
             "ko": ("{t과} 비슷한 영화 추천해 줘", "{t} 같은 영화 있어?", "{t} 재밌게 봤어. 다음엔 뭘 볼까?")}
DESCRIBE = {"en": ("Can you describe {t}?", "What is {t} about?", "Tell me about the movie {t}."),
            "ko": ("{t} 설명해 줄래?", "{t은} 무슨 내용이야?", "영화 {t}에 대해 알려 줘.")}
FOLLOW = {   # last turns that only make sense after a recommendation; kind -> phrasings
    "describe_above": {"en": ("Can you describe the above?", "Tell me more about the last one.",
                              "What is the last one about?"),
                       "ko": ("위 영화 설명해 줄래?", "마지막 영화에 대해 더 알려 줘.", "마지막 거는 무슨 내용이야?")},
    "director_that": {"en": ("Who directed that one?", "Who made the last one?", "And the director of the last one?"),
                      "ko": ("그 영화 감독이 누구야?", "마지막 영화는 누가 만들었어?", "그거 감독은 누구야?")},
    "older": {"en": ("Something older than that?", "Anything older than the last one?",
                     "Can you find older ones than that?"),
              "ko": ("그것보다 오래된 영화는?", "마지막 것보다 옛날 영화 있어?", "그보다 더 오래된 건 없어?")},
}
REWRITE = {"recommend": {"en": "Movies similar to {t}", "ko": "{t과} 비슷한 영화"},
           "describe": {"en": "Describe {t}", "ko": "{t} 설명"},
           "describe_above": {"en": "Describe {t}", "ko": "{t} 설명"},
           "director_that": {"en": "Who directed {t}?", "ko": "{t} 감독이 누구야?"},
           "older": {"en": "{g} movies released before {y}", "ko": "{y}년 이전에 나온 {gk} 영화"}}
INTENT_OF = {"recommend": "recommended", "describe": "description", "describe_above": "description",
             "director_that": "search", "older": "search", "sql": "search"}


def items_text(films: list[Film], lang: str) -> str:
    """The recommended items as the user sees them: each title with its year and genre (the deck's items carry
    their genres too), so that a follow-up like "something older than that?" can be rewritten from the history."""
    return ", ".join(f"{f.title} ({f.year}, {f.genre if lang == 'en' else genre_ko(f.genre)})" for f in films)


def recommendation_reply(films: list[Film], lang: str) -> str:
    """The recommender's answer: the greeting, then the items (the assistant turn a follow-up refers to)."""
    return f"{GREETINGS['recom'][lang]}\n{items_text(films, lang)}"


def dialogue(kind: str, f: Film, lang: str, conn, by_title: dict, rng: random.Random) -> dict:
    """One dialogue of `kind` starting from film `f`: its turns, the gold intent, the self-contained query, the film
    it is about (retrieval's target) and the gold SQL where the answer comes from the database."""
    history: list[dict] = []
    target, sql = f, None
    if kind in FOLLOW:
        recs = similar(conn, f.title, 3)
        history = [{"role": "user", "content": rng.choice(RECOMMEND[lang]).format(**ko_forms(t=f.title))},
                   {"role": "assistant", "content": recommendation_reply([by_title[t] for t in recs], lang)}]
        target = by_title[recs[-1]]
        last = rng.choice(FOLLOW[kind][lang])
    elif kind == "recommend":
        last = rng.choice(RECOMMEND[lang]).format(**ko_forms(t=f.title))
    else:
        last = rng.choice(DESCRIBE[lang]).format(**ko_forms(t=f.title))
    slots = {**ko_forms(t=target.title), "g": target.genre, "gk": genre_ko(target.genre), "y": target.year}
    rewrite = REWRITE[kind][lang].format(**slots)
    rewrite = rewrite[0].upper() + rewrite[1:]
    if kind == "director_that":
        sql = SQL_KINDS["director"][2].format(t=target.title)
    elif kind == "older":
        sql = SQL_KINDS["genre_before"][2].format(g=target.genre, y=target.year)
    return {"kind": kind, "lang": lang, "history": history, "turn": last, "intent": INTENT_OF[kind],
            "rewrite": rewrite, "title": target.title, "sql": sql}


def rewrite_messages(d: dict) -> list[dict]:
    """The prompt of a rewrite call: the instruction, the history, the last turn."""
    return ([{"role": "system", "content": REWRITE_SYSTEM[d["lang"]]}] + d["history"]
            + [{"role": "user", "content": d["turn"]}])


def route_messages(turn: str, lang: str) -> list[dict]:
    """The prompt of a routing call, worded as the world's intent prompts are (instruction, blank line, sentence)."""
    p = MSG_PROMPT if lang == "en" else MSG_PROMPT_KO
    return [{"role": "system", "content": p["intent"]["system"]},
            {"role": "user", "content": f"{p['intent']['user']}\n\n{turn}"}]


def greet_messages(which: str, lang: str) -> list[dict]:
    p = (MSG_PROMPT if lang == "en" else MSG_PROMPT_KO)[which]
    return [{"role": "system", "content": p["system"]}, {"role": "user", "content": p["user"]}]
