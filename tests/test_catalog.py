"""The movie catalog: 100 films drawn deterministically around the world's 22, a byte-identical SQLite build, a
read-only connection, SQL recommendations and the lexical retriever of the query-rewriting lesson."""
from __future__ import annotations

import hashlib
import sqlite3
from collections import Counter

import pytest

from rlhf_lib import catalog
from rlhf_lib.catalog import (
    COMPACT_SCHEMA,
    DIRECTORS,
    N_FILMS,
    SCHEMA_SQL,
    build_db,
    by_title,
    card,
    connect,
    dump,
    feature,
    films,
    retrieve,
    similar,
)
from rlhf_lib.knowledge import GENRES, MOVIES
from rlhf_lib.sql_guard import QueryError, run_select

CATALOG = films()


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = tmp_path_factory.mktemp("catalog") / "catalog.sqlite"
    build_db(path, CATALOG)
    return path


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_catalog_has_n_films_with_unique_titles_and_the_world_movies_first():
    assert N_FILMS == 100 and len(CATALOG) == N_FILMS
    assert [f.id for f in CATALOG] == list(range(1, N_FILMS + 1))
    assert len({f.title.lower() for f in CATALOG}) == N_FILMS
    for film, movie in zip(CATALOG, MOVIES):
        assert (film.title, film.year, film.genre, film.plot) == (movie.title, movie.year, movie.genre, movie.plot)
    assert not any(q in f.title for f in CATALOG for q in "'\"`‘’“”")


def test_every_genre_and_director_is_well_covered_and_fields_are_in_range():
    assert len(DIRECTORS) == 16 and len({en.split()[-1] for en, _ in DIRECTORS}) == 16
    assert all(len(en.split()) == 2 and ko for en, ko in DIRECTORS)
    assert min(Counter(f.genre for f in CATALOG)[g] for g in GENRES) >= 10
    assert min(Counter(f.director for f in CATALOG)[en] for en, _ in DIRECTORS) >= 3
    names = dict(DIRECTORS)
    for f in CATALOG:
        assert f.genre in GENRES and names[f.director] == f.director_ko
        assert 5.0 <= f.rating <= 9.5 and round(f.rating, 1) == f.rating
        assert 1980 <= f.year <= 2024 or f.id <= len(MOVIES)
        assert set(f.plot) == {"en", "ko"} and "\n" not in f.plot["en"] + f.plot["ko"]
        assert len(f.plot["en"].split()) <= 12


def test_the_catalog_is_deterministic_in_its_seed():
    assert films() == CATALOG and films(0) == CATALOG
    assert films(1) != CATALOG
    assert films(1)[:len(MOVIES)] != CATALOG[:len(MOVIES)] or films(1)[len(MOVIES):] != CATALOG[len(MOVIES):]


def test_the_schema_strings():
    assert SCHEMA_SQL.startswith("CREATE TABLE movies (id INTEGER PRIMARY KEY, title TEXT NOT NULL UNIQUE")
    assert COMPACT_SCHEMA == "movies(id, title, year, genre, director, rating, plot)"


def test_building_twice_gives_identical_bytes_and_the_returned_hash(tmp_path):
    a, b = tmp_path / "a.sqlite", tmp_path / "b.sqlite"
    ha, hb = build_db(a, CATALOG), build_db(b)
    assert a.read_bytes() == b.read_bytes() and ha == hb == digest(a)
    assert sum(line.startswith('INSERT INTO "movies"') for line in dump(a).splitlines()) == N_FILMS
    assert build_db(a, films(1)) == digest(a) != ha                 # a rebuild replaces the file that is there
    assert build_db(a, CATALOG) == ha and dump(a) == dump(b)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.sqlite", "b.sqlite"]     # no temporary file left


def test_the_rows_match_the_catalog(db):
    conn = connect(db)
    rows = run_select(conn, "SELECT * FROM movies ORDER BY id", max_rows=N_FILMS).rows
    assert rows == [(f.id, f.title, f.year, f.genre, f.director, f.director_ko, f.rating, f.plot["en"],
                     f.plot["ko"]) for f in CATALOG]


def test_the_connection_is_read_only(db):
    before = digest(db)
    conn = connect(db)
    with pytest.raises(sqlite3.DatabaseError):
        conn.execute("INSERT INTO movies (id, title, year, genre, director, director_ko, rating, plot, plot_ko) "
                     "VALUES (999, 'X', 2000, 'drama', 'A B', 'ㄱ', 5.0, 'p', 'p')")
    with pytest.raises(QueryError):
        run_select(conn, "DELETE FROM movies")
    conn.close()
    assert digest(db) == before


def test_similar_recommends_other_films_of_the_same_genre(db):
    conn = connect(db)
    titles = by_title(CATALOG)
    for title in ("Iron Falcon", "Seoul Rain", CATALOG[50].title):
        picks = similar(conn, title, k=3)
        assert len(picks) == 3 and title not in picks and len(set(picks)) == 3
        assert all(titles[p].genre == titles[title].genre for p in picks)
        assert similar(conn, title, k=3) == picks
    assert len(similar(conn, "Iron Falcon", k=100)) == Counter(f.genre for f in CATALOG)["superhero"] - 1
    with pytest.raises(KeyError, match="No Such Film"):
        similar(conn, "No Such Film")


def test_retrieve_finds_a_named_title_first_in_english_and_korean():
    for film in (CATALOG[0], CATALOG[30], CATALOG[99]):
        assert retrieve(CATALOG, f"Can you describe {film.title}?")[0] == film
        assert retrieve(CATALOG, f"{film.title}의 줄거리를 알려 줘", k=3)[0] == film
    assert retrieve(CATALOG, "tell me about iron falcon") == [CATALOG[0]]


def test_retrieve_by_director_and_genre():
    en, ko = DIRECTORS[0]
    assert retrieve(CATALOG, f"Recommend a film by {en}")[0].director == en
    assert all(f.director == en for f in retrieve(CATALOG, f"{ko} 감독의 영화를 추천해 줘", k=3))
    assert retrieve(CATALOG, "a good horror movie")[0].genre == "horror"


def test_a_query_naming_nothing_retrieves_nothing_named():
    query = "Can you describe the above?"
    picks = retrieve(CATALOG, query, k=5)
    assert picks == [] or all(f.title.lower() not in query.lower() for f in picks)
    assert retrieve(CATALOG, query, k=5) == picks
    assert retrieve(CATALOG, "", k=3) == []


def test_card_and_feature_of_the_first_film():
    f = CATALOG[0]
    assert card(f, "en") == (f"Title: Iron Falcon\nYear: 2015\nGenre: superhero\nDirector: {f.director}\n"
                             f"Rating: {f.rating}\nPlot: a pilot builds a flying suit to save her city")
    assert card(f, "ko") == (f"제목: Iron Falcon\n연도: 2015\n장르: 슈퍼히어로\n감독: {f.director_ko}\n"
                             f"평점: {f.rating}\n줄거리: 한 조종사가 도시를 구하려고 날 수 있는 옷을 만든다")
    assert feature(f) == "Superhero / Iron Falcon / a pilot builds a flying suit to save her city"
    assert feature(by_title(CATALOG)["The Star Garden"]).startswith("Science Fiction / The Star Garden / ")


def test_generated_plots_are_filled_in():
    for f in CATALOG[len(MOVIES):]:
        assert "{" not in f.plot["en"] + f.plot["ko"] and f.plot["ko"].startswith("한 ")
    assert catalog.MIN_PER_GENRE == 10
