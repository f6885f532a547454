"""`make test`'s runner (tests/run.py): every lesson and the unit tests are jobs, each lesson after the lessons whose
stages it reads, and the scheduler keeps to that order, runs two at a time and reports failures."""
from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("course_test_runner", ROOT / "tests" / "run.py")
runner = sys.modules["course_test_runner"] = importlib.util.module_from_spec(spec)     # dataclasses look it up
spec.loader.exec_module(runner)


def by_name() -> dict:
    return {j.name: j for j in runner.jobs()}


def before(jobs: dict, name: str) -> set[str]:
    """Every job `name` waits for, directly or through others."""
    out, todo = set(), list(jobs[name].after)
    while todo:
        n = todo.pop()
        if n not in out:
            out.add(n)
            todo += jobs[n].after
    return out


def marker(args: tuple[str, ...]) -> str:
    """The marker expression of a pytest command line (the argument after its last -m: the first is python's)."""
    return args[len(args) - args[::-1].index("-m")]


def test_every_lesson_runs_under_nbval_and_the_unit_tests_run_once():
    jobs = by_name()
    for nb in runner.lessons():
        args = jobs[nb.stem].args
        assert "--nbval-lax" in args and f"notebooks/{nb.name}" in args, nb.name
    unit = jobs["unit"].args
    assert "tests" in unit and "--ignore=tests/test_browser.py" in unit and marker(unit) == "not stages"
    assert marker(jobs["stages"].args) == "stages"
    assert "tests/test_browser.py" in jobs["browser"].args


def test_each_lesson_waits_for_what_it_reads_and_the_browser_for_its_lessons():
    jobs, stems = by_name(), [nb.stem for nb in runner.lessons()]
    for i, stem in enumerate(stems):
        earlier = set(before(jobs, stem))
        assert earlier <= set(stems[:i]), (stem, earlier - set(stems[:i]))       # never a later lesson
        if i <= 4:
            assert earlier == set(stems[:i]), stem                                # 00-04: a chain
        elif stem[:2] in runner.READS and set(runner.READS[stem[:2]]) == {stems[3][:2]}:
            assert set(stems[:4]) <= earlier, stem                               # reads 00-03's stages only
        else:
            assert set(stems[:5]) <= earlier, stem                               # everything else after 04 waits for it
    assert set(jobs["stages"].after) == {stems[4]}
    shown = [stems[[s[:2] for s in stems].index(n)] for n in runner.browser_lessons()]
    assert shown and before(jobs, "browser") == set(stems[:5]) | {x for s in shown for x in before(jobs, s) | {s}}
    assert not {"unit", "stages"} & before(jobs, "browser")
    assert jobs["browser"].minutes == pytest.approx(sum(jobs[s].minutes for s in shown) + runner.BROWSER_OVERHEAD_MIN)
    assert [j.name for j in runner.jobs()][-1] == "browser"                    # one at a time: still the last


def test_the_browser_test_follows_the_lessons_it_is_told_to_run(monkeypatch):
    monkeypatch.setenv("RLHF_BROWSER_LESSONS", "05")
    monkeypatch.delitem(sys.modules, "test_browser", raising=False)              # imported again: it reads the variable
    jobs, stems = by_name(), [nb.stem for nb in runner.lessons()]
    assert set(jobs["browser"].after) == {stems[4], stems[5]}


def fake(tmp_path: Path, name: str, secs: float, rc: int = 0, after: tuple[str, ...] = ()):
    """A job that records when it started and ended in tmp_path/<name>.json and exits with `rc`."""
    record = str(tmp_path / f"{name}.json")
    code = (f"import json, time; t = time.monotonic(); time.sleep({secs}); print('{name} says hello'); "
            f"json.dump([t, time.monotonic()], open({record!r}, 'w')); raise SystemExit({rc})")
    return runner.Job(name, (sys.executable, "-c", code), after)


def span(tmp_path: Path, name: str) -> tuple[float, float]:
    return tuple(json.loads((tmp_path / f"{name}.json").read_text()))


def test_the_scheduler_keeps_the_order_and_runs_two_at_a_time(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runner, "LOGS", tmp_path / "logs")
    todo = [fake(tmp_path, "a", 1.0), fake(tmp_path, "b", 1.0), fake(tmp_path, "c", 0.2, after=("a",)),
            fake(tmp_path, "d", 0.2, after=("a", "b", "c"))]
    t0 = time.monotonic()
    assert runner.run(todo, slots=2) == 0
    assert time.monotonic() - t0 < 1.9 + 0.2 + 0.2 + 1.0        # a and b side by side (one at a time: 2.4 s of sleep)
    a, b, c, d = (span(tmp_path, n) for n in "abcd")
    assert a[0] < b[1] and b[0] < a[1]                          # a and b overlapped
    assert c[0] >= a[1] and d[0] >= max(a[1], b[1], c[1])        # nothing before what it waits for
    out = capsys.readouterr().out
    assert "==> c: passed" in out and "c says hello" in out      # each log printed whole when its job ends
    assert (tmp_path / "logs" / "d.log").read_text().strip() == "d says hello"


