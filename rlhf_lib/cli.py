"""Command line: run any stage of the course headless (`rlhf STAGE ...` or `python -m rlhf_lib STAGE ...`).

    rlhf data | tokenizer | pretrain | sft | rm | ppo | eval     one stage
    rlhf all                                                    the whole pipeline, skipping finished stages

Every setting goes through the frozen config dataclass the lessons' panels edit (`rlhf_lib.config`): the stage's
defaults, then its table in `--config FILE` (TOML or JSON), then `--seed`, then each `--set field=value`. Bad input
(an unknown field or invalid value, a stage name nothing trains, a folder that cannot be written, a bad line of a
data file) stops the command with exit status 2 and one line naming the setting or file:line:field, before anything
is trained or written; `--dry-run` checks the same. A stage that fails prints one line too (exit 1; `--debug` adds the
traceback); Ctrl-C and SIGTERM stop it with 130 / 143. The resolved config is printed before work starts, the
trainers show their own progress bars, and each stage ends with a one-line summary of its measured results.

The stages, their order and their help come from the registry (`pipeline.py`); stage modules are imported only when
a stage's settings are needed, so `rlhf --help` and `rlhf data` start without importing torch.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from . import data as datafiles
from . import stages
from .cli_checks import check_data, check_eval_stages, check_folder, check_upstream, writer_kind
from .cli_help import (
    UsageError,
    hint,
    load_config_file,
    one_line,
    parser,
    pipeline_sets,
    show,
    stage_sets,
    toml_table,
    toml_value,
)
from .config import from_dict, override, parse_override, parse_overrides, to_dict
from .pipeline import PIPELINE, STAGES, Stage, run_stage, summary


class Terminated(KeyboardInterrupt):
    """SIGTERM (`kill`, a scheduler stopping the job), raised in the main thread: handled exactly like Ctrl-C."""


BAD_INPUT = (ValueError, FileNotFoundError)    # DataError, a config's rules, a damaged or missing stage: exit 2
RUN_FAILED = (RuntimeError, OSError)           # TrainingError, PPOError, a full disk …: exit 1, one line


# ------------------------------------------------------------------------------------------------- the stages
@dataclass(frozen=True)
class Context:
    """Where a run reads and writes, and whether `eval` may keep an eval.json made with the same settings."""
    data: Path
    reuse_evals: bool = False


def _took(t0: float) -> str:
    return f"{time.time() - t0:.0f} s"


def run_one(stage: Stage, cfg, ctx: Context) -> list[str]:
    """Run one stage through the registry and return its summary line (what it measured, where it wrote)."""
    t0 = time.time()
    kwargs = {"eval": {"reuse": ctx.reuse_evals}, "data": {"out": ctx.data}}.get(stage.name, {})
    metrics = run_stage(stage.name, cfg, **kwargs)
    if stage.name == "data":
        where = show(ctx.data)
    elif stage.name == "eval":
        where = ", ".join(show(stages.stage_dir(n) / "eval.json") for n in cfg.stage_names())
    else:
        outs = stage.outputs(cfg)
        where = " (and ".join(show(stages.stage_dir(o)) for o in reversed(outs)) + ")" * (len(outs) - 1) \
            if outs else "not saved (out='')"
    return [f"{stage.name}: {summary(stage.name, metrics)}, {_took(t0)} -> {where}"]


POLICIES = ("base", "sft", "ppo", "dpo", "grpo", "rloo")       # stages `pipeline.require` can train for `eval`


def build_parser(prog: str = "rlhf") -> argparse.ArgumentParser:
    """The argument parser: one subcommand per stage, and `all` (`cli_help.parser`)."""
    return parser(prog, __doc__.split("\n\n")[0])


# ------------------------------------------------------------------------------------------------- settings
def _configure(stage: Stage, table: dict | None, source: Path | None, seed: int | None,
               sets: list[tuple[str, str]]):
    """The stage's config: defaults < table (from `source`) < seed < sets, as (label for errors, field=value)."""
    cls, valid = stage.load(), stage.field_names()
    cfg = cls()
    if table:
        for key in table:
            if key not in valid:
                raise UsageError(f"{source}: [{stage.name}] {key}: unknown key{hint(key, valid)}; "
                                 f"valid keys: {', '.join(valid)}")
        try:
            cfg = from_dict(cls, table)
        except (ValueError, TypeError) as e:
            raise UsageError(f"{source}: [{stage.name}]: {one_line(e)}") from None
    if seed is not None:
        try:
            cfg = override(cfg, seed=seed)
        except ValueError as e:
            raise UsageError(f"--seed {seed}: {one_line(e)}") from None
    for label, item in sets:
        head = item.partition("=")[0].strip().partition(".")[0]
        if head not in valid:
            raise UsageError(f"{label}: {stage.name} has no field {head!r}{hint(head, valid)}; "
                             f"valid fields: {', '.join(valid)}")
        try:
            parse_override(cfg, item)
        except ValueError as e:
            raise UsageError(f"{label}: {one_line(e)}") from None
    try:
        cfg = parse_overrides(cfg, [item for _, item in sets])
    except ValueError as e:                            # cross-field rules, which need every change at once
        raise UsageError(f"{' '.join(label for label, _ in sets) or stage.name}: {one_line(e)}") from None
    try:
        datafiles.check_stage_fields(cfg)              # the seed, for configs that do not check it themselves
    except ValueError as e:
        raise UsageError(f"{stage.name}: {one_line(e)}") from None
    return cfg


