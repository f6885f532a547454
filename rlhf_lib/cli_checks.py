"""What the command line checks before any work (`rlhf STAGE`, `rlhf all`, and `--dry-run`): the folders it will
write, the stages each config reads (of the right kind, there or trainable), and every world file the planned
stages and their missing upstream stages read, each error one line naming the setting or file:line:field."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from . import data as datafiles
from . import stages
from .cli_help import UsageError, one_line, show
from .pipeline import STAGES, Stage, writer_of


def check_eval_stages(cfg, trainable: set[str]) -> None:
    for name in cfg.stage_names():
        if name in ("tokenizer", "rm") or (stages.exists(name) and "reward_head" in stages.info(name)):
            raise UsageError(f"eval.stages={cfg.stages}: {name!r} is not a policy; evaluate base, sft, ppo or "
                             "another causal-LM stage")
        if not (stages.exists(name) or name in trainable):
            raise UsageError(f"eval.stages={cfg.stages}: no stage {name!r} in {show(stages.ARTIFACTS)}; "
                             f"name one there or one of {', '.join(sorted(trainable))}")


def check_folder(path: Path, option: str) -> None:
    """A folder the command writes into must be a folder (or creatable) and writable: checked before any work, by
    making and removing a temporary folder in it or in the nearest folder above it that exists."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{option} {show(path)}: is a file, not a folder; give a folder (it is made if missing)")
    above = path
    while not above.exists() and above != above.parent:
        above = above.parent
    if not above.is_dir():
        raise UsageError(f"{option} {show(path)}: {show(above)} is a file, so the folder cannot be made there")
    try:
        os.rmdir(tempfile.mkdtemp(dir=above, prefix=".rlhf-write-check-"))
    except OSError as e:
        raise UsageError(f"{option} {show(path)}: cannot write in {show(above)} ({e.strerror}); give a folder "
                         "you can write to") from None


def writer_kind(stage: Stage, folder: str) -> str:
    return "reward model" if stage.name == "rm" else "tokenizer" if folder == "tokenizer" else "policy"


def stage_kind(name: str, made: dict[str, str]) -> str | None:
    """What stage folder `name` holds (policy, reward model, tokenizer), from the plan, the folder or the registry
    stage that would train it; None if it is neither there nor trainable."""
    if name in made:
        return made[name]
    if stages.exists(name):
        try:
            info = stages.info(name)
        except ValueError as e:
            raise UsageError(f"stage {name!r}: {one_line(e)}") from None
        return "reward model" if "reward_head" in info else "tokenizer" if info.get("stage") == "tokenizer" \
            else "policy"
    try:
        return writer_kind(writer_of(name), name)
    except ValueError:
        return None


def check_upstream(stage: Stage, cfg, made: dict[str, str]) -> None:
    """`init` and `reward` (DPO: `comparisons`, a reward model's stage) must name a stage of the right kind that
    exists, that an earlier stage of the plan writes, or that the registry can train (`pipeline.require`)."""
    for field in () if stage.name == "eval" else stage.upstream:
        name, want = getattr(cfg, field), "reward model" if field in ("reward", "comparisons") else "policy"
        kind = stage_kind(name, made)
        if kind is None:
            known = sorted({o for s in STAGES.values() if s.uses_artifacts for o in s.outputs(s.load()())})
            raise UsageError(f"{stage.name}.{field}={name}: no stage {name!r} in {show(stages.ARTIFACTS)} and none "
                             f"that `rlhf` trains; name one there or one of {', '.join(known)}")
        if kind != want:
            raise UsageError(f"{stage.name}.{field}={name}: stage {name!r} is a {kind}, not a {want}; "
                             f"name a {want} stage")


def reads(stage: Stage, cfg) -> list[str]:
    """The world files a run of `stage` with `cfg` reads (the trainers validate them again when they start)."""
    if stage.name == "sft":
        return ["sft_alpaca.jsonl"] * cfg.use_alpaca + ["sft_chat.jsonl"] * cfg.use_chat
    held = stage.name == "eval" or (stage.name in ("ppo", "grpo", "rloo", "dpo")
                                    and bool(getattr(cfg, "gold_every", 0) or (cfg.out and cfg.evaluate)))
    return {"tokenizer": ["web.jsonl"], "pretrain": ["web.jsonl"], "rm": ["comparisons.jsonl"],
            "ppo": ["rl_prompts.jsonl", "web.jsonl"], "grpo": ["rl_prompts.jsonl"],
            "rloo": ["rl_prompts.jsonl"]}.get(stage.name, []) + ["eval_prompts.jsonl"] * held


def check_data(run: list[tuple[Stage, object]], data: Path, made: dict[str, str]) -> None:
    """Every world file the planned stages read, and those of the missing upstream stages `pipeline.require` will
    train with their defaults, validated as the trainers do (file:line:field), before any stage starts. Lengths
    against a model's context need its tokenizer: the trainers check them before loading the model."""
    from .build_data import task_from_record
    todo, files = list(run), {}
    while todo:
        stage, cfg = todo.pop(0)
        files.update(dict.fromkeys(reads(stage, cfg)))
        for up in stage.upstream_of(cfg):
            if up not in made and not stages.exists(up):
                made[up] = writer_kind(writer_of(up), up)
                todo.append((writer_of(up), writer_of(up).load()()))
    readers = {"web.jsonl": datafiles.read_web, "sft_alpaca.jsonl": lambda p: datafiles.read_demos(p, "alpaca"),
               "sft_chat.jsonl": lambda p: datafiles.read_demos(p, "chat"),
               "comparisons.jsonl": lambda p: datafiles.read_comparisons(p, task_from_record)}
    for name in files:
        readers.get(name, lambda p: datafiles.read_prompts(p, task_from_record))(data / name)