def test_one_slot_runs_the_jobs_in_their_listed_order(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "LOGS", tmp_path / "logs")
    todo = [runner.Job(j.name, j.args, j.after, m) for j, m in zip([fake(tmp_path, n, 0.1) for n in "xyz"], (0, 0, 5))]
    assert runner.run(todo, slots=1) == 0                      # the course's order, whatever the lessons' times
    x, y, z = (span(tmp_path, n) for n in "xyz")
    assert x[1] <= y[0] and y[1] <= z[0]


def test_a_failed_job_fails_the_run_and_what_waits_for_it_still_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runner, "LOGS", tmp_path / "logs")
    assert runner.run([fake(tmp_path, "bad", 0.1, rc=3), fake(tmp_path, "next", 0.1, after=("bad",))], slots=2) == 1
    out = capsys.readouterr().out
    assert "==> bad: FAILED (exit 3)" in out and "==> next: passed" in out
    assert "FAIL" in out.splitlines()[-2] and "ok" in out.splitlines()[-1]       # the summary table


def test_a_job_waiting_for_a_job_that_never_runs_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "LOGS", tmp_path / "logs")
    with pytest.raises(SystemExit, match=r"never run: \{'late': \['missing'\]\}"):
        runner.run([fake(tmp_path, "late", 0.1, after=("missing",))], slots=2)


def test_every_lesson_says_how_long_it_takes_in_a_form_the_runner_reads():
    minutes = {j.name: j.minutes for j in runner.jobs() if j.name[:2].isdigit()}
    assert len(minutes) == len(runner.lessons()) and all(0 < m <= 4 for m in minutes.values()), minutes


@pytest.mark.parametrize("text, minutes", [("Takes: about 2½ minutes on", 2.5), ("Takes:\nabout 1.5 minutes", 1.5),
                                           ("Takes: about 20 seconds on", 1 / 3), ("Takes: about 1 minute", 1.0)])
def test_stated_minutes_reads_the_lessons_forms(tmp_path, monkeypatch, text, minutes):
    monkeypatch.setattr(runner, "ROOT", tmp_path)
    nb = tmp_path / "00_x.ipynb"
    nb.write_text(json.dumps({"cells": [{"source": ["# title\n"]}, {"source": [f"*{text} a 2-core CPU*"]}]}))
    assert runner.stated_minutes(nb) == pytest.approx(minutes)
    nb.write_text(json.dumps({"cells": [{"source": ["# a lesson that does not say"]}]}))
    with pytest.raises(SystemExit, match="does not say how long it takes"):
        runner.stated_minutes(nb)


def test_the_longest_chain_of_stated_minutes_starts_first(tmp_path, monkeypatch):
    todo = [runner.Job("a", ("true",), minutes=1), runner.Job("b", ("true",), ("a",), minutes=1),
            runner.Job("c", ("true",), ("b",), minutes=2), runner.Job("d", ("true",), (), minutes=2.5)]
    assert runner.critical_path(todo) == {"a": 4, "b": 3, "c": 2, "d": 2.5}
    monkeypatch.setattr(runner, "LOGS", tmp_path / "logs")
    jobs = [fake(tmp_path, "short", 0.3), fake(tmp_path, "long_chain", 0.3), fake(tmp_path, "other", 0.3),
            fake(tmp_path, "tail", 0.3, after=("long_chain",))]
    jobs = [runner.Job(j.name, j.args, j.after, m) for j, m in zip(jobs, (1, 1, 0.5, 3))]
    assert runner.run(jobs, slots=2) == 0                      # the chain's head first, beside "short" (listed first)
    chain, short, other = span(tmp_path, "long_chain"), span(tmp_path, "short"), span(tmp_path, "other")
    assert chain[0] < other[0] and short[0] < other[0]


def test_after_lesson_04_the_longest_path_goes_first():
    path = runner.critical_path(runner.jobs())
    names = {j.name[:2]: j.name for j in runner.jobs()}
    assert path[names["05"]] > max(path[names["09"]], path[names["10"]]) > path[names["06"]]


def test_reads_must_name_lessons_that_exist(monkeypatch):
    monkeypatch.setitem(runner.READS, "99", ("04",))
    with pytest.raises(SystemExit, match=r"READS names lessons \['99'\]"):
        runner.jobs()


def test_list_prints_every_job_and_runs_nothing(capsys):
    assert runner.main(["--list"]) == 0
    out = capsys.readouterr().out
    assert all(f"{j.name}: after" in out for j in runner.jobs())
