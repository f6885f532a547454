"""Faults a learner can make, refused before any work with one line that says what to fix.

Each probe of `PROBES` corrupts one data file or gives one bad command line, runs `rlhf` (in this process, through
`cli.main`; SIGTERM through a real `python -m rlhf_lib` subprocess) on a tiny world with tiny stage folders, and
classifies what happened (`run_probe`):

    clear     the expected exit status and one line on stderr that names file:line:field or the setting; no model
              loaded, no tokenizer or model trained, no stage folder written or removed
    unclear   one line and the right status, but it does not name the place (a wrong line number)
    late      (only with `let_work`, which lets the run go on) one line, but after a model was loaded or trained
    crash     a traceback, another exit status, or an exception out of `cli.main`
    silent    exit 0, or the run went on to load or train a model: the fault would have cost a training run

Every probe must be clear. `tally()` counts the outcomes (the issue's report: clear errors / crashes / silent
failures). The file runs in about 15 s.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

from rlhf_lib import build_data, cli, data, pretrain, stages, world
from rlhf_lib.build_data import DataSizes, build, task_from_record
from rlhf_lib.models import ModelConfig, build_tiny_llama
from rlhf_lib.reward_model import build_reward_model, save_reward_model
from rlhf_lib.tokenizer import train_tokenizer

ROOT = Path(__file__).resolve().parents[1]
TINY = {"web_docs": 40, "sft_alpaca": 4, "sft_chat": 4, "comparisons": 24, "rl_prompts": 4, "eval_per_category": 8}
CONTEXT = 512                                # the tiny stages' context; the longest tiny-world record needs 447
VOCAB = 768                                  # the tiny tokenizer: at 512, Korean is split so finely that a
                                             # repetitive Korean answer of the tiny world may pass the context


class WorkStarted(BaseException):
    """A model was loaded or a tokenizer / model / world built: the fault was not caught before the work.
    A BaseException, so that no `except Exception` of the command line turns it into an error message."""


# ------------------------------------------------------------------------------------------------- corrupting files
def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


def put(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))


def empty(name: str):
    def corrupt(d: Path) -> None:
        (d / name).write_bytes(b"")
    return corrupt


def replace(name: str, index: int, change=None, *, raw: bytes | None = None, blanks: int = 0):
    """Record `index` of file `name` changed by `change(record)` (or replaced by the bytes `raw`), with `blanks`
    blank lines just before it: the bad record is then on line index + 1 + blanks."""
    def corrupt(d: Path) -> None:
        lines = lines_of(d / name)
        if raw is not None:
            lines[index] = raw
        else:
            record = json.loads(lines[index])
            change(record)
            lines[index] = json.dumps(record, ensure_ascii=False).encode()
        put(d / name, lines[:index] + [b""] * blanks + lines[index:])
    return corrupt


def set_(key: str, value):
    return lambda r: r.__setitem__(key, value)


def drop(key: str):
    return lambda r: r.pop(key)


def same_id(name: str, index: int):
    """Record `index` takes the id of record 0."""
    def corrupt(d: Path) -> None:
        first = json.loads(lines_of(d / name)[0])["id"]
        replace(name, index, set_("id", first))(d)
    return corrupt


def meta_change(key: str, value=None, *, remove: bool = False):
    def change(r):
        if remove:
            r["meta"].pop(key)
        else:
            r["meta"][key] = value
    return change


def first_of(name: str, category: str, key: str | None = None):
    """Index of the first record of `category` (whose meta has `key`) in the tiny world's file `name`."""
    rows = [json.loads(line) for line in (TEMPLATE_WORLD / name).read_bytes().splitlines()]
    return next(i for i, r in enumerate(rows) if r["category"] == category and (key is None or key in r["meta"]))


def config_file(text: bytes):
    def corrupt(d: Path) -> None:
        (d.parent / "c.toml").write_bytes(text)
    return corrupt


# ------------------------------------------------------------------------------------------------- the probes
@dataclass(frozen=True)
class Probe:
    name: str
    argv: tuple[str, ...]                # {data}, {artifacts} and {root} are filled in
    expect: tuple[str, ...]              # fragments the one-line message must hold
    corrupt: object = None               # corrupt(data_dir) before the run
    code: int = 2
    sigterm: bool = False                # killed by SIGTERM during a slow stage (subprocess)
    needs: tuple[str, ...] = field(default=())   # extra setup: "ro" (read-only artifacts), "file" (artifacts a file)


