"""RLOO against the reward model (lesson 08).

REINFORCE Leave-One-Out (Ahmadian et al. 2024, "Back to basics: revisiting REINFORCE style optimization for learning
from human feedback in LLMs", after Kool et al. 2019): each prompt is answered k times, the whole completion is one
action, and the baseline of sample i is the mean reward of the other k − 1 samples of its prompt — unbiased, and no
critic. The KL penalty stays in the reward, as in InstructGPT:

    r_i = r_φ(x, y_i) − β log(π_old(y_i|x) / π_ref(y_i|x))          (the KL summed over the response's tokens)
    Â_i = r_i − 1/(k − 1) Σ_{j≠i} r_j                                (`rl.leave_one_out_baseline`)
    L   = −1/B Σ_i Â_i Σ_t log π_θ(y_{i,t} | x, y_{i,<t})            (`losses.rloo_loss`)

The loop is GRPO's (`grpo.run_groups`: prompts, k samples each, score, log-probs, advantages, minibatch updates)
with these advantages and this loss; same three models (policy, reference, reward model), same prompts, and by
default the same number of responses per update as PPO (16 prompts × k = 4 = 64).

    cfg = RLOOConfig()
    metrics = run(cfg)                # writes artifacts/rloo/ (and artifacts/rloo/eval.json)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .config import fixed, knob, nested, validate
from .generation import SamplingConfig
from .group_rollout import Groups
from .grpo import check_group_config, run_groups, summary  # noqa: F401 (summary: the stage's line)
from .losses import rloo_loss
from .rl import entropy_from_logits, leave_one_out_baseline, logprobs_from_logits, masked_mean, sequence_kl
from .rollout import response_logits
from .training import LOCAL, Parallel


@dataclass(frozen=True, kw_only=True)
class RLOOConfig:
    """RLOO hyperparameters (lesson 08). The defaults generate as many responses per update as PPOConfig's."""
    updates: int = knob(12, lo=1, hi=2000, help="RLOO iterations; each samples k responses to batch_size prompts")
    batch_size: int = knob(16, lo=1, hi=1024, help="prompts per update (16 × k = 4 responses: PPO's 64)")
    group_size: int = knob(4, lo=2, hi=64, help="k: responses per prompt (Ahmadian et al.: 2 to 4)")
    minibatch_size: int = knob(8, lo=1, hi=4096, help="responses per gradient step (divides batch_size × k)")
    epochs: int = fixed(1, help="passes over each rollout batch (REINFORCE is on-policy: one)")
    lr: float = knob(1e-4, lo=1e-7, hi=1e-2, log=True, help="Adam learning rate")
    beta: float = knob(0.05, lo=0.0, hi=1.0, step=0.005, help="β: KL penalty in the reward, per nat of the "
                                                              "response's KL (PPOConfig's β)")
    max_grad_norm: float = fixed(1.0, help="gradient-norm clip")
    betas: tuple[float, float] = fixed((0.9, 0.999), help="Adam β1, β2")
    adam_eps: float = fixed(1e-5, help="Adam ε (as PPOConfig)")
    sampling: SamplingConfig = nested(SamplingConfig(), help="how the policy samples its responses (temperature > 0)")
    no_eos_penalty: float = knob(-3.0, lo=-20.0, hi=0.0, step=0.5, help="score given to a response that never "
                                                                        "emitted EOS, instead of the RM's")
    score_batch_size: int = fixed(64, help="responses per forward pass of the reward model")
    gold_every: int = fixed(4, help="updates between gold scores on the fixed evaluation batch (0 = never)")
    gold_batch: int = fixed(64, help="held-out prompts in the fixed gold evaluation batch")
    evaluate: bool = fixed(True, help="after training, evaluate the saved stage on all held-out prompts")
    seed: int = fixed(0, help="seed for prompt order and sampling")
    init: str = fixed("sft", help="stage the policy and the reference start from")
    reward: str = fixed("rm", help="stage of the reward model")
    out: str = fixed("rloo", help="stage written ('' = do not save)")

    def __post_init__(self):
        validate(self)
        check_group_config(self)


def rloo_advantages(g: Groups, cfg: RLOOConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """5. (advantages (B,), rewards (B,)): r_i = score − β KL_i, Â_i = r_i − mean of the other k − 1 rewards."""
    rewards = g.scores - cfg.beta * sequence_kl(g.logp, g.ref_logp, g.mask)    # (B,) KL penalty in the reward
    return rewards - leave_one_out_baseline(rewards, cfg.group_size), rewards


def rloo_step(policy, mb: Groups, cfg: RLOOConfig) -> tuple[torch.Tensor, dict]:
    """6. REINFORCE on the whole completion for one minibatch (`losses.rloo_loss`)."""
    logits = response_logits(policy, mb.sequences, mb.attention_mask, mb.prompt_lens, mb.actions.shape[1],
                             cfg.sampling.temperature)                      # (b, T, V)
    loss, stats = rloo_loss(logprobs_from_logits(logits, mb.actions), mb.logp, mb.adv, mb.mask)
    with torch.no_grad():
        stats["entropy"] = masked_mean(entropy_from_logits(logits), mb.mask)
    return loss, {"loss": loss.detach(), **stats}


def run(cfg: RLOOConfig, on_log=None, reward_fn=None, *, par: Parallel = LOCAL) -> dict:
    """Train RLOO (`grpo.run_groups` with RLOO's advantages and loss); save stage `cfg.out`. Returns the metrics."""
    return run_groups(cfg, "RLOO", on_log, reward_fn, par=par, advantages=rloo_advantages, step=rloo_step)
