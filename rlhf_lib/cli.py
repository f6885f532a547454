"""Command line: run any stage of the course headless (`rlhf STAGE ...` or `python -m rlhf_lib STAGE ...`).

    rlhf data | tokenizer | pretrain | sft | rm | ppo | eval     one stage
    rlhf all                                                    the whole pipeline, skipping finished stages

Every setting goes through the frozen config dataclass the lessons' panels edit (`rlhf_lib.config`): the stage's
defaults, then its table in `--config FILE` (TOML or JSON), then `--seed`, then each `--set field=value`. An unknown
field or an invalid value stops the command with exit status 2 and one line naming the field and what it accepts,
before anything is read, trained or written. The resolved config is printed before work starts, the trainers show
their own progress bars, and each stage ends with a one-line summary of its measured results.

Stage modules are imported only when a stage's settings are needed, so `rlhf --help` and `rlhf data` start without
importing torch.
"""
from __future__ import annotations

import argparse
import dataclasses
import difflib
import functools
import importlib
import json
import sys
import textwrap
import time
import tomllib
import traceback
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from . import stages
from .build_data import DataSizes
from .config import allowed, field_type, fixed, from_dict, override, parse_override, parse_overrides, to_dict

class UsageError(Exception):
    """Bad command-line input: reported as one line with exit status 2, before any work starts."""


# ------------------------------------------------------------------------------------ configs of the CLI's own
@dataclass(frozen=True, kw_only=True)
class DataConfig(DataSizes):
    """Sizes and seed of the simulated world's data (`build_data.build`); the defaults give the committed data/."""
    seed: int = fixed(0, help="seed of the world's sampling and of the labelers' calibration")

    def sizes(self) -> DataSizes:
        """The `DataSizes` that `build_data.build` takes (without the seed)."""
        return DataSizes(**{f.name: getattr(self, f.name) for f in dataclasses.fields(DataSizes)})


@functools.cache
def eval_config() -> type:
    """The `EvalConfig` class: the lessons' `GenerationConfig` (sampling settings) plus which stages and which seed.

    Built on first use, because importing `generation` imports torch."""
    from .generation import GenerationConfig

    @dataclass(frozen=True, kw_only=True)
    class EvalConfig(GenerationConfig):
        """Gold-labeler evaluation of saved policies on the held-out prompts."""
        stages: str = fixed("base,sft,ppo", help="comma-separated policy stages to evaluate, each into "
                                                 "artifacts/<stage>/eval.json")
        seed: int = fixed(0, help="sampling seed, the same for every stage (the lessons use 0)")

        def __post_init__(self):
            super().__post_init__()
            if not self.stage_names():
                raise ValueError("EvalConfig.stages is empty; name at least one stage, e.g. stages=sft")

        def stage_names(self) -> list[str]:
            return [s.strip() for s in self.stages.split(",") if s.strip()]

        def generation(self) -> GenerationConfig:
            return GenerationConfig(**{f.name: getattr(self, f.name) for f in dataclasses.fields(GenerationConfig)})

    EvalConfig.__module__, EvalConfig.__qualname__ = __name__, "EvalConfig"
    return EvalConfig


# ------------------------------------------------------------------------------------------------- the stages
@dataclass(frozen=True)
class Context:
    """Where a run reads and writes, and whether `eval` may keep an eval.json made with the same settings."""
    data: Path
    reuse_evals: bool = False


@dataclass(frozen=True)
class Stage:
    """One subcommand: the config it reads, what it writes, how it runs and how to call it."""
    name: str
    title: str                                          # one line, for `rlhf --help`
    about: str                                          # what it does and writes, for `rlhf NAME --help`
    example: str                                        # a command line
    load: Callable[[], type]                            # the config class (imports the stage's module)
    run: Callable[[object, Context], list[str]]         # runs the stage, returns its summary lines
    outputs: Callable[[object], list[str]]              # stage folders it writes (for skipping in `all`)
    fields: tuple[str, ...] = ()                        # the only fields it reads (empty: all of them)
    has_seed: bool = True
    uses_artifacts: bool = True

    def field_names(self) -> list[str]:
        return list(self.fields) or [f.name for f in dataclasses.fields(self.load()) if f.init]


