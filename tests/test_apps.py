"""The three applications on a scripted backend: the router's label, the query in a reply, text-to-SQL with its repair
loop, the whole flow of `interact`, the gold check, the execution reward and the measurements of `app_eval`."""
from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import pytest

from rlhf_lib import app_eval, app_tasks, apps, catalog, sql_rl
from rlhf_lib.app_data import DB_FILE

ROOT = Path(__file__).resolve().parents[1]
CATALOG = catalog.films()
TITLES = catalog.by_title(CATALOG)
FILM = "Iron Falcon"
DIRECTOR_SQL = f"select director from movies where title = '{FILM}'"
HORROR_AFTER = "select title from movies where genre = 'horror' and year > 2006"
GREETING = "Of course! These are scripted."


class Script:
    """A backend with the ChatGPT-API shape whose replies come from `answer(messages)`; every call is recorded."""

    def __init__(self, answer):
        self.answer, self.calls = answer, []

    def many(self, conversations, max_tokens=None):
        self.calls.append((conversations, max_tokens))
        return [self.answer(m) for m in conversations]

    def batches(self) -> list[tuple[list, int | None]]:
        """The calls that sent at least one conversation (a step with nothing to do may send an empty batch)."""
        return [(convs, t) for convs, t in self.calls if convs]

    def conversations(self) -> list[list[dict]]:
        return [m for convs, _ in self.calls for m in convs]


def step_of(messages: list[dict]) -> str:
    """Which call of the flow a conversation is: route, rewrite, greet, sql or repair."""
    system = messages[0]["content"]
    if system in (app_tasks.MSG_PROMPT["intent"]["system"], app_tasks.MSG_PROMPT_KO["intent"]["system"]):
        return "route"
    if system in app_tasks.REWRITE_SYSTEM.values():
        return "rewrite"
    if system in app_tasks.SQL_SYSTEM.values():
        return "sql" if len(messages) == 2 else "repair"
    if any(messages == app_tasks.greet_messages(w, lang) for w in ("recom", "desc") for lang in ("en", "ko")):
        return "greet"
    raise AssertionError(f"not a call of the flow: {messages}")


def routed_turn(messages: list[dict]) -> str:
    return messages[1]["content"].split("\n\n", 1)[1]


def by_step(**replies):
    """A script that answers each step with a fixed reply, or a function of the messages."""
    def answer(messages):
        reply = replies[step_of(messages)]
        return reply(messages) if callable(reply) else reply
    return Script(answer)


@pytest.fixture(scope="module")
def conn():
    c = catalog.connect(ROOT / "data" / "apps" / DB_FILE)
    yield c
    c.close()


@pytest.fixture(scope="module")
def app(conn):
    return apps.App(catalog=CATALOG, conn=conn, rounds=2)


# --------------------------------------------------------------------------------------------- reading replies
@pytest.mark.parametrize("reply, label", [
    ("search", "search"),
    ("recommended.", "recommended"),
    ("description, then search", "description"),
    ("Search", "search"),
    ("I think", "unknown"),
    ("", "unknown"),
    ("이 문장은 'search' 범주에 속해요.", "search"),
    ("범주: recommended", "recommended"),
])
def test_label_of_names_the_first_label(reply, label):
    assert apps.label_of(reply) == label


def test_label_of_reads_a_label_followed_by_a_korean_particle():
    assert apps.label_of("search입니다") == "search"


@pytest.mark.parametrize("reply, sql", [
    ("Sure: select title from movies;\nmore", "select title from movies"),
    ("SELECT title FROM movies WHERE year > 2000;", "SELECT title FROM movies WHERE year > 2000"),
    ("Here it is\nSelect Title from Movies  ", "Select Title from Movies"),
    ("  I don't know.  ", "I don't know."),
])
def test_first_sql_takes_the_first_select_line(reply, sql):
    assert apps.first_sql(reply) == sql


