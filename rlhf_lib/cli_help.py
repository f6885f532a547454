"""The command line's arguments and help: the parser, each stage's settings with their defaults, allowed values and
meaning, and config files shown as TOML (`rlhf STAGE --help`, `rlhf all --help`, and the resolved config every
command prints)."""
from __future__ import annotations

import argparse
import dataclasses
import difflib
import functools
import json
import textwrap
import tomllib
import typing
from collections.abc import Callable
from pathlib import Path

from .config import allowed, field_type, parse_overrides
from .pipeline import PIPELINE, STAGES, Stage


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)


def toml_table(name: str, d: dict) -> list[str]:
    """A TOML table (scalars first, then nested tables), as a config file would hold it."""
    lines = [f"[{name}]"] + [f"{k} = {toml_value(v)}" for k, v in d.items() if not isinstance(v, dict)]
    for k, v in d.items():
        if isinstance(v, dict):
            lines += toml_table(f"{name}.{k}", v)
    return lines


def _field_lines(cfg, name: str, prefix: str = "") -> list[str]:
    """A field's documentation: `name = default  (type; allowed values)` and its help text, nested configs expanded."""
    value, f = getattr(cfg, name), next(f for f in dataclasses.fields(cfg) if f.name == name)
    meta, typ = f.metadata, field_type(cfg, name)
    if dataclasses.is_dataclass(value):
        return [line for sub in dataclasses.fields(value) if sub.init
                for line in _field_lines(value, sub.name, f"{prefix}{name}.")]
    if typing.get_origin(typ) is tuple:
        accepts = "a list, in --config only"
    else:
        accepts = allowed(cfg, name) + (", log scale" if meta.get("log") else "")
    fixed_tag = "" if meta.get("tunable") else "; fixed"
    head = f"  {prefix}{name} = {toml_value(value)}  ({getattr(typ, '__name__', typ)}; {accepts}{fixed_tag})"
    text = meta.get("help", "")
    return [head] + (textwrap.wrap(text, 100, initial_indent=" " * 6, subsequent_indent=" " * 6) if text else [])


def _stage_help(stage: Stage, qualified: bool = False) -> list[str]:
    cfg = stage.load()()
    prefix = f"{stage.name}." if qualified else ""
    lines = []
    for name in stage.field_names():
        lines += _field_lines(cfg, name, prefix)
    return lines


def stage_epilog(stage: Stage) -> str:
    lines = [f"settings (--set FIELD=VALUE, or a [{stage.name}] table in --config FILE; "
             "'fixed' = not on the lesson's panel, settable here):"] + _stage_help(stage)
    lines += ["", f"example:\n  {stage.example}", "",
              "config file (TOML, or JSON with the same tables), e.g. rlhf.toml:",
              f"  [{stage.name}]"] + [f"  {a}" for a in _example_table(stage)]
    return "\n".join(lines)


def _example_table(stage: Stage) -> list[str]:
    """The example command's --set items as config-file lines (dotted keys reach into nested tables)."""
    words = stage.example.split()
    items = [words[i + 1] for i, w in enumerate(words) if w == "--set"]
    cfg = parse_overrides(stage.load()(), items)
    lines = []
    for item in items:
        key, value = item.partition("=")[0], cfg
        for part in key.split("."):
            value = getattr(value, part)
        lines.append(f"{key} = {toml_value(value)}")
    return lines


