"""The stage registry: InstructGPT's recipe as a list of stages (all lessons, the command line and DeepSpeed).

One line per stage: its name, the module that holds its config class, `run` and `summary`, the config fields that
name the stages it reads, and the help the command line shows. `require(name)` trains a missing stage (and any
missing stage upstream of it) with its defaults; the command line (`cli.py`) and the multi-process runner
(`distributed.py`) both run stages through `run_stage`. Modules are imported only when a stage is used, so
`rlhf --help` starts without importing torch.

Adding a trainer: write `rlhf_lib/<name>.py` with a frozen config class, `run(cfg, on_log=None, *, par=LOCAL) ->
metrics` and `summary(metrics) -> str`, then add one `Stage(...)` line to STAGES below.
"""
from __future__ import annotations

import importlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import stages
from .memory import keep_freed_memory

if TYPE_CHECKING:                  # training imports torch; the command line's --help must start without it
    from .training import Parallel


@dataclass(frozen=True)
class Stage:
    """One step of the recipe, as the registry knows it."""
    name: str                           # command name (`rlhf NAME`) and, for most, the stage folder it writes
    module: str                         # rlhf_lib module with the config class, `run` and `summary`
    config: str                         # its config class
    title: str                          # one line, for `rlhf --help`
    about: str                          # what it does and writes, for `rlhf NAME --help`
    example: str                        # a command line
    upstream: tuple[str, ...] = ()      # config fields naming the stages it reads (their values are stage names)
    writes: tuple[str, ...] | None = None   # stage folders it writes; None: the config's `out` (if not '')
    run: str = "run"
    summary: str = "summary"
    fields: tuple[str, ...] = ()        # the only config fields it reads (empty: all of them)
    has_seed: bool = True
    uses_artifacts: bool = True
    in_all: bool = True                 # part of `rlhf all`
    batch_field: str | None = None      # examples per optimizer step: the stage runs under DeepSpeed

    def load(self) -> type:
        """The stage's config class (imports its module)."""
        return getattr(importlib.import_module(f".{self.module}", __package__), self.config)

    def function(self, attr: str):
        return getattr(importlib.import_module(f".{self.module}", __package__), attr)

    def field_names(self) -> list[str]:
        import dataclasses
        return list(self.fields) or [f.name for f in dataclasses.fields(self.load()) if f.init]

    def outputs(self, cfg) -> list[str]:
        """The stage folders a run with `cfg` writes."""
        if self.writes is not None:
            return list(self.writes)
        return [cfg.out] if getattr(cfg, "out", "") else []

    def upstream_of(self, cfg) -> list[str]:
        """The stages a run with `cfg` reads."""
        return [name.strip() for f in self.upstream for name in str(getattr(cfg, f)).split(",") if name.strip()]