# --------------------------------------------------------------------------------------------- text-to-SQL
def test_a_column_typo_is_repaired_with_sqlites_error(app, conn):
    q = f"Who directed {FILM}?"
    broken = DIRECTOR_SQL.replace("director", "directer", 1)
    chat = by_step(sql=broken, repair=DIRECTOR_SQL)
    [r] = apps.sql_with_repairs(chat, app, [q], ["en"])
    assert r.sql == [broken, DIRECTOR_SQL]
    assert r.errors == ["no such column: directer", ""]
    assert r.errors[0] == app_tasks.error_text(conn, broken)
    assert r.rows == [(TITLES[FILM].director,)]
    assert len(chat.calls) == 2
    assert chat.calls[0][0] == [app_tasks.sql_messages(q, "en")]
    assert chat.calls[1][0] == [app_tasks.repair_messages(q, "en", broken, r.errors[0])]


def test_a_right_first_answer_makes_no_repair_call(app):
    chat = by_step(sql=DIRECTOR_SQL)
    [r] = apps.sql_with_repairs(chat, app, [f"{FILM} 감독이 누구야?"], ["ko"])
    assert (r.sql, r.errors, r.intent) == ([DIRECTOR_SQL], [""], "search")
    assert len(chat.calls) == 1


def test_only_the_failed_questions_go_back_and_the_rounds_end(app):
    broken = "select titel from movies"
    chat = by_step(sql=lambda m: DIRECTOR_SQL if FILM in m[1]["content"] else broken, repair=broken)
    good, bad = apps.sql_with_repairs(chat, app, [f"Who directed {FILM}?", "List everything"], ["en", "en"])
    assert good.sql == [DIRECTOR_SQL]
    assert bad.sql == [broken] * 3 and bad.errors == ["no such column: titel"] * 3
    assert [len(convs) for convs, _ in chat.calls] == [2, 1, 1]          # attempt 1, then 2 repair rounds of one


def test_with_no_rounds_no_repair_call_is_made(conn):
    app0 = apps.App(catalog=CATALOG, conn=conn, rounds=0)
    chat = by_step(sql="select rating from film", repair=DIRECTOR_SQL)
    [r] = apps.sql_with_repairs(chat, app0, ["Who directed it?"], ["en"])
    assert r.sql == ["select rating from film"] and r.errors == ["no such table: film"] and r.rows == []
    assert [step_of(m) for m in chat.conversations()] == ["sql"]


def test_an_empty_result_is_an_error_the_model_repairs(app):
    empty = DIRECTOR_SQL.replace(FILM, FILM.upper())
    chat = by_step(sql=empty, repair=DIRECTOR_SQL)
    [r] = apps.sql_with_repairs(chat, app, [f"Who directed {FILM}?"], ["en"])
    assert r.errors == [app_tasks.NO_ROWS, ""] and r.sql == [empty, DIRECTOR_SQL]
    assert chat.calls[1][0] == [app_tasks.repair_messages(f"Who directed {FILM}?", "en", empty, app_tasks.NO_ROWS)]


# --------------------------------------------------------------------------------------------- the whole flow
def test_a_recommendation_turn(app, conn):
    chat = by_step(route="recommended", greet=GREETING)
    r = apps.user_interact(f"Please recommend a movie similar to {FILM}", chat, app)
    assert r.intent == "recommended" and r.film == FILM
    assert r.items == catalog.similar(conn, FILM, 3)
    items = app_tasks.items_text([TITLES[t] for t in r.items], "en")
    assert r.greeting == GREETING and r.text == f"{GREETING}\n{items}"
    assert [step_of(m) for m in chat.conversations()] == ["route", "greet"]
    assert chat.conversations()[1] == app_tasks.greet_messages("recom", "en")
    assert [t for _, t in chat.batches()] == [8, 32]


def test_a_follow_up_is_rewritten_then_described(app, conn):
    d = app_tasks.dialogue("describe_above", TITLES[FILM], "en", conn, TITLES, random.Random(0))
    chat = by_step(route="description", rewrite=d["rewrite"], greet=GREETING)
    r = apps.user_interact(d["turn"], chat, app, history=d["history"])
    assert [step_of(m) for m in chat.conversations()] == ["route", "rewrite", "greet"]
    assert chat.conversations()[1] == app_tasks.rewrite_messages(d)
    assert routed_turn(chat.conversations()[0]) == d["turn"]
    assert r.intent == "description" and r.query == d["rewrite"] and r.film == d["title"] != FILM
    assert r.text == f"{GREETING}\n{catalog.card(TITLES[d['title']], 'en')}"