def all_epilog() -> str:
    lines = ["settings, by stage (--set STAGE.FIELD=VALUE, or a [STAGE] table in --config FILE; "
             "'fixed' = not on the lesson's panel, settable here):"]
    for name in PIPELINE:
        lines += ["", f" {name}: {STAGES[name].title}"] + _stage_help(STAGES[name], qualified=True)
    lines += ["", "example:\n  rlhf all --config rlhf.toml --set sft.lr=3e-4 --seed 1 --force", "",
              "config file (TOML, or JSON with the same tables), e.g. rlhf.toml:",
              "  [sft]", "  lr = 3e-4", "  [ppo]", "  updates = 32",
              "", "The tokenizer is trained by pretrain here: its settings are pretrain.vocab_size and "
              "pretrain.heldout_frac."]
    return "\n".join(lines)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose help may end with text made only when help is shown (the config fields need the
    stage's module, and importing torch for every command line would be slow)."""

    def __init__(self, *args, lazy_epilog: Callable[[], str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._lazy_epilog = lazy_epilog

    def format_help(self) -> str:
        if self._lazy_epilog is not None:
            self.epilog, self._lazy_epilog = self._lazy_epilog(), None
        return super().format_help()


ALL_ABOUT = ("The whole pipeline in order: data, pretrain (tokenizer + base), sft, rm, ppo, eval. A stage whose "
             "artifacts exist is skipped (the line says so, and names any setting they were made with that differs) "
             "unless --force; once a stage runs, every later stage runs too, since its input changed. An eval.json "
             "made with the same sampling settings and seed is kept.")


# ------------------------------------------------------------------------------------------------- the parser
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
    p.add_argument("--dry-run", action="store_true", help="check the settings, the data and the folders, print the "
                   "resolved config and stop")
    p.add_argument("--debug", action="store_true", help="print an error's traceback too (by default: one line)")


def parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The command line's argument parser: one subcommand per stage, and `all`."""
    fmt = argparse.RawDescriptionHelpFormatter
    top = Parser(prog=prog, formatter_class=fmt, description=description, epilog=textwrap.dedent("""\
        examples:
          rlhf all                                 the whole pipeline, skipping stages already in artifacts/
          rlhf sft --set lr=3e-4 --set epochs=1    one stage with two settings changed
          rlhf all --config rlhf.toml --set sft.lr=3e-4 --force
          rlhf ppo --dry-run                       print the resolved config and stop

        Settings: a stage's defaults < its [stage] table in --config < --seed < --set. An invalid setting, bad data
        or a folder that cannot be written stops the command with exit status 2 and one line, before any work
        starts (--dry-run checks the same); a stage that fails exits with 1, an interrupted one (Ctrl-C, SIGTERM)
        with 130 or 143. --debug adds the traceback. `rlhf STAGE --help` lists a stage's settings with their
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


# ------------------------------------------------------------------------------------------------- what was typed
class UsageError(Exception):
    """Bad command-line input: reported as one line with exit status 2, before any work starts."""


def show(path: Path) -> str:
    """A path relative to the working directory when it lies below it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def one_line(e: BaseException) -> str:
    return " ".join(str(e).split())


def load_config_file(path: Path, valid: tuple[str, ...]) -> dict[str, dict]:
    """The tables of a TOML or JSON config file, checked to be stage tables."""
    if not path.is_file():
        raise UsageError(f"{path}: no such config file")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise UsageError(f"{path}: not UTF-8 text (byte {e.object[e.start:e.end]!r} at offset {e.start}); "
                         "save the config file as UTF-8") from None
    except OSError as e:
        raise UsageError(f"{path}: cannot read the config file ({e.strerror})") from None
    try:
        if path.suffix.lower() == ".toml":
            data = tomllib.loads(text)
        elif path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            raise UsageError(f"{path}: unknown config format {path.suffix!r}; use a .toml or .json file")
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
        raise UsageError(f"{path}: not valid {path.suffix[1:].upper()}: {one_line(e)}") from None
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
            raise UsageError(f"{path}: unknown table [{key}]{hint(key, valid)}; tables: {', '.join(valid)}")
    return data


def hint(key: str, valid) -> str:
    close = difflib.get_close_matches(key, list(valid), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def stage_sets(stage: Stage, items: list[str]) -> list[tuple[str, str]]:
    """A single stage's --set items; a leading 'STAGE.' is accepted and dropped."""
    out = []
    for item in items:
        if "=" not in item:
            raise UsageError(f"{item}: --set expects FIELD=VALUE, e.g. --set {stage.field_names()[0]}=...")
        head, dot, rest = item.partition(".")
        strip = bool(dot) and head == stage.name and head not in stage.field_names()
        out.append((item, rest if strip else item))
    return out


def pipeline_sets(items: list[str]) -> dict[str, list[tuple[str, str]]]:
    """`all`'s --set STAGE.FIELD=VALUE items, by stage."""
    out: dict[str, list[tuple[str, str]]] = {name: [] for name in PIPELINE}
    for item in items:
        key = item.partition("=")[0]
        head, dot, _ = key.partition(".")
        if "=" not in item or not dot:
            raise UsageError(f"{item}: `all` takes --set STAGE.FIELD=VALUE, e.g. --set sft.lr=3e-4")
        if head not in out:
            why = "; the tokenizer is trained by pretrain: use pretrain.vocab_size" if head == "tokenizer" else ""
            raise UsageError(f"{item}: unknown stage {head!r}{hint(head, PIPELINE)}{why}; "
                             f"stages: {', '.join(PIPELINE)}")
        out[head].append((item, item[len(head) + 1:]))
    return out
