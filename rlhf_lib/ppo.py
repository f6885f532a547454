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

Everything a rollout produces lives in one `Memory` (ChatLLaMA kept the same fields in a namedtuple, but filled
`actions_log_probs` with log(max softmax) — see the "spot the bugs" functions at the end).

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
import math
import random
import time
import warnings
from dataclasses import dataclass, fields
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import stages
from .config import fixed, knob, to_dict, validate
from .losses import ppo_policy_loss, ppo_value_loss
from .rl import (AdaptiveKLController, FixedKLController, entropy_from_logits, gae, kl_estimates,
                 kl_penalized_rewards, logprobs_from_logits, masked_mean, whiten)
from .tokenizer import render_prompt


@dataclass(frozen=True, kw_only=True)
class PPOConfig:
    """PPO hyperparameters (lesson 04). Defaults measured: about 5.3 s per update on one CPU thread, 12 updates."""
    # the run
    updates: int = knob(12, lo=1, hi=2000, help="PPO iterations; each is one rollout batch and K epochs on it")
    batch_size: int = knob(64, lo=2, hi=1024, help="prompts per rollout batch (one response each)")
    minibatch_size: int = knob(8, lo=1, hi=1024, help="responses per gradient step (≤ batch_size)")
    ppo_epochs: int = knob(1, lo=1, hi=16, help="K: passes over each rollout batch (DeepSpeed-Chat found 1 most stable)")
    lr: float = knob(1e-4, lo=1e-7, hi=1e-2, log=True, help="Adam learning rate of the policy and the critic")
    # the KL penalty
    kl_mode: str = knob("fixed", choices=("fixed", "adaptive"), help="β constant, or adapted toward kl_target")
    beta: float = knob(0.2, lo=0.0, hi=1.0, step=0.005, help="β: KL penalty per token (InstructGPT: 0.02); "
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
    # PPO-ptx
    ptx_coef: float = knob(0.0, lo=0.0, hi=50.0, step=0.1, help="γ_ptx: weight of the pretraining loss "
                                                                 "(0 = plain PPO; InstructGPT: 27.8)")
    ptx_batch_size: int = fixed(4, help="web-corpus blocks (128 tokens each) per gradient step when ptx_coef > 0")
    # sampling
    temperature: float = knob(0.7, lo=0.0, hi=2.0, step=0.05, help="sampling temperature (> 0; Ziegler: 0.7)")
    top_k: int = knob(0, lo=0, hi=500, help="sample from the k most likely tokens (0 = off)")
    top_p: float = knob(1.0, lo=0.05, hi=1.0, step=0.05, help="nucleus sampling mass (1 = off)")
    max_new_tokens: int = knob(64, lo=4, hi=512, help="response length limit; longer responses are cut there")
    no_eos_penalty: float = knob(-3.0, lo=-20.0, hi=0.0, step=0.5, help="score given to a response that never "
                                                                        "emitted EOS, instead of the RM's")
    # bookkeeping
    gold_every: int = fixed(10, help="updates between gold scores on the fixed evaluation batch (0 = never)")
    gold_batch: int = fixed(64, help="held-out prompts in the fixed gold evaluation batch")
    evaluate: bool = fixed(True, help="after training, evaluate the saved stage on all held-out prompts")
    seed: int = fixed(0, help="seed for prompt order and sampling")
    init: str = fixed("sft", help="stage the policy and the reference start from")
    reward: str = fixed("rm", help="stage of the reward model (and the critic's initialisation)")
    out: str = fixed("ppo", help="stage written ('ppo'; lesson 04 writes PPO-ptx to 'ppo_ptx'; '' = do not save)")

    def __post_init__(self):
        validate(self)
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
        if self.temperature <= 0:
            raise ValueError(f"{name}.temperature = {self.temperature}: PPO needs a stochastic policy to have "
                             "log-probabilities and exploration; use temperature > 0 (e.g. 0.7)")
        if self.kl_mode == "adaptive" and self.beta <= 0:
            raise ValueError(f"{name}.beta = {self.beta}: the adaptive controller multiplies β, so it cannot "
                             "start at 0; give beta > 0 or use kl_mode='fixed'")


class PPOError(RuntimeError):
    """A run stopped on a non-finite number; the message names the phase, the update and the saved checkpoint."""


class PPOWarning(UserWarning):
    """A diagnostic looks wrong (likely cause and fix in the message); training goes on."""


# ------------------------------------------------------------------------------------------------- the memory
@dataclass
class Memory:
    """One rollout batch: B responses, each stored as prompt ⊕ response, right-padded to L tokens.

    ChatLLaMA's `Memory` held states, actions, sequences, values, rewards, actions_log_probs and sequences_mask.
    These are the same fields with their correct contents, plus what GAE and the diagnostics need. Row b's prompt
    (ChatLLaMA's `states`) is `sequences[b, :prompt_lens[b]]`; its response (the `actions`) follows it.

    =============== ========== =============================================================================
    sequences       (B, L)     prompt ⊕ response ⊕ padding: what the policy, reference and critic read
    attention_mask  (B, L)     1 on real prompt and response tokens
    prompt_lens     (B,)       prompt tokens of each row
    actions         (B, T)     sampled response ids (EOS included), right-padded
    mask            (B, T)     float, 1 on response tokens up to and including EOS
    logp            (B, T)     log π_old(y_t | x, y_<t) of the **sampled** token (not of the argmax)
    ref_logp        (B, T)     log π_SFT(y_t | x, y_<t) of the same token (KL to the reference, not to π_old)
    values          (B, T)     V(x ⊕ y_<t) from the critic
    scores          (B,)       reward-model score (or the no-EOS penalty)
    rewards         (B, T)     per-token KL penalty + score on the last token
    adv             (B, T)     GAE advantages, whitened
    returns         (B, T)     value targets A + V (before whitening)
    ended           (B,)       bool: the response emitted EOS
    records, texts  lists      the prompt records and the decoded responses (for the RM, the gold labeler, logs)
    =============== ========== =============================================================================
    """
    sequences: torch.Tensor
    attention_mask: torch.Tensor
    prompt_lens: torch.Tensor
    actions: torch.Tensor
    mask: torch.Tensor
    logp: torch.Tensor
    ref_logp: torch.Tensor
    values: torch.Tensor
    scores: torch.Tensor
    rewards: torch.Tensor
    adv: torch.Tensor
    returns: torch.Tensor
    ended: torch.Tensor
    records: list
    texts: list

    def __len__(self) -> int:
        return self.actions.shape[0]

    def __getitem__(self, idx) -> "Memory":
        """The rows `idx` (a list or 1-D tensor of indices), with the columns that are padding in all of them
        dropped: a minibatch costs only as much compute as its longest row."""
        idx = torch.as_tensor(idx)
        resp_lens = self.mask[idx].sum(-1).long()                           # (b,)
        T = int(resp_lens.max())
        L = int((self.prompt_lens[idx] + resp_lens).max())
        parts = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if not isinstance(v, torch.Tensor):
                parts[f.name] = [v[i] for i in idx.tolist()]
            elif v.dim() == 1:
                parts[f.name] = v[idx]
            else:
                parts[f.name] = v[idx, :L] if f.name in ("sequences", "attention_mask") else v[idx, :T]
        return Memory(**parts)


def response_mask(actions: torch.Tensor, eos_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Float mask (B, T) of the tokens up to and including the first EOS, and `ended` (B,) bool.

    A response without EOS keeps all T tokens: it was cut at max_new_tokens (and is penalised in phase 2)."""
    is_eos = (actions == eos_id).long()                                     # (B, T)
    before_or_at = (is_eos.cumsum(-1) - is_eos) == 0                        # (B, T) no EOS strictly before t
    return before_or_at.float(), is_eos.bool().any(-1)


def pack(prompt_ids: torch.Tensor, prompt_attn: torch.Tensor, actions: torch.Tensor, mask: torch.Tensor,
         pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Left-padded prompts (B, P) and right-padded responses (B, T) -> right-padded prompt ⊕ response (B, L),
    its attention mask (B, L) and the prompt lengths (B,). `generate` needs left padding; training does not,
    and without it a row costs its own length, not P_max + T_max."""
    prompt_lens = prompt_attn.sum(-1).long()                                # (B,)
    resp_lens = mask.sum(-1).long()                                         # (B,)
    L = int((prompt_lens + resp_lens).max())
    sequences = torch.full((len(actions), L), pad_id, dtype=actions.dtype)
    attn = torch.zeros(len(actions), L, dtype=torch.long)
    for b, (p, r) in enumerate(zip(prompt_lens.tolist(), resp_lens.tolist())):
        sequences[b, :p] = prompt_ids[b, prompt_ids.shape[1] - p:]          # the prompt without its left padding
        sequences[b, p:p + r] = actions[b, :r]
        attn[b, :p + r] = 1
    return sequences, attn, prompt_lens


def response_positions(prompt_lens: torch.Tensor, T: int, L: int) -> torch.Tensor:
    """Index (B, T) of the position whose output predicts response token t: prompt_len − 1 + t (clamped on padding)."""
    return (prompt_lens[:, None] - 1 + torch.arange(T)).clamp(max=L - 1)


def _gather(hidden: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """hidden (B, L, H), positions (B, T) -> (B, T, H)."""
    return hidden.gather(1, pos[..., None].expand(-1, -1, hidden.shape[-1]))


# ------------------------------------------------------------------------------------------------- the models
class Critic(torch.nn.Module):
    """V(x ⊕ y_<t): a transformer backbone and a linear head on the last hidden state of each position.

    `from_reward_model` copies the reward model (InstructGPT: "we initialize the value function from the RM") and
    folds its normalisation into the head, so V starts out as the normalised RM score of each prefix.
    `on_policy` shares the policy's backbone and adds a fresh zero head (cheaper; the value loss then also
    shapes the policy's features)."""

    def __init__(self, backbone: torch.nn.Module, head: torch.nn.Linear):
        super().__init__()
        self.backbone, self.head = backbone, head

    @classmethod
    def from_reward_model(cls, rm, norm: dict) -> "Critic":
        rm = copy.deepcopy(rm).requires_grad_(True)
        w = rm.score.weight.detach()                                        # (1, H)
        head = torch.nn.Linear(w.shape[1], 1, bias=True)
        with torch.no_grad():
            head.weight.copy_(norm["gain"] * w)                            # detail: V = gain · raw + bias
            raw_bias = rm.score.bias.detach() if rm.score.bias is not None else torch.zeros(1)
            head.bias.copy_(norm["gain"] * raw_bias + norm["bias"])
        return cls(rm.model, head)

    @classmethod
    def on_policy(cls, policy) -> "Critic":
        head = torch.nn.Linear(policy.config.hidden_size, 1, bias=True)
        torch.nn.init.zeros_(head.weight), torch.nn.init.zeros_(head.bias)
        return cls(policy.base_model, head)

    def forward(self, sequences, attention_mask, prompt_lens, T: int) -> torch.Tensor:
        """Values of the states before each response token: (B, L) -> (B, T)."""
        hidden = self.backbone(input_ids=sequences, attention_mask=attention_mask).last_hidden_state  # (B, L, H)
        pos = response_positions(prompt_lens, T, sequences.shape[1])          # (B, T)
        return self.head(_gather(hidden, pos)).squeeze(-1)                    # (B, T)


def response_logits(model, sequences, attention_mask, prompt_lens, T: int, temperature: float) -> torch.Tensor:
    """Temperature-scaled next-token logits at the response positions: (B, L) -> (B, T, V).

    The LM head runs only on the T positions that predict response tokens (not on the prompt), which saves a
    third of the compute of this small model. Written for LLaMA-style models (`base_model` + output embeddings)."""
    hidden = model.base_model(input_ids=sequences, attention_mask=attention_mask).last_hidden_state   # (B, L, H)
    pos = response_positions(prompt_lens, T, sequences.shape[1])             # (B, T)
    logits = model.get_output_embeddings()(_gather(hidden, pos))            # (B, T, V)
    return logits / temperature                                             # detail: π is what we sample from


def memory_logits(model, mem: "Memory", temperature: float) -> torch.Tensor:
    return response_logits(model, mem.sequences, mem.attention_mask, mem.prompt_lens, mem.actions.shape[1],
                           temperature)


# ------------------------------------------------------------------------------------------------- phases 1–5
@torch.no_grad()
def rollout(policy, tokenizer, records: list[dict], cfg: PPOConfig):
    """Phase 1: one sampled response per prompt with `model.generate` (KV cache). Returns the left-padded
    prompt ids and attention mask (B, P) and the right-padded responses (B, T)."""
    policy.eval()
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    try:
        texts = [render_prompt(tokenizer, r["prompt"], "chat") for r in records]
        enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    finally:
        tokenizer.padding_side = side
    out = policy.generate(**enc, do_sample=True, temperature=cfg.temperature, top_k=cfg.top_k or None,
                          top_p=cfg.top_p if cfg.top_p < 1 else None, max_new_tokens=cfg.max_new_tokens,
                          eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, use_cache=True)
    P = enc["input_ids"].shape[1]
    return enc["input_ids"], enc["attention_mask"], out[:, P:]              # (B, P), (B, P), (B, T)


def decode_responses(tokenizer, actions: torch.Tensor, mask: torch.Tensor) -> list[str]:
    """Response texts without EOS and padding."""
    return [tokenizer.decode([t for t, m in zip(row, mrow) if m and t != tokenizer.eos_token_id],
                             skip_special_tokens=True).strip()
            for row, mrow in zip(actions.tolist(), mask.tolist())]


@torch.no_grad()
def make_memory(policy, ref, critic, tokenizer, records, reward_fn, cfg: PPOConfig, beta: float,
                timings: dict | None = None) -> Memory:
    """Phases 1–5 for one batch of prompt records: rollout, score, forward passes, rewards, advantages."""
    timings = {} if timings is None else timings
    # 1. rollout with the KV cache
    t = time.perf_counter()
    prompt_ids, prompt_attn, actions = rollout(policy, tokenizer, records, cfg)
    mask, ended = response_mask(actions, tokenizer.eos_token_id)            # (B, T), (B,)
    actions = torch.where(mask.bool(), actions, tokenizer.pad_token_id)      # (B, T) pad after EOS
    texts = decode_responses(tokenizer, actions, mask)
    timings["generate"] = time.perf_counter() - t
    # 2. score with the reward model; responses cut at max_new_tokens get a fixed penalty instead
    t = time.perf_counter()
    scores = reward_fn(records, texts).float()                              # (B,)
    _check_finite("2. score (reward model)", scores=scores)
    scores = torch.where(ended, scores, torch.full_like(scores, cfg.no_eos_penalty))   # detail: EOS penalty
    timings["score"] = time.perf_counter() - t
    # 3. log-probs of the sampled tokens under the policy and the reference; values from the critic
    t = time.perf_counter()
    sequences, attn, prompt_lens = pack(prompt_ids, prompt_attn, actions, mask, tokenizer.pad_token_id)  # (B, L) x2
    T = actions.shape[1]
    policy.eval(), critic.eval()
    logp = logprobs_from_logits(response_logits(policy, sequences, attn, prompt_lens, T, cfg.temperature),
                                actions)                                    # (B, T)
    ref_logp = logprobs_from_logits(response_logits(ref, sequences, attn, prompt_lens, T, cfg.temperature),
                                    actions)                                # (B, T)
    values = critic(sequences, attn, prompt_lens, T)                        # (B, T)
    timings["forward"] = time.perf_counter() - t
    m = mask.bool()
    _check_finite("3. forward (log-probs, values)", logp=torch.where(m, logp, 0.0),
                  ref_logp=torch.where(m, ref_logp, 0.0), values=torch.where(m, values, 0.0))
    # 4. per-token KL penalty, plus the score at the last response token
    rewards = kl_penalized_rewards(scores, logp, ref_logp, mask, beta=beta)  # (B, T)
    # 5. GAE advantages and returns; whiten the advantages over the batch
    adv, returns = gae(rewards, values, mask, gamma=cfg.gamma, lam=cfg.lam)   # (B, T), (B, T)
    adv = whiten(adv, mask)                                                 # detail: advantage whitening
    _check_finite("5. advantages", rewards=rewards, adv=adv, returns=returns)
    return Memory(sequences=sequences, attention_mask=attn, prompt_lens=prompt_lens, actions=actions, mask=mask,
                  logp=logp, ref_logp=ref_logp, values=values, scores=scores, rewards=rewards, adv=adv,
                  returns=returns, ended=ended, records=list(records), texts=texts)


# ------------------------------------------------------------------------------------------------- phase 6
def ppo_step(policy, critic, mb: Memory, cfg: PPOConfig, ptx_blocks: torch.Tensor | None = None):
    """Losses of one minibatch: clipped policy loss + vf_coef · clipped value loss (+ ptx_coef · LM loss).

    Returns (loss, stats) with stats as detached scalars."""
    logits = memory_logits(policy, mb, cfg.temperature)                     # (B, T, V)
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


def explained_variance(values, returns, mask) -> float:
    """1 − Var[R − V] / Var[R] over real tokens: 1 = the critic predicts the returns, ≤ 0 = no better than a mean."""
    m = mask.bool()
    v, r = values[m], returns[m]
    var_r = r.var()
    return float("nan") if var_r == 0 else float(1 - (r - v).var() / var_r)


# ------------------------------------------------------------------------------------------------- checks
def _check_finite(phase: str, **tensors) -> None:
    bad = [k for k, v in tensors.items() if not torch.isfinite(v).all()]
    if bad:
        raise _NonFinite(phase, bad)


class _NonFinite(Exception):
    def __init__(self, phase, names):
        super().__init__(phase)
        self.phase, self.names = phase, names


_FIXES = {"2. score (reward model)": "the reward model returned NaN/inf: check its normalisation (gain/bias) and "
                                     "that it was trained to the end",
          "3. forward (log-probs, values)": "the policy or critic weights diverged in the previous update: lower lr "
                                            "(now {lr}) or clip_eps",
          "5. advantages": "check the scores and β; a huge β or score makes GAE overflow",
          "6. update": "the loss diverged: lower lr (now {lr}), fewer ppo_epochs, smaller clip_eps"}


def health_warnings(h: dict, i: int, cfg: PPOConfig) -> list[str]:
    """Warnings (likely cause and fix) for the diagnostics of update i in history `h`."""
    out = []
    kl, se = h["kl_seq"][i], h["kl_seq_se"][i]
    if kl < -max(3 * se, 0.05):
        out.append(f"update {i}: KL to the reference is {kl:.3f} nats (noise ±{se:.3f}). A negative KL estimate "
                   "beyond noise means the log-probs are not those of the sampling distribution: sample with "
                   "top_k = 0 and top_p = 1 (truncated sampling makes k1 biased) and score with the same temperature")
    if h["ratio_mean"][i] > 1.2 or h["ratio_max"][i] > 50:        # a few rare tokens reaching ~10–20 is normal
        out.append(f"update {i}: ratio π/π_old reached mean {h['ratio_mean'][i]:.2f}, max {h['ratio_max'][i]:.1f}. "
                   f"The policy moves too far within one batch: lower lr (now {cfg.lr}) or ppo_epochs "
                   f"(now {cfg.ppo_epochs}), or lower clip_eps")
    eos0, eos = h["eos_rate"][0], h["eos_rate"][i]
    if eos < 0.8 and eos < eos0 - 0.1:
        out.append(f"update {i}: only {eos:.0%} of responses end with EOS (first batch: {eos0:.0%}). The policy learns "
                   "to ramble past max_new_tokens: make no_eos_penalty more negative or raise β")
    len0, length = h["length"][0], h["length"][i]
    if length > 1.5 * len0 or length < 0.5 * len0:
        out.append(f"update {i}: mean response length drifted from {len0:.1f} to {length:.1f} tokens. The policy is "
                   "probably exploiting a length bias of the reward model: raise β, lower lr or stop earlier")
    return out


# ------------------------------------------------------------------------------------------------- the loop
HISTORY_KEYS = ("update", "score", "gold", "gold_eval", "kl", "kl_k3", "kl_seq", "kl_seq_se", "beta", "policy_loss",
                "value_loss", "clip_frac", "approx_kl", "ratio_mean", "ratio_max", "vf_clip_frac",
                "explained_var", "entropy", "eos_rate", "length", "ptx_loss", "t_generate", "t_score", "t_forward",
                "t_update")


def train(cfg: PPOConfig, policy, ref, critic, tokenizer, prompts: list[dict], reward_fn, *, gold_fn=None,
          gold_records: list[dict] | None = None, ptx_blocks: torch.Tensor | None = None, on_log=None,
          last_good_dir: Path | None = None) -> dict:
    """The PPO loop on given models. `reward_fn(records, texts) -> (B,)` scores responses; `gold_fn(records,
    texts) -> list[float]` (optional) gives the gold score of the rollouts and of `gold_records` every
    `cfg.gold_every` updates. Returns the history: one list per diagnostic (a value per update), `warnings`, and
    `samples` (the last rollout with its RM and gold scores, to read what the policy learned).

    On a non-finite number the policy of the last finite update is saved to `last_good_dir` (if given) and
    `PPOError` names the phase and the update."""
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    ref.eval(), ref.requires_grad_(False)
    params = list(dict.fromkeys(list(policy.parameters()) + list(critic.parameters())))    # shared backbone once
    policy_ids = {id(p) for p in policy.parameters()}
    critic_only = [p for p in params if id(p) not in policy_ids]
    opt = torch.optim.Adam(params, lr=cfg.lr, eps=1e-5)
    kl_ctl = (AdaptiveKLController(cfg.beta, cfg.kl_target, cfg.kl_horizon) if cfg.kl_mode == "adaptive"
              else FixedKLController(cfg.beta))
    h = {k: [] for k in HISTORY_KEYS}
    h["warnings"] = []
    order: list[int] = []
    last_good = copy.deepcopy(policy.state_dict())
    bar = tqdm(range(cfg.updates), desc=f"PPO{'-ptx' if cfg.ptx_coef > 0 else ''}")
    for i in bar:
        try:
            # phases 1–5: rollout, score, forward passes, rewards, advantages
            if len(order) < cfg.batch_size:
                order += rng.sample(range(len(prompts)), len(prompts))      # a fresh shuffle each pass
            batch, order = [prompts[j] for j in order[:cfg.batch_size]], order[cfg.batch_size:]
            timings: dict = {}
            mem = make_memory(policy, ref, critic, tokenizer, batch, reward_fn, cfg, kl_ctl.value, timings)
            kl = kl_estimates(mem.logp, mem.ref_logp, mem.mask)
            kl_per_seq = (mem.logp - mem.ref_logp).mul(mem.mask).sum(-1)    # (B,)
            # 6. K epochs of minibatch updates
            t = time.perf_counter()
            policy.train(), critic.train()
            step_stats = []
            for _ in range(cfg.ppo_epochs):
                perm = torch.randperm(len(mem))
                for start in range(0, len(mem), cfg.minibatch_size):
                    mb = mem[perm[start:start + cfg.minibatch_size]]
                    ptx = None
                    if cfg.ptx_coef > 0 and ptx_blocks is not None:
                        ptx = ptx_blocks[torch.randint(len(ptx_blocks), (cfg.ptx_batch_size,))]
                    loss, stats = ppo_step(policy, critic, mb, cfg, ptx)
                    _check_finite("6. update", loss=loss)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(list(policy.parameters()), cfg.max_grad_norm)
                    if critic_only:
                        torch.nn.utils.clip_grad_norm_(critic_only, cfg.max_grad_norm)
                    opt.step()
                    step_stats.append(stats)
            _check_finite("6. update", **{f"weight {n}": p for n, p in policy.named_parameters()})
            timings["update"] = time.perf_counter() - t
        except _NonFinite as e:
            raise _stop(e, i, cfg, policy, tokenizer, last_good, last_good_dir) from None
        last_good = copy.deepcopy(policy.state_dict())
        # 7. KL controller: β follows the KL per response (adaptive) or stays (fixed)
        h["beta"].append(kl_ctl.value)
        kl_ctl.update(kl_per_seq.mean().item(), len(mem))
        # diagnostics
        _log_update(h, i, mem, kl, kl_per_seq, step_stats, timings)
        gold = gold_fn(mem.records, mem.texts) if gold_fn is not None else [float("nan")] * len(mem)
        h["gold"].append(sum(gold) / len(mem))
        due = gold_fn and gold_records and cfg.gold_every and (i % cfg.gold_every == 0 or i == cfg.updates - 1)
        h["gold_eval"].append(gold_eval(policy, tokenizer, gold_records, gold_fn, cfg) if due else float("nan"))
        for msg in health_warnings(h, i, cfg):
            warnings.warn(msg, PPOWarning, stacklevel=2)
            h["warnings"].append(msg)
        bar.set_postfix(score=f"{h['score'][-1]:.2f}", kl=f"{h['kl_seq'][-1]:.2f}", beta=f"{h['beta'][-1]:.3f}")
        if on_log is not None:
            on_log(h)
    h["samples"] = [{"id": r.get("id", ""), "category": r.get("category", ""), "prompt": r["prompt"], "response": t,
                     "score": float(s), "gold": g} for r, t, s, g in zip(mem.records, mem.texts, mem.scores, gold)]
    return h


def _log_update(h, i, mem: Memory, kl, kl_per_seq, step_stats, timings) -> None:
    mean = lambda k: float(torch.stack([s[k] for s in step_stats]).mean())   # noqa: E731
    h["update"].append(i)
    h["score"].append(float(mem.scores.mean()))
    h["kl"].append(float(kl["k1"])), h["kl_k3"].append(float(kl["k3"]))
    h["kl_seq"].append(float(kl_per_seq.mean()))
    h["kl_seq_se"].append(float(kl_per_seq.std() / math.sqrt(len(mem))))
    for k in ("policy_loss", "value_loss", "clip_frac", "approx_kl", "ratio_mean", "vf_clip_frac", "entropy"):
        h[k].append(mean(k))
    h["ratio_max"].append(max(float(s["ratio_max"]) for s in step_stats))
    h["ptx_loss"].append(mean("ptx_loss") if "ptx_loss" in step_stats[0] else float("nan"))
    h["explained_var"].append(explained_variance(mem.values, mem.returns, mem.mask))
    h["eos_rate"].append(float(mem.ended.float().mean()))
    h["length"].append(float(mem.mask.sum(-1).mean()))
    for k in ("generate", "score", "forward", "update"):
        h[f"t_{k}"].append(round(timings[k], 3))


@torch.no_grad()
def gold_eval(policy, tokenizer, records, gold_fn, cfg: PPOConfig) -> float:
    """Mean gold score of the policy on a fixed batch of held-out prompts (same sampling as training)."""
    _, _, actions = rollout(policy, tokenizer, records, cfg)
    mask, _ = response_mask(actions, tokenizer.eos_token_id)
    return sum(gold_fn(records, decode_responses(tokenizer, actions, mask))) / len(records)


def _stop(e: _NonFinite, i: int, cfg, policy, tokenizer, last_good, last_good_dir) -> PPOError:
    where = "not saved (no folder given)"
    if last_good_dir is not None:
        policy.load_state_dict(last_good)
        last_good_dir.mkdir(parents=True, exist_ok=True)
        policy.save_pretrained(last_good_dir, safe_serialization=True)
        tokenizer.save_pretrained(last_good_dir)
        where = f"saved to {last_good_dir}"
    fix = _FIXES[e.phase].format(lr=cfg.lr)
    return PPOError(f"PPO stopped: non-finite {', '.join(e.names)} in phase '{e.phase}' at update {i}. "
                    f"The last good policy (before update {i}) is {where}. Likely fix: {fix}.")


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
    from .reward import score_texts

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
    """Packed web-corpus blocks (train, held-out) exactly as pretraining cut them: PPO-ptx trains on the first,
    the alignment tax is measured on the second."""
    from .pretrain import PretrainConfig, load_web, pack, split_docs
    pcfg = PretrainConfig()
    train_docs, held_docs = split_docs(load_web(), pcfg)
    return pack(tokenizer, train_docs, pcfg.seq_len), pack(tokenizer, held_docs, pcfg.seq_len)


def load_models(cfg: PPOConfig):
    """The four models of InstructGPT's PPO: policy (trained, from `cfg.init`), reference (a frozen copy), reward
    model (frozen) and critic (from the RM, or a head on the policy). Returns them with the tokenizer, the reward
    model's tokenizer and its normalisation."""
    from .models import load_causal_lm
    from .reward import load_reward_model
    policy, tokenizer = load_causal_lm(stages.require(cfg.init))
    ref, _ = load_causal_lm(stages.stage_dir(cfg.init))
    rm, rm_tok, norm = load_reward_model(stages.require(cfg.reward))
    rm.eval().requires_grad_(False)
    critic = Critic.from_reward_model(rm, norm) if cfg.critic == "rm" else Critic.on_policy(policy)
    return policy, ref, rm, critic, tokenizer, rm_tok, norm


def run(cfg: PPOConfig, on_log=None, reward_fn=None) -> dict:
    """Train PPO (or PPO-ptx) from stage `cfg.init` against stage `cfg.reward`; save stage `cfg.out` with
    metrics.json and (if cfg.evaluate) eval.json. Returns the metrics. `reward_fn(records, texts) -> (B,)` replaces
    the reward model's score if given (e.g. `gold_reward_fn`); the critic still starts from stage `cfg.reward`."""
    from .data import PROMPT, read_jsonl
    from .pretrain import lm_loss
    t0 = time.time()
    # 0. the four models, the RL prompts, the web corpus (PPO-ptx and the alignment tax)
    policy, ref, rm, critic, tokenizer, rm_tok, norm = load_models(cfg)
    prompts = read_jsonl(stages.DATA_DIR / "rl_prompts.jsonl", PROMPT)
    ptx_train, web_held = web_blocks(tokenizer)
    web_loss_before = lm_loss(policy, web_held)
    last_good = stages.ARTIFACTS / f"{cfg.out or 'ppo'}_last_good"
    reward_fn = reward_model_fn(rm, rm_tok, norm) if reward_fn is None else reward_fn
    h = train(cfg, policy, ref, critic, tokenizer, prompts, reward_fn, gold_fn=gold_scores,
              gold_records=fixed_eval_records(cfg.gold_batch, cfg.seed), ptx_blocks=ptx_train, on_log=on_log,
              last_good_dir=last_good)
    wall = time.time() - t0
    t_phase = {k: round(sum(h[f"t_{k}"]) / len(h["update"]), 3) for k in ("generate", "score", "forward", "update")}
    metrics = {"final_score": h["score"][-1], "initial_score": h["score"][0], "final_gold": h["gold"][-1],
               "initial_gold": h["gold"][0], "final_kl_seq": h["kl_seq"][-1], "final_beta": h["beta"][-1],
               "web_heldout_loss": lm_loss(policy, web_held), "web_heldout_loss_init": web_loss_before,
               "updates": cfg.updates, "s_per_update": round(sum(t_phase.values()), 3), "s_per_phase": t_phase,
               "wall_s": round(wall, 1), "warnings": h["warnings"],
               "samples": h["samples"], "history": {k: h[k] for k in HISTORY_KEYS}}
    if cfg.out:
        with stages.writing(cfg.out) as tmp:
            policy.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
            stages.write_json(tmp / "stage.json", {"stage": cfg.out, "config": to_dict(cfg), "prompt_format": "chat",
                                                   "upstream": [cfg.init, cfg.reward]})
            stages.write_json(tmp / "metrics.json", metrics)
        if cfg.evaluate:
            from .evaluation import evaluate_stage
            ev = evaluate_stage(cfg.out)
            metrics["eval_gold_mean"] = ev["gold_mean"]
            metrics["eval_failure_rate"] = ev["failure_rate"]
            stages.write_json(stages.stage_dir(cfg.out) / "metrics.json", metrics)
    return metrics


# ------------------------------------------------------------------------------------------------- spot the bugs
def bug_max_softmax_logp(policy, mem: Memory, temperature: float) -> dict:
    """ChatLLaMA bug 1: `log(max softmax)` as the action's log-prob instead of the **sampled** token's.

    The max is the greedy token's probability whatever was sampled, so the "policy gradient" Σ A_t ∇log π(·)
    pushes up the argmax token even where another token was sampled and earned the advantage. Returns the fraction
    of sampled tokens that are not the argmax, the mean of both log-probs, and the cosine similarity between the
    gradient of Σ A_t log π(y_t) (correct) and of Σ A_t log max_v π(v) (the bug)."""
    policy.eval()

    def grad_of(objective):
        policy.zero_grad(set_to_none=True)
        objective.backward()
        g = torch.cat([p.grad.flatten() for p in policy.parameters() if p.grad is not None])
        policy.zero_grad(set_to_none=True)
        return g

    logits = memory_logits(policy, mem, temperature)                                     # (B, T, V)
    logp_sampled = logprobs_from_logits(logits, mem.actions)                            # (B, T) correct
    log_max = torch.log_softmax(logits, -1).max(-1).values                              # (B, T) the bug
    g_right = grad_of(masked_mean(mem.adv * logp_sampled, mem.mask))
    logits = memory_logits(policy, mem, temperature)
    g_bug = grad_of(masked_mean(mem.adv * torch.log_softmax(logits, -1).max(-1).values, mem.mask))
    differs = (logits.argmax(-1) != mem.actions).float()                                # (B, T)
    return {"frac_sampled_not_argmax": float(masked_mean(differs, mem.mask)),
            "logp_sampled": float(masked_mean(logp_sampled.detach(), mem.mask)),
            "log_max_softmax": float(masked_mean(log_max.detach(), mem.mask)),
            "grad_cosine": float(torch.nn.functional.cosine_similarity(g_right, g_bug, dim=0))}


@torch.no_grad()
def bug_kl_vs_old_policy(policy, mem: Memory, temperature: float) -> dict:
    """ChatLLaMA bug 2: the KL term compares the policy with the **old policy** (the one that just sampled the
    memory) instead of the frozen reference. Right after a rollout they are the same weights, so that KL is
    exactly 0 and gives no pull back toward SFT; the KL to the reference is what keeps the policy near SFT.
    `mem` must be a fresh rollout of `policy` (its logp are π_old). Returns both KL estimates (k1)."""
    policy.eval()
    logp_now = logprobs_from_logits(memory_logits(policy, mem, temperature), mem.actions)   # (B, T)
    to_ref = kl_estimates(mem.logp, mem.ref_logp, mem.mask)
    return {"kl_vs_old_policy": float(kl_estimates(logp_now, mem.logp, mem.mask)["k1"]),
            "kl_vs_reference": float(to_ref["k1"]), "kl_vs_reference_per_response": float(to_ref["k1_seq"])}


def bug_advantage_without_gae(mem: Memory, *, beta: float, gamma: float = 1.0, lam: float = 0.95) -> dict:
    """ChatLLaMA bug 3: `advantages = rewards − values` with the sequence's RM score as the reward of every token.

    A_t = score − V_t leaves out the KL penalty (nothing in the advantage holds the policy near SFT) and uses the
    full Monte-Carlo return (λ = 1), whose variance GAE (λ < 1) trades for a little bias. Returns the mean
    per-response KL penalty the bug drops, and the variance and the mean of both advantage estimates (unwhitened)."""
    m = mem.mask
    naive = torch.where(m.bool(), mem.scores[:, None] - mem.values, 0.0)                     # (B, T)
    rewards = kl_penalized_rewards(mem.scores, mem.logp, mem.ref_logp, m, beta=beta)         # (B, T)
    adv, _ = gae(rewards, mem.values, m, gamma=gamma, lam=lam)                                # (B, T)
    var = lambda x: float(masked_mean((x - masked_mean(x, m)) ** 2, m))                       # noqa: E731
    return {"kl_penalty_dropped": float((beta * (mem.logp - mem.ref_logp) * m).sum(-1).mean()),
            "var_naive": var(naive), "var_gae": var(adv),
            "mean_naive": float(masked_mean(naive, m)), "mean_gae": float(masked_mean(adv, m))}
