"""Stages and their artifacts: how lessons hand models to each other (all lessons).

Each InstructGPT step is a *stage* that writes one folder, `artifacts/<stage>/`:

    model.safetensors + config.json   (save_pretrained; loads with AutoModelForCausalLM, no pickle)
    tokenizer files                    (save_pretrained, with the chat template)
    stage.json                         (config, upstream stages, prompt format; "files": size and sha256 of the rest)
    metrics.json                       (training figures: final_loss, wall_s, curves …)
    eval.json                          (gold-labeler evaluation on the held-out prompts, when run)

`writing(name)` fills a hidden folder, records its files in stage.json and swaps it into place under a journal: a
kill leaves the previous stage or the new one, never half of one (`together` commits several at once; `recover`
finishes or rolls back a killed swap). `status(name)` says complete, missing, incomplete or damaged; readers check
the sha256 (3 ms for a 5 MB model, once per process): a `StageError` names the file and the fix. Stages saved before
checksums load unverified. Training a missing stage is the registry's job (`pipeline.require`).
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import socket
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .checksums import mismatch, sha256

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("RLHF_DATA", ROOT / "data"))
ARTIFACTS = Path(os.environ.get("RLHF_ARTIFACTS", ROOT / "artifacts"))
OPTIONAL = ("eval.json",)                   # checked when present; `rlhf eval` writes it again when deleted
NAN_FILES = ("metrics.json", "eval.json")   # null there reads back as NaN
HOST = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:24]    # in leftover names: a shared disk's other machines
LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?P<kind>partial|old)-(?P<pid>\d+)-(?P<host>[A-Za-z0-9]*)-[a-z0-9_]+$")
JOURNAL = re.compile(r"^\.(?P<names>.+)\.swap-(?P<pid>\d+)-(?P<host>[A-Za-z0-9]*)$")

_GROUP: dict[str, Path | None] | None = None    # inside `together`: stage -> its sealed folder, waiting to commit


def swap_hook(point: str, name: str) -> None:
    """Tests replace it to kill the process at ('journal', names) or ('between', name), between the two renames."""


class StageError(ValueError):
    """A stage folder or file that exists but is incomplete, damaged or not JSON; the message names file and fix."""


@contextmanager
def located(data: Path, artifacts: Path):
    """Read the world's data from `data` and keep the stage folders in `artifacts` for the duration of a command (the
    command line's --data and --artifacts), then restore the previous folders."""
    global DATA_DIR, ARTIFACTS
    saved = DATA_DIR, ARTIFACTS
    DATA_DIR, ARTIFACTS = Path(data), Path(artifacts)
    try:
        yield
    finally:
        DATA_DIR, ARTIFACTS = saved


def stage_dir(name: str) -> Path:
    return ARTIFACTS / name


# ------------------------------------------------------------------------------------------------ completeness
@dataclass(frozen=True)
class Status:
    """What a stage folder holds: state 'complete', 'missing', 'incomplete' (stage.json or a recorded file missing,
    or stage.json not JSON) or 'damaged' (a file differs from the size or sha256 recorded), and what is there."""
    name: str
    folder: Path
    state: str
    present: tuple[str, ...] = ()       # the files there
    problems: tuple[str, ...] = ()      # what is wrong, one phrase each
    checksummed: bool = False           # stage.json records its files (False: saved before checksums)

    @property
    def complete(self) -> bool:
        return self.state == "complete"

    def describe(self) -> str:
        """What is wrong, what is there, and the fix (for an incomplete or damaged stage)."""
        what = "stage.json" if any(p.startswith("stage.json") for p in self.problems) else "the files named"
        return (f"stage {self.name!r} in {self.folder} is {self.state}: {'; '.join(self.problems)} (there: "
                f"{', '.join(self.present) or 'nothing'}). Nothing was changed: restore {what} from a backup if the "
                f"rest is intact, or move the folder away or delete it to retrain (pipeline.require({self.name!r}))")


