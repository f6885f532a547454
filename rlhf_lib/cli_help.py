"""The command line's help: each stage's settings with their defaults, allowed values and meaning, and config
files shown as TOML (`rlhf STAGE --help`, `rlhf all --help`, and the resolved config every command prints)."""
from __future__ import annotations

import argparse
import dataclasses
import json
import textwrap
import typing
from collections.abc import Callable

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
