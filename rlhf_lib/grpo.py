"""GRPO against the reward model, or against a verifiable reward (lesson 08).

Group Relative Policy Optimization (Shao et al. 2024, DeepSeekMath) keeps PPO's clipped ratio and drops its critic:
each prompt is answered G times, and the group is its own baseline. Three models instead of PPO's four: the policy
π_θ (trained, from SFT), the frozen reference π_ref (the SFT model) and the frozen reward model (none at all with a
verifiable reward). One iteration, as the loop reads:

    1. prompts     the next batch_size prompts of a shuffled order; under DeepSpeed this rank's share of them
    2. rollout     each prompt G times, sampled with the KV cache (`generation.sample`)
    3. score       r(x, y) from the reward model or the verifiable check; a response without EOS gets no_eos_penalty
    4. forward     log π_old(y_t) and log π_ref(y_t) of the sampled tokens (no values: there is no critic)
    5. advantages  Â_i = (r_i − mean(r_group)) / (std(r_group) + ε), the same for every token of response i
    6. update      `epochs` passes of minibatches of   clipped surrogate with Â_i  +  β · k3 KL to π_ref

The KL is a term of the loss (`losses.grpo_loss`), not a penalty in the reward as in PPO. A group whose G responses
all get the same reward has Â = 0 for all of them: it teaches nothing (the loop counts such groups). RLOO
(`rloo.py`) is this loop with another advantage (the mean of the other k − 1 rewards as baseline, the KL in the
reward) and REINFORCE's loss: `run_groups` takes the method's `advantages` and `step`.

**Verifiable reward** (`reward_kind='verifiable'`): on the families whose answer the world checks exactly, the
reward is 1 for a right answer and 0 otherwise (`verifiable_score`: the bare intent label; the asked year of a
factual question and no untrue year), and no reward model is loaded — the pattern of today's reasoning models, which
are trained with GRPO against answers that can be checked.

    cfg = GRPOConfig()                # or panel.value
    metrics = run(cfg)                # writes artifacts/grpo/ (and artifacts/grpo/eval.json)
"""
from __future__ import annotations

import functools
import random
import re
import resource
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from . import stages
from .config import fixed, knob, nested, validate
from .data import check_stage_fields
from .generation import SamplingConfig
from .group_rollout import Groups, rollout_groups
from .losses import grpo_loss
from .memory import release_freed_memory
from .paraphrases import right_fact, right_label
from .ppo import fixed_eval_records, gold_eval, gold_scores, reward_model_fn
from .rl import (
    entropy_from_logits,
    group_advantages,
    kl_estimates,
    logprobs_from_logits,
    masked_mean,
    sequence_kl,
    zero_advantage_groups,
)
from .rollout import response_logits
from .training import LOCAL, NonFinite, Parallel, adamw, check_finite, save_stage, stage_info
from .world import CATEGORIES


