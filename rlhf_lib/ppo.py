"""PPO against the reward model — InstructGPT step 3 (lesson 04).

"Optimize a policy against the reward model using PPO." The policy π_θ (initialised from SFT) answers prompts x;
the frozen reward model scores each answer; PPO raises the probability of better-scored answers while a per-token KL
penalty keeps π_θ near the frozen SFT model π_SFT (the *reference*). InstructGPT's objective (eq. 2):

    objective(θ) = E_{(x,y)∼π_θ} [ r_φ(x, y) − β log(π_θ(y|x) / π_SFT(y|x)) ]  +  γ E_{x∼D_pretrain} [ log π_θ(x) ]

The last term is **PPO-ptx** (γ = `ptx_coef`); with γ = 0 it is plain PPO. One PPO iteration, as the loop reads:

    1. rollout    sample prompts, generate responses with the KV cache (temperature, top-k/p, max length, EOS stop)
    2. score      reward model score r_φ(x, y); a response that never emitted EOS gets `no_eos_penalty` instead
    3. forward    log π_θ_old(y_t), log π_SFT(y_t) of the *sampled* tokens, critic values V(s_t)
    4. rewards    r_t = −β (log π_old(y_t) − log π_SFT(y_t)), plus the score on the last response token
    5. advantages GAE: δ_t = r_t + γ V_{t+1} − V_t,  A_t = δ_t + γλ A_{t+1};  returns R_t = A_t + V_t;  whiten A
    6. update     K epochs of minibatches: clipped policy loss + clipped value loss (+ γ_ptx · pretraining loss)
    7. KL control β ← β (1 + e n / horizon), e = clip(KL/target − 1, ±0.2)   (Ziegler et al. 2019), or β fixed

Phases 1–5 (the rollout and its `Memory`) are `rollout.py`; this file is the update (phase 6), the KL control,
the loop and the stage. ChatLLaMA's mistakes in the same recipe are measured in `chatllama_bugs.py`.

**Implementation details** (Huang et al. 2023, "The N implementation details of RLHF with PPO"), each marked `# detail`:
the reward model and critic read prompt ⊕ response; the RM is normalised (gain, bias) so SFT samples score mean 0
and std 1; the KL penalty is in the reward, per token; log-probs use the sampling temperature (π is the distribution we
actually sample from); advantages are whitened per batch; responses that never end get a fixed penalty score
(Ziegler et al.: responses without a period got −1); the critic is initialised from the reward model, as InstructGPT
did; a non-finite number anywhere stops the run, naming the phase and the update, with the last good policy saved.

    cfg = PPOConfig()                 # or panel.value
    metrics = run(cfg)                # writes artifacts/ppo/ (and artifacts/ppo/eval.json)
"""
from __future__ import annotations

import copy
import functools
import random
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from . import stages
from .config import fixed, knob, nested, validate
from .data import check_stage_fields
from .generation import SamplingConfig, sample
from .losses import ppo_policy_loss, ppo_value_loss
from .ppo_diagnostics import FIXES, HISTORY_KEYS, agree, health_warnings, log_update
from .rl import entropy_from_logits, kl_controller, kl_estimates, logprobs_from_logits, masked_mean, sequence_kl
from .rollout import Critic, Memory, decode_responses, make_memory, memory_logits, response_mask
from .training import LOCAL, NonFinite, Parallel, adamw, check_finite, save_stage, stage_info


