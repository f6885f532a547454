"""The applications' data files (lesson 09): written by `build_data` into `data/apps/`, validated when read.

    data/apps/catalog.sqlite      the catalog of 100 films (`catalog.build_db`; the same bytes on every rebuild with
                                  one SQLite; apps.json records the sha256 of its SQL dump, which any SQLite shares)
    data/apps/sft.jsonl           demonstrations of the five app families (chat messages), `app_tasks`
    data/apps/rl_prompts.jsonl    text-to-SQL prompts with their gold query, for RL from execution feedback (about
                                  values no demonstration and no held-out question asks about)
    data/apps/eval_sql.jsonl      held-out SQL questions (about values no training question asks about)
    data/apps/eval_dialogues.jsonl held-out dialogues (starting from films no training dialogue starts from)

Each reader checks every line before anything is used (`data.read_numbered`): a bad line is a `DataError` naming
the file, the line and the field, before any model is loaded.
"""
from __future__ import annotations

import hashlib
import random
from pathlib import Path

from . import app_tasks as T
from .catalog import build_db, by_title, connect, dump, films
from .data import LANG, DataError, Invalid, Schema, list_of, one_of, read_numbered, record_of, write_jsonl

APPS_DIR = "apps"
DB_FILE = "catalog.sqlite"
SIZES = {"route": 200, "greet": 40, "rewrite": 500, "sql": 900, "repair": 400, "rl": 400, "eval_sql": 120}
DIALOGUES_PER_KIND = 8                   # per language, for each of the six dialogue kinds

MESSAGE = Schema({"role": one_of("system", "user", "assistant"), "content": str})


def _ends_with_assistant(value) -> None:
    if not value or value[-1].get("role") != "assistant":
        raise Invalid("the last message must be the assistant's (the demonstration's answer)", at=f"[{len(value) - 1}]")


def _sql_or_null(value) -> None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise Invalid("expected a SQL string, or null for a dialogue answered without the database")


APP_DEMO = Schema({"id": str, "category": one_of(*T.APP_CATEGORIES), "lang": LANG,
                   "messages": lambda v: (list_of(record_of(MESSAGE), min_len=2)(v), _ends_with_assistant(v))})
SQL_PROMPT = Schema({"id": str, "category": one_of("sql"), "lang": LANG, "kind": one_of(*T.SQL_KINDS),
                     "question": str, "prompt": list_of(record_of(MESSAGE), min_len=2), "meta": record_of(
                         Schema({"sql": str}))})
DIALOGUE = Schema({"id": str, "kind": one_of(*T.INTENT_OF), "lang": LANG, "history": list_of(record_of(MESSAGE)),
                   "turn": str, "intent": one_of("description", "recommended", "search"), "rewrite": str,
                   "title": str, "sql": _sql_or_null})


def apps_dir(data_dir: Path) -> Path:
    return Path(data_dir) / APPS_DIR


def _demo(i: int, cat: str, lang: str, messages: list[dict], answer: str) -> dict:
    return {"id": f"app-{cat}-{i:04d}", "category": cat, "lang": lang,
            "messages": messages + [{"role": "assistant", "content": answer}]}


def _sql_record(i: int, prefix: str, inst: dict, lang: str, rng: random.Random) -> dict:
    q = T.question(inst, lang, rng)
    return {"id": f"{prefix}-{i:04d}", "category": "sql", "lang": lang, "kind": inst["kind"], "question": q,
            "prompt": T.sql_messages(q, lang), "meta": {"sql": inst["sql"]}}


def _dialogues(catalog, conn, titles, films_from, rng: random.Random, per_kind: int, prefix: str) -> list[dict]:
    out = []
    for kind in (k for k in T.INTENT_OF if k != "sql"):
        for lang in ("en", "ko"):
            made = 0
            for f in rng.sample(films_from, len(films_from)):
                if made == per_kind:
                    break
                d = T.dialogue(kind, f, lang, conn, titles, rng)
                if d["sql"] is not None and T.error_text(conn, d["sql"]) is not None:
                    continue                                  # e.g. nothing of that genre is older: not asked
                out.append({"id": f"{prefix}-{len(out):04d}", **d})
                made += 1
    return out


