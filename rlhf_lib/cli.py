"""Command line: run any stage of the course headless (`rlhf STAGE ...` or `python -m rlhf_lib STAGE ...`).

    rlhf data | tokenizer | pretrain | sft | rm | ppo | eval     one stage
    rlhf all                                                    the whole pipeline, skipping finished stages

Every setting goes through the frozen config dataclass the lessons' panels edit (`rlhf_lib.config`): the stage's
defaults, then its table in `--config FILE` (TOML or JSON), then `--seed`, then each `--set field=value`. An unknown
field or an invalid value stops the command with exit status 2 and one line naming the field and what it accepts,
before anything is read, trained or written. The resolved config is printed before work starts, the trainers show
their own progress bars, and each stage ends with a one-line summary of its measured results.

The stages, their order and their help come from the registry (`pipeline.py`); stage modules are imported only when
a stage's settings are needed, so `rlhf --help` and `rlhf data` start without importing torch.
"""
from __future__ import annotations

import argparse
import difflib
import functools
import json
import sys
import textwrap
import time
import tomllib
import traceback
from dataclasses import dataclass
from pathlib import Path

from . import stages
from .cli_help import Parser, all_epilog, stage_epilog, toml_table, toml_value
from .config import from_dict, override, parse_override, parse_overrides, to_dict
from .pipeline import PIPELINE, STAGES, Stage, run_stage, summary


class UsageError(Exception):
    """Bad command-line input: reported as one line with exit status 2, before any work starts."""



# ------------------------------------------------------------------------------------------------- the stages
@dataclass(frozen=True)
class Context:
    """Where a run reads and writes, and whether `eval` may keep an eval.json made with the same settings."""
    data: Path
    reuse_evals: bool = False