def _class(module: str, name: str) -> Callable[[], type]:
    return lambda: getattr(importlib.import_module(f".{module}", __package__), name)


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


def _run_data(cfg: DataConfig, ctx: Context) -> list[str]:
    from .build_data import build
    t0 = time.time()
    s = build(ctx.data, cfg.seed, cfg.sizes())
    n = s["sizes"]
    return [f"data: {n['web_docs']} web docs, {n['sft_alpaca'] + n['sft_chat']} demonstrations, "
            f"{n['comparisons']} comparisons, {n['rl_prompts']} RL prompts, labeler agreement "
            f"{s['labeler_agreement']:.3f}, {_took(t0)} -> {_show(ctx.data)}"]


def _run_tokenizer(cfg, ctx: Context) -> list[str]:
    from .pretrain import train_tokenizer_stage
    t0 = time.time()
    tok = train_tokenizer_stage(cfg)
    return [f"tokenizer: {len(tok)} tokens, {_took(t0)} -> {_show(stages.stage_dir('tokenizer'))}"]


def _run_pretrain(cfg, ctx: Context) -> list[str]:
    from .pretrain import run
    t0 = time.time()
    m = run(cfg)
    return [f"pretrain: {_count(m['steps'], 'step')}, {m['n_params'] / 1e6:.2f} M parameters, "
            f"{m['tokens_seen'] / 1e6:.2f} M tokens, heldout loss {m['heldout_loss']:.3f} "
            f"(initial {m['initial_heldout_loss']:.3f}), {_took(t0)} -> {_show(stages.stage_dir('base'))} "
            f"(and {_show(stages.stage_dir('tokenizer'))})"]


def _run_sft(cfg, ctx: Context) -> list[str]:
    from .sft import run
    t0 = time.time()
    m = run(cfg)
    return [f"sft: {_count(m['steps'], 'step')}, heldout loss {m['heldout_loss']:.3f} "
            f"(initial {m['initial_heldout_loss']:.3f}), {_took(t0)} -> {_show(stages.stage_dir(cfg.out))}"]


def _run_rm(cfg, ctx: Context) -> list[str]:
    from .reward import run
    t0 = time.time()
    m = run(cfg)
    return [f"rm: {_count(m['steps'], 'step')}, heldout accuracy {m['heldout_accuracy']:.3f} "
            f"(vs gold {m['gold_accuracy']:.3f}; labelers agree {m['labeler_agreement']:.3f}), {_took(t0)} -> "
            f"{_show(stages.stage_dir(cfg.out))}"]


def _run_ppo(cfg, ctx: Context) -> list[str]:
    from .ppo import run
    t0 = time.time()
    m = run(cfg)
    parts = [f"ppo: {_count(m['updates'], 'update')}, RM score {m['initial_score']:.2f} → {m['final_score']:.2f}, "
             f"gold {m['initial_gold']:.3f} → {m['final_gold']:.3f}, KL {m['final_kl_seq']:.2f} nats"]
    if "eval_gold_mean" in m:
        parts.append(f"eval gold mean {m['eval_gold_mean']:.3f}")
    if m.get("warnings"):
        parts.append(f"{_count(len(m['warnings']), 'warning')} in metrics.json")
    where = _show(stages.stage_dir(cfg.out)) if cfg.out else "not saved (out='')"
    return [", ".join(parts) + f", {_took(t0)} -> {where}"]


def _same_eval(path: Path, gen, seed: int) -> dict | None:
    """The eval.json at `path` if it was made with these sampling settings and seed."""
    if not path.is_file():
        return None
    result = json.loads(path.read_text(encoding="utf-8"))
    same = result.get("seed") == seed and result.get("generation") == to_dict(gen)
    return result if same else None


def _run_eval(cfg, ctx: Context) -> list[str]:
    from .evaluation import evaluate_stage
    gen, lines = cfg.generation(), []
    for name in cfg.stage_names():
        t0 = time.time()
        path = stages.stage_dir(name) / "eval.json"
        result = _same_eval(path, gen, cfg.seed) if ctx.reuse_evals and stages.exists(name) else None
        kept = " (kept: made with these settings)" if result else ""
        result = result or evaluate_stage(name, gen=gen, seed=cfg.seed)
        lines.append(f"eval {name}: gold mean {result['gold_mean']:.3f}, failure rate {result['failure_rate']:.3f}, "
                     f"EOS rate {result['eos_rate']:.3f} on {result['n']} prompts, {_took(t0)} -> {_show(path)}{kept}")
    return lines