@dataclass(frozen=True, kw_only=True)
class GRPOConfig:
    """GRPO hyperparameters (lesson 08). The defaults generate as many responses per update as PPOConfig's."""
    # the run
    updates: int = knob(12, lo=1, hi=2000, help="GRPO iterations; each samples G responses to batch_size prompts")
    batch_size: int = knob(16, lo=1, hi=1024, help="prompts per update (16 × G = 4 responses: PPO's 64)")
    group_size: int = knob(4, lo=2, hi=64, help="G: responses per prompt, the group that is the baseline "
                                                "(DeepSeekMath: 64)")
    minibatch_size: int = knob(8, lo=1, hi=4096, help="responses per gradient step (divides batch_size × G)")
    epochs: int = knob(1, lo=1, hi=16, help="μ: passes over each rollout batch")
    lr: float = knob(1e-4, lo=1e-7, hi=1e-2, log=True, help="Adam learning rate (DeepSeekMath: 1e-6 at 7B)")
    beta: float = knob(0.04, lo=0.0, hi=1.0, step=0.005, help="β: weight of the k3 KL to the reference in the loss "
                                                              "(DeepSeekMath: 0.04)")
    clip_eps: float = knob(0.2, lo=0.0, hi=1.0, step=0.01, help="ε: policy ratio clip range (must be > 0)")
    adv_eps: float = fixed(1e-4, help="ε added to the group's standard deviation (TRL: 1e-4)")
    reward_kind: str = knob("rm", choices=("rm", "verifiable"),
                            help="the reward model, or the exact 0/1 check of intent labels and factual years "
                                 "(trains on those RL prompts only; no reward model is loaded)")
    max_grad_norm: float = fixed(1.0, help="gradient-norm clip")
    betas: tuple[float, float] = fixed((0.9, 0.999), help="Adam β1, β2")
    adam_eps: float = fixed(1e-5, help="Adam ε (as PPOConfig)")
    # sampling
    sampling: SamplingConfig = nested(SamplingConfig(), help="how the policy samples its responses (temperature > 0)")
    no_eos_penalty: float = knob(-3.0, lo=-20.0, hi=0.0, step=0.5, help="score given to a response that never "
                                                                        "emitted EOS, instead of the reward's")
    # bookkeeping
    score_batch_size: int = fixed(64, help="responses per forward pass of the reward model")
    gold_every: int = fixed(4, help="updates between gold scores on the fixed evaluation batch (0 = never)")
    gold_batch: int = fixed(64, help="held-out prompts in the fixed gold evaluation batch")
    evaluate: bool = fixed(True, help="after training, evaluate the saved stage on all held-out prompts")
    seed: int = fixed(0, help="seed for prompt order and sampling")
    init: str = fixed("sft", help="stage the policy and the reference start from")
    reward: str = fixed("rm", help="stage of the reward model (not loaded when reward_kind='verifiable')")
    out: str = fixed("grpo", help="stage written ('' = do not save)")

    def __post_init__(self):
        validate(self)
        check_group_config(self)


def check_group_config(cfg, stage_fields: tuple[str, ...] = ("init", "reward", "out")) -> None:
    """The cross-field rules GRPOConfig and RLOOConfig share; ValueError naming the field and the fix."""
    check_stage_fields(cfg, *stage_fields, empty_ok=("out",))
    name, n = type(cfg).__name__, cfg.batch_size * cfg.group_size
    if cfg.minibatch_size > n or n % cfg.minibatch_size:
        raise ValueError(f"{name}.minibatch_size = {cfg.minibatch_size} does not divide batch_size × group_size = "
                         f"{cfg.batch_size} × {cfg.group_size} = {n} responses per update; choose a divisor of {n}")
    if getattr(cfg, "clip_eps", 1.0) <= 0:
        raise ValueError(f"{name}.clip_eps = {cfg.clip_eps} must be > 0; with ε = 0 every ratio is clipped and the "
                         "policy gets no gradient (try 0.2)")
    if cfg.sampling.temperature <= 0:
        raise ValueError(f"{name}.sampling.temperature = {cfg.sampling.temperature}: the G responses of a group "
                         "must differ, and the loss needs log-probabilities; use temperature > 0 (e.g. 0.7)")


class GroupError(RuntimeError):
    """A run stopped on a non-finite number; the message names the phase, the update and the likely fix."""


# ------------------------------------------------------------------------------------------------- GRPO's pieces
def grpo_advantages(g: Groups, cfg) -> tuple[torch.Tensor, torch.Tensor]:
    """5. (advantages (B,), the rewards they come from (B,)): Â_i = (r_i − mean) / (std + ε) within each group."""
    return group_advantages(g.scores, cfg.group_size, cfg.adv_eps), g.scores


def grpo_step(policy, mb: Groups, cfg) -> tuple[torch.Tensor, dict]:
    """6. GRPO's loss on one minibatch (`losses.grpo_loss`), with the entropy of the policy for the logs."""
    logits = response_logits(policy, mb.sequences, mb.attention_mask, mb.prompt_lens, mb.actions.shape[1],
                             cfg.sampling.temperature)                      # (b, T, V)
    logp = logprobs_from_logits(logits, mb.actions)                         # (b, T)
    loss, stats = grpo_loss(logp, mb.logp, mb.ref_logp, mb.adv, mb.mask, clip_eps=cfg.clip_eps, beta=cfg.beta)
    with torch.no_grad():
        stats["entropy"] = masked_mean(entropy_from_logits(logits), mb.mask)
    return loss, {"loss": loss.detach(), **stats}