def plan(args: argparse.Namespace, data: Path) -> list[tuple[Stage, object]]:
    """The stages to run and their resolved configs; raises UsageError on any bad input, before any work."""
    names = PIPELINE if args.command == "all" else (args.command,)
    tables = load_config_file(args.config, names if args.command == "all" else tuple(STAGES)) if args.config else {}
    if args.command == "all":
        by_stage = pipeline_sets(args.set)
    else:
        by_stage = {args.command: stage_sets(STAGES[args.command], args.set)}
    for name in set(tables) - set(names):               # other stages' tables: checked too, so a typo never waits
        _configure(STAGES[name], tables[name], args.config, None, [])
    out = []
    for name in names:
        stage = STAGES[name]
        seed = getattr(args, "seed", None) if stage.has_seed else None
        out.append((stage, _configure(stage, tables.get(name), args.config, seed, by_stage[name])))
    if "data" not in names and not (data / "world.json").is_file():
        raise UsageError(f"--data {show(data)}: no world data there (world.json is missing); "
                         f"build it with `rlhf data --data {show(data)}`")
    cfgs = {s.name: c for s, c in out}
    if "data" in names:
        check_folder(data, "--data")
    if any(stage.uses_artifacts for stage, _ in out):
        check_folder(stages.ARTIFACTS, "--artifacts")
    made: dict[str, str] = {}                          # stage folder -> its kind, for the planned stages that write it
    for stage, cfg in out:
        check_upstream(stage, cfg, made)
        made.update({o: writer_kind(stage, o) for o in stage.outputs(cfg)})
    if "eval" in cfgs:
        trainable = {"base", cfgs["sft"].out, cfgs["ppo"].out} - {""} if "sft" in cfgs else set(POLICIES)
        check_eval_stages(cfgs["eval"], trainable)
    check_data(out, data, made)
    return out


def _resolved(stage: Stage, cfg) -> dict:
    d = to_dict(cfg)
    return {k: d[k] for k in stage.fields} if stage.fields else d


# ------------------------------------------------------------------------------------------------- running
def _differences(recorded: dict, current: dict, prefix: str = "") -> list[str]:
    out = []
    for key, value in current.items():
        old = recorded.get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            out += _differences(old, value, f"{prefix}{key}.")
        elif old != value:
            out.append(f"{prefix}{key}={toml_value(old) if key in recorded else '(none)'} "
                       f"(now {toml_value(value)})")
    return out


def _skip_reason(stage: Stage, cfg, ctx: Context) -> str | None:
    """Why `all` may skip this stage (its artifacts exist), or None when it must run."""
    if stage.name == "data":
        world = ctx.data / "world.json"
        if not world.is_file():
            return None
        recorded = json.loads(world.read_text(encoding="utf-8"))
        recorded = {**recorded.get("sizes", {}), "seed": recorded.get("seed")}
        where = f"{show(ctx.data)} exists"
    else:
        outs = stage.outputs(cfg)
        for o in outs:                                 # a folder that lost part of a stage is never trained over
            status = stages.status(o)
            if status.state in ("incomplete", "damaged"):
                raise stages.StageError(status.describe())
        if not outs or not all(stages.exists(o) for o in outs):
            return None
        recorded = stages.info(outs[-1]).get("config", {})
        where = " and ".join(show(stages.stage_dir(o)) for o in outs) + (" exist" if len(outs) > 1 else " exists")
    diffs = _differences(recorded, json.loads(json.dumps(_resolved(stage, cfg))))
    other = f"; made with other settings: {', '.join(diffs)}" if diffs else ""
    return f"{stage.name}: skipped, {where}{other} (--force to redo it)"