def status(name: str, *, verify: bool = False, folder: Path | None = None) -> Status:
    """Is stage `name` (or folder `folder`) complete? Recorded sizes only (cheap); with `verify` also every sha256."""
    if folder is None:
        recover()
        folder = stage_dir(name)
    if not folder.exists():
        return Status(name, folder, "missing")
    present = tuple(sorted(p.name for p in folder.iterdir())) if folder.is_dir() else ()
    try:
        files = load_json(folder / "stage.json").get("files")
    except (OSError, StageError, AttributeError) as e:
        why = "is missing" if isinstance(e, OSError) else f"is not valid JSON ({e.__cause__ or 'not an object'})"
        return Status(name, folder, "incomplete", present, (f"stage.json {why}",))
    if not isinstance(files, dict):
        return Status(name, folder, "complete", present)                       # saved before checksums
    missing = [f"{rel} is missing" for rel in files if not (folder / rel).is_file() and rel not in OPTIONAL]
    damaged = [f"{rel} {why}" for rel, rec in files.items()
               if (folder / rel).is_file() and (why := mismatch(folder / rel, rec, verify=verify))]
    state = "incomplete" if missing else "damaged" if damaged else "complete"
    return Status(name, folder, state, present, tuple(missing + damaged), True)


def exists(name: str) -> bool:
    """Is there a complete stage `name`? (Cheap: stage.json and the recorded sizes; `status` says more.)"""
    return status(name).complete


def verify(folder: str | Path) -> None:
    """Before loading from `folder`: a StageError unless its files match the sizes and sha256 stage.json records."""
    folder = Path(folder)
    if (folder / "stage.json").exists() and not (st := status(folder.name, verify=True, folder=folder)).complete:
        raise StageError(st.describe())


def existing(name: str) -> Path:
    """The folder of stage `name`, trained and intact (checksums verified), or an error that says what to do."""
    st = status(name, verify=True)
    if st.state == "missing":
        raise FileNotFoundError(f"stage {name!r} is missing ({stage_dir(name)}): train it first, e.g. "
                                f"rlhf_lib.pipeline.require({name!r}) or the `rlhf` command line")
    if not st.complete:
        raise StageError(st.describe())
    return st.folder


def load_model(name: str):
    """(model, tokenizer, stage info) of a trained causal-LM stage (safetensors, no remote code)."""
    from .models import load_causal_lm
    model, tok = load_causal_lm(existing(name))
    return model, tok, info(name)


# ------------------------------------------------------------------------------------------------ JSON files
def json_numbers(obj, leaf=lambda x: None if isinstance(x, float) and not math.isfinite(x) else x):
    """`obj` with `leaf` applied to every value: by default NaN and ±inf become None, since JSON has no NaN
    (histories start with one, e.g. `train_loss[0]` before any step). `nan_numbers` is the inverse."""
    if isinstance(obj, dict):
        return {k: json_numbers(v, leaf) for k, v in obj.items()}
    return [json_numbers(v, leaf) for v in obj] if isinstance(obj, (list, tuple)) else leaf(obj)


def nan_numbers(obj):
    """metrics.json and eval.json as written: null (which `write_json` writes for NaN) becomes NaN."""
    return json_numbers(obj, lambda x: math.nan if x is None else x)


def replace_json(path: Path, obj) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(json_numbers(obj), ensure_ascii=False, indent=1, allow_nan=False) + "\n", "utf-8")
    os.replace(tmp, path)


def write_json(path: Path, obj) -> None:
    """JSON file written atomically (temp file + rename), NaN and ±inf as null. In a finished stage folder (eval.json,
    a new metrics.json) it is recorded in stage.json, its old record dropped first: a kill leaves it unverified."""
    path, manifest = Path(path), Path(path).parent / "stage.json"
    try:
        info = json.loads(manifest.read_text("utf-8")) if path.name != "stage.json" else {}
        files = info["files"] if isinstance(info.get("files"), dict) else None
    except (OSError, ValueError, AttributeError, KeyError):
        files = None
    if files is not None and files.pop(path.name, None) is not None:
        replace_json(manifest, info)
    replace_json(path, obj)
    if files is not None:
        files[path.name] = {"size": path.stat().st_size, "sha256": sha256(path)}
        replace_json(manifest, info)