HISTORY_KEYS = ("update", "score", "reward", "gold", "gold_eval", "kl_seq", "kl_k3", "loss", "pg_loss", "kl",
                "clip_frac", "ratio_mean", "ratio_max", "entropy", "eos_rate", "length", "tokens", "zero_adv_frac",
                "zero_adv_best_frac", "t_generate", "t_score", "t_forward", "t_update")
STEP_KEYS = ("loss", "pg_loss", "kl", "clip_frac", "ratio_mean", "entropy")
SUMMED = ("tokens",)                            # agreed across ranks by their sum; ratio_max by its max; the rest mean


# ------------------------------------------------------------------------------------------------- the loop
def train(cfg, policy, ref, tokenizer, prompts: list[dict], reward_fn, *, advantages=grpo_advantages,
          step=grpo_step, name: str = "GRPO", gold_fn=None, gold_records: list[dict] | None = None, on_log=None,
          par: Parallel = LOCAL) -> dict:
    """The group loop on given models (GRPO's pieces by default; RLOO passes its own). `reward_fn(records, texts)
    -> (B,)` scores responses; `advantages(groups, cfg) -> (adv, rewards)`; `step(policy, minibatch, cfg) -> (loss,
    stats)`; `gold_fn(records, texts) -> list[float]` (optional) gives the gold score of the rollouts and of
    `gold_records` every `cfg.gold_every` updates. Returns the history: one list per HISTORY_KEYS entry, the
    zero-advantage groups by category, and `samples` (the last rollout). Under DeepSpeed (`par`) each rank takes
    whole groups (its share of the prompts, each answered G times) and the numbers are agreed across ranks."""
    torch.manual_seed(cfg.seed + par.rank)            # different samples on each rank …
    rng = random.Random(cfg.seed)                     # … from the same prompt order
    ref.eval(), ref.requires_grad_(False)
    opt = adamw(policy.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=0.0, eps=cfg.adam_eps)
    engine = par.engine([policy], opt, clip=[(list(policy.parameters()), cfg.max_grad_norm)])
    micro, G = par.micro(cfg.minibatch_size), cfg.group_size
    h = {k: [] for k in HISTORY_KEYS}
    cats = list(CATEGORIES) + sorted({r["category"] for r in prompts} - set(CATEGORIES))    # + e.g. lesson 09's sql
    groups = {c: [0.0, 0.0] for c in cats}            # category -> [groups, zero-advantage groups]
    order: list[int] = []
    bar = par.progress(range(cfg.updates), name)
    with par.device():
        for i in bar:
            try:
                # 1. this rank's share of the next batch_size prompts
                if len(order) < cfg.batch_size:
                    order += rng.sample(range(len(prompts)), len(prompts))      # a fresh shuffle each pass
                batch, order = par.shard([prompts[j] for j in order[:cfg.batch_size]]), order[cfg.batch_size:]
                # 2–4. each prompt G times: sample, score, log-probs
                timings: dict = {}
                g = rollout_groups(policy, ref, tokenizer, batch, reward_fn, group_size=G, sampling=cfg.sampling,
                                   no_eos_penalty=cfg.no_eos_penalty, timings=timings)
                # 5. one advantage per response, from its group
                g.adv, rewards = advantages(g, cfg)                             # (B,), (B,)
                check_finite("5. advantages", adv=g.adv)
                zero = zero_advantage_groups(rewards, G)                        # (P,)
                common = rewards.view(-1, G)[:, 0]                              # (P,) a tied group's reward
                best = zero & (common >= rewards.mean()) & (common > rewards.min())     # (P,) tied high: solved
                # 6. `epochs` passes of minibatch updates
                t = time.perf_counter()
                policy.train()
                step_stats = []
                for _ in range(cfg.epochs):
                    perm = torch.randperm(len(g), device="cpu")
                    for start in range(0, len(g), micro):
                        loss, stats = engine(step, g[perm[start:start + micro]], cfg)
                        check_finite("6. update", loss=loss)
                        engine.step(loss)
                        step_stats.append(stats)
                timings["update"] = time.perf_counter() - t
            except NonFinite as e:
                raise GroupError(f"{name} stopped: non-finite {', '.join(e.names)} in phase '{e.phase}' at update "
                                 f"{i}{f' on rank {par.rank}' if par.rank else ''}. Likely fix: lower lr (now "
                                 f"{cfg.lr}) or clip the rewards; nothing was saved") from None
            for p, z in enumerate(zero.tolist()):
                groups[g.records[p * G]["category"]][0] += 1
                groups[g.records[p * G]["category"]][1] += z
            gold = gold_fn(g.records, g.texts) if gold_fn is not None else [float("nan")] * len(g)
            due = gold_fn and gold_records and cfg.gold_every and (i % cfg.gold_every == 0 or i == cfg.updates - 1)
            log_update(h, i, g, rewards, zero, best, step_stats, timings, gold,
                       gold_eval(policy, tokenizer, gold_records, gold_fn, cfg) if due else float("nan"))
            agree(h, par)
            bar.set_postfix(score=f"{h['score'][-1]:.2f}", kl=f"{h['kl_seq'][-1]:.2f}",
                            zero=f"{h['zero_adv_frac'][-1]:.2f}")
            if on_log is not None:
                on_log(h)
    counts = par.reduce([n for c in cats for n in groups[c]], "sum")
    h["groups_by_category"] = {c: {"groups": int(counts[2 * k]), "zero_adv": int(counts[2 * k + 1])}
                               for k, c in enumerate(cats) if counts[2 * k]}
    samples = [{"id": r.get("id", ""), "category": r.get("category", ""), "prompt": r["prompt"], "response": t,
                "score": float(s), "adv": float(a), "gold": gd}
               for r, t, s, a, gd in zip(g.records, g.texts, g.scores, g.adv, gold)]
    h["samples"] = [s for part in par.gather(samples) for s in part]
    return h