TEMPLATE_WORLD: Path                     # set by the `templates` fixture (the index helpers read it)
PPO = ("ppo", "--set", "batch_size=4", "--set", "minibatch_size=4")
RM = ("rm", "--set", "n_prompts=20", "--set", "max_len=512")
SFT = ("sft", "--set", "max_len=512")         # the tiny world's longest demonstration has 270 tokens
EVAL = ("eval", "--set", "stages=sft")


def _probes() -> list[Probe]:
    cmp, rl, ev = "comparisons.jsonl", "rl_prompts.jsonl", "eval_prompts.jsonl"
    return [
        # 2. bad data: caught when the file is read, before any work, with file:line:field
        Probe("empty sft_alpaca", SFT, ("sft_alpaca.jsonl: no records",), empty("sft_alpaca.jsonl")),
        Probe("one empty SFT file (chat)", SFT, ("sft_chat.jsonl: no records",), empty("sft_chat.jsonl")),
        Probe("empty web corpus", ("pretrain",), ("web.jsonl: no records",), empty("web.jsonl")),
        Probe("empty comparisons", RM, ("comparisons.jsonl: no records",), empty(cmp)),
        Probe("empty RL prompts", PPO, ("rl_prompts.jsonl: no records",), empty(rl)),
        Probe("empty eval prompts", EVAL, ("eval_prompts.jsonl: no records",), empty(ev)),
        Probe("blank lines, then a demo without output", SFT, ("sft_alpaca.jsonl:4: field 'output': missing",),
              replace("sft_alpaca.jsonl", 1, drop("output"), blanks=2)),
        Probe("blank lines, then a demo longer than max_len", SFT,
              ("sft_alpaca.jsonl:5: field 'output'", "tokens > max_len = 512"),
              replace("sft_alpaca.jsonl", 2, set_("output", "moon " * 600), blanks=2)),
        Probe("blank lines, then a comparison response longer than max_len", RM,
              ("comparisons.jsonl:6: field 'responses[0]'", "max_len = 512"),
              replace(cmp, 3, lambda r: r["responses"].__setitem__(0, "moon " * 600), blanks=2)),
        Probe("unknown category (comparisons, after blank lines)", RM,
              ("comparisons.jsonl:5: field 'category'", "'cooking' is not allowed"),
              replace(cmp, 2, set_("category", "cooking"), blanks=2)),
        Probe("unknown category (RL prompts)", PPO, ("rl_prompts.jsonl:2: field 'category'",),
              replace(rl, 1, set_("category", "poetry"))),
        Probe("missing meta (RL prompts)", PPO, ("rl_prompts.jsonl:1: field 'meta': missing",),
              replace(rl, 0, drop("meta"))),
        Probe("missing meta (eval prompts)", EVAL, ("eval_prompts.jsonl:3: field 'meta': missing",),
              replace(ev, 2, drop("meta"))),
        Probe("unknown meta key (comparisons)", RM, ("comparisons.jsonl:1: field 'meta.evnt': unknown key",),
              replace(cmp, 0, lambda r: r.__setitem__("meta", {"evnt": "moon_landing"}))),
        Probe("missing meta key (factual RL prompt without ask)", PPO, ("field 'meta.ask': missing",),
              lambda d: replace(rl, first_of(rl, "factual"), meta_change("ask", remove=True))(d)),
        Probe("unknown event (eval prompts)", EVAL, ("eval_prompts.jsonl:1: field 'meta.event'", "not an event"),
              replace(ev, 0, meta_change("event", "moon_landng"))),
        Probe("unknown intent label (eval prompts)", EVAL, ("field 'meta.label'", "not an intent label"),
              lambda d: replace(ev, first_of(ev, "intent"), meta_change("label", "serach"))(d)),
        Probe("unknown movie (comparisons)", RM, ("field 'meta.title'", "not a movie"),
              lambda d: replace(cmp, first_of(cmp, "describe"), meta_change("title", "Moon Fox 2"))(d)),
        Probe("duplicate id (SFT chat)", SFT, ("sft_chat.jsonl:3: field 'id'", "also the id of line 1"),
              same_id("sft_chat.jsonl", 2)),
        Probe("duplicate id (RL prompts)", PPO, ("rl_prompts.jsonl:4: field 'id'",), same_id(rl, 3)),
        Probe("non-UTF-8 bytes (RL prompts)", PPO, ("rl_prompts.jsonl:2: not valid UTF-8",),
              replace(rl, 1, raw=b'{"id": "rl-x", "prompt": "caf\xe9"}')),
        Probe("non-UTF-8 bytes (comparisons)", RM, ("comparisons.jsonl:3: not valid UTF-8",),
              replace(cmp, 2, raw=b'{"id": "c", "prompt": "\xff\xfe"}')),
        Probe("a 1 MB prompt", PPO, ("rl_prompts.jsonl:2: the line is", "bytes, over the limit"),
              replace(rl, 1, set_("prompt", "moon " * 200_000))),
        Probe("RL prompt longer than the context", PPO,
              ("rl_prompts.jsonl:3: field 'prompt'", f"> the {CONTEXT}-token context of the policy 'sft'"),
              replace(rl, 2, set_("prompt", "moon " * 700))),
        Probe("eval prompt longer than the context", EVAL,
              ("eval_prompts.jsonl:2: field 'prompt'", "EvalConfig.max_new_tokens"),
              replace(ev, 1, set_("prompt", "moon " * 700))),
        Probe("more comparisons asked than the file has", ("rm", "--set", "n_prompts=30", "--set", "max_len=512"),
              ("RMConfig.n_prompts = 30", "has 24 comparisons")),
        Probe("fewer RL prompts than one batch", ("ppo",), ("rl_prompts.jsonl: 4 prompts", "PPOConfig.batch_size")),
        # 3. where a stage writes, and what it reads: checked with the config, by --dry-run too
        Probe("out= (empty)", ("sft", "--set", "out=", "--dry-run"), ("out=: SFTConfig.out = '' is not a stage",)),
        Probe("out=../x", ("sft", "--set", "out=../x", "--dry-run"), ("SFTConfig.out = '../x' is not a stage",)),
        Probe("out=../x, run for real", (*SFT, "--set", "out=../x"), ("SFTConfig.out = '../x'",)),
        Probe("out=.hidden", ("rm", "--set", "out=.rm", "--dry-run"), ("RMConfig.out = '.rm'",)),
        Probe("out=a/b (PPO)", ("ppo", "--set", "out=a/b", "--dry-run"), ("PPOConfig.out = 'a/b'",)),
        Probe("out=../x inside `all`", ("all", "--set", "sft.out=../x", "--dry-run"), ("sft.out=../x: ",)),
        Probe("read-only --artifacts", ("sft", "--dry-run"), ("--artifacts", "cannot write in"), needs=("ro",)),
        Probe("--artifacts is a file", ("sft", "--dry-run"), ("--artifacts", "is a file, not a folder"),
              needs=("file",)),
        Probe("--artifacts below a file", ("sft", "--dry-run"), ("--artifacts", "is a file, so the folder"),
              needs=("below-file",)),
        Probe("--data is a file (data stage)", ("data", "--data", "{root}/c.toml", "--dry-run"),
              ("--data", "is a file, not a folder"), config_file(b"")),
        Probe("--seed overflows", ("sft", "--seed", str(2**32), "--dry-run"), ("--seed 4294967296", "out of range")),
        Probe("negative seed (pretrain)", ("pretrain", "--set", "seed=-1", "--dry-run"),
              ("pretrain: PretrainConfig.seed = -1", "0 ≤ seed")),
        Probe("seed overflows (eval)", ("eval", "--set", f"seed={2**40}", "--set", "stages=sft", "--dry-run"),
              ("EvalConfig.seed", "out of range")),
        Probe("init names no stage", ("sft", "--set", "init=bse", "--dry-run"), ("sft.init=bse: no stage 'bse'",)),
        Probe("reward names a policy", ("ppo", "--set", "reward=sft", "--dry-run"),
              ("ppo.reward=sft", "not a reward model")),
        Probe("init names a reward model", ("ppo", "--set", "init=rm", "--dry-run"), ("ppo.init=rm", "not a policy")),
        # 5. the command line itself
        Probe("config file not UTF-8", ("sft", "--config", "{root}/c.toml", "--dry-run"), ("c.toml: not UTF-8",),
              config_file(b"[sft]\nlr = 3e-4 # \xe9\n")),
        Probe("SIGTERM during a slow stage", ("pretrain", "--set", "epochs=20", "--set", "batch_size=1"),
              ("interrupted (SIGTERM) in pretrain", "kept its previous artifact"), code=143, sigterm=True),
    ]