def load_json(path: Path, fix: str = ""):
    """A JSON file's content (NaN for null in NAN_FILES), or a StageError naming it, where it breaks, and `fix`."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise StageError(f"{path} is not valid JSON ({e}){': ' + fix if fix else ''}") from e
    return nan_numbers(obj) if path.name in NAN_FILES else obj


def read_json(name: str, file: str):
    """A JSON file of stage `name`, whose files must match what its stage.json recorded."""
    path = stage_dir(name) / file
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run stage '{name}' first (rlhf_lib.pipeline.require('{name}'))")
    if file != "stage.json" and not (st := status(name, verify=True)).complete:
        raise StageError(st.describe())
    fix = (f"delete it and evaluate again (rlhf eval --set stages={name})" if file == "eval.json" else
           f"restore it from a backup, or move {stage_dir(name)} away or delete it to retrain stage '{name}'")
    return load_json(path, fix)


def info(name: str) -> dict:
    return read_json(name, "stage.json")


def metrics(name: str) -> dict:
    return read_json(name, "metrics.json")


# ------------------------------------------------------------------------------------------------ writing
@contextmanager
def writing(name: str):
    """Yield an empty folder to write stage `name` into; on success it becomes `artifacts/<name>/` in one journaled
    swap (see `recover`), on error it vanishes. Inside `together(..., name, ...)` the swap waits for the group."""
    recover()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    part = Path(tempfile.mkdtemp(prefix=f".{name}.partial-{os.getpid()}-{HOST}-", dir=ARTIFACTS))
    os.umask(mask := os.umask(0))                     # the umask can only be read by setting it
    part.chmod(0o777 & ~mask)                         # mkdtemp makes it private; a stage is an ordinary folder
    try:
        yield part
        seal(part, mask)
        if _GROUP is not None and name in _GROUP:
            _GROUP[name] = part                       # `together` commits it, or discards it
        else:
            commit({name: part})
    except BaseException:
        shutil.rmtree(part, ignore_errors=True)
        raise


@contextmanager
def together(*names: str):
    """Stages among `names` written (by `writing`) inside this block are committed together when it ends, in one
    swap, or not at all if it raises: pretraining never leaves a new tokenizer beside an old base model."""
    global _GROUP
    saved, _GROUP = _GROUP, (parts := dict.fromkeys(names))
    try:
        yield
        if written := {name: part for name, part in parts.items() if part}:
            commit(written)
    finally:
        _GROUP = saved
        for part in filter(None, parts.values()):     # gone once committed
            shutil.rmtree(part, ignore_errors=True)


def seal(part: Path, mask: int) -> None:
    """Record each file's size and sha256 in stage.json, give all the umask's modes (save_pretrained writes
    model.safetensors private), flush them to disk."""
    info, files = load_json(part / "stage.json"), {}
    for path in sorted(part.rglob("*")):
        path.chmod((0o777 if path.is_dir() else 0o666) & ~mask)
        if path.is_file() and (rel := path.relative_to(part).as_posix()) != "stage.json":
            with open(path, "rb") as f:
                os.fsync(f.fileno())                  # a power cut after the swap must not find empty files
            files[rel] = {"size": path.stat().st_size, "sha256": sha256(path)}
    replace_json(part / "stage.json", {**info, "files": files})


def commit(parts: dict[str, Path]) -> None:
    """Swap sealed folders into place: write the journal, rename each `final → old` and `part → final`, drop the
    journal, delete the old copies. An incomplete or damaged folder in the way is first kept as `<name>.<state>-…`."""
    for name in parts:
        if (st := status(name, verify=True, folder=stage_dir(name))).state not in ("missing", "complete"):
            kept = ARTIFACTS / f"{name}.{st.state}-{time.strftime('%Y%m%d-%H%M%S')}"
            os.replace(st.folder, kept)
            print(f"stages: {st.describe()}\nstages: kept it as {kept}; the new stage takes its place", file=sys.stderr)
    entries = [{"name": name, "new": part.name, "old": part.name.replace(".partial-", ".old-", 1),
                "stage_sha256": sha256(part / "stage.json")} for name, part in parts.items()]
    journal = ARTIFACTS / f".{'+'.join(parts)}.swap-{os.getpid()}-{HOST}"
    with open(journal, "x", encoding="utf-8") as f:
        f.write(json.dumps({"pid": os.getpid(), "stages": entries}, indent=1))
        f.flush()
        os.fsync(f.fileno())
    try:
        swap_hook("journal", "+".join(parts))
        for e in entries:
            move_forward(e)
        finish(journal, entries)
    except BaseException:
        if journal.exists():
            resume(journal)                          # finish the swap (or roll it back) before leaving
        raise


def move_forward(e: dict) -> None:
    new, old, final = ARTIFACTS / e["new"], ARTIFACTS / e["old"], stage_dir(e["name"])
    if new.exists():
        if final.exists():
            os.replace(final, old)
        swap_hook("between", e["name"])
        os.replace(new, final)


def finish(journal: Path, entries: list[dict]) -> None:
    journal.unlink()
    for e in entries:
        shutil.rmtree(ARTIFACTS / e["old"], ignore_errors=True)


# ------------------------------------------------------------------------------------------------ recovery
def recover() -> list[str]:
    """Finish a swap a killed process left between its renames (or roll it back if a new copy is damaged) and remove
    dead processes' half-written folders, printing one line for each. Cheap (one listing) and idempotent."""
    if not leftovers():
        return []
    import fcntl  # POSIX; needed only when there is something to recover
    fd, lines = os.open(ARTIFACTS, os.O_RDONLY), []
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)               # one process recovers at a time; the next finds it done
        lines += [resume(ARTIFACTS / n) for n, m in leftovers() if m.re is JOURNAL]
        for n, m in [(n, m) for n, m in leftovers() if m.re is LEFTOVER]:
            shutil.rmtree(ARTIFACTS / n, ignore_errors=True)
            what = "half-written copy" if m["kind"] == "partial" else "replaced previous copy"
            lines.append(f"removed {ARTIFACTS / n}, the {what} of stage {m['name']!r} left by process {m['pid']}, "
                         f"which stopped while saving (killed?); {stage_dir(m['name'])} is as it was")
    finally:
        os.close(fd)
    for line in lines:
        print(f"stages: {line}", file=sys.stderr, flush=True)
    return lines


