"""Model-written SQL never writes (lesson 09): a read-only SQLite connection and a guard around every query.

Text-to-SQL sends a model's query to a real database, so the query is treated as untrusted input, four times over:

1. the file is opened read-only (`file:…?mode=ro` URI): SQLite itself refuses any write;
2. an authorizer allows only reading — `SELECT`, reading columns, functions, recursive CTEs — and denies everything
   else before the statement is prepared (writes, `ATTACH`, `PRAGMA`, transactions, `VACUUM INTO` …);
3. one statement per call (a second one after `;` is refused, not run);
4. a row limit (the rest is dropped and flagged) and a time limit (a progress handler interrupts a runaway query).

A refused or failed query raises `QueryError`, whose message is SQLite's own error text with what to do: the text
the repair loop sends back to the model (DIN-SQL's self-correction, Chen et al. 2023's self-debugging).

    conn = connect_read_only("data/catalog.sqlite")
    result = run_select(conn, "SELECT title FROM movies WHERE year < 2000")
    result.columns, result.rows, result.truncated
"""
from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

ALLOWED = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}


class QueryError(ValueError):
    """A query refused by the guard or failed in SQLite; the message is what the model is shown to fix it."""


@dataclass(frozen=True)
class Result:
    columns: list[str]
    rows: list[tuple]
    truncated: bool            # more rows than max_rows: only the first max_rows are kept


def connect_read_only(path: str | Path) -> sqlite3.Connection:
    """The database at `path`, opened read-only by SQLite (`mode=ro`) with the read-only authorizer installed."""
    path = Path(path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such database; build the world's data first (rlhf data)")
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, check_same_thread=False)
    conn.set_authorizer(authorize)
    return conn


def authorize(action: int, arg1, arg2, db_name, trigger) -> int:
    """SQLite's authorizer callback: reading is allowed, everything else is denied before the statement runs."""
    return sqlite3.SQLITE_OK if action in ALLOWED else sqlite3.SQLITE_DENY


def run_select(conn: sqlite3.Connection, sql: str, *, max_rows: int = 200, time_limit_s: float = 1.0) -> Result:
    """Run one read-only query under the guard: at most `max_rows` rows kept, interrupted after `time_limit_s`."""
    sql = sql.strip()
    if not sql:
        raise QueryError("the query is empty; write one SELECT statement")
    if not sqlite3.complete_statement(sql if sql.endswith(";") else sql + ";"):
        raise QueryError(f"incomplete statement: {sql!r}; write one complete SELECT statement")
    deadline = time.monotonic() + time_limit_s
    conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 1000)
    try:
        cur = conn.execute(sql)
        rows = cur.fetchmany(max_rows + 1)
        columns = [d[0] for d in cur.description or ()]
    except sqlite3.ProgrammingError as e:             # e.g. "You can only execute one statement at a time."
        raise QueryError(f"{e} Send one SELECT statement, without a second one after ';'.") from None
    except sqlite3.DatabaseError as e:
        message = str(e)
        if message == "interrupted":
            raise QueryError(f"the query ran longer than {time_limit_s} s and was stopped; make it simpler "
                             "(no unbounded recursion, fewer joins)") from None
        if message.startswith(("not authorized", "authorization denied")):
            raise QueryError(f"{message}: this database is read-only; only SELECT queries run here") from None
        raise QueryError(message) from None
    finally:
        conn.set_progress_handler(None, 0)
    if not columns:
        raise QueryError("the statement returned no columns; only SELECT queries run here")
    return Result(columns, [tuple(r) for r in rows[:max_rows]], len(rows) > max_rows)