STAGES: dict[str, Stage] = {s.name: s for s in (
    Stage("data", "build the simulated world's data (same as build_data)",
          "Build the simulated world's data: the web corpus, SFT demonstrations in Alpaca and chat format, ranked "
          "comparisons, RL prompts, held-out evaluation prompts, and world.json (the labelers' calibrated noise and "
          "measured agreement). Writes into --data; the defaults rebuild the committed files exactly.",
          "rlhf data --data runs/small-world --set web_docs=2000 --seed 1",
          lambda: DataConfig, _run_data, lambda cfg: [], uses_artifacts=False),
    Stage("tokenizer", "train the byte-level BPE tokenizer",
          "Train the byte-level BPE tokenizer on the web corpus's training documents and save artifacts/tokenizer/. "
          "Its settings are PretrainConfig's (pretrain trains the tokenizer again before the base model).",
          "rlhf tokenizer --set vocab_size=8192",
          _class("pretrain", "PretrainConfig"), _run_tokenizer, lambda cfg: ["tokenizer"],
          fields=("vocab_size", "heldout_frac"), has_seed=False),
    Stage("pretrain", "pretrain 'our GPT-3' (tokenizer + base model; lesson 00)",
          "Pretrain 'our GPT-3', a tiny LLaMA, on the web corpus with the next-token loss. Trains the tokenizer "
          "first; writes artifacts/tokenizer/ and artifacts/base/ (model, tokenizer, stage.json, metrics.json).",
          "rlhf pretrain --set epochs=0.5 --set model.num_layers=2 --artifacts runs/small",
          _class("pretrain", "PretrainConfig"), _run_pretrain, lambda cfg: ["tokenizer", "base"]),
    Stage("sft", "supervised fine-tuning, InstructGPT step 1 (lesson 02)",
          "InstructGPT step 1: fine-tune stage `init` (base) on the demonstrations, the loss on response tokens only "
          "(mask_prompt). A missing upstream stage is first trained with its defaults. Writes artifacts/<out>/.",
          "rlhf sft --set lr=3e-4 --set mask_prompt=false --set out=sft_nomask",
          _class("sft", "SFTConfig"), _run_sft, lambda cfg: [cfg.out]),
    Stage("rm", "the reward model, InstructGPT step 2 (lesson 03)",
          "InstructGPT step 2: sample responses from the SFT policy, have simulated labelers rank them with the "
          "written ones, train the pairwise ranking loss, measure held-out accuracy against the labelers and gold, "
          "and normalise the reward. Writes artifacts/<out>/.",
          "rlhf rm --set n_prompts=600 --set epochs=2",
          _class("reward", "RMConfig"), _run_rm, lambda cfg: [cfg.out]),
    Stage("ppo", "PPO against the reward model, InstructGPT step 3 (lesson 04)",
          "InstructGPT step 3: PPO against the reward model with a per-token KL penalty toward the SFT policy "
          "(PPO-ptx when ptx_coef > 0). Writes artifacts/<out>/ and, with evaluate=true, its eval.json.",
          "rlhf ppo --set updates=32 --set kl_mode=adaptive --set beta=0.02",
          _class("ppo", "PPOConfig"), _run_ppo, lambda cfg: [cfg.out] if cfg.out else []),
    Stage("eval", "gold-labeler evaluation of saved policies (lessons 01-05)",
          "Gold-labeler evaluation: every stage in `stages` answers the held-out prompts with the same sampling "
          "settings and seed; writes artifacts/<stage>/eval.json (gold mean, failure and EOS rates overall and per "
          "category, every sample).",
          "rlhf eval --set stages=sft,ppo --set temperature=0",
          eval_config, _run_eval, lambda cfg: []),
)}
PIPELINE = ("data", "pretrain", "sft", "rm", "ppo", "eval")   # `all`: the tokenizer is trained by pretrain
POLICIES = ("base", "sft", "ppo")                              # stages `stages.require` can train for `eval`
ALL_ABOUT = ("The whole pipeline in order: data, pretrain (tokenizer + base), sft, rm, ppo, eval. A stage whose "
             "artifacts exist is skipped (the line says so, and names any setting they were made with that differs) "
             "unless --force; once a stage runs, every later stage runs too, since its input changed. An eval.json "
             "made with the same sampling settings and seed is kept.")


