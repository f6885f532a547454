"""The trainers under DeepSpeed on two CPU processes (lesson 06), on a tiny model and a slice of the data.

One `torchrun` launch trains SFT, the reward model, PPO, GRPO, RLOO and DPO under ZeRO-3 (the hardest case: every
weight is partitioned, so sampling must keep the ranks in step and saving must gather the weights first); one
`deepspeed` launch trains SFT under ZeRO-2. About two minutes on two cores, most of it starting processes.
"""
from __future__ import annotations

import itertools
import json
import math
import shutil

import pytest
import torch
from conftest import save_base

from rlhf_lib import deepspeed_config, distributed, dpo, launcher, sft, stages
from rlhf_lib.config import to_dict
from rlhf_lib.models import ModelConfig, build_tiny_llama, load_causal_lm
from rlhf_lib.tokenizer import train_tokenizer

DATA_SLICE = {"web.jsonl": 200, "sft_alpaca.jsonl": 96, "sft_chat.jsonl": 96, "comparisons.jsonl": 24,
              "rl_prompts.jsonl": 32}
SFT = ["sft.max_len=512", "sft.batch_size=16", "sft.epochs=1", "sft.eval_every=3", "sft.warmup_steps=2",
       "sft.lr=3e-3"]
RM = ["rm.max_len=512", "rm.n_prompts=20", "rm.written=9", "rm.sft_samples=1", "rm.lr=3e-3", "rm.epochs=3"]
PPO = ["ppo.updates=4", "ppo.batch_size=8", "ppo.minibatch_size=4", "ppo.sampling.max_new_tokens=16",
       "ppo.evaluate=false", "ppo.gold_every=0"]
GROUPS = ["updates=2", "batch_size=4", "group_size=2", "minibatch_size=4", "sampling.max_new_tokens=16",
          "evaluate=false", "gold_every=0"]                      # 2 prompts × 2 responses a rank, 2 steps an update
GRPO, RLOO = [f"grpo.{o}" for o in GROUPS], [f"rloo.{o}" for o in GROUPS]
DPO = ["dpo.epochs=2", "dpo.prompts_per_batch=4", "dpo.lr=3e-3", "dpo.eval_every=2", "dpo.curve_prompts=4",
       "dpo.evaluate=false"]                                        # 16 training prompts: 4 steps an epoch
PER_RANK = ("wall_s", "train_s", "reference_s", "s_per_step")   # the only figures each rank measures for itself


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A slice of data/, a tokenizer trained on it and a random tiny LLaMA as the 'base' stage, in a temporary
    folder that both this process and the launched ones use (RLHF_DATA, RLHF_ARTIFACTS)."""
    root = tmp_path_factory.mktemp("ds")
    data, arts = root / "data", root / "artifacts"
    data.mkdir()
    texts = []
    for name, n in DATA_SLICE.items():
        with open(stages.DATA_DIR / name, encoding="utf-8") as f:
            lines = list(itertools.islice(f, n))
        (data / name).write_text("".join(lines), encoding="utf-8")
        texts += lines if name != "web.jsonl" else []          # web pages only for the alignment tax
    shutil.copy(stages.DATA_DIR / "world.json", data / "world.json")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(stages, "ARTIFACTS", arts)
        mp.setattr(stages, "DATA_DIR", data)
        tok = train_tokenizer(texts, vocab_size=600)
        model = build_tiny_llama(ModelConfig(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128,
                                             max_len=512), tok, seed=0)
        save_base(model, tok)
        yield {"root": root, "env": {"RLHF_DATA": str(data), "RLHF_ARTIFACTS": str(arts)}}


@pytest.fixture(scope="module")
def zero3_run(world):
    """SFT, reward model, PPO, GRPO, RLOO and DPO under ZeRO-3 on two processes started by torchrun."""
    return launcher.launch(["sft", "rm", "ppo", "grpo", "rloo", "dpo"], nproc=2, deepspeed="zero3",
                              overrides=SFT + RM + PPO + GRPO + RLOO + DPO,
                              metrics_dir=world["root"] / "zero3", env=world["env"], timeout=600)


def _same_on_every_rank(per_rank: list[dict]) -> None:
    first, *others = [{k: v for k, v in m.items() if k not in PER_RANK} for m in per_rank]
    for other in others:
        assert json.dumps(other, sort_keys=True) == json.dumps(first, sort_keys=True)


def test_ranks_agree_on_every_metric(zero3_run):
    for name, per_rank in zero3_run.items():
        assert len(per_rank) == 2 and per_rank[0]["distributed"]["world_size"] == 2, name
        _same_on_every_rank(per_rank)


def test_sft_on_two_processes_is_sft_on_one(zero3_run, world):
    """Token-weighted micro-batches: two ZeRO-3 ranks reproduce sft.run's curve; and the stage rank 0 saved after
    gathering the partitioned weights loads in this plain process and measures the run's final held-out loss."""
    m = zero3_run["sft"][0]
    h = m["history"]
    assert h["train_loss"][-1] < h["train_loss"][1] and h["heldout_loss"][-1] < h["heldout_loss"][0] - 0.3
    cfg = distributed.stage_configs(["sft"], SFT)["sft"]
    model, tok = load_causal_lm(stages.stage_dir("sft"))
    _, held, _ = sft.split_demos(cfg, tok)
    assert sft.heldout_loss(model, held, tok.pad_token_id) == pytest.approx(m["heldout_loss"], abs=1e-5)
    assert not model.config.to_dict().get("auto_map")                      # a plain LLaMA, no remote code
    single = sft.run(sft.SFTConfig(**{**to_dict(cfg), "out": "sft_single"}))
    for a, b in zip(single["history"]["heldout_loss"], h["heldout_loss"]):
        assert a == pytest.approx(b, abs=1e-4)