def test_a_korean_follow_up_gets_a_korean_card(app, conn):
    d = app_tasks.dialogue("describe_above", TITLES[FILM], "ko", conn, TITLES, random.Random(1))
    chat = by_step(route="description", rewrite=d["rewrite"], greet=app_tasks.GREETINGS["desc"]["ko"])
    r = apps.user_interact(d["turn"], chat, app, lang="ko", history=d["history"])
    assert chat.conversations()[2] == app_tasks.greet_messages("desc", "ko")
    assert r.text.endswith(catalog.card(TITLES[d["title"]], "ko"))


def test_a_search_turn_runs_the_sql_path(app):
    chat = by_step(route="search", sql=f"Here you go: {DIRECTOR_SQL};")
    r = apps.user_interact(f"Who directed {FILM}?", chat, app)
    assert [step_of(m) for m in chat.conversations()] == ["route", "sql"]
    assert r.intent == "search" and r.sql == [DIRECTOR_SQL] and r.text == TITLES[FILM].director
    assert r.greeting == "" and r.items == []


def test_a_turn_without_history_is_never_rewritten(app):
    chat = by_step(route="description", rewrite="Describe Captain Thunder", greet=GREETING)
    r = apps.user_interact(f"Can you describe {FILM}?", chat, app)
    assert "rewrite" not in [step_of(m) for m in chat.conversations()]
    assert r.query == f"Can you describe {FILM}?" and r.film == FILM


def test_with_rewriting_off_the_raw_turn_is_used_and_misses_the_film(app, conn):
    plain = apps.App(catalog=CATALOG, conn=conn, rewrite_turns="never")
    d = app_tasks.dialogue("describe_above", TITLES[FILM], "en", conn, TITLES, random.Random(0))
    chat = by_step(route="description", rewrite=d["rewrite"], greet=GREETING)
    r = apps.user_interact(d["turn"], chat, plain, history=d["history"])
    assert "rewrite" not in [step_of(m) for m in chat.conversations()]
    assert r.query == d["turn"] and r.film != d["title"]
    assert not apps.retrieval_hit(app, d["turn"], d["title"]) and apps.retrieval_hit(app, d["rewrite"], d["title"])


def test_interact_batches_each_step_over_the_dialogues(app, conn):
    rec = {"turn": f"Any movies like {FILM}?", "lang": "en", "history": []}
    follow = app_tasks.dialogue("director_that", TITLES[FILM], "en", conn, TITLES, random.Random(0))
    search = {"turn": f"Who directed {FILM}?", "lang": "en", "history": []}
    intents = {rec["turn"]: "recommended", follow["turn"]: "search", search["turn"]: "search"}
    chat = by_step(route=lambda m: intents[routed_turn(m)], rewrite=follow["rewrite"], greet=GREETING,
                   sql=lambda m: app_tasks.SQL_KINDS["director"][2].format(t=m[1]["content"][len("Who directed "):-1]))
    replies = apps.interact(chat, app, [rec, follow, search])
    assert [[step_of(m) for m in convs] for convs, _ in chat.batches()] == [
        ["route"] * 3, ["rewrite"], ["greet"], ["sql", "sql"]]
    assert [r.intent for r in replies] == ["recommended", "search", "search"]
    assert replies[1].query == follow["rewrite"] and replies[1].sql == [follow["sql"]]
    assert replies[2].rows == [(TITLES[FILM].director,)]


# --------------------------------------------------------------------------------------------- the gold check
@pytest.fixture(scope="module")
def held():
    return app_eval.held_out()


def gold_reply(d: dict, conn) -> apps.Reply:
    r = apps.Reply(intent=d["intent"], query=d["rewrite"])
    if d["intent"] == "recommended":
        r.items, r.greeting = catalog.similar(conn, d["title"], 3), app_tasks.GREETINGS["recom"][d["lang"]]
    elif d["intent"] == "description":
        r.film, r.greeting = d["title"], app_tasks.GREETINGS["desc"][d["lang"]]
    else:
        r.sql, r.errors = [d["sql"]], [""]
    return r