# ------------------------------------------------------------------------------------------------- the help
def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)


def _toml_table(name: str, d: dict) -> list[str]:
    """A TOML table (scalars first, then nested tables), as a config file would hold it."""
    lines = [f"[{name}]"] + [f"{k} = {_toml_value(v)}" for k, v in d.items() if not isinstance(v, dict)]
    for k, v in d.items():
        if isinstance(v, dict):
            lines += _toml_table(f"{name}.{k}", v)
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
    head = f"  {prefix}{name} = {_toml_value(value)}  ({getattr(typ, '__name__', typ)}; {accepts}{fixed_tag})"
    text = meta.get("help", "")
    return [head] + (textwrap.wrap(text, 100, initial_indent=" " * 6, subsequent_indent=" " * 6) if text else [])


def _stage_help(stage: Stage, qualified: bool = False) -> list[str]:
    cfg = stage.load()()
    prefix = f"{stage.name}." if qualified else ""
    lines = []
    for name in stage.field_names():
        lines += _field_lines(cfg, name, prefix)
    return lines


def _epilog(stage: Stage) -> str:
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
        lines.append(f"{key} = {_toml_value(value)}")
    return lines


def _all_epilog() -> str:
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


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose help may end with text made only when help is shown (the config fields need the
    stage's module, and importing torch for every command line would be slow)."""

    def __init__(self, *args, lazy_epilog: Callable[[], str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._lazy_epilog = lazy_epilog

    def format_help(self) -> str:
        if self._lazy_epilog is not None:
            self.epilog, self._lazy_epilog = self._lazy_epilog(), None
        return super().format_help()


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
    top = _Parser(prog=prog, formatter_class=fmt, description=__doc__.split("\n\n")[0], epilog=textwrap.dedent("""\
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
                           description=textwrap.fill(stage.about, 100), lazy_epilog=functools.partial(_epilog, stage))
        _add_common(p, stage)
    p = sub.add_parser("all", help="the whole pipeline in order, skipping finished stages unless --force",
                       formatter_class=fmt, description=textwrap.fill(ALL_ABOUT, 100), lazy_epilog=_all_epilog)
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
            out.append(f"{prefix}{key}={_toml_value(old) if key in recorded else '(none)'} "
                       f"(now {_toml_value(value)})")
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
            lines = stage.run(cfg, ctx)
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


@contextmanager
def _locations(data: Path, artifacts: Path) -> Iterator[None]:
    """Point the stages at these data and artifact folders for the duration of a command."""
    saved = stages.DATA_DIR, stages.ARTIFACTS
    stages.DATA_DIR, stages.ARTIFACTS = data, artifacts
    try:
        yield
    finally:
        stages.DATA_DIR, stages.ARTIFACTS = saved


def main(argv: list[str] | None = None, prog: str = "rlhf") -> int:
    """Run the command line; returns the exit status (2: bad input, 1: a stage failed, 130: interrupted)."""
    args = build_parser(prog).parse_args(argv)
    data = args.data or stages.DATA_DIR
    artifacts = getattr(args, "artifacts", None) or stages.ARTIFACTS
    with _locations(data, artifacts):
        try:
            run = plan(args, data)
        except UsageError as e:
            print(f"error: {_one_line(e)}", file=sys.stderr)
            return 2
        print("# resolved config (defaults < --config < --seed < --set)")
        print("\n\n".join("\n".join(_toml_table(stage.name, _resolved(stage, cfg))) for stage, cfg in run), flush=True)
        if args.dry_run:
            return 0
        ctx = Context(data=data, reuse_evals=args.command == "all" and not args.force)
        return execute(run, ctx, pipeline=args.command == "all", force=getattr(args, "force", False))


if __name__ == "__main__":
    sys.exit(main())
