"""The applications' data files: a rebuild byte-identical to the committed `data/apps/`, gold queries that run and
repair demonstrations whose error is SQLite's own, a split by what is asked, readers that refuse a bad line with its
file, line and field, and demonstrations that fit the model's 256-token context."""
from __future__ import annotations

import hashlib
import json
import re
from itertools import product
from pathlib import Path

import pytest

from rlhf_lib import app_data, app_tasks, catalog
from rlhf_lib.data import DataError
from rlhf_lib.sql_guard import run_select

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "data" / "apps"
JSONL = ("sft.jsonl", "rl_prompts.jsonl", "eval_sql.jsonl", "eval_dialogues.jsonl")
CONTEXT = 256                       # the policy's max_position_embeddings
SQL_NEW_TOKENS = 64                 # sql_rl's sampling.max_new_tokens
CATALOG = catalog.films()
TITLES = [f.title for f in CATALOG]
BY_TITLE = catalog.by_title(CATALOG)


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory):
    """Two builds of seed 0 in two fresh folders: (their apps folders, their summaries)."""
    dirs = [tmp_path_factory.mktemp(f"build{i}") for i in range(2)]
    summaries = [app_data.build_apps(d, 0) for d in dirs]
    return [app_data.apps_dir(d) for d in dirs], summaries


@pytest.fixture(scope="module")
def conn():
    c = catalog.connect(COMMITTED / app_data.DB_FILE)
    yield c
    c.close()


@pytest.fixture(scope="module")
def committed():
    """The committed files, read through their validating readers."""
    return {"sft": [r for _, r in app_data.read_app_demos(COMMITTED / "sft.jsonl")],
            "rl": [r for _, r in app_data.read_sql_prompts(COMMITTED / "rl_prompts.jsonl")],
            "eval_sql": [r for _, r in app_data.read_sql_prompts(COMMITTED / "eval_sql.jsonl")],
            "dialogues": [r for _, r in app_data.read_dialogues(COMMITTED / "eval_dialogues.jsonl")]}


def demos_of(committed, *categories):
    return [d for d in committed["sft"] if d["category"] in categories]


def training_gold_sql(committed) -> set[str]:
    """Every gold query a training file teaches or rewards: SQL and repair answers, RL prompts' references."""
    return ({d["messages"][-1]["content"] for d in demos_of(committed, "sql", "repair")}
            | {r["meta"]["sql"] for r in committed["rl"]})


def named_film(text: str) -> str:
    """The one catalog title a turn names (no title contains another, so at most one matches a film's name)."""
    found = [t for t in TITLES if t in text]
    assert len(found) == 1, (text, found)
    return found[0]


# --------------------------------------------------------------------------------------------- rebuilding
def test_two_rebuilds_are_byte_identical_and_equal_the_committed_files(rebuilt):
    (a, b), (sa, sb) = rebuilt
    assert sa == sb
    for name in JSONL:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
        assert (a / name).read_bytes() == (COMMITTED / name).read_bytes(), f"{name} differs from the committed one"
    db_a, db_b = a / app_data.DB_FILE, b / app_data.DB_FILE
    assert db_a.read_bytes() == db_b.read_bytes()
    assert sa["catalog_sql_sha256"] == hashlib.sha256(catalog.dump(db_a).encode()).hexdigest()
    assert catalog.dump(db_a) == catalog.dump(COMMITTED / app_data.DB_FILE)
    assert not list(a.glob(".*.tmp")), "a temporary file was left behind"


def test_the_summary_counts_what_was_written(rebuilt, committed):
    (_, _), (summary, _) = rebuilt
    assert summary["films"] == catalog.N_FILMS
    assert summary["demonstrations"] == len(committed["sft"]) == sum(
        app_data.SIZES[c] for c in app_tasks.APP_CATEGORIES)
    assert summary["rl_prompts"] == len(committed["rl"]) == app_data.SIZES["rl"]
    assert summary["eval_sql"] == len(committed["eval_sql"]) == app_data.SIZES["eval_sql"]
    assert summary["eval_dialogues"] == len(committed["dialogues"])