def first_of(dialogues, intent):
    return next(d for d in dialogues if d["intent"] == intent)


@pytest.mark.parametrize("intent, checks", [("recommended", {"intent", "items", "greeting"}),
                                            ("description", {"intent", "card", "greeting"}),
                                            ("search", {"intent", "rows"})])
def test_a_correct_reply_passes_every_check(app, conn, held, intent, checks):
    d = first_of(held[1], intent)
    verdict = apps.judge(app, d, gold_reply(d, conn))
    assert set(verdict) == checks | {"success"} and all(verdict.values())


@pytest.mark.parametrize("intent, spoil, failed", [
    ("recommended", {"intent": "description"}, "intent"),
    ("recommended", {"items": ["Captain Thunder"]}, "items"),
    ("recommended", {"greeting": "Here you are."}, "greeting"),
    ("description", {"film": "Captain Thunder"}, "card"),
    ("description", {"greeting": ""}, "greeting"),
    ("search", {"intent": "unknown"}, "intent"),
    ("search", {"sql": ["select title from movies"]}, "rows"),
    ("search", {"sql": []}, "rows"),
    ("search", {"sql": ["select nothing from nowhere"]}, "rows"),
])
def test_a_wrong_reply_fails_success(app, conn, held, intent, spoil, failed):
    d = first_of(held[1], intent)
    verdict = apps.judge(app, d, dataclasses.replace(gold_reply(d, conn), **spoil))
    assert not verdict[failed] and not verdict["success"]
    assert all(ok for check, ok in verdict.items() if check not in (failed, "success"))


def test_the_last_query_tried_is_the_one_judged(app, conn, held):
    d = first_of(held[1], "search")
    r = dataclasses.replace(gold_reply(d, conn), sql=["select titel from movies", d["sql"]])
    assert apps.judge(app, d, r)["success"]


# --------------------------------------------------------------------------------------------- the reward
@pytest.mark.parametrize("text, match", [
    (HORROR_AFTER, True),
    (HORROR_AFTER.upper().replace("'HORROR'", "'horror'"), True),
    (f"{HORROR_AFTER} group by title", True),                        # the same rows in another order
    (f"The query is:\n{HORROR_AFTER};\nIt lists the films.", True),
    ("select title from movies where genre = 'horror' and year > 2010", False),
    ("select title from movies where genre = 'drama' and year > 2006", False),
    ("select titel from movies", False),
    ("no query here", False),
])
def test_the_execution_reward(conn, text, match):
    record = {"meta": {"sql": HORROR_AFTER}}
    assert sql_rl.exec_match(conn, record, text) is match
    assert sql_rl.execution_reward(conn)([record], [text]).tolist() == [float(match)]


def test_the_reordered_rows_really_come_in_another_order(conn):
    from rlhf_lib.sql_guard import run_select
    a, b = run_select(conn, HORROR_AFTER).rows, run_select(conn, f"{HORROR_AFTER} group by title").rows
    assert a != b and sorted(a) == sorted(b)


def test_an_ordered_reference_needs_the_order(conn):
    best = "select title from movies where genre = 'horror' order by rating desc limit 3"
    worst = "select title from movies where genre = 'horror' order by rating asc limit 3"
    record = {"meta": {"sql": best}}
    assert sql_rl.exec_match(conn, record, best)
    assert not sql_rl.exec_match(conn, record, worst)
    reward = sql_rl.execution_reward(conn)([record] * 2, [best, worst])
    assert reward.tolist() == [1.0, 0.0]


def test_an_order_by_on_an_unordered_reference_is_still_right(conn):
    assert sql_rl.exec_match(conn, {"meta": {"sql": HORROR_AFTER}}, f"{HORROR_AFTER} order by title desc")