def test_reward_model_on_two_processes(zero3_run):
    from rlhf_lib.reward_model import load_reward_model
    m = zero3_run["rm"][0]
    train_loss = m["history"]["train_loss"]                                 # measured at steps 10 and 12
    assert train_loss[-1] < train_loss[1] < math.log(2)                    # below chance, and falling
    assert math.isfinite(m["norm"]["gain"]) and m["steps"] == 12                # 3 epochs of 16 prompts, 4 a step
    model, _, norm = load_reward_model(stages.stage_dir("rm"))
    assert norm == pytest.approx(m["norm"])


def test_ppo_on_two_processes(zero3_run):
    """Both ranks sampled (synced generation under ZeRO-3), the critic learned, the policy saved loads."""
    m = zero3_run["ppo"][0]
    h = m["history"]
    assert len(h["update"]) == 4 and all(math.isfinite(x) for x in h["policy_loss"] + h["kl_seq"])
    assert max(h["value_loss"][1:]) < h["value_loss"][0]
    assert len(m["samples"]) == 8                                           # 4 prompts from each rank
    policy, tok = load_causal_lm(stages.stage_dir("ppo"))
    sft_model, _ = load_causal_lm(stages.stage_dir("sft"))
    moved = [not torch.equal(a, b) for a, b in zip(policy.parameters(), sft_model.parameters())]
    assert any(moved)


@pytest.mark.parametrize("name", ["grpo", "rloo"])
def test_group_trainers_on_two_processes(zero3_run, name):
    """Each rank took whole groups (2 prompts × 2 responses), the three models were counted before ZeRO-3
    partitioned them, and the policy rank 0 saved after gathering its weights has moved away from SFT."""
    m = zero3_run[name][0]
    h = m["history"]
    assert len(h["update"]) == 2 and all(math.isfinite(x) for x in h["loss"] + h["kl_seq"])
    assert len(m["samples"]) == 8 and [s["id"] for s in m["samples"][:2]] == [m["samples"][0]["id"]] * 2
    assert sorted(m["models"]) == ["policy", "reference", "reward model"] and min(m["models"].values()) > 0
    assert sum(v["groups"] for v in m["groups_by_category"].values()) == 2 * 4        # all ranks' groups
    policy, _ = load_causal_lm(stages.stage_dir(name))
    sft_model, _ = load_causal_lm(stages.stage_dir("sft"))
    assert any(not torch.equal(a, b) for a, b in zip(policy.parameters(), sft_model.parameters()))


def test_dpo_on_two_processes(zero3_run, world):
    """DPO on the comparisons the ZeRO-3 reward model kept: it learned the training pairs and opened the held-out
    margin, and the policy rank 0 saved after gathering its weights reproduces the run's held-out figures."""
    m = zero3_run["dpo"][0]
    h = m["history"]
    assert m["steps"] == 8 and h["step"] == [0, 2, 4, 6, 8] and m["n_train_prompts"] == 16
    assert h["chosen_logratio"][0] == pytest.approx(0.0, abs=1e-4)          # π = π_ref before the first step
    assert h["train_accuracy"][-1] > h["train_accuracy"][1]                 # learning on the training pairs …
    assert h["chosen_logratio"][-1] > h["rejected_logratio"][-1]            # … and the held-out margin opened
    cfg = distributed.stage_configs(["dpo"], DPO)["dpo"]
    policy, tok = load_causal_lm(stages.stage_dir("dpo"))
    ref, _ = load_causal_lm(stages.stage_dir("sft"))
    held = dpo.comparisons_of("rm").heldout
    exs = dpo.examples(tok, held)
    pairs = dpo.Pairs(held, exs, dpo.all_logps(ref, exs, tok.pad_token_id, 64))
    again = dpo.measure(policy, pairs, cfg, tok.pad_token_id)
    assert again["accuracy"] == pytest.approx(m["heldout_accuracy"])
    assert again["chosen_logratio"] == pytest.approx(m["chosen_logratio"], abs=1e-4)