@dataclass(frozen=True, kw_only=True)
class PPOConfig:
    """PPO hyperparameters (lesson 04)."""
    # the run
    updates: int = knob(16, lo=1, hi=2000, help="PPO iterations; each is one rollout batch and K epochs on it")
    batch_size: int = knob(64, lo=2, hi=1024, help="prompts per rollout batch (one response each)")
    minibatch_size: int = knob(8, lo=1, hi=1024, help="responses per gradient step (≤ batch_size)")
    ppo_epochs: int = knob(1, lo=1, hi=16,
                           help="K: passes over each rollout batch (DeepSpeed-Chat found 1 most stable)")
    lr: float = knob(5e-5, lo=1e-7, hi=1e-2, log=True, help="Adam learning rate of the policy and the critic "
                                                           "(1e-4 won less against SFT, and less evenly over seeds)")
    # the KL penalty
    kl_mode: str = knob("fixed", choices=("fixed", "adaptive"), help="β constant, or adapted toward kl_target")
    beta: float = knob(0.05, lo=0.0, hi=1.0, step=0.005, help="β: KL penalty per token (InstructGPT: 0.02); "
                                                               "the initial β when adaptive")
    kl_target: float = knob(4.0, lo=0.1, hi=50.0, step=0.1, help="adaptive mode: target KL per response in nats "
                                                                 "(Ziegler et al.: 6)")
    kl_horizon: int = fixed(10_000, help="adaptive mode: responses over which β moves by up to ±20 % (Ziegler: 10k)")
    # PPO
    clip_eps: float = knob(0.2, lo=0.0, hi=1.0, step=0.01, help="ε: policy ratio clip range (must be > 0)")
    vf_clip_eps: float = knob(0.2, lo=0.0, hi=10.0, step=0.05, help="value clip range around the rollout's values")
    gamma: float = knob(1.0, lo=0.0, hi=1.0, step=0.01, help="γ: discount over response tokens")
    lam: float = knob(0.95, lo=0.0, hi=1.0, step=0.01, help="λ: GAE bias/variance trade-off")
    vf_coef: float = knob(0.5, lo=0.0, hi=10.0, step=0.05, help="weight of the value loss")
    critic: str = knob("rm", choices=("rm", "policy_head"),
                       help="critic initialised from the reward model (InstructGPT) or a value head on the policy")
    max_grad_norm: float = fixed(1.0, help="gradient-norm clip, applied to policy and critic separately")
    betas: tuple[float, float] = fixed((0.9, 0.999), help="Adam β1, β2")
    adam_eps: float = fixed(1e-5, help="Adam ε (1e-5, as OpenAI's lm-human-preferences and TRL)")
    # PPO-ptx
    ptx_coef: float = knob(0.0, lo=0.0, hi=50.0, step=0.1, help="γ_ptx: weight of the pretraining loss "
                                                                 "(0 = plain PPO; InstructGPT: 27.8)")
    ptx_batch_size: int = fixed(4, help="web-corpus blocks (128 tokens each) per gradient step when ptx_coef > 0")
    # sampling
    sampling: SamplingConfig = nested(SamplingConfig(), help="how the policy samples its responses (temperature > 0; "
                                                            "Ziegler et al.: 0.7)")
    no_eos_penalty: float = knob(-3.0, lo=-20.0, hi=0.0, step=0.5, help="score given to a response that never "
                                                                        "emitted EOS, instead of the RM's")
    # bookkeeping
    score_batch_size: int = fixed(64, help="responses per forward pass of the reward model")
    gold_every: int = fixed(10, help="updates between gold scores on the fixed evaluation batch (0 = never)")
    gold_batch: int = fixed(64, help="held-out prompts in the fixed gold evaluation batch")
    evaluate: bool = fixed(True, help="after training, evaluate the saved stage on all held-out prompts")
    seed: int = fixed(0, help="seed for prompt order and sampling")
    init: str = fixed("sft", help="stage the policy and the reference start from")
    reward: str = fixed("rm", help="stage of the reward model (and the critic's initialisation)")
    out: str = fixed("ppo", help="stage written ('ppo'; lesson 04 writes PPO-ptx to 'ppo_ptx'; '' = do not save)")

    def __post_init__(self):
        validate(self)
        check_stage_fields(self, "init", "reward", "out", empty_ok=("out",))
        name = type(self).__name__
        if self.minibatch_size > self.batch_size:
            raise ValueError(f"{name}.minibatch_size = {self.minibatch_size} is larger than batch_size = "
                             f"{self.batch_size}; a minibatch is a slice of the rollout batch: lower minibatch_size")
        if self.clip_eps <= 0:
            raise ValueError(f"{name}.clip_eps = {self.clip_eps} must be > 0; with ε = 0 every ratio is clipped "
                             "and the policy gets no gradient (try 0.2)")
        if self.vf_clip_eps <= 0:
            raise ValueError(f"{name}.vf_clip_eps = {self.vf_clip_eps} must be > 0; the value would never move "
                             "(try 0.2)")
        if self.sampling.temperature <= 0:
            raise ValueError(f"{name}.sampling.temperature = {self.sampling.temperature}: PPO needs a stochastic "
                             "policy to have log-probabilities and exploration; use temperature > 0 (e.g. 0.7)")
        if self.kl_mode == "adaptive" and self.beta <= 0:
            raise ValueError(f"{name}.beta = {self.beta}: the adaptive controller multiplies β, so it cannot "
                             "start at 0; give beta > 0 or use kl_mode='fixed'")