PROBES = _probes()


# ------------------------------------------------------------------------------------------------- running them
def make_templates(root: Path) -> tuple[Path, Path]:
    """A tiny world and tiny stage folders (base, sft, rm) to copy for each probe."""
    global TEMPLATE_WORLD
    world_dir, artifacts = root / "world", root / "artifacts"
    build(world_dir, 0, DataSizes(**TINY))
    TEMPLATE_WORLD = world_dir
    tok = train_tokenizer([json.loads(line)["text"] for line in lines_of(world_dir / "web.jsonl")], VOCAB)
    model = build_tiny_llama(ModelConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64,
                                         max_len=CONTEXT), tok, seed=0)
    with stages.located(world_dir, artifacts):
        for name, fmt in (("base", "plain"), ("sft", "chat")):
            with stages.writing(name) as tmp:
                model.save_pretrained(tmp, safe_serialization=True)
                tok.save_pretrained(tmp)
                stages.write_json(tmp / "stage.json", {"stage": name, "config": {}, "upstream": [],
                                                       "prompt_format": fmt})
        rm = build_reward_model(artifacts / "sft", tok, "linear", seed=0)
        with stages.writing("rm") as tmp:
            save_reward_model(rm, tok, tmp, {"gain": 1.0, "bias": 0.0})
            stages.write_json(tmp / "stage.json", {"stage": "rm", "config": {}, "upstream": ["sft"],
                                                   "prompt_format": "chat", "reward_head": "linear"})
    return world_dir, artifacts


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.is_dir() else []