def test_deepspeed_launcher_zero2_gives_the_same_sft(zero3_run, world):
    runs = launcher.launch("sft", nproc=2, deepspeed="zero2", overrides=SFT + ["sft.out=sft_zero2"], max_steps=6,
                              launcher="deepspeed", metrics_dir=world["root"] / "zero2", env=world["env"], timeout=600)
    _same_on_every_rank(runs["sft"])
    h2, h3 = runs["sft"][0]["history"], zero3_run["sft"][0]["history"]
    assert h2["step"] == [0, 3, 6]
    assert h2["heldout_loss"] == pytest.approx(h3["heldout_loss"][:3], abs=1e-4)
    load_causal_lm(stages.stage_dir("sft_zero2"))


# ------------------------------------------------------------------------------------------------ config checks
@pytest.mark.parametrize("ds, world_size, message", [
    ({"train_batch_size": 16}, 2, r"train_batch_size = 16 contradicts SFTConfig.batch_size = 32"),
    ({"train_micro_batch_size_per_gpu": 4, "gradient_accumulation_steps": 2}, 2,
     r"4 × 2 × 2 = 16 contradicts SFTConfig.batch_size = 32"),
    ({"train_micro_batch_size_per_gpu": 5}, 2, r"SFTConfig.batch_size = 32 cannot be split evenly"),
    ({"gradient_clipping": 0.5}, 1, r"gradient_clipping = 0.5 contradicts the SFT trainer's gradient clip = 1.0"),
    ({"optimizer": {"type": "Adam"}}, 1, r"'optimizer' block"),
    ({"train_batch_size": "32"}, 1, r"positive integer or \"auto\""),
])
def test_contradicting_config_is_a_clear_error(ds, world_size, message):
    with pytest.raises(ValueError, match=message):
        deepspeed_config.resolve_config(ds, batch=("SFTConfig.batch_size", 32),
                                   clip=("the SFT trainer's gradient clip", 1.0), world_size=world_size)


def test_trainer_checks_the_config_before_starting(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match=r"train_batch_size = 64 contradicts SFTConfig.batch_size = 32"):
        distributed.run("sft", sft.SFTConfig(), {"train_batch_size": 64, "zero_optimization": {"stage": 2}})
    from rlhf_lib.ppo import PPOConfig
    with pytest.raises(ValueError, match=r"PPOConfig.batch_size = 12 is not a multiple of minibatch_size = 8"):
        distributed.run("ppo", PPOConfig(batch_size=12), "zero2")
    assert not torch.distributed.is_initialized()


def test_auto_entries_are_filled_from_the_trainer():
    ds = deepspeed_config.resolve_config(deepspeed_config.load_config("zero3"), batch=("PPOConfig.minibatch_size", 8),
                                    clip=("PPOConfig.max_grad_norm", 1.0), world_size=2)
    assert [ds[k] for k in deepspeed_config.BATCH_KEYS] == [8, 4, 1]
    ds = deepspeed_config.resolve_config({"gradient_accumulation_steps": 2}, batch=("b", 8), clip=("c", 1.0),
                                         world_size=2)
    assert ds["train_micro_batch_size_per_gpu"] == 2
    for path in sorted(deepspeed_config.CONFIG_DIR.glob("*.json")):
        assert deepspeed_config.resolve_config(deepspeed_config.load_config(path.stem), batch=("b", 8), clip=("c", 1.0),
                                          world_size=2)["train_batch_size"] == 8
    with pytest.raises(FileNotFoundError, match="zero0, zero1"):
        deepspeed_config.load_config("zero9")


def test_overrides_name_their_stage():
    cfgs = distributed.stage_configs(["sft", "ppo"], ["sft.lr=1e-4", "ppo.updates=3"])
    assert cfgs["sft"].lr == 1e-4 and cfgs["ppo"].updates == 3
    assert distributed.stage_configs(["rm"], ["lr=1e-4"])["rm"].lr == 1e-4
    with pytest.raises(ValueError, match="prefix the field"):
        distributed.stage_configs(["sft", "ppo"], ["lr=1e-4"])
    with pytest.raises(ValueError, match="not run here"):
        distributed.stage_configs(["sft"], ["ppo.lr=1e-4"])


def test_distributed_trainers_are_unchanged(zero3_run):
    """The DeepSpeed path's curves under ZeRO-3 on two processes, pinned like the one-process trainers."""
    from test_invariants import check_against_reference
    sft_h, rm_m, ppo_h = zero3_run["sft"][0]["history"], zero3_run["rm"][0], zero3_run["ppo"][0]["history"]
    check_against_reference("deepspeed_zero3", {
        "sft": {k: sft_h[k] for k in ("step", "train_loss", "heldout_loss")},
        "rm": {"history": rm_m["history"], "norm": rm_m["norm"], "heldout_accuracy": rm_m["heldout_accuracy"]},
        "ppo": {k: ppo_h[k] for k in ("score", "kl_seq", "policy_loss", "value_loss", "entropy", "length")},
        **{name: {k: zero3_run[name][0]["history"][k] for k in ("score", "kl_seq", "loss")}
           for name in ("grpo", "rloo")},
        "dpo": zero3_run["dpo"][0]["history"]})
