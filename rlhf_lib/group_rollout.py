"""GRPO's and RLOO's rollout (lesson 08): each prompt answered G times, scored, and the log-probs of the sampled tokens.

    2. rollout     each prompt G times, sampled with the KV cache (`generation.sample`)
    3. score       r(x, y) from `reward_fn`; a response that never emitted EOS gets `no_eos_penalty` instead
    4. forward     log π_old(y_t) and log π_ref(y_t) of the sampled tokens

PPO's rollout (`rollout.make_memory`) also runs a critic and computes per-token rewards and GAE; a group needs none
of that: its responses are one another's baseline. `Groups` holds the batch, rows p·G … p·G + G − 1 for prompt p.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from .generation import SamplingConfig
from .rollout import Rows, sample_responses, sampled_logprobs
from .training import check_finite


@dataclass
class Groups(Rows):
    """One update's rollout: P prompts × G responses, response j of prompt p in row p·G + j, prompt ⊕ response
    right-padded as in `rollout.Memory` (which has a critic's fields; this has none); minibatches slice it by rows
    (`rollout.Rows`).

    sequences, attention_mask (B, L); prompt_lens (B,); actions, mask, logp, ref_logp (B, T); scores, adv (B,)
    float; ended (B,) bool; records, texts: lists of B."""
    sequences: torch.Tensor
    attention_mask: torch.Tensor
    prompt_lens: torch.Tensor
    actions: torch.Tensor
    mask: torch.Tensor
    logp: torch.Tensor
    ref_logp: torch.Tensor
    scores: torch.Tensor
    adv: torch.Tensor
    ended: torch.Tensor
    records: list
    texts: list


@torch.no_grad()
def rollout_groups(policy, ref, tokenizer, records: list[dict], reward_fn, *, group_size: int,
                   sampling: SamplingConfig, no_eos_penalty: float, timings: dict) -> Groups:
    """Phases 2–4 for P prompt records: each answered `group_size` times, scored, and the log-probs of the sampled
    tokens under the policy and the reference. `timings` receives each phase's seconds."""
    records = [r for r in records for _ in range(group_size)]               # B = P·G, groups consecutive
    # 2. rollout with the KV cache
    t = time.perf_counter()
    s = sample_responses(policy, tokenizer, records, sampling)
    mask, ended, texts = s.mask, s.ended, s.texts
    timings["generate"] = time.perf_counter() - t
    # 3. score; a response cut at max_new_tokens gets the fixed penalty instead
    t = time.perf_counter()
    scores = reward_fn(records, texts).float()                              # (B,)
    check_finite("3. score", scores=scores)
    scores = torch.where(ended, scores, torch.full_like(scores, no_eos_penalty))
    timings["score"] = time.perf_counter() - t
    # 4. log π_old and log π_ref of the sampled tokens
    t = time.perf_counter()
    policy.eval()
    logp = sampled_logprobs(policy, s, sampling.temperature)                # (B, T)
    ref_logp = sampled_logprobs(ref, s, sampling.temperature)               # (B, T)
    timings["forward"] = time.perf_counter() - t
    m = mask.bool()
    check_finite("4. forward", logp=torch.where(m, logp, 0.0), ref_logp=torch.where(m, ref_logp, 0.0))
    return Groups(sequences=s.sequences, attention_mask=s.attention_mask, prompt_lens=s.prompt_lens, actions=s.actions,
                  mask=mask, logp=logp, ref_logp=ref_logp, scores=scores, adv=torch.zeros_like(scores), ended=ended,
                  records=records, texts=texts)