def execute(run: list[tuple[Stage, object]], ctx: Context, *, pipeline: bool, force: bool, debug: bool = False) -> int:
    """Run the planned stages, printing each one's summary; skip finished ones in a pipeline unless forced. An error
    is one line (with `debug`, after its traceback): exit 2 for bad input, 1 for a failed run; an unexpected kind of
    error (a bug) shows its traceback anyway."""
    summaries, changed = [], False
    for stage, cfg in run:
        if pipeline and stage.name != "eval" and not (force or changed):
            try:
                reason = _skip_reason(stage, cfg, ctx)
            except stages.StageError as e:              # an incomplete or damaged stage: never trained over
                print(f"error: {stage.name}: {one_line(e)}", file=sys.stderr)
                return 2
            if reason:
                print(reason, flush=True)
                summaries.append(reason)
                continue
        changed = True
        if pipeline:
            print(f"\n== {stage.name} ==", flush=True)
        t0 = time.time()
        try:
            lines = run_one(stage, cfg, ctx)
        except KeyboardInterrupt as e:
            print(f"\ninterrupted{' (SIGTERM)' if isinstance(e, Terminated) else ''} in {stage.name}" +
                  ("" if stage.name == "data" else ": stage folders are written atomically, so the interrupted one "
                   "kept its previous artifact, or none"), file=sys.stderr)
            return 143 if isinstance(e, Terminated) else 130
        except BAD_INPUT as e:                          # the messages name the file, line and field, or the setting
            if debug:
                traceback.print_exc()
            print(f"error: {stage.name}: {one_line(e)}", file=sys.stderr)
            return 2
        except Exception as e:                          # the trainers' messages say what to change
            if debug or not isinstance(e, RUN_FAILED):
                traceback.print_exc()
            print(f"error: {stage.name} failed after {_took(t0)}: {type(e).__name__}: {one_line(e)}",
                  file=sys.stderr)
            return 1
        for line in lines:
            print(line, flush=True)
        summaries += lines
    if pipeline:
        print("\nsummary:\n" + "\n".join(f"  {s}" for s in summaries))
    return 0


@contextmanager
def sigterm_as_interrupt():
    """Within the block, SIGTERM raises `Terminated` (a KeyboardInterrupt) in the main thread, so `kill` stops a
    stage as Ctrl-C does: its stage folder is never half-written. Outside the main thread signals cannot be set."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame):
        raise Terminated()
    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None, prog: str = "rlhf") -> int:
    """Run the command line; returns the exit status (2: bad input, 1: a stage failed, 130: interrupted, 143:
    terminated)."""
    args = build_parser(prog).parse_args(argv)
    data = args.data or stages.DATA_DIR
    artifacts = getattr(args, "artifacts", None) or stages.ARTIFACTS
    with stages.located(data, artifacts), sigterm_as_interrupt():
        try:
            try:
                stages.recover()                       # a swap a killed process left half done
            except OSError:
                pass                                   # an unreadable --artifacts: plan names it
            run = plan(args, data)
        except KeyboardInterrupt as e:
            print("\ninterrupted before any stage started", file=sys.stderr)
            return 143 if isinstance(e, Terminated) else 130
        except (UsageError, *BAD_INPUT) as e:
            if args.debug:
                traceback.print_exc()
            print(f"error: {one_line(e)}", file=sys.stderr)
            return 2
        print("# resolved config (defaults < --config < --seed < --set)")
        print("\n\n".join("\n".join(toml_table(stage.name, _resolved(stage, cfg))) for stage, cfg in run), flush=True)
        if args.dry_run:
            return 0
        ctx = Context(data=data, reuse_evals=args.command == "all" and not args.force)
        return execute(run, ctx, pipeline=args.command == "all", force=getattr(args, "force", False),
                       debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