class PPOError(RuntimeError):
    """A run stopped on a non-finite number; the message names the phase, the update and the saved checkpoint."""


class PPOWarning(UserWarning):
    """A diagnostic looks wrong (likely cause and fix in the message); training goes on."""


def ppo_step(policy, critic, mb: Memory, cfg: PPOConfig, ptx_blocks: torch.Tensor | None = None):
    """Losses of one minibatch: clipped policy loss + vf_coef · clipped value loss (+ ptx_coef · LM loss).

    Returns (loss, stats) with stats as detached scalars."""
    logits = memory_logits(policy, mb, cfg.sampling.temperature)                     # (B, T, V)
    logp = logprobs_from_logits(logits, mb.actions)                          # (B, T)
    pg_loss, pg_stats = ppo_policy_loss(logp, mb.logp, mb.adv, mb.mask, clip_eps=cfg.clip_eps)
    values = critic(mb.sequences, mb.attention_mask, mb.prompt_lens, mb.actions.shape[1])   # (B, T)
    vf_loss, vf_stats = ppo_value_loss(values, mb.values, mb.returns, mb.mask, clip_eps=cfg.vf_clip_eps)
    loss = pg_loss + cfg.vf_coef * vf_loss
    stats = {"policy_loss": pg_loss.detach(), "value_loss": vf_loss.detach(), "clip_frac": pg_stats["clip_frac"],
             "approx_kl": pg_stats["approx_kl"], "ratio_mean": pg_stats["ratio_mean"],
             "ratio_max": pg_stats["ratio_max"], "vf_clip_frac": vf_stats["clip_frac"]}
    with torch.no_grad():
        stats["entropy"] = masked_mean(entropy_from_logits(logits), mb.mask)
    if ptx_blocks is not None and cfg.ptx_coef > 0:                          # PPO-ptx: γ E_pretrain[log π(x)]
        ptx_loss = policy(input_ids=ptx_blocks, labels=ptx_blocks).loss
        loss = loss + cfg.ptx_coef * ptx_loss
        stats["ptx_loss"] = ptx_loss.detach()
    return loss, stats


def collect(policy, ref, critic, tokenizer, records: list[dict], reward_fn, cfg: PPOConfig, beta: float,
            timings: dict | None = None) -> Memory:
    """Phases 1–5 (`rollout.make_memory`) for one batch of prompt records with this config's sampling, γ, λ and
    no-EOS penalty, and the KL coefficient β of the current update."""
    return make_memory(policy, ref, critic, tokenizer, records, reward_fn, sampling=cfg.sampling, beta=beta,
                       gamma=cfg.gamma, lam=cfg.lam, no_eos_penalty=cfg.no_eos_penalty, timings=timings)


