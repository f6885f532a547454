"""The reward–KL frontier (lessons 07–08): how much gold a policy gained for how far it moved from the SFT model.

Every method of these lessons optimises the same objective, the gold-free version of InstructGPT's eq. 2,

    max_π  E_x E_{y∼π(·|x)} [ r(x, y) ]  −  β KL( π(·|x) ‖ π_SFT(·|x) ),

so the fair way to compare them is the DPO paper's Figure 2: for each policy, the true reward of its samples (here
the gold labeler's score, which no method trains on) against KL(π‖π_SFT) of the same samples. A point up and to the
left is better: more gold for less drift.

    KL(π‖π_SFT)(x) = E_{y∼π} Σ_t [ log π(y_t | x, y_<t) − log π_SFT(y_t | x, y_<t) ]

estimated from one sample per held-out prompt, with both distributions at the sampling temperature (as PPO's
per-token penalty measures it).
"""
from __future__ import annotations

import torch

from . import stages
from .build_data import task_from_record
from .generation import SamplingConfig
from .labelers import score
from .models import load_causal_lm
from .rl import sequence_kl
from .rollout import sample_responses, sampled_logprobs


@torch.no_grad()
def point(policy, ref, tokenizer, records: list[dict], sampling: SamplingConfig, *, seed: int = 0,
          batch_size: int = 64) -> dict:
    """Gold mean and KL(π‖π_ref) per response of one sample per prompt of `records`: {gold, kl, n}.
    Same policy, records, sampling and seed → same point; the caller's random stream is left as it was (a
    measurement in the middle of a training run does not change the run)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return measure(policy, ref, tokenizer, records, sampling, batch_size)


def measure(policy, ref, tokenizer, records: list[dict], sampling: SamplingConfig, batch_size: int) -> dict:
    gold, kl = [], []
    policy.eval(), ref.eval()
    for start in range(0, len(records), batch_size):
        batch = records[start:start + batch_size]
        s = sample_responses(policy, tokenizer, batch, sampling)
        logp = sampled_logprobs(policy, s, sampling.temperature)                          # (B, T)
        ref_logp = sampled_logprobs(ref, s, sampling.temperature)                         # (B, T)
        kl += sequence_kl(logp, ref_logp, s.mask).tolist()                                # (B,)
        gold += [score(task_from_record(r), t) for r, t in zip(batch, s.texts)]
    return {"gold": round(sum(gold) / len(gold), 4), "kl": round(sum(kl) / len(kl), 4), "n": len(gold)}


def stage_point(name: str, records: list[dict], sampling: SamplingConfig, *, ref: str = "sft",
                seed: int = 0) -> dict:
    """`point` of saved stage `name` against stage `ref` (both must exist and be complete)."""
    policy, tokenizer = load_causal_lm(stages.existing(name))
    reference, _ = load_causal_lm(stages.existing(ref))
    return {"stage": name, **point(policy, reference, tokenizer, records, sampling, seed=seed)}