def leftovers() -> list[tuple[str, re.Match]]:
    """(name, match) of the journals and hidden folders in the artifacts folder whose process has ended."""
    names = sorted(os.listdir(ARTIFACTS)) if ARTIFACTS.is_dir() else []
    return [(n, m) for n in names if (m := JOURNAL.match(n) or LEFTOVER.match(n)) and dead(int(m["pid"]), m["host"])]


def dead(pid: int, host: str) -> bool:
    """Has process `pid` of this machine ended? (Another machine's, on a shared disk, are not ours to judge.)"""
    if host != HOST or pid == os.getpid() or os.name == "nt":     # Windows' os.kill would end the process
        return False
    try:
        os.kill(pid, 0)
    except OSError as e:
        return isinstance(e, ProcessLookupError)     # PermissionError: it runs, as another user
    return False


def resume(journal: Path) -> str:
    """Finish a journaled swap if every new copy is intact, else roll every stage of it back."""
    try:
        entries = json.loads(journal.read_text(encoding="utf-8"))["stages"]
        names = ", ".join(repr(e["name"]) for e in entries)
    except (ValueError, KeyError, TypeError):        # killed while writing the journal: nothing was renamed yet
        journal.unlink()
        return f"removed {journal}: a save that stopped before it renamed anything"
    broken = [e["name"] for e in entries if not (is_new_copy(ARTIFACTS / e["new"], e, verify=True)
                                                 or is_new_copy(stage_dir(e["name"]), e, verify=True))]
    for e in entries:
        (roll_back if broken else move_forward)(e)
    finish(journal, entries)
    return (f"rolled back the interrupted save of {names}: the new copy of {', '.join(map(repr, broken))} is damaged, "
            "so the previous copies are back (or none, where there was none)" if broken else
            f"finished the interrupted save of {names} (its process stopped between renames): now in place")


def is_new_copy(folder: Path, e: dict, *, verify: bool = False) -> bool:
    """Is `folder` the new copy of journaled stage `e` (and, with `verify`, intact)?"""
    if not (folder / "stage.json").is_file() or sha256(folder / "stage.json") != e["stage_sha256"]:
        return False
    return not verify or status(e["name"], verify=True, folder=folder).complete


def roll_back(e: dict) -> None:
    new, old, final = ARTIFACTS / e["new"], ARTIFACTS / e["old"], stage_dir(e["name"])
    if new.exists():
        shutil.rmtree(new)
    elif is_new_copy(final, e):
        shutil.rmtree(final)                         # the new copy, already renamed into place
    if old.exists():
        os.replace(old, final)