def _show(path: Path) -> str:
    """A path relative to the working directory when it lies below it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _took(t0: float) -> str:
    return f"{time.time() - t0:.0f} s"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def run_one(stage: Stage, cfg, ctx: Context) -> list[str]:
    """Run one stage through the registry and return its summary line (what it measured, where it wrote)."""
    t0 = time.time()
    kwargs = {"eval": {"reuse": ctx.reuse_evals}, "data": {"out": ctx.data}}.get(stage.name, {})
    metrics = run_stage(stage.name, cfg, **kwargs)
    if stage.name == "data":
        where = _show(ctx.data)
    elif stage.name == "eval":
        where = ", ".join(_show(stages.stage_dir(n) / "eval.json") for n in cfg.stage_names())
    else:
        outs = stage.outputs(cfg)
        where = " (and ".join(_show(stages.stage_dir(o)) for o in reversed(outs)) + ")" * (len(outs) - 1) \
            if outs else "not saved (out='')"
    return [f"{stage.name}: {summary(stage.name, metrics)}, {_took(t0)} -> {where}"]


POLICIES = ("base", "sft", "ppo")                              # stages `pipeline.require` can train for `eval`
ALL_ABOUT = ("The whole pipeline in order: data, pretrain (tokenizer + base), sft, rm, ppo, eval. A stage whose "
             "artifacts exist is skipped (the line says so, and names any setting they were made with that differs) "
             "unless --force; once a stage runs, every later stage runs too, since its input changed. An eval.json "
             "made with the same sampling settings and seed is kept.")


# ------------------------------------------------------------------------------------------------- settings
def _add_common(p: argparse.ArgumentParser, stage: Stage | None) -> None:
    in_all = stage is None
    p.add_argument("--config", metavar="FILE", type=Path,
                   help="TOML or JSON file with a table per stage, e.g. [sft] lr = 3e-4")
    p.add_argument("--set", metavar="STAGE.FIELD=VALUE" if in_all else "FIELD=VALUE", action="append", default=[],
                   help="change one setting (repeatable); applied after --config and --seed")
    if in_all or stage.has_seed:
        p.add_argument("--seed", type=int, help="seed of " + ("every stage" if in_all else "this stage") +
                       " (same as --set seed=N, applied before --set)")
    p.add_argument("--data", metavar="DIR", type=Path,
                   help="world data folder: " + ("written by data, read by the others" if in_all else
                                                 "written" if stage.name == "data" else "read") +
                   " (default: the course's data/, or $RLHF_DATA)")
    if in_all or stage.uses_artifacts:
        p.add_argument("--artifacts", metavar="DIR", type=Path,
                       help="folder of the stage folders (default: the course's artifacts/, or $RLHF_ARTIFACTS)")
    if in_all:
        p.add_argument("--force", action="store_true", help="run every stage, even those whose artifacts exist")
    p.add_argument("--dry-run", action="store_true", help="check the settings, print the resolved config and stop")


def build_parser(prog: str = "rlhf") -> argparse.ArgumentParser:
    """The argument parser: one subcommand per stage, and `all`."""
    fmt = argparse.RawDescriptionHelpFormatter
    top = Parser(prog=prog, formatter_class=fmt, description=__doc__.split("\n\n")[0], epilog=textwrap.dedent("""\
        examples:
          rlhf all                                 the whole pipeline, skipping stages already in artifacts/
          rlhf sft --set lr=3e-4 --set epochs=1    one stage with two settings changed
          rlhf all --config rlhf.toml --set sft.lr=3e-4 --force
          rlhf ppo --dry-run                       print the resolved config and stop

        Settings: a stage's defaults < its [stage] table in --config < --seed < --set. An invalid setting stops the
        command with exit status 2 before any work starts. `rlhf STAGE --help` lists a stage's settings with their
        defaults, allowed values and meaning."""))
    sub = top.add_subparsers(dest="command", metavar="STAGE", required=True)
    for stage in STAGES.values():
        p = sub.add_parser(stage.name, help=stage.title, formatter_class=fmt,
                           description=textwrap.fill(stage.about, 100),
                           lazy_epilog=functools.partial(stage_epilog, stage))
        _add_common(p, stage)
    p = sub.add_parser("all", help="the whole pipeline in order, skipping finished stages unless --force",
                       formatter_class=fmt, description=textwrap.fill(ALL_ABOUT, 100), lazy_epilog=all_epilog)
    _add_common(p, None)
    return top


# ------------------------------------------------------------------------------------------------- settings
def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())


def _load_file(path: Path, valid: tuple[str, ...]) -> dict[str, dict]:
    """The tables of a TOML or JSON config file, checked to be stage tables."""
    if not path.is_file():
        raise UsageError(f"{path}: no such config file")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".toml":
            data = tomllib.loads(text)
        elif path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            raise UsageError(f"{path}: unknown config format {path.suffix!r}; use a .toml or .json file")
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
        raise UsageError(f"{path}: not valid {path.suffix[1:].upper()}: {_one_line(e)}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a table per stage, got a {type(data).__name__}")
    for key, value in data.items():
        if not isinstance(value, dict):
            raise UsageError(f"{path}: key {key!r} is outside a stage table; put it under one of "
                             f"[{'], ['.join(valid)}]")
        if key not in valid:
            if key == "tokenizer" and "pretrain" in valid:
                raise UsageError(f"{path}: [tokenizer]: `all` trains the tokenizer inside pretrain; "
                                 "put vocab_size and heldout_frac under [pretrain]")
            raise UsageError(f"{path}: unknown table [{key}]{_hint(key, valid)}; tables: {', '.join(valid)}")
    return data


def _hint(key: str, valid) -> str:
    close = difflib.get_close_matches(key, list(valid), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _configure(stage: Stage, table: dict | None, source: Path | None, seed: int | None,
               sets: list[tuple[str, str]]):
    """The stage's config: defaults < table (from `source`) < seed < sets, as (label for errors, field=value)."""
    cls, valid = stage.load(), stage.field_names()
    cfg = cls()
    if table:
        for key in table:
            if key not in valid:
                raise UsageError(f"{source}: [{stage.name}] {key}: unknown key{_hint(key, valid)}; "
                                 f"valid keys: {', '.join(valid)}")
        try:
            cfg = from_dict(cls, table)
        except (ValueError, TypeError) as e:
            raise UsageError(f"{source}: [{stage.name}]: {_one_line(e)}") from None
    if seed is not None:
        cfg = override(cfg, seed=seed)
    for label, item in sets:
        head = item.partition("=")[0].strip().partition(".")[0]
        if head not in valid:
            raise UsageError(f"{label}: {stage.name} has no field {head!r}{_hint(head, valid)}; "
                             f"valid fields: {', '.join(valid)}")
        try:
            parse_override(cfg, item)
        except ValueError as e:
            raise UsageError(f"{label}: {_one_line(e)}") from None
    try:
        return parse_overrides(cfg, [item for _, item in sets])
    except ValueError as e:                            # cross-field rules, which need every change at once
        raise UsageError(f"{' '.join(label for label, _ in sets) or stage.name}: {_one_line(e)}") from None


def _stage_sets(stage: Stage, items: list[str]) -> list[tuple[str, str]]:
    """A single stage's --set items; a leading 'STAGE.' is accepted and dropped."""
    out = []
    for item in items:
        if "=" not in item:
            raise UsageError(f"{item}: --set expects FIELD=VALUE, e.g. --set {stage.field_names()[0]}=...")
        head, dot, rest = item.partition(".")
        strip = bool(dot) and head == stage.name and head not in stage.field_names()
        out.append((item, rest if strip else item))
    return out


def _pipeline_sets(items: list[str]) -> dict[str, list[tuple[str, str]]]:
    """`all`'s --set STAGE.FIELD=VALUE items, by stage."""
    out: dict[str, list[tuple[str, str]]] = {name: [] for name in PIPELINE}
    for item in items:
        key = item.partition("=")[0]
        head, dot, _ = key.partition(".")
        if "=" not in item or not dot:
            raise UsageError(f"{item}: `all` takes --set STAGE.FIELD=VALUE, e.g. --set sft.lr=3e-4")
        if head not in out:
            why = "; the tokenizer is trained by pretrain: use pretrain.vocab_size" if head == "tokenizer" else ""
            raise UsageError(f"{item}: unknown stage {head!r}{_hint(head, PIPELINE)}{why}; "
                             f"stages: {', '.join(PIPELINE)}")
        out[head].append((item, item[len(head) + 1:]))
    return out


