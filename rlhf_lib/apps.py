"""The deck's three applications on the course's own model (lesson 09): a router, a rewriter, text-to-SQL.

Every model call goes through a backend with the ChatGPT-API shape, `chat.many(list of message lists) -> list of
replies` (`serving.HTTPChat`: the official `openai` client and `transformers serve`; `serving.LocalChat`: the same
greedy answers in this process, batched). The flow of `user_interact`, as in the deck:

    1. route      the deck's intent prompt → 'recommended' | 'description' | 'search'
    2. rewrite    a turn that depends on the history → a self-contained query (Rewrite-Retrieve-Read)
    3. the path   recommended → the film the query names (retrieval), similar films from the database, a greeting
                  description → the card of the film the query is about, a greeting
                  search      → text-to-SQL on the query; a failed or empty query goes back to the model with
                                SQLite's error for up to `rounds` repairs (DIN-SQL's self-correction)

`interact` runs the flow step by step over many dialogues at once (each step one batch of model calls), so the
measurements and a single `user_interact` call share one code path. `judge` is the gold check of a reply: the right
items, the right card or the right rows, and the greeting.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from . import app_tasks as T
from .catalog import Film, by_title, card, retrieve, similar
from .sql_guard import QueryError, run_select
from .world import INTENT_LABELS


@dataclass
class Reply:
    """What the application answered to one dialogue, with every intermediate step."""
    intent: str                          # the router's label ('unknown' if the model wrote none)
    query: str                           # the query retrieval and SQL used (the rewrite, or the turn itself)
    text: str = ""                       # what the user sees
    greeting: str = ""
    items: list[str] = field(default_factory=list)      # recommended titles
    film: str = ""                       # the film a description is about
    sql: list[str] = field(default_factory=list)        # every query tried, first to last
    errors: list[str] = field(default_factory=list)     # the error each tried query got ('' = it ran with rows)
    rows: list = field(default_factory=list)


@dataclass(frozen=True)
class App:
    """The applications' world: the catalog, a read-only connection to its database, the repair budget."""
    catalog: tuple[Film, ...]
    conn: object
    rounds: int = 2
    rewrite_turns: str = "history"        # 'history': rewrite turns that follow a history; 'never': use the turn


def label_of(reply: str) -> str:
    """The intent label a reply names first ('unknown' if none): the router reads the model's words, not more."""
    found = [(m.start(), lab) for lab in INTENT_LABELS
             for m in [re.search(rf"(?<![a-z]){lab}(?![a-z])", reply.lower())] if m]     # "search입니다" too
    return min(found)[1] if found else "unknown"


def first_sql(reply: str) -> str:
    """The query in a reply: from the first SELECT (any case) to the end of its line, without a trailing ';'."""
    m = re.search(r"select\b.*", reply, flags=re.IGNORECASE)
    return (m.group(0).splitlines()[0] if m else reply.strip()).strip().rstrip(";").strip()


def execute(app: App, sql: str) -> tuple[str, list]:
    """(error text or '' , rows) of one query under the guard; an empty result is an error the model can fix."""
    try:
        res = run_select(app.conn, sql)
    except QueryError as e:
        return str(e), []
    return ("" if res.rows else T.NO_ROWS), [tuple(r) for r in res.rows]


def sql_with_repairs(chat, app: App, questions: list[str], langs: list[str]) -> list[Reply]:
    """Text-to-SQL for each question, then up to `app.rounds` repair turns for the queries that failed: the failed
    query and SQLite's error go back to the model, which answers with a corrected one (one batch per round)."""
    replies = [Reply(intent="search", query=q) for q in questions]
    answers = chat.many([T.sql_messages(q, lang) for q, lang in zip(questions, langs)])
    todo = list(range(len(questions)))
    for rnd in range(app.rounds + 1):
        for i, a in zip(todo, answers):
            sql = first_sql(a)
            error, rows = execute(app, sql)
            replies[i].sql.append(sql)
            replies[i].errors.append(error)
            replies[i].rows = rows
        todo = [i for i in todo if replies[i].errors[-1]]
        if not todo or rnd == app.rounds:
            break
        answers = chat.many([T.repair_messages(questions[i], langs[i], replies[i].sql[-1], replies[i].errors[-1])
                             for i in todo])
    return replies