# --------------------------------------------------------------------------------------------- the measurements
def test_exec_accuracy_per_attempt(app):
    wrong = "select title from movies where genre = 'horror' and year > 2020"
    records = [{"meta": {"sql": HORROR_AFTER}}] * 3
    replies = [apps.Reply(intent="search", query="q1", sql=[HORROR_AFTER], errors=[""]),
               apps.Reply(intent="search", query="q2", sql=["select titel from movies", HORROR_AFTER],
                          errors=["no such column: titel", ""]),
               apps.Reply(intent="search", query="q3", sql=[wrong] * 3, errors=[app_tasks.NO_ROWS] * 3)]
    assert app_eval.exec_accuracy(app, records, replies) == pytest.approx([1 / 3, 2 / 3, 2 / 3], abs=1e-4)
    one = apps.App(catalog=CATALOG, conn=app.conn, rounds=0)
    assert app_eval.exec_accuracy(one, records, replies) == pytest.approx([1 / 3], abs=1e-4)


def gold_script(sql_records: list[dict], dialogues: list[dict]) -> Script:
    """Answers every call of the flow as the held-out data says it should be answered."""
    intents = {}
    for d in dialogues:
        assert intents.setdefault(d["turn"], d["intent"]) == d["intent"], d["turn"]
    rewrites = {str(app_tasks.rewrite_messages(d)): d["rewrite"] for d in dialogues if d["history"]}
    reference = {r["question"]: r["meta"]["sql"] for r in sql_records}
    for d in dialogues:
        if d["sql"] is not None:
            q = d["rewrite"] if d["history"] else d["turn"]
            assert reference.setdefault(q, d["sql"]) == d["sql"], q

    def greeting(m):
        return next(app_tasks.GREETINGS[w][lang] for w in ("recom", "desc") for lang in ("en", "ko")
                    if m == app_tasks.greet_messages(w, lang))

    return by_step(route=lambda m: intents[routed_turn(m)], rewrite=lambda m: rewrites[str(m)],
                   sql=lambda m: reference[m[1]["content"]], repair=lambda m: reference[m[1]["content"]],
                   greet=greeting)


@pytest.fixture(scope="module")
def held_slice(held):
    """The first sixteen held-out SQL questions (both languages), two dialogues of each kind and language."""
    sql_records, dialogues = held
    per = {}
    for d in dialogues:
        per.setdefault((d["kind"], d["lang"]), []).append(d)
    picked = [d for ds in per.values() for d in ds[:2]]
    assert {d["kind"] for d in picked} == set(app_tasks.INTENT_OF)
    assert {r["lang"] for r in sql_records[:16]} == {"en", "ko"}
    return sql_records[:16], picked


def test_a_backend_that_answers_the_gold_scores_full_marks(app, held_slice):
    sql_records, dialogues = held_slice
    chat = gold_script(sql_records, dialogues)
    m = app_eval.measure(chat, app, sql_records, dialogues)
    assert m["intent_accuracy"] == 1.0 and m["success"] == 1.0 and m["rewrite_accuracy"] == 1.0
    assert m["exec_accuracy"] == [1.0] * (app.rounds + 1) and m["sql_error_rate_first"] == 0.0
    assert set(m["success_by_kind"].values()) == {1.0}
    assert m["by_lang"]["en"] == m["by_lang"]["ko"] == {"success": 1.0, "exec_accuracy_first": 1.0}
    assert "repair" not in [step_of(c) for c in chat.conversations()]
    assert len(m["samples"]["sql"]) == len(sql_records) and len(m["samples"]["dialogues"]) == len(dialogues)


@pytest.mark.parametrize("answer", ["search", "select garbage from nowhere"])
def test_a_backend_that_answers_anything_scores_less(app, held_slice, answer):
    sql_records, dialogues = held_slice
    chat = Script(lambda m: answer)
    m = app_eval.measure(chat, app, sql_records, dialogues)
    assert m["exec_accuracy"] == [0.0] * (app.rounds + 1) and m["sql_error_rate_first"] == 1.0
    assert m["success"] < 1.0 and m["success_by_kind"]["recommend"] == 0.0
    share_search = sum(d["intent"] == "search" for d in dialogues) / len(dialogues)
    assert m["intent_accuracy"] == pytest.approx(share_search if answer == "search" else 0.0, abs=1e-4)
    assert "repair" in [step_of(c) for c in chat.conversations()]