def log_update(h: dict, i: int, g: Groups, rewards, zero, best, step_stats: list[dict], timings: dict,
               gold: list[float], gold_held: float) -> None:
    """Append update i's numbers to the history `h` (this rank's; `agree` makes them every rank's)."""
    h["update"].append(i)
    h["score"].append(float(g.scores.mean())), h["reward"].append(float(rewards.mean()))
    h["gold"].append(sum(gold) / len(gold)), h["gold_eval"].append(gold_held)
    h["kl_seq"].append(float(sequence_kl(g.logp, g.ref_logp, g.mask).mean()))
    h["kl_k3"].append(float(kl_estimates(g.logp, g.ref_logp, g.mask)["k3"]))
    for k in STEP_KEYS:
        h[k].append(float(torch.stack([s[k] for s in step_stats]).mean()) if k in step_stats[0] else float("nan"))
    h["ratio_max"].append(max(float(s["ratio_max"]) for s in step_stats) if "ratio_max" in step_stats[0]
                          else float("nan"))
    h["eos_rate"].append(float(g.ended.float().mean())), h["length"].append(float(g.mask.sum(-1).mean()))
    h["tokens"].append(float(g.mask.sum()))
    h["zero_adv_frac"].append(float(zero.float().mean())), h["zero_adv_best_frac"].append(float(best.float().mean()))
    for k in ("generate", "score", "forward", "update"):
        h[f"t_{k}"].append(round(timings[k], 3))


def agree(h: dict, par: Parallel) -> None:
    """Replace this update's numbers by their mean over the ranks (tokens by their sum, ratio_max by its max)."""
    for keys, op in (([k for k in HISTORY_KEYS if k not in ("update", "ratio_max", *SUMMED)], "mean"),
                     (list(SUMMED), "sum"), (["ratio_max"], "max")):
        for k, v in zip(keys, par.reduce([h[k][-1] for k in keys], op)):
            h[k][-1] = v


# ------------------------------------------------------------------------------------------------- a verifiable reward
YEAR_ASKS = ("year", "born", "died")                  # factual questions whose answer is a year


def verifiable(record: dict) -> bool:
    """Can the world check an answer to this prompt exactly? Intent labels, and factual questions asking a year."""
    return record["category"] == "intent" or (record["category"] == "factual"
                                              and record["meta"].get("ask") in YEAR_ASKS)


