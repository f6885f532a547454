"""Model-written SQL never writes: every kind of write, attach, pragma, multi-statement and runaway query is refused
or stopped with a clear error, and the database file is byte-identical afterwards."""
from __future__ import annotations

import hashlib
import sqlite3

import pytest

from rlhf_lib.sql_guard import QueryError, connect_read_only, run_select


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "catalog.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE movies (id INTEGER PRIMARY KEY, title TEXT, genre TEXT, year INTEGER)")
        conn.executemany("INSERT INTO movies VALUES (?, ?, ?, ?)",
                         [(i, f"Movie {i}", ("drama", "comedy", "sci-fi")[i % 3], 1950 + i) for i in range(300)])
    conn.close()
    return path


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_select_runs_and_the_row_limit_is_flagged(db):
    conn = connect_read_only(db)
    r = run_select(conn, "SELECT title, year FROM movies WHERE genre = 'sci-fi' ORDER BY year LIMIT 3")
    assert r.columns == ["title", "year"] and r.rows == [("Movie 2", 1952), ("Movie 5", 1955), ("Movie 8", 1958)]
    assert not r.truncated
    big = run_select(conn, "SELECT id FROM movies", max_rows=50)
    assert len(big.rows) == 50 and big.truncated
    assert run_select(conn, "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 5) "
                            "SELECT x FROM n").rows == [(1,), (2,), (3,), (4,), (5,)]


@pytest.mark.parametrize("sql", [
    "DROP TABLE movies",
    "DELETE FROM movies",
    "UPDATE movies SET year = 0",
    "INSERT INTO movies VALUES (999, 'x', 'y', 1)",
    "CREATE TABLE t (x)",
    "ALTER TABLE movies ADD COLUMN rating REAL",
    "ATTACH DATABASE ':memory:' AS other",
    "PRAGMA journal_mode = WAL",
    "PRAGMA user_version = 7",
    "VACUUM INTO '/tmp/copy.sqlite'",
    "BEGIN IMMEDIATE",
    "REPLACE INTO movies VALUES (1, 'x', 'y', 1)",
])
def test_anything_but_reading_is_refused_and_the_file_is_unchanged(db, sql):
    before = digest(db)
    conn = connect_read_only(db)
    with pytest.raises(QueryError, match="not authorized|read-only|readonly"):
        run_select(conn, sql)
    conn.close()
    assert digest(db) == before


def test_a_second_statement_is_refused_not_run(db):
    before = digest(db)
    with pytest.raises(QueryError, match="one statement at a time.*without a second one"):
        run_select(connect_read_only(db), "SELECT 1; DROP TABLE movies")
    assert digest(db) == before


def test_a_runaway_recursive_query_is_stopped_in_time(db):
    with pytest.raises(QueryError, match="longer than 0.2 s and was stopped"):
        run_select(connect_read_only(db), "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) "
                                          "SELECT count(*) FROM n", time_limit_s=0.2)


def test_sqlites_own_error_text_comes_back_for_the_repair_loop(db):
    conn = connect_read_only(db)
    with pytest.raises(QueryError, match="no such column: rating"):
        run_select(conn, "SELECT rating FROM movies")
    with pytest.raises(QueryError, match="no such table: film"):
        run_select(conn, "SELECT * FROM film")
    with pytest.raises(QueryError, match="empty"):
        run_select(conn, "   ")
    with pytest.raises(QueryError, match="incomplete statement"):
        run_select(conn, "SELECT 'unterminated")


def test_a_missing_database_says_how_to_build_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such database"):
        connect_read_only(tmp_path / "none.sqlite")