# ------------------------------------------------------------------------------------------------- the loop
def train(cfg: PPOConfig, policy, ref, critic, tokenizer, prompts: list[dict], reward_fn, *, gold_fn=None,
          gold_records: list[dict] | None = None, ptx_blocks: torch.Tensor | None = None, on_log=None,
          last_good_dir: Path | None = None, par: Parallel = LOCAL) -> dict:
    """The PPO loop on given models. `reward_fn(records, texts) -> (B,)` scores responses; `gold_fn(records,
    texts) -> list[float]` (optional) gives the gold score of the rollouts and of `gold_records` every
    `cfg.gold_every` updates. Returns the history: one list per diagnostic (a value per update), `warnings`, and
    `samples` (the last rollout with its RM and gold scores, to read what the policy learned).

    On a non-finite number the policy of the last finite update is saved to `last_good_dir` (if given) and
    `PPOError` names the phase and the update. Under DeepSpeed (`par`) each rank rolls out its share of every batch
    with its own seed, advantages are whitened per rank, and the diagnostics are averaged over the ranks."""
    torch.manual_seed(cfg.seed + par.rank)            # different samples on each rank …
    rng = random.Random(cfg.seed)                     # … from the same prompt order
    ref.eval(), ref.requires_grad_(False)
    params = list(dict.fromkeys(list(policy.parameters()) + list(critic.parameters())))    # shared backbone once
    policy_ids = {id(p) for p in policy.parameters()}
    critic_only = [p for p in params if id(p) not in policy_ids]
    opt = adamw(params, lr=cfg.lr, betas=cfg.betas, weight_decay=0.0, eps=cfg.adam_eps)
    engine = par.engine([policy, critic], opt,
                        clip=[(list(policy.parameters()), cfg.max_grad_norm), (critic_only, cfg.max_grad_norm)])
    kl_ctl = kl_controller(cfg.kl_mode, cfg.beta, cfg.kl_target, cfg.kl_horizon)
    micro = par.micro(cfg.minibatch_size)
    h = {k: [] for k in HISTORY_KEYS}
    h["warnings"] = []
    order: list[int] = []
    last_good = copy.deepcopy(policy.state_dict()) if last_good_dir is not None else None
    bar = par.progress(range(cfg.updates), f"PPO{'-ptx' if cfg.ptx_coef > 0 else ''}")
    with par.device():
        for i in bar:
            try:
                # phases 1–5: rollout, score, forward passes, rewards, advantages
                if len(order) < cfg.batch_size:
                    order += rng.sample(range(len(prompts)), len(prompts))      # a fresh shuffle each pass
                batch, order = par.shard([prompts[j] for j in order[:cfg.batch_size]]), order[cfg.batch_size:]
                timings: dict = {}
                mem = collect(policy, ref, critic, tokenizer, batch, reward_fn, cfg, kl_ctl.value, timings)
                kl = kl_estimates(mem.logp, mem.ref_logp, mem.mask)
                kl_per_seq = sequence_kl(mem.logp, mem.ref_logp, mem.mask)     # (B,)
                # 6. K epochs of minibatch updates
                t = time.perf_counter()
                policy.train(), critic.train()
                step_stats = []
                for _ in range(cfg.ppo_epochs):
                    perm = torch.randperm(len(mem), device="cpu")
                    for start in range(0, len(mem), micro):
                        ptx = None
                        if cfg.ptx_coef > 0 and ptx_blocks is not None:
                            pick = torch.randint(len(ptx_blocks), (cfg.ptx_batch_size,), device="cpu")
                            ptx = par.to_device(ptx_blocks[pick])
                        loss, stats = engine(ppo_step, mem[perm[start:start + micro]], cfg, ptx)
                        check_finite("6. update", loss=loss)
                        engine.step(loss)
                        step_stats.append(stats)
                check_finite("6. update", **{f"weight {n}": p for n, p in policy.named_parameters()})
                timings["update"] = time.perf_counter() - t
            except NonFinite as e:
                raise stop_error(e, i, cfg, policy, tokenizer, last_good, last_good_dir, par.rank) from None
            if last_good_dir is not None:
                last_good = copy.deepcopy(policy.state_dict())
            # 7. KL controller: β follows the KL per response over all ranks (adaptive) or stays (fixed)
            h["beta"].append(kl_ctl.value)
            kl_ctl.update(par.reduce([kl_per_seq.mean().item()])[0], cfg.batch_size)
            # diagnostics, agreed across ranks
            log_update(h, i, mem, kl, kl_per_seq, step_stats, timings)
            gold = gold_fn(mem.records, mem.texts) if gold_fn is not None else [float("nan")] * len(mem)
            h["gold"].append(sum(gold) / len(mem))
            due = gold_fn and gold_records and cfg.gold_every and (i % cfg.gold_every == 0 or i == cfg.updates - 1)
            h["gold_eval"].append(gold_eval(policy, tokenizer, gold_records, gold_fn, cfg) if due else float("nan"))
            agree(h, par)
            for msg in health_warnings(h, i, cfg):
                if par.rank == 0:
                    warnings.warn(msg, PPOWarning, stacklevel=2)
                h["warnings"].append(msg)
            bar.set_postfix(score=f"{h['score'][-1]:.2f}", kl=f"{h['kl_seq'][-1]:.2f}", beta=f"{h['beta'][-1]:.3f}")
            if on_log is not None:
                on_log(h)
    samples = [{"id": r.get("id", ""), "category": r.get("category", ""), "prompt": r["prompt"], "response": t,
                "score": float(s), "gold": g} for r, t, s, g in zip(mem.records, mem.texts, mem.scores, gold)]
    h["samples"] = [s for part in par.gather(samples) for s in part]
    return h