def _check_eval_stages(cfg, trainable: set[str]) -> None:
    for name in cfg.stage_names():
        if name in ("tokenizer", "rm") or (stages.exists(name) and "reward_head" in stages.info(name)):
            raise UsageError(f"eval.stages={cfg.stages}: {name!r} is not a policy; evaluate base, sft, ppo or "
                             "another causal-LM stage")
        if not (stages.exists(name) or name in trainable):
            raise UsageError(f"eval.stages={cfg.stages}: no stage {name!r} in {_show(stages.ARTIFACTS)}; "
                             f"name one there or one of {', '.join(sorted(trainable))}")


def plan(args: argparse.Namespace, data: Path) -> list[tuple[Stage, object]]:
    """The stages to run and their resolved configs; raises UsageError on any bad input, before any work."""
    names = PIPELINE if args.command == "all" else (args.command,)
    tables = _load_file(args.config, names if args.command == "all" else tuple(STAGES)) if args.config else {}
    if args.command == "all":
        by_stage = _pipeline_sets(args.set)
    else:
        by_stage = {args.command: _stage_sets(STAGES[args.command], args.set)}
    for name in set(tables) - set(names):               # other stages' tables: checked too, so a typo never waits
        _configure(STAGES[name], tables[name], args.config, None, [])
    out = []
    for name in names:
        stage = STAGES[name]
        seed = getattr(args, "seed", None) if stage.has_seed else None
        out.append((stage, _configure(stage, tables.get(name), args.config, seed, by_stage[name])))
    if "data" not in names and not (data / "world.json").is_file():
        raise UsageError(f"--data {_show(data)}: no world data there (world.json is missing); "
                         f"build it with `rlhf data --data {_show(data)}`")
    cfgs = {s.name: c for s, c in out}
    if "eval" in cfgs:
        trainable = {"base", cfgs["sft"].out, cfgs["ppo"].out} - {""} if "sft" in cfgs else set(POLICIES)
        _check_eval_stages(cfgs["eval"], trainable)
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
        where = f"{_show(ctx.data)} exists"
    else:
        outs = stage.outputs(cfg)
        if not outs or not all(stages.exists(o) for o in outs):
            return None
        recorded = stages.info(outs[-1]).get("config", {})
        where = " and ".join(_show(stages.stage_dir(o)) for o in outs) + (" exist" if len(outs) > 1 else " exists")
    diffs = _differences(recorded, json.loads(json.dumps(_resolved(stage, cfg))))
    other = f"; made with other settings: {', '.join(diffs)}" if diffs else ""
    return f"{stage.name}: skipped, {where}{other} (--force to redo it)"


def execute(run: list[tuple[Stage, object]], ctx: Context, *, pipeline: bool, force: bool) -> int:
    """Run the planned stages, printing each one's summary; skip finished ones in a pipeline unless forced."""
    summaries, changed = [], False
    for stage, cfg in run:
        if pipeline and stage.name != "eval" and not (force or changed):
            reason = _skip_reason(stage, cfg, ctx)
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
        except KeyboardInterrupt:
            print(f"\ninterrupted in {stage.name}" + ("" if stage.name == "data" else ": stage folders are written "
                  "atomically, so the interrupted one kept its previous artifact, or none"), file=sys.stderr)
            return 130
        except Exception as e:                          # the trainers' messages say what to change
            traceback.print_exc()
            print(f"error: {stage.name} failed after {_took(t0)}: {type(e).__name__}: {_one_line(e)}",
                  file=sys.stderr)
            return 1
        for line in lines:
            print(line, flush=True)
        summaries += lines
    if pipeline:
        print("\nsummary:\n" + "\n".join(f"  {s}" for s in summaries))
    return 0


def main(argv: list[str] | None = None, prog: str = "rlhf") -> int:
    """Run the command line; returns the exit status (2: bad input, 1: a stage failed, 130: interrupted)."""
    args = build_parser(prog).parse_args(argv)
    data = args.data or stages.DATA_DIR
    artifacts = getattr(args, "artifacts", None) or stages.ARTIFACTS
    with stages.located(data, artifacts):
        try:
            run = plan(args, data)
        except UsageError as e:
            print(f"error: {_one_line(e)}", file=sys.stderr)
            return 2
        print("# resolved config (defaults < --config < --seed < --set)")
        print("\n\n".join("\n".join(toml_table(stage.name, _resolved(stage, cfg))) for stage, cfg in run), flush=True)
        if args.dry_run:
            return 0
        ctx = Context(data=data, reuse_evals=args.command == "all" and not args.force)
        return execute(run, ctx, pipeline=args.command == "all", force=getattr(args, "force", False))


if __name__ == "__main__":
    sys.exit(main())