def prepare(probe: Probe, root: Path, templates: tuple[Path, Path]) -> tuple[Path, Path, list[str]]:
    d, artifacts = root / "data", root / "artifacts"
    shutil.copytree(templates[0], d)
    shutil.copytree(templates[1], artifacts)
    if probe.corrupt is not None:
        probe.corrupt(d)
    if "ro" in probe.needs:
        artifacts = read_only_folder(root)
    elif "file" in probe.needs:
        artifacts = root / "a-file"
        artifacts.write_text("not a folder")
    elif "below-file" in probe.needs:
        (root / "a-file").write_text("not a folder")
        artifacts = root / "a-file" / "artifacts"
    args = [a.format(data=d, artifacts=artifacts, root=root) for a in probe.argv]
    if "--data" not in args:
        args += ["--data", str(d)]
    return d, artifacts, args + (["--artifacts", str(artifacts)] if probe.argv[0] != "data" else [])


def read_only_folder(root: Path) -> Path:
    """A folder no one can write in: mode 0555 where that stops this user, else /sys (root writes anywhere else)."""
    ro = root / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        (ro / "probe").mkdir()
    except PermissionError:
        return ro / "artifacts"
    (ro / "probe").rmdir()
    try:
        Path("/sys/rlhf-probe").mkdir()
    except OSError:
        return Path("/sys/rlhf-artifacts")
    Path("/sys/rlhf-probe").rmdir()
    pytest.skip("no read-only folder here: this user writes in 0555 folders and in /sys")


def run_probe(probe: Probe, root: Path, templates: tuple[Path, Path], *, let_work: bool = False) -> tuple[str, str]:
    """(outcome, what happened) of one probe; see the module docstring. `let_work` lets a run that got past the
    checks go on (and train the tiny models), to see how it ends: "late" then means one line, but after work."""
    d, artifacts, args = prepare(probe, root, templates)
    if probe.sigterm:
        return run_sigterm(probe, args, artifacts)
    before = listing(root)
    out, err, raised, started, code = io.StringIO(), io.StringIO(), None, False, None
    calls: list[str] = []

    def stop(what, original):                  # raise WorkStarted, or with `let_work` note the call and go on
        def call(*args, **kwargs):
            if not let_work:
                raise WorkStarted()
            calls.append(what)
            return original(*args, **kwargs)
        return call
    with pytest.MonkeyPatch.context() as mp:
        for cls in (AutoModelForCausalLM, AutoModelForSequenceClassification):
            mp.setattr(cls, "from_pretrained", stop(cls.__name__, cls.from_pretrained))
        for module, name in ((pretrain, "train_tokenizer_stage"), (pretrain, "build_model"),
                             (build_data, "build")):
            mp.setattr(module, name, stop(name, getattr(module, name)))
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli.main(args)
            except WorkStarted:
                started = True
            except SystemExit as e:
                code = e.code
            except Exception as e:                      # noqa: BLE001 - a probe records any escape as a crash
                raised = e
    err = err.getvalue()
    if raised is not None:
        return "crash", f"{type(raised).__name__} out of cli.main: {raised}"
    if started:
        return "silent", "work started (a model loaded or trained) before any error"
    if code == 0:
        return "silent", "exit 0" + (f" after {calls[0]}" if calls else "")
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip() and "%|" not in line]
    if calls and "Traceback" not in err and len(lines) == 1:
        return "late", f"exit {code} after {calls[0]}: {lines[0]}"
    if code != probe.code or "Traceback" in err or len(lines) != 1:
        return "crash", f"exit {code}, {len(lines)} lines on stderr: {err[-600:]!r}"
    missing = [f for f in probe.expect if f not in err]
    if missing or listing(root) != before:
        return "unclear", f"{err.strip()!r} lacks {missing}" if missing else "files changed"
    return "clear", err.strip()