# --------------------------------------------------------------------------------------------- gold queries
def test_every_gold_query_runs_under_the_guard_and_returns_rows(committed, conn):
    gold = [d["messages"][-1]["content"] for d in demos_of(committed, "sql", "repair")]
    gold += [r["meta"]["sql"] for r in committed["rl"] + committed["eval_sql"]]
    gold += [d["sql"] for d in committed["dialogues"] if d["sql"] is not None]
    n_dialogue_sql = sum(d["kind"] in ("director_that", "older", "sql") for d in committed["dialogues"])
    assert len(gold) == sum(app_data.SIZES[k] for k in ("sql", "repair", "rl", "eval_sql")) + n_dialogue_sql
    for sql in set(gold):
        assert run_select(conn, sql).rows, f"no rows: {sql}"


def test_sql_prompts_are_the_questions_with_the_schema(committed):
    for r in committed["rl"] + committed["eval_sql"]:
        assert r["prompt"] == app_tasks.sql_messages(r["question"], r["lang"])
        assert app_tasks.COMPACT_SCHEMA in r["prompt"][0]["content"]


def test_every_repair_shows_the_error_its_broken_query_really_gets(committed, conn):
    repairs = demos_of(committed, "repair")
    assert len(repairs) == app_data.SIZES["repair"]
    seen_no_rows = seen_error = False
    for d in repairs:
        system, ask, broken, told, fixed = d["messages"]
        assert (system["role"], ask["role"], broken["role"], told["role"]) == ("system", "user", "assistant", "user")
        error = app_tasks.error_text(conn, broken["content"])
        assert error is not None, f"{d['id']}: the broken query runs with rows"
        assert told["content"] == app_tasks.REPAIR_ASK[d["lang"]].format(error=error), d["id"]
        assert d["messages"][:4] == app_tasks.repair_messages(ask["content"], d["lang"], broken["content"], error)
        assert fixed["content"] != broken["content"]
        seen_no_rows |= error == app_tasks.NO_ROWS
        seen_error |= error != app_tasks.NO_ROWS
    assert seen_no_rows and seen_error


# --------------------------------------------------------------------------------------------- the split
def test_no_held_out_sql_question_is_asked_in_training(committed):
    insts = {i["sql"]: i for i in app_tasks.sql_instances(CATALOG)}
    held = {(r["kind"], r["meta"]["sql"]) for r in committed["eval_sql"]}
    assert len(held) == len(committed["eval_sql"])
    for kind, sql in held:
        assert insts[sql]["kind"] == kind and insts[sql]["split"] == "heldout", sql
    train = training_gold_sql(committed)
    assert not {sql for _, sql in held} & train
    assert not held & {(r["kind"], r["meta"]["sql"]) for r in committed["rl"]}
    assert all(insts[sql]["split"] != "heldout" for sql in train)
    sql_dialogues = [d for d in committed["dialogues"] if d["kind"] == "sql"]
    assert sql_dialogues and all(insts[d["sql"]]["split"] == "heldout" and d["sql"] not in train
                                 for d in sql_dialogues)


def test_rl_prompts_ask_what_no_demonstration_asks(committed):
    """RL from execution feedback gets values of its own: the reward has to teach the skill, not recall a demo."""
    insts = {i["sql"]: i for i in app_tasks.sql_instances(CATALOG)}
    rl = {r["meta"]["sql"] for r in committed["rl"]}
    demos = {d["messages"][-1]["content"] for d in demos_of(committed, "sql", "repair")}
    assert rl and all(insts[sql]["split"] == "rl" for sql in rl) and not rl & demos
    assert all(insts[sql]["split"] == "sft" for sql in demos)


def start_of_demo(d: dict) -> str:
    """The film a rewrite demonstration starts from: its first user turn (the recommendation request that opens a
    history, or the turn itself when there is no history) names it."""
    assert d["messages"][1]["role"] == "user"
    return named_film(d["messages"][1]["content"])