def verifiable_score(record: dict, response: str) -> float:
    """1.0 if the answer is right, else 0.0: exactly the right intent label and nothing else
    (`paraphrases.right_label`), or the asked year of the subject and no year untrue of it (`paraphrases.right_fact`).
    No model and no labeler's taste: a string check, like a math answer compared with the solution."""
    if not verifiable(record):
        raise ValueError(f"verifiable_score: prompt {record.get('id', '?')} ({record['category']}) has no exact "
                         "check; only intent prompts and factual questions asking a year do (grpo.verifiable)")
    return float(right_label(record, response) if record["category"] == "intent" else right_fact(record, response))


def verifiable_reward(records: list[dict], texts: list[str]) -> torch.Tensor:
    """`reward_fn` of the verifiable reward: (B,) of 0/1."""
    return torch.tensor([verifiable_score(r, t) for r, t in zip(records, texts)])


# ------------------------------------------------------------------------------------------------- the stage
class PeakMemory:
    """Peak resident memory of this process (RSS, MiB) from its creation on: Linux's VmHWM after resetting it
    through /proc/self/clear_refs. It counts everything resident (the Python runtime, libraries, earlier runs'
    leftovers), so compare runs measured the same way in the same process. Where the reset is not available it
    falls back to `resource.getrusage`'s ru_maxrss, the peak since the process started (`resets` is then False).
    Free memory that the allocator kept for reuse (`memory.py`) is handed back first, so an earlier run's freed
    blocks count neither in the start nor in this run's peak."""

    def __init__(self):
        release_freed_memory()
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self.resets = True
        except OSError:
            self.resets = False
        self.start = self._status("VmRSS")

    @staticmethod
    def _status(key: str) -> float:
        try:
            return int(re.search(rf"{key}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024
        except (OSError, AttributeError):
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def peak(self) -> float:
        return self._status("VmHWM") if self.resets else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def checked_prompts(cfg, verifiable_only: bool = False) -> list[dict]:
    """The RL prompts (only the verifiable ones if asked), at least batch_size of them, and the held-out ones, checked
    before any model is loaded (`evaluation.fitting_prompts`)."""
    from .evaluation import DEFAULT_GENERATION, fitting_prompts
    name, new = type(cfg).__name__, cfg.sampling.max_new_tokens
    rows = [r for _, r in fitting_prompts("rl_prompts.jsonl", cfg.init, new, f"{name}.sampling.max_new_tokens",
                                          reward=None if verifiable_only else cfg.reward)]
    rows = [r for r in rows if verifiable(r)] if verifiable_only else rows
    if len(rows) < cfg.batch_size:
        raise ValueError(f"{name}.batch_size = {cfg.batch_size}: only {len(rows)} RL prompts"
                         f"{' can be checked exactly' if verifiable_only else ''}; lower batch_size")
    held = max(new * bool(cfg.gold_every), DEFAULT_GENERATION.max_new_tokens * bool(cfg.out and cfg.evaluate))
    if held:
        fitting_prompts("eval_prompts.jsonl", cfg.init, held, "max_new_tokens of the gold batch and the evaluation")
    return rows


def held_out_verifiable() -> list[dict]:
    """The held-out prompts the world can check exactly (intent labels, factual years)."""
    from .evaluation import eval_prompts
    return [r for r in eval_prompts() if verifiable(r)]


def run_groups(cfg, name: str, on_log=None, reward_fn=None, *, par: Parallel = LOCAL, prompts: list[dict] | None = None,
               gold: tuple | None = None, **method) -> dict:
    """Train with the group loop from stage `cfg.init` against stage `cfg.reward` (or the verifiable reward, or
    `reward_fn(records, texts) -> (B,)` if given); save stage `cfg.out` with metrics.json and (if cfg.evaluate)
    eval.json. `prompts` (default: the world's RL prompts) and `gold = (gold_fn, gold_records)` (default: the gold
    labeler on a fixed held-out batch) let another task family train with the same loop, as lesson 09's SQL does.
    `method`: the loop's `advantages` and `step` (GRPO's by default). Returns the metrics."""
    from .evaluation import evaluate_into
    from .models import load_causal_lm
    from .reward_model import load_reward_model
    t0, memory = time.time(), PeakMemory()
    check = getattr(cfg, "reward_kind", "rm") == "verifiable" and reward_fn is None
    if par.world > 1 and cfg.batch_size % par.world:
        raise ValueError(f"{type(cfg).__name__}.batch_size = {cfg.batch_size} prompts do not split over {par.world} "
                         "processes (each takes whole groups); make batch_size a multiple of the number of processes")
    # 0. the prompts (checked before any model is loaded) and the three models (two with the verifiable reward)
    own_task = reward_fn is not None and prompts is not None          # another task with its own reward: no RM read
    prompts = checked_prompts(cfg, verifiable_only=check) if prompts is None else prompts
    policy, tokenizer = load_causal_lm(stages.existing(cfg.init))
    ref, _ = load_causal_lm(stages.stage_dir(cfg.init))
    held = {"policy": policy, "reference": ref}
    if reward_fn is None and not check:
        rm, rm_tok, norm = load_reward_model(stages.existing(cfg.reward))
        held["reward model"] = rm
    models = {k: sum(p.numel() for p in m.parameters()) for k, m in held.items()}     # before ZeRO-3 partitions them
    ref = par.frozen(ref)
    if "reward model" in held:
        reward_fn = reward_model_fn(par.frozen(rm), rm_tok, norm, cfg.score_batch_size)
    reward_fn = verifiable_reward if check else reward_fn
    if par.lockstep:                # ZeRO-3: a rank whose responses all ended keeps stepping until every rank is done
        policy.generate = functools.partial(policy.generate, synced_gpus=True)
    gold_fn, gold_records = gold if gold is not None else (gold_scores, (
        held_out_verifiable() if check else fixed_eval_records(cfg.gold_batch, cfg.seed)) if cfg.gold_every else None)
    h = train(cfg, policy, ref, tokenizer, prompts, reward_fn, name=name, gold_fn=gold_fn,
              gold_records=gold_records, on_log=on_log, par=par, **method)
    t_phase = {k: round(sum(h[f"t_{k}"]) / len(h["update"]), 3) for k in ("generate", "score", "forward", "update")}
    peak = par.reduce([memory.peak(), memory.start], "max")
    metrics = {"final_score": h["score"][-1], "initial_score": h["score"][0], "final_gold": h["gold"][-1],
               "initial_gold": h["gold"][0], "final_kl_seq": h["kl_seq"][-1], "updates": cfg.updates,
               "responses_per_update": cfg.batch_size * cfg.group_size,
               "tokens_per_update": round(sum(h["tokens"]) / len(h["tokens"]), 1),
               "zero_adv_frac": round(sum(h["zero_adv_frac"]) / len(h["zero_adv_frac"]), 4),
               "groups_by_category": h["groups_by_category"],
               "models": models,
               "peak_rss_mb": round(peak[0], 1), "rss_at_start_mb": round(peak[1], 1),
               "peak_rss_measure": "VmHWM reset at the start" if memory.resets else "ru_maxrss (since process start)",
               "s_per_update": round(sum(t_phase.values()), 3), "s_per_phase": t_phase,
               "wall_s": round(time.time() - t0, 1), "samples": h["samples"],
               "history": {k: h[k] for k in HISTORY_KEYS}}
    if cfg.out:
        upstream = [cfg.init] + [cfg.reward] * (not (check or own_task))
        save_stage(par, cfg.out, policy, tokenizer, stage_info(cfg.out, cfg, upstream),
                   metrics)
        if cfg.evaluate:
            metrics = par.once(lambda: evaluate_into(cfg.out, metrics))
    return metrics


def run(cfg: GRPOConfig, on_log=None, reward_fn=None, *, par: Parallel = LOCAL) -> dict:
    """Train GRPO (`run_groups` with GRPO's advantages and loss); save stage `cfg.out`. Returns the metrics."""
    return run_groups(cfg, "GRPO", on_log, reward_fn, par=par)


def summary(m: dict) -> str:
    """One line of a finished GRPO or RLOO run's metrics (the command line prints it)."""
    parts = [f"{m['updates']} updates, reward {m['initial_score']:.2f} → {m['final_score']:.2f}, "
             f"gold {m['initial_gold']:.3f} → {m['final_gold']:.3f}, KL {m['final_kl_seq']:.2f} nats, "
             f"{m['zero_adv_frac']:.0%} zero-advantage groups, {m['s_per_update']:.2f} s/update"]
    if "eval_gold_mean" in m:
        parts.append(f"eval gold mean {m['eval_gold_mean']:.3f}")
    return ", ".join(parts) + f", {m['wall_s']} s"