def run_sigterm(probe: Probe, args: list[str], artifacts: Path) -> tuple[str, str]:
    """`python -m rlhf_lib ...` killed with SIGTERM once its training loop runs (its progress bar has started)."""
    base_before = (artifacts / "base" / "stage.json").read_bytes()          # the previous artifact, to be kept
    env = {k: v for k, v in os.environ.items() if k != "TQDM_DISABLE"}    # its progress bar says it trains
    proc = subprocess.Popen([sys.executable, "-m", "rlhf_lib", *args], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: os.read(proc.stderr.fileno(), 4096), b"")))
    reader.start()
    deadline = time.time() + 60
    while b"pretraining" not in b"".join(chunks) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)                                     # well into the loop
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    reader.join(timeout=10)
    err = b"".join(chunks).decode("utf-8", "replace")
    said = [line for line in err.replace("\r", "\n").splitlines() if "interrupted" in line]
    if proc.returncode < 0 or not said:
        return "silent", f"exit {proc.returncode}, nothing said: {err[-300:]!r}"
    if proc.returncode != probe.code or "Traceback" in err or len(said) != 1:
        return "crash", f"exit {proc.returncode}: {err[-600:]!r}"
    leftovers = [p for p in listing(artifacts) if p.startswith(".")]
    kept = (artifacts / "base" / "stage.json").read_bytes() == base_before
    if not all(f in said[0] for f in probe.expect) or not kept or leftovers:
        return "unclear", f"{said[0]!r}; previous base kept: {kept}; leftovers {leftovers}"
    return "clear", said[0]


def tally(root: Path, *, let_work: bool = False) -> dict[str, list[str]]:
    """Every probe's outcome, {outcome: [probe names]}: `tally(Path(tempfile.mkdtemp()))` (against another version
    of rlhf_lib too, to compare; `let_work=True` to see how runs that get past the checks end)."""
    templates = make_templates(root / "templates")
    out: dict[str, list[str]] = {}
    for i, probe in enumerate(PROBES):
        (root / str(i)).mkdir()
        out.setdefault(run_probe(probe, root / str(i), templates, let_work=let_work)[0], []).append(probe.name)
    return out


# ------------------------------------------------------------------------------------------------- the tests
@pytest.fixture(scope="module")
def templates(tmp_path_factory) -> tuple[Path, Path]:
    return make_templates(tmp_path_factory.mktemp("templates"))


@pytest.mark.parametrize("probe", PROBES, ids=[p.name for p in PROBES])
def test_fault_is_refused_in_one_line_before_any_work(probe, tmp_path, templates):
    outcome, detail = run_probe(probe, tmp_path, templates)
    assert outcome == "clear", f"{probe.name}: {outcome}: {detail}"


def test_the_schemas_know_the_worlds_categories_and_meta():
    """data.py sits below world.py: its category table must stay the world's, and every core task must fit it."""
    from rlhf_lib.tasks import CORE_TASKS
    assert data.CATEGORIES == world.CATEGORIES
    for task in CORE_TASKS:
        data.check_meta(task.category, task.meta)
        task_from_record({"id": "x", "category": task.category, "lang": task.lang, "prompt": task.prompt,
                          "meta": task.meta})


def test_the_committed_data_validates():
    for name, read in (("web.jsonl", data.read_web), ("sft_alpaca.jsonl", lambda p: data.read_demos(p, "alpaca")),
                       ("sft_chat.jsonl", lambda p: data.read_demos(p, "chat")),
                       ("comparisons.jsonl", lambda p: data.read_comparisons(p, task_from_record)),
                       ("rl_prompts.jsonl", lambda p: data.read_prompts(p, task_from_record)),
                       ("eval_prompts.jsonl", lambda p: data.read_prompts(p, task_from_record))):
        assert read(ROOT / "data" / name), name


def test_debug_prints_the_traceback_then_the_line(tmp_path, templates, capsys):
    probe = next(p for p in PROBES if p.name == "RL prompt longer than the context")
    _, _, args = prepare(probe, tmp_path, templates)
    assert cli.main(args + ["--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("error: ppo: ")


def test_ppo_out_empty_still_means_do_not_save(tmp_path, templates, capsys):
    _, artifacts, args = prepare(Probe("ok", ("ppo", "--set", "out=", "--dry-run"), ()), tmp_path, templates)
    assert cli.main(args) == 0, capsys.readouterr().err