def start_of_dialogue(d: dict, conn) -> str:
    """The film a held-out dialogue starts from, checked against how `app_tasks.dialogue` builds it."""
    if not d["history"]:
        assert named_film(d["turn"]) == d["title"]
        return d["title"]
    start = named_film(d["history"][0]["content"])
    recs = catalog.similar(conn, start, 3)
    assert d["history"][1]["content"] == app_tasks.recommendation_reply([BY_TITLE[t] for t in recs], d["lang"])
    assert d["title"] == recs[-1]                       # a follow-up is about the last recommended film
    return start


def test_no_held_out_dialogue_starts_from_a_film_a_training_rewrite_starts_from(committed, conn):
    train = {start_of_demo(d) for d in demos_of(committed, "rewrite")}
    held = {start_of_dialogue(d, conn) for d in committed["dialogues"] if d["kind"] != "sql"}
    assert train and held
    assert not train & held
    assert all(not app_tasks.heldout(f"film:{t}") for t in train)
    assert all(app_tasks.heldout(f"film:{t}") for t in held)


def test_held_out_dialogues_cover_both_languages_and_every_kind(committed):
    pairs = {(d["kind"], d["lang"]) for d in committed["dialogues"]}
    assert pairs == set(product(app_tasks.INTENT_OF, ("en", "ko")))
    for d in committed["dialogues"]:
        assert d["intent"] == app_tasks.INTENT_OF[d["kind"]]
        assert (d["sql"] is not None) == (d["kind"] in ("director_that", "older", "sql"))


def test_training_demonstrations_cover_every_category_and_language(committed):
    pairs = {(d["category"], d["lang"]) for d in committed["sft"]}
    assert pairs == set(product(app_tasks.APP_CATEGORIES, ("en", "ko")))
    assert len({d["id"] for d in committed["sft"]}) == len(committed["sft"])


# --------------------------------------------------------------------------------------------- the readers
def drop_last_message(r):
    r["messages"] = r["messages"][:-1]
    return f"messages[{len(r['messages']) - 1}]"


def unknown_category(r):
    r["category"] = "poem"
    return "category"


def no_meta_sql(r):
    del r["meta"]["sql"]
    return "meta.sql"


def unknown_intent(r):
    r["intent"] = "weather"
    return "intent"


READERS = {"sft.jsonl": app_data.read_app_demos, "rl_prompts.jsonl": app_data.read_sql_prompts,
           "eval_sql.jsonl": app_data.read_sql_prompts, "eval_dialogues.jsonl": app_data.read_dialogues}


def broken_copy(tmp_path, name: str, spoil) -> tuple[Path, int, str]:
    """The first four records of a committed file, a blank line after the first, the third record spoiled:
    (path, its physical line, the field spoiled)."""
    records = [json.loads(line) for line in (COMMITTED / name).read_text(encoding="utf-8").splitlines()[:4]]
    field = spoil(records[2])
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    path = tmp_path / name
    path.write_text("\n".join(lines[:1] + [""] + lines[1:]) + "\n", encoding="utf-8")
    return path, 4, field


@pytest.mark.parametrize("name, spoil, problem", [
    ("sft.jsonl", drop_last_message, "the last message must be the assistant's"),
    ("sft.jsonl", unknown_category, "'poem' is not allowed"),
    ("rl_prompts.jsonl", no_meta_sql, "missing"),
    ("eval_sql.jsonl", no_meta_sql, "missing"),
    ("eval_dialogues.jsonl", unknown_intent, "'weather' is not allowed"),
])
def test_a_bad_line_is_refused_with_its_file_line_and_field(tmp_path, name, spoil, problem):
    path, line, field = broken_copy(tmp_path, name, spoil)
    with pytest.raises(DataError, match=re.escape(f"{path}:{line}: field '{field}': {problem}")) as e:
        READERS[name](path)
    assert (e.value.line, e.value.field) == (line, field)


@pytest.mark.parametrize("name", JSONL)
def test_a_duplicate_id_is_refused_at_its_second_line(tmp_path, name):
    first_id = json.loads((COMMITTED / name).read_text(encoding="utf-8").splitlines()[0])["id"]
    path, line, _ = broken_copy(tmp_path, name, lambda r: r.update(id=first_id))
    with pytest.raises(DataError, match=re.escape(f"{path}:{line}: field 'id': {first_id!r} is also the id of line 1")):
        READERS[name](path)