def build_apps(data_dir: Path, seed: int = 0) -> dict:
    """Write `data/apps/` (the catalog database and the four JSONL files); returns counts and the database's sha256.
    One random stream per file, independent of the world's other files."""
    out = apps_dir(data_dir)
    out.mkdir(parents=True, exist_ok=True)
    catalog = films(seed)
    build_db(out / DB_FILE, catalog)
    digest = hashlib.sha256(dump(out / DB_FILE).encode()).hexdigest()     # of the content, not of SQLite's bytes
    conn = connect(out / DB_FILE)
    titles = by_title(catalog)
    train_films = [f for f in catalog if not T.heldout(f"film:{f.title}")]
    held_films = [f for f in catalog if T.heldout(f"film:{f.title}")]
    insts = [i for i in T.sql_instances(catalog) if T.error_text(conn, i["sql"]) is None]   # all return rows
    train_insts = [i for i in insts if i["split"] == "sft"]
    rl_insts = [i for i in insts if i["split"] == "rl"]
    held_insts = [i for i in insts if i["split"] == "heldout"]

    def stream(part: str) -> random.Random:
        return random.Random(f"{seed}:apps:{part}")

    # demonstrations
    rng, demos = stream("sft"), []
    train_dialogues = _dialogues(catalog, conn, titles, train_films, rng, 10 ** 6, "train-dialogue")
    for i in range(SIZES["route"]):
        lang = rng.choice(("en", "ko"))
        if rng.random() < 0.3:
            turn = T.question(rng.choice(train_insts), lang, rng)
            intent = "search"
        else:
            d = rng.choice([d for d in train_dialogues if d["lang"] == lang])
            turn, intent = d["turn"], d["intent"]
        demos.append(_demo(i, "route", lang, T.route_messages(turn, lang), intent))
    for i in range(SIZES["greet"]):
        which, lang = rng.choice(("recom", "desc")), rng.choice(("en", "ko"))
        demos.append(_demo(i, "greet", lang, T.greet_messages(which, lang), T.GREETINGS[which][lang]))
    for i in range(SIZES["rewrite"]):
        d = rng.choice(train_dialogues)
        demos.append(_demo(i, "rewrite", d["lang"], T.rewrite_messages(d), d["rewrite"]))
    for i in range(SIZES["sql"]):
        inst, lang = rng.choice(train_insts), rng.choice(("en", "ko"))
        demos.append(_demo(i, "sql", lang, T.sql_messages(T.question(inst, lang, rng), lang), inst["sql"]))
    for i in range(SIZES["repair"]):
        inst, lang = rng.choice(train_insts), rng.choice(("en", "ko"))
        broken = rng.choice([b for b in T.breakages(inst) if T.error_text(conn, b)])    # fails on the catalog
        error = T.error_text(conn, broken)
        msgs = T.repair_messages(T.question(inst, lang, rng), lang, broken, error)
        demos.append(_demo(i, "repair", lang, msgs, inst["sql"]))
    rng.shuffle(demos)
    write_jsonl(out / "sft.jsonl", demos)
    # RL prompts (training questions) and the held-out SQL questions
    rng = stream("rl")
    write_jsonl(out / "rl_prompts.jsonl", [_sql_record(i, "app-rl", rng.choice(rl_insts), rng.choice(("en", "ko")),
                                                       rng) for i in range(SIZES["rl"])])
    rng = stream("eval-sql")
    held = rng.sample(held_insts, min(SIZES["eval_sql"], len(held_insts)))
    write_jsonl(out / "eval_sql.jsonl", [_sql_record(i, "app-eval-sql", inst, ("en", "ko")[i % 2], rng)
                                         for i, inst in enumerate(held)])
    # held-out dialogues: start from held-out films; "sql" dialogues ask a held-out SQL question
    rng = stream("eval-dialogues")
    dialogues = _dialogues(catalog, conn, titles, held_films, rng, DIALOGUES_PER_KIND, "app-eval-dialogue")
    for lang in ("en", "ko"):
        for inst in rng.sample(held_insts, DIALOGUES_PER_KIND):
            q = T.question(inst, lang, rng)
            title = inst["slots"].get("t", "")
            dialogues.append({"id": f"app-eval-dialogue-{len(dialogues):04d}", "kind": "sql", "lang": lang,
                              "history": [], "turn": q, "intent": "search", "rewrite": q, "title": title or "-",
                              "sql": inst["sql"]})
    write_jsonl(out / "eval_dialogues.jsonl", dialogues)
    conn.close()
    return {"catalog_sql_sha256": digest, "films": len(catalog), "demonstrations": len(demos),
            "rl_prompts": SIZES["rl"], "eval_sql": len(held), "eval_dialogues": len(dialogues),
            "sql_instances": {"sft": len(train_insts), "rl": len(rl_insts), "heldout": len(held_insts)}}


# --------------------------------------------------------------------------------------------- readers
def _unique(path, rows) -> list[tuple[int, dict]]:
    if not rows:
        raise DataError(path, None, None, "no records; rebuild the world's data with `rlhf data --data DIR`")
    seen: dict = {}
    for line, r in rows:
        if r["id"] in seen:
            raise DataError(path, line, "id", f"{r['id']!r} is also the id of line {seen[r['id']]}; ids are unique")
        seen[r["id"]] = line
    return rows


def read_app_demos(path) -> list[tuple[int, dict]]:
    return _unique(path, read_numbered(path, APP_DEMO))


def read_sql_prompts(path) -> list[tuple[int, dict]]:
    return _unique(path, read_numbered(path, SQL_PROMPT))


def read_dialogues(path) -> list[tuple[int, dict]]:
    return _unique(path, read_numbered(path, DIALOGUE))
