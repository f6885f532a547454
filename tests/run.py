"""`make test`'s runner: the unit tests and every lesson under pytest, two jobs at a time, each lesson after the
lessons whose stages it reads; the browser test once lesson 04 and the lessons it runs have ended.

    python tests/run.py              # what `make test` runs (after ruff)
    python tests/run.py --jobs 1     # one job at a time, in the order listed by --list: the course's own order
    python tests/run.py --list       # the jobs, what each one waits for, and the pytest command it runs

Why two at a time. The course runs on 2 cores, and one lesson keeps them busy only while it trains with large
batches: sampling runs on one thread (`generation.one_thread`), and judging, tokenizing and plotting are Python on
one core. Two training jobs side by side did 1.3x (two threads each) to 1.5x (one each) the steps per second of one
job on two threads (steps of 32 x 128 tokens, AMD EPYC); on a fresh clone the course took 27 min 54 s this way
against 37-39 min one at a time on hours as slow (the README's table). A lesson's numbers do not depend on what
runs beside it: seeds are the lesson's own, and the thread count changes no number.

Which job starts first. Of the jobs ready to start, the one with the longest chain of stated lesson times after it
("Takes: about 2½ minutes" in each lesson's opening cells), so that lessons 09 and 10, the longest, do not run alone
at the end (`critical_path`).

What waits for what. A lesson waits for every earlier lesson unless `READS` says which ones write the stages it reads.
Lessons 00-04 are a chain (each trains the stage the next one starts from); lesson 06 reads only SFT and the reward
model, so it runs beside lesson 04, and after lesson 04 the rest run two at a time. The tests marked `stages` (they
check the committed data with the trained tokenizer and policy) run once lesson 04 has written them, so they run on a
fresh clone instead of skipping. The browser test runs lessons again in JupyterLab (01 and 06 unless
`RLHF_BROWSER_LESSONS` says others) on a private copy of the stages they read, so it starts once lesson 04 and those
lessons' own runs have ended (two runs of one lesson at once would share its `runs/` folders) and takes a slot beside
the other lessons, instead of running alone at the end. Its stated time is its lessons' plus half a minute for
JupyterLab, Chromium and the screenshots.

Each job writes `runs/test-logs/<job>.log`; its log is printed whole when it ends, so two jobs' lines never mix. A
table of every job's result and wall time ends the run. The exit status is 1 if any job failed (a failed job's
dependants still run, as one pytest run goes on past a failed test).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from rlhf_lib.memory import ENV as MEMORY_ENV

ROOT = Path(__file__).resolve().parents[1]
LOGS = ROOT / "runs" / "test-logs"
PYTEST = (sys.executable, "-m", "pytest")
# Two jobs share two cores: a torch thread that waits must sleep, not spin on a core the other job needs (a lesson's
# `lesson.setup()` sets the same; the unit tests and pytest itself load torch before any lesson code runs). glibc
# keeps freed memory for reuse in every job (`rlhf_lib/memory.py`; a lesson's setup and every stage set it too).
ENV = {**MEMORY_ENV, **os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}

# lesson: the lessons that write the stages it reads. Not listed: it waits for every earlier lesson.
READS = {
    "06": ("03",),          # sft, rm (its two-process PPO starts from sft against rm, and saves nothing)
    "07": ("05",),          # rm's comparisons, ppo; it adds to lesson 05's eval stage
    "08": ("07",),          # dpo, ppo_ptx, rm; it adds to the eval stage after lesson 07
    "09": ("04",),          # base, sft, ppo
    "10": ("04",),          # tokenizer, base, sft, ppo (the teacher)
}
STAGES_READY = "04"         # the tests marked `stages` need lesson 00's tokenizer and lesson 04's policy
BROWSER_OVERHEAD_MIN = 0.5  # the browser test beyond its lessons' stated times (JupyterLab, Chromium, screenshots)


FRACTIONS = {"": 0.0, "¼": 0.25, "⅓": 1 / 3, "½": 0.5, "⅔": 2 / 3, "¾": 0.75}
TAKES = re.compile(r"Takes:\s+about\s+(\d+(?:\.\d+)?)([¼⅓½⅔¾]?)\s+(minutes?|seconds?)\b")


@dataclass(frozen=True)
class Job:
    name: str
    args: tuple[str, ...]               # the command (pytest and its arguments)
    after: tuple[str, ...] = ()         # jobs that must have ended first
    minutes: float = 0.0                # the time the lesson says it takes ("Takes: about 2½ minutes")


def stated_minutes(nb: Path) -> float:
    """The time a lesson says it takes, from its opening cells ("Takes: about 2½ minutes on a 2-core CPU")."""
    cells = json.loads(nb.read_text("utf-8"))["cells"][:4]
    m = TAKES.search("".join("".join(c["source"]) for c in cells))
    if m is None:
        raise SystemExit(f"tests/run.py: {nb.relative_to(ROOT)} does not say how long it takes: its opening cells "
                         "need a line like 'Takes: about 2 minutes on a 2-core CPU'")
    value = float(m[1]) + FRACTIONS[m[2]]
    return value if m[3].startswith("minute") else value / 60


def lessons() -> list[Path]:
    return sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def browser_lessons() -> list[str]:
    """The lessons the browser test runs (`tests/test_browser.py`'s LESSONS)."""
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        from test_browser import LESSONS
    finally:
        sys.path.remove(str(ROOT / "tests"))
    return list(LESSONS)


def jobs() -> list[Job]:
    """Every job, in the course's order (`--jobs 1` runs them so)."""
    nbs = lessons()
    nums = [p.name[:2] for p in nbs]
    unknown = sorted({n for n in READS if n not in nums} | {d for ds in READS.values() for d in ds if d not in nums})
    if unknown:
        raise SystemExit(f"tests/run.py: READS names lessons {unknown}, which notebooks/ does not have: fix READS")
    out = [Job("unit", (*PYTEST, "--durations=15", "-m", "not stages", "--ignore=tests/test_browser.py", "tests"))]
    for i, (num, nb) in enumerate(zip(nums, nbs)):
        needs = READS.get(num, tuple(nums[:i]))
        out.append(Job(nb.stem, (*PYTEST, "--nbval-lax", "--durations=5", f"notebooks/{nb.name}"),
                       tuple(nbs[nums.index(n)].stem for n in needs), stated_minutes(nb)))
        if num == STAGES_READY:
            out.append(Job("stages", (*PYTEST, "-m", "stages", "--ignore=tests/test_browser.py", "tests"), (nb.stem,)))
    shown = [nbs[nums.index(n)] for n in browser_lessons() if n in nums]     # an unknown one: the test says so
    out.append(Job("browser", (*PYTEST, "--durations=5", "tests/test_browser.py"),
                   tuple(dict.fromkeys([nbs[nums.index(STAGES_READY)].stem, *(nb.stem for nb in shown)])),
                   sum(stated_minutes(nb) for nb in shown) + BROWSER_OVERHEAD_MIN))
    return out


def clock(s: float) -> str:
    """Seconds as "3 min 05.2 s" (or "12.3 s")."""
    return f"{int(s // 60)} min {s % 60:04.1f} s" if s >= 60 else f"{s:.1f} s"


def result_line(log: Path) -> str:
    """pytest's last summary line ("12 passed in 93.20s"), or the log's last line."""
    lines = [ln.strip("= \n") for ln in log.read_text("utf-8", errors="replace").splitlines() if ln.strip()]
    summary = [ln for ln in lines if re.search(r"\b(passed|failed|error|skipped|no tests ran)\b", ln)]
    return (summary or lines or ["(no output)"])[-1]


def critical_path(todo: list[Job]) -> dict[str, float]:
    """Each job's stated minutes plus the longest chain of stated minutes of the jobs that wait for it: of the jobs
    ready to start, the one with the longest path goes first (list scheduling; Graham 1969), so the long lessons
    after lesson 04 do not end up running alone at the end."""
    path: dict[str, float] = {}
    for job in reversed(todo):                             # every job is listed after the jobs it waits for
        path[job.name] = job.minutes + max((path[j.name] for j in todo if job.name in j.after), default=0.0)
    return path


def run(todo: list[Job], slots: int) -> int:
    """Start each job once every job it waits for has ended, at most `slots` at a time, the longest
    `critical_path` first (one slot: the listed order). Returns the exit status."""
    LOGS.mkdir(parents=True, exist_ok=True)
    waiting, running, ended = list(todo), {}, {}           # running: name -> (Popen, log file, start)
    path, t0 = critical_path(todo), time.monotonic()
    try:
        while waiting or running:
            ready = [j for j in waiting if set(j.after) <= set(ended)]
            if slots > 1:                                  # one at a time keeps the course's order
                ready.sort(key=lambda j: -path[j.name])
            for job in ready[:max(0, slots - len(running))]:
                waiting.remove(job)
                log = open(LOGS / f"{job.name}.log", "w", encoding="utf-8")
                proc = subprocess.Popen(job.args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=ENV,
                                        start_new_session=True)
                running[job.name] = (proc, log, time.monotonic())
                print(f"tests/run.py: started {job.name} at {clock(time.monotonic() - t0)}"
                      + (f" ({', '.join(running)} running)" if len(running) > 1 else ""), flush=True)
            if not running:
                stuck = {j.name: sorted(set(j.after) - set(ended)) for j in waiting}
                raise SystemExit(f"tests/run.py: jobs wait for jobs that never run: {stuck}")
            time.sleep(0.5)
            for name, (proc, log, start) in list(running.items()):
                if proc.poll() is None:
                    continue
                log.close()
                del running[name]
                ended[name] = (proc.returncode, time.monotonic() - start)
                text = (LOGS / f"{name}.log").read_text("utf-8", errors="replace")
                print(f"\n==> {name}: {'passed' if proc.returncode == 0 else f'FAILED (exit {proc.returncode})'}, "
                      f"{clock(ended[name][1])} (runs/test-logs/{name}.log)\n{text.rstrip()}\n<== {name}\n",
                      flush=True)
    except BaseException:                                  # Ctrl-C, SIGTERM: leave no job running
        for proc, _, _ in running.values():
            with_group(proc, signal.SIGTERM)
        raise
    width = max(len(n) for n in ended)
    print(f"tests/run.py: {len(ended)} jobs, {slots} at a time, {clock(time.monotonic() - t0)} in all")
    for job in todo:
        rc, secs = ended[job.name]
        print(f"  {job.name:<{width}}  {'ok  ' if rc == 0 else 'FAIL'}  {clock(secs):>14}  "
              f"{result_line(LOGS / f'{job.name}.log')}")
    return int(any(rc != 0 for rc, _ in ended.values()))


def with_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--jobs", type=int, default=2, help="jobs at a time (default 2, the course's cores)")
    ap.add_argument("--list", action="store_true", help="print the jobs and what each waits for, run nothing")
    args = ap.parse_args(argv)
    if args.jobs < 1:
        ap.error(f"--jobs {args.jobs}: run at least one job at a time (--jobs 1 runs them in order)")
    todo = jobs()
    if args.list:
        for j in todo:
            print(f"{j.name}: after {', '.join(j.after) or 'nothing'}"
                  + (f"; says it takes {j.minutes:.2g} min" if j.minutes else "") + f"\n    {shlex.join(j.args[2:])}")
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))      # as Ctrl-C: stop every job, then exit
    return run(todo, args.jobs)


if __name__ == "__main__":
    sys.exit(main())