STAGES: dict[str, Stage] = {s.name: s for s in (
    Stage("data", "build_data", "DataConfig", "build the simulated world's data (same as build_data)",
          "Build the simulated world's data: the web corpus, SFT demonstrations in Alpaca and chat format, ranked "
          "comparisons, RL prompts, held-out evaluation prompts, and world.json (the labelers' calibrated noise and "
          "measured agreement). Writes into --data; the defaults rebuild the committed files exactly.",
          "rlhf data --data runs/small-world --set web_docs=2000 --seed 1", writes=(), uses_artifacts=False),
    Stage("tokenizer", "pretrain", "PretrainConfig", "train the byte-level BPE tokenizer",
          "Train the byte-level BPE tokenizer on the web corpus's training documents and save artifacts/tokenizer/. "
          "Its settings are PretrainConfig's (pretrain trains the tokenizer again before the base model).",
          "rlhf tokenizer --set vocab_size=8192", writes=("tokenizer",), run="run_tokenizer",
          summary="tokenizer_summary", fields=("vocab_size", "heldout_frac"), has_seed=False, in_all=False),
    Stage("pretrain", "pretrain", "PretrainConfig", "pretrain 'our GPT-3' (tokenizer + base model; lesson 00)",
          "Pretrain 'our GPT-3', a tiny LLaMA, on the web corpus with the next-token loss. Trains the tokenizer "
          "first; writes artifacts/tokenizer/ and artifacts/base/ (model, tokenizer, stage.json, metrics.json).",
          "rlhf pretrain --set epochs=0.5 --set model.num_layers=2 --artifacts runs/small",
          writes=("tokenizer", "base")),
    Stage("sft", "sft", "SFTConfig", "supervised fine-tuning, InstructGPT step 1 (lesson 02)",
          "InstructGPT step 1: fine-tune stage `init` (base) on the demonstrations, the loss on response tokens only "
          "(mask_prompt). A missing upstream stage is first trained with its defaults. Writes artifacts/<out>/.",
          "rlhf sft --set lr=3e-4 --set mask_prompt=false --set out=sft_nomask",
          upstream=("init",), batch_field="batch_size"),
    Stage("rm", "reward", "RMConfig", "the reward model, InstructGPT step 2 (lesson 03)",
          "InstructGPT step 2: sample responses from the SFT policy, have simulated labelers rank them with the "
          "written ones, train the pairwise ranking loss, measure held-out accuracy against the labelers and gold, "
          "and normalise the reward. Writes artifacts/<out>/.",
          "rlhf rm --set n_prompts=600 --set epochs=2", upstream=("init",), batch_field="prompts_per_batch"),
    Stage("ppo", "ppo", "PPOConfig", "PPO against the reward model, InstructGPT step 3 (lesson 04)",
          "InstructGPT step 3: PPO against the reward model with a per-token KL penalty toward the SFT policy "
          "(PPO-ptx when ptx_coef > 0). Writes artifacts/<out>/ and, with evaluate=true, its eval.json.",
          "rlhf ppo --set updates=32 --set kl_mode=adaptive --set beta=0.02",
          upstream=("init", "reward"), batch_field="minibatch_size"),
    Stage("grpo", "grpo", "GRPOConfig", "GRPO: G responses per prompt, no critic (lesson 08)",
          "Group Relative Policy Optimization (Shao et al. 2024): each prompt answered group_size times, advantage "
          "(r − group mean) / group std, PPO's clipped ratio, the k3 KL to stage `init` as a loss term. Against the "
          "reward model, or reward_kind=verifiable: an exact 0/1 check of intent labels and factual years (no reward "
          "model). Writes artifacts/<out>/ and, with evaluate=true, its eval.json.",
          "rlhf grpo --set reward_kind=verifiable --set out=grpo_verifiable --set evaluate=false",
          upstream=("init", "reward"), batch_field="minibatch_size", in_all=False),
    Stage("rloo", "rloo", "RLOOConfig", "RLOO: k responses per prompt, leave-one-out baseline (lesson 08)",
          "REINFORCE Leave-One-Out (Ahmadian et al. 2024): each prompt answered group_size = k times, the baseline "
          "of each the mean reward of the other k − 1, the whole completion one action, the KL to stage `init` in "
          "the reward. Writes artifacts/<out>/ and, with evaluate=true, its eval.json.",
          "rlhf rloo --set group_size=2 --set batch_size=32", upstream=("init", "reward"),
          batch_field="minibatch_size", in_all=False),
    Stage("dpo", "dpo", "DPOConfig", "DPO on the reward model's comparisons, no reward model (lesson 07)",
          "Direct preference optimisation (Rafailov et al. 2023): fine-tune stage `init` (sft) on the ranked "
          "comparisons the reward model learned from (stage `comparisons`), with the loss on the implicit reward "
          "β log π/π_ref (DPO, conservative DPO or IPO). Writes artifacts/<out>/ and, with evaluate=true, its "
          "eval.json.",
          "rlhf dpo --set beta=0.3 --set loss=ipo --set out=dpo_ipo", upstream=("init", "comparisons"),
          batch_field="prompts_per_batch", in_all=False),
    Stage("app_sft", "app_sft", "AppsConfig", "teach the aligned policy the applications' formats (lesson 09)",
          "SFT's loop on data/apps/sft.jsonl (routing, greetings, query rewriting, text-to-SQL, SQL repair), from "
          "the aligned policy (init, default ppo) with `replay` of the world's chat demonstrations mixed in. Writes "
          "artifacts/<out>/.",
          "rlhf app_sft --set epochs=3 --set replay=0", upstream=("init",), in_all=False),
    Stage("sql_rl", "sql_rl", "SQLRLConfig", "GRPO on text-to-SQL against execution feedback (lesson 09)",
          "GRPO (lesson 08's loop) on the SQL questions of data/apps/rl_prompts.jsonl, from stage `init` "
          "(app_sft): the reward is 1 when the query's rows equal the reference query's on the catalog database, "
          "else 0; no reward model. Writes artifacts/<out>/.",
          "rlhf sql_rl --set updates=32 --set lr=1e-4", upstream=("init",), in_all=False),
    Stage("apps", "app_eval", "AppsEvalConfig", "measure the applications per policy (lesson 09)",
          "Each policy in `policies` answers the held-out app data greedily: intent accuracy, rewrite accuracy and "
          "retrieval hits (raw turn vs rewrite), SQL execution accuracy at attempt 1 and after each repair round, "
          "end-to-end success of user_interact under the gold check. Writes artifacts/apps/metrics.json.",
          "rlhf apps --set rounds=4", upstream=("policies",), writes=(), has_seed=False, in_all=False),
    Stage("self_instruct", "self_instruct", "SelfInstructConfig", "Alpaca's data by self-instruct (lesson 10)",
          "Seed tasks from data/sft_alpaca.jsonl, new English instructions from the world's request generator, "
          "self-instruct's ROUGE-L filter, the teacher (stage `teacher`, ppo) writing every output, with translate "
          "the Korean copy of every instruction answered anew (KoAlpaca); invalid outputs dropped. Writes "
          "artifacts/<out>/alpaca_data.jsonl.",
          "rlhf self_instruct --set instructions=1600 --set translate=false", upstream=("teacher",), in_all=False),
    Stage("alpaca", "alpaca", "AlpacaConfig", "the base model fine-tuned on the teacher's data: Alpaca (lesson 10)",
          "SFT's loop from stage `init` (base) on stage `data`'s demonstrations in `langs` (en = Alpaca, en,ko = "
          "KoAlpaca); lora_rank > 0 trains LoRA adapters and saves them merged. Writes artifacts/<out>/.",
          "rlhf alpaca --set langs=en,ko --set out=koalpaca", upstream=("init", "data"), in_all=False),
    Stage("eval", "evaluation", "EvalConfig", "gold-labeler evaluation of saved policies (lessons 01-05)",
          "Gold-labeler evaluation: every stage in `stages` answers the held-out prompts with the same sampling "
          "settings and seed; writes artifacts/<stage>/eval.json (gold mean, failure and EOS rates overall and per "
          "category, every sample).",
          "rlhf eval --set stages=sft,ppo --set temperature=0", upstream=("stages",), writes=()),
)}
PIPELINE = tuple(name for name, s in STAGES.items() if s.in_all)       # `rlhf all`, in this order