@torch.no_grad()
def gold_eval(policy, tokenizer, records, gold_fn, cfg: PPOConfig) -> float:
    """Mean gold score of the policy on a fixed batch of held-out prompts (same sampling as training)."""
    _, _, actions = sample(policy, tokenizer, [r["prompt"] for r in records], cfg.sampling, fmt="chat")
    mask, _ = response_mask(actions, tokenizer.eos_token_id)
    return sum(gold_fn(records, decode_responses(tokenizer, actions, mask))) / len(records)


def stop_error(e: NonFinite, i: int, cfg, policy, tokenizer, last_good, last_good_dir, rank: int = 0) -> PPOError:
    """The PPOError for a non-finite number at update i, after saving the last good policy (if a folder is given)."""
    where = "not saved (no folder given)"
    if last_good_dir is not None:
        policy.load_state_dict(last_good)
        last_good_dir.mkdir(parents=True, exist_ok=True)
        policy.save_pretrained(last_good_dir, safe_serialization=True)
        tokenizer.save_pretrained(last_good_dir)
        where = f"saved to {last_good_dir}"
    on_rank = f" on rank {rank}" if rank else ""
    return PPOError(f"PPO stopped: non-finite {', '.join(e.names)} in phase '{e.phase}' at update {i}{on_rank}. "
                    f"The last good policy (before update {i}) is {where}. "
                    f"Likely fix: {FIXES[e.phase].format(lr=cfg.lr)}.")


# ------------------------------------------------------------------------------------------------- the stage
def gold_scores(records: list[dict], texts: list[str]) -> list[float]:
    """Gold-labeler score of each response (the evaluation's judge, for monitoring)."""
    from .build_data import task_from_record
    from .labelers import score
    return [score(task_from_record(r), t) for r, t in zip(records, texts)]