def interact(chat, app: App, dialogues: list[dict]) -> list[Reply]:
    """The whole flow (module docstring) for each dialogue {history, turn, lang}; one batch of calls per step."""
    langs = [d["lang"] for d in dialogues]
    # 1. route
    intents = [label_of(r) for r in chat.many([T.route_messages(d["turn"], d["lang"]) for d in dialogues],
                                              max_tokens=8)]
    # 2. rewrite the turns that depend on a history
    queries = [d["turn"] for d in dialogues]
    todo = [i for i, d in enumerate(dialogues) if d.get("history") and app.rewrite_turns == "history"]
    for i, q in zip(todo, chat.many([T.rewrite_messages(dialogues[i]) for i in todo])):
        queries[i] = q
    replies = [Reply(intent=it, query=q) for it, q in zip(intents, queries)]
    titles = by_title(app.catalog)
    # 3. the paths: greetings (one call per kind and language), retrieval, the database
    need = sorted({("recom" if r.intent == "recommended" else "desc", lang) for r, lang in zip(replies, langs)
                   if r.intent in ("recommended", "description")})
    greetings = dict(zip(need, chat.many([T.greet_messages(w, lang) for w, lang in need], max_tokens=32)))
    for r, lang in zip(replies, langs):
        if r.intent not in ("recommended", "description"):
            continue
        r.greeting = greetings[("recom" if r.intent == "recommended" else "desc", lang)]
        hits = retrieve(app.catalog, r.query, 1)
        if not hits:
            r.text = f"{r.greeting}\n(no movie found for: {r.query})"
            continue
        r.film = hits[0].title
        if r.intent == "recommended":
            r.items = similar(app.conn, r.film, 3)
            r.text = f"{r.greeting}\n{T.items_text([titles[t] for t in r.items], lang)}"
        else:
            r.text = f"{r.greeting}\n{card(hits[0], lang)}"
    search = [i for i, r in enumerate(replies) if r.intent == "search"]
    for i, s in zip(search, sql_with_repairs(chat, app, [replies[i].query for i in search],
                                             [langs[i] for i in search])):
        s.intent = "search"
        s.text = "\n".join(", ".join(str(v) for v in row) for row in s.rows) or s.errors[-1]
        replies[i] = s
    return replies


def user_interact(query: str, chat, app: App, *, lang: str = "en", history: list[dict] | None = None) -> Reply:
    """The deck's `user_interact(query, model, msg_prompt)`: one user turn through the whole flow."""
    return interact(chat, app, [{"turn": query, "lang": lang, "history": history or []}])[0]


# --------------------------------------------------------------------------------------------- the gold check
def judge(app: App, d: dict, r: Reply) -> dict:
    """The gold labeler's verdict on one reply to held-out dialogue `d`: each check and `success` (all of them)."""
    checks = {"intent": r.intent == d["intent"]}
    if d["intent"] == "recommended":
        checks["items"] = r.items == similar(app.conn, d["title"], 3)
    elif d["intent"] == "description":
        checks["card"] = r.film == d["title"]
    else:
        checks["rows"] = bool(r.sql) and T.same_result(app.conn, r.sql[-1], d["sql"])
    if d["intent"] in ("recommended", "description"):
        checks["greeting"] = any(m in r.greeting for m in T.GREETING_MARKERS)
    checks["success"] = all(checks.values())
    return checks


def retrieval_hit(app: App, query: str, title: str) -> bool:
    """Does the retriever's first film for `query` equal the film the dialogue is about?"""
    hits = retrieve(app.catalog, query, 1)
    return bool(hits) and hits[0].title == title


def same_text(a: str, b: str) -> bool:
    """Rewrite accuracy's match: equal up to case, spaces and final punctuation."""
    norm = [re.sub(r"\s+", " ", s).strip().rstrip(".?!").lower() for s in (a, b)]
    return norm[0] == norm[1]