# ------------------------------------------------------------------------------------------------ running stages
def run_stage(name: str, cfg, *, par: Parallel | None = None, **kwargs) -> dict:
    """Run stage `name` with config `cfg` (training its missing upstream stages first, on rank 0). Returns its
    metrics; `kwargs` go to the stage's run function (e.g. `reuse=True` for eval, `max_steps` for SFT)."""
    stage = STAGES[name]
    keep_freed_memory()                    # every stage, from the command line, DeepSpeed or a lesson
    for up in stage.upstream_of(cfg):
        (par.once if par is not None else _call)(lambda up=up: require(up))
    run = stage.function(stage.run)
    return run(cfg, par=par, **kwargs) if par is not None else run(cfg, **kwargs)


def _call(fn):
    return fn()


def summary(name: str, metrics: dict) -> str:
    """The stage's one-line summary of its metrics."""
    stage = STAGES[name]
    return stage.function(stage.summary)(metrics)


def writer_of(folder: str) -> Stage:
    """The registry stage whose default config writes stage folder `folder`."""
    for stage in STAGES.values():
        if stage.uses_artifacts and folder in stage.outputs(stage.load()()):
            return stage
    known = sorted({o for s in STAGES.values() if s.uses_artifacts for o in s.outputs(s.load()())})
    raise ValueError(f"unknown stage {folder!r}; stages are {', '.join(known)}")


def require(name: str) -> Path:
    """The folder of stage `name`, training it (and any missing upstream stage) with default configs if absent.
    A folder that exists but is incomplete or damaged is never trained over: a StageError says what is there and
    what to do (nothing on disk is changed)."""
    status = stages.status(name, verify=True)
    if status.complete:
        return status.folder
    if status.state != "missing":
        raise stages.StageError(status.describe())
    stage = writer_of(name)
    cfg = stage.load()()
    for up in stage.upstream_of(cfg):
        require(up)
    print(f"stage '{name}' is missing: training it with its default config …", flush=True)
    t0 = time.time()
    metrics = run_stage(stage.name, cfg)
    print(f"{stage.name}: {summary(stage.name, metrics)} ({time.time() - t0:.0f} s)", flush=True)
    return stages.stage_dir(name)


def load_model(name: str):
    """(model, tokenizer, stage info) of a causal-LM stage, training it first if it is missing."""
    require(name)
    return stages.load_model(name)