def gold_reward_fn(center: float = 0.0, scale: float = 1.0):
    """`reward_fn` for `train` that scores with the gold labeler itself: (gold − center) / scale, a *perfect*
    reward model (AlpacaFarm's "oracle" reward). PPO against it shows what the policy can reach in a given budget
    when the reward model makes no mistakes, which separates reward-model errors from the limits of the policy and
    of the optimisation. Only the simulated world can do this; with people, the gold labeler does not exist."""
    if scale <= 0:
        raise ValueError(f"gold_reward_fn: scale = {scale} must be > 0")

    def score(records, texts):
        return torch.tensor([(g - center) / scale for g in gold_scores(records, texts)])
    return score


def reward_model_fn(rm, rm_tokenizer, norm: dict, batch_size: int = 64):
    """`reward_fn` for `train`: the normalised reward-model score of prompt ⊕ response."""
    from .reward_model import score_texts

    def score(records, texts):
        return torch.tensor(score_texts(rm, rm_tokenizer, [r["prompt"] for r in records], texts, norm,
                                        batch_size=batch_size))
    return score


def fixed_eval_records(n: int, seed: int = 0) -> list[dict]:
    """n held-out prompts, balanced over categories: the fixed gold-evaluation batch."""
    from .evaluation import eval_prompts
    recs = eval_prompts()
    cats = sorted({r["category"] for r in recs})
    by_cat = {c: [r for r in recs if r["category"] == c] for c in cats}
    rng = random.Random(seed)
    for c in cats:
        rng.shuffle(by_cat[c])
    return [by_cat[c][k] for k in range(n // len(cats) + 1) for c in cats if k < len(by_cat[c])][:n]


def web_blocks(tokenizer) -> tuple[torch.Tensor, torch.Tensor]:
    """Packed web-corpus blocks (train, held-out) exactly as pretraining cut them (the `base` stage's recorded
    seq_len and held-out fraction): PPO-ptx trains on the first, the alignment tax is measured on the second."""
    from .config import from_dict
    from .pretrain import PretrainConfig, load_web, pack, split_docs
    recorded = stages.info("base").get("config", {}) if stages.exists("base") else {}
    pcfg = from_dict(PretrainConfig, {k: recorded[k] for k in ("seq_len", "heldout_frac") if k in recorded})
    train_docs, held_docs = split_docs(load_web(), pcfg)
    return pack(tokenizer, train_docs, pcfg.seq_len), pack(tokenizer, held_docs, pcfg.seq_len)


def checked_prompts(cfg: PPOConfig) -> list[dict]:
    """The RL prompts, at least batch_size of them, and the held-out ones of the gold batch and the final evaluation,
    checked before any model is loaded (`evaluation.fitting_prompts`: schema, meta, unique ids, room for the response
    in the policy's and the reward model's context)."""
    from .evaluation import DEFAULT_GENERATION, fitting_prompts
    new = cfg.sampling.max_new_tokens
    rows = fitting_prompts("rl_prompts.jsonl", cfg.init, new, "PPOConfig.sampling.max_new_tokens", reward=cfg.reward,
                           at_least=(cfg.batch_size, "PPOConfig.batch_size"))
    held = max(new * bool(cfg.gold_every), DEFAULT_GENERATION.max_new_tokens * bool(cfg.out and cfg.evaluate))
    if held:
        fitting_prompts("eval_prompts.jsonl", cfg.init, held, "max_new_tokens of the gold batch and the evaluation")
    return [r for _, r in rows]


def load_models(cfg: PPOConfig, par: Parallel = LOCAL):
    """The four models of InstructGPT's PPO: policy (trained, from `cfg.init`), reference (a frozen copy), reward
    model (frozen) and critic (from the RM, or a head on the policy). Returns them with the tokenizer, the reward
    model's tokenizer and its normalisation. Under DeepSpeed the frozen two are prepared by `par.frozen`."""
    from .models import load_causal_lm
    from .reward_model import load_reward_model
    policy, tokenizer = load_causal_lm(stages.existing(cfg.init))
    ref, _ = load_causal_lm(stages.stage_dir(cfg.init))
    rm, rm_tok, norm = load_reward_model(stages.existing(cfg.reward))
    rm.eval().requires_grad_(False)
    critic = Critic.from_reward_model(rm, norm) if cfg.critic == "rm" else Critic.on_policy(policy)
    return policy, par.frozen(ref), par.frozen(rm), critic, tokenizer, rm_tok, norm


def run(cfg: PPOConfig, on_log=None, reward_fn=None, *, par: Parallel = LOCAL) -> dict:
    """Train PPO (or PPO-ptx) from stage `cfg.init` against stage `cfg.reward`; save stage `cfg.out` with
    metrics.json and (if cfg.evaluate) eval.json. Returns the metrics. `reward_fn(records, texts) -> (B,)` replaces
    the reward model's score if given (e.g. `gold_reward_fn`); the critic still starts from stage `cfg.reward`."""
    from .evaluation import evaluate_into
    from .pretrain import lm_loss
    t0 = time.time()
    # 0. the RL prompts (checked before any model is loaded), the four models, the web corpus (PPO-ptx, alignment tax)
    prompts = checked_prompts(cfg)
    policy, ref, rm, critic, tokenizer, rm_tok, norm = load_models(cfg, par)
    if par.lockstep:                # ZeRO-3: a rank whose responses all ended keeps stepping until every rank is done
        policy.generate = functools.partial(policy.generate, synced_gpus=True)
    ptx_train, web_held = web_blocks(tokenizer)
    with par.device():
        web_loss_before = lm_loss(policy, par.to_device(web_held))
    last_good = stages.ARTIFACTS / f"{cfg.out or 'ppo'}_last_good" if par.checkpoints else None
    reward_fn = reward_model_fn(rm, rm_tok, norm, cfg.score_batch_size) if reward_fn is None else reward_fn
    gold_records = fixed_eval_records(cfg.gold_batch, cfg.seed) if cfg.gold_every else None
    h = train(cfg, policy, ref, critic, tokenizer, prompts, reward_fn, gold_fn=gold_scores, gold_records=gold_records,
              ptx_blocks=ptx_train, on_log=on_log, last_good_dir=last_good, par=par)
    t_phase = {k: round(sum(h[f"t_{k}"]) / len(h["update"]), 3) for k in ("generate", "score", "forward", "update")}
    with par.device():
        web_loss = lm_loss(policy, par.to_device(web_held))
    metrics = {"final_score": h["score"][-1], "initial_score": h["score"][0], "final_gold": h["gold"][-1],
               "initial_gold": h["gold"][0], "final_kl_seq": h["kl_seq"][-1], "final_beta": h["beta"][-1],
               "web_heldout_loss": web_loss, "web_heldout_loss_init": web_loss_before,
               "updates": cfg.updates, "s_per_update": round(sum(t_phase.values()), 3), "s_per_phase": t_phase,
               "wall_s": round(time.time() - t0, 1), "warnings": h["warnings"],
               "samples": h["samples"], "history": {k: h[k] for k in HISTORY_KEYS}}
    if cfg.out:
        save_stage(par, cfg.out, policy, tokenizer, stage_info(cfg.out, cfg, [cfg.init, cfg.reward]), metrics)
        if cfg.evaluate:
            metrics = par.once(lambda: evaluate_into(cfg.out, metrics))
    return metrics


def summary(m: dict) -> str:
    """One line of a finished PPO run's metrics (the command line prints it)."""
    parts = [f"{m['updates']} updates, RM score {m['initial_score']:.2f} → {m['final_score']:.2f}, "
             f"gold {m['initial_gold']:.3f} → {m['final_gold']:.3f}, KL {m['final_kl_seq']:.2f} nats"]
    if "eval_gold_mean" in m:
        parts.append(f"eval gold mean {m['eval_gold_mean']:.3f}")
    if m.get("warnings"):
        parts.append(f"{len(m['warnings'])} warning{'s' if len(m['warnings']) > 1 else ''} in metrics.json")
    return ", ".join(parts) + f", {m['wall_s']} s"