@pytest.mark.parametrize("name", JSONL)
def test_an_empty_file_is_refused(tmp_path, name):
    path = tmp_path / name
    path.write_text("\n\n", encoding="utf-8")
    with pytest.raises(DataError, match=re.escape(f"{path}: no records")) as e:
        READERS[name](path)
    assert e.value.line is None


def test_a_valid_copy_reads_with_its_physical_line_numbers(tmp_path):
    path, _, _ = broken_copy(tmp_path, "eval_dialogues.jsonl", lambda r: None)
    assert [line for line, _ in app_data.read_dialogues(path)] == [1, 3, 4, 5]


# --------------------------------------------------------------------------------------------- the context
@pytest.fixture(scope="module")
def tokenizer():
    folder = ROOT / "artifacts" / "ppo"
    if not folder.is_dir():
        pytest.skip("no trained policy in artifacts/ppo: its tokenizer measures the demonstrations")
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(folder, trust_remote_code=False)


def n_tokens(tok, texts: list[str]) -> list[int]:
    return [len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"]]


@pytest.mark.stages
def test_every_demonstration_and_sql_prompt_fits_the_context(tokenizer, committed):
    tok = tokenizer
    demos = committed["sft"]
    whole = n_tokens(tok, [tok.apply_chat_template(d["messages"], tokenize=False) for d in demos])
    # as SFT counts it: the prompt with the generation prompt, the answer, EOS
    prompts = n_tokens(tok, [tok.apply_chat_template(d["messages"][:-1], tokenize=False, add_generation_prompt=True)
                             for d in demos])
    answers = n_tokens(tok, [d["messages"][-1]["content"] for d in demos])
    trained = [p + a + 1 for p, a in zip(prompts, answers)]
    too_long = [(d["id"], n) for d, n, m in zip(demos, whole, trained) if max(n, m) > CONTEXT]
    assert not too_long, too_long[:5]
    sql = committed["rl"] + committed["eval_sql"]
    asked = n_tokens(tok, [tok.apply_chat_template(r["prompt"], tokenize=False, add_generation_prompt=True)
                           for r in sql])
    too_long = [(r["id"], n) for r, n in zip(sql, asked) if n + SQL_NEW_TOKENS > CONTEXT]
    assert not too_long, too_long[:5]


@pytest.mark.stages
def test_the_rl_loader_refuses_a_prompt_that_leaves_no_room_to_answer(tokenizer, tmp_path, monkeypatch):
    from rlhf_lib import sql_rl, stages
    question = "Which movies " + "and which movies " * 80
    record = {"id": "too-long", "category": "sql", "lang": "en", "kind": "director", "question": question,
              "prompt": app_tasks.sql_messages(question, "en"), "meta": {"sql": "select title from movies"}}
    (tmp_path / app_data.APPS_DIR).mkdir()
    (tmp_path / app_data.APPS_DIR / "rl_prompts.jsonl").write_text(json.dumps(record) + "\n", encoding="utf-8")
    monkeypatch.setattr(stages, "DATA_DIR", tmp_path)
    monkeypatch.setattr(stages, "existing", lambda name: ROOT / "artifacts" / "ppo")
    asked = n_tokens(tokenizer, [tokenizer.apply_chat_template(record["prompt"], tokenize=False,
                                                               add_generation_prompt=True)])[0]
    if asked + SQL_NEW_TOKENS <= CONTEXT:
        pytest.fail(f"the probe prompt has only {asked} tokens; make it longer")
    try:
        sql_rl.checked_sql_prompts(sql_rl.SQLRLConfig(), "rl_prompts.jsonl")
    except DataError as e:
        assert f"{e.path}:{e.line}" == f"{tmp_path / 'apps' / 'rl_prompts.jsonl'}:1" and e.field == "prompt"
    else:
        raise AssertionError("a prompt longer than the context less max_new_tokens was accepted")
