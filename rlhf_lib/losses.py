"""Lessons 02-04: the losses of InstructGPT's three steps (SFT, reward model, PPO).

Every loss returns (loss, stats): loss is a scalar tensor to backpropagate,
stats a dict of detached scalar tensors for logging. Masks are float 0/1
tensors (B, T); values at masked positions never influence a result.
"""

import torch
import torch.nn.functional as F

from rlhf_lib.rl import logprobs_from_logits, masked_mean

# ----------------------------------------------------------------------------
# lesson 02: supervised fine-tuning


def masked_lm_loss(logits, labels, mask):
    """Next-token cross-entropy on response tokens only: L = −1/|R| Σ_{t∈R} log π(y_t | x, y_<t).
    (B, T, V), (B, T), (B, T) -> scalar. Lesson 02.

    logits[:, t] must already predict labels[:, t] (the caller shifts by one).
    mask = 1 on the response, 0 on the prompt and padding, so SFT does not
    learn to reproduce prompts. Labels at masked positions may hold anything
    (e.g. -100). stats: n_tokens, ppl = exp(loss).
    """
    assert logits.shape[:-1] == labels.shape == mask.shape
    m = mask.bool()
    labels = torch.where(m, labels, 0)  # (B, T) any valid index; these positions are masked out below
    nll = -logprobs_from_logits(logits, labels)  # (B, T)
    loss = masked_mean(nll, mask)
    stats = {"n_tokens": mask.sum().detach(), "ppl": loss.detach().exp()}
    return loss, stats


# ----------------------------------------------------------------------------
# lesson 03: reward model


def pairwise_loss(r_chosen, r_rejected):
    """Bradley-Terry pairwise loss: L = −E[log σ(r(x, y_w) − r(x, y_l))]. (N,), (N,) -> scalar. Lesson 03.

    InstructGPT eq. 1 with every pair weighted equally (see
    pairwise_loss_grouped for the per-prompt 1/C(K,2) weighting).
    stats: accuracy (fraction with r_chosen > r_rejected), margin (mean difference).
    """
    assert r_chosen.shape == r_rejected.shape and r_chosen.dim() == 1
    diff = r_chosen - r_rejected  # (N,)
    loss = -F.logsigmoid(diff).mean()
    stats = {"accuracy": (diff > 0).to(diff.dtype).mean().detach(), "margin": diff.mean().detach()}
    return loss, stats


def pairwise_loss_grouped(rewards, chosen_idx, rejected_idx, group):
    """InstructGPT RM loss: L = −1/P Σ_prompts 1/C(K,2) Σ_{(y_w, y_l)} log σ(r(x, y_w) − r(x, y_l)).
    (M,), (N,), (N,), (N,) -> scalar. Lesson 03.

    rewards holds one score per response in the batch; pair i compares
    rewards[chosen_idx[i]] with rewards[rejected_idx[i]] and belongs to prompt
    group[i] (any integer ids). All C(K,2) pairs of a prompt form one batch
    element, so prompts with many ranked responses do not dominate and each
    response's forward pass is shared by its K−1 comparisons.
    stats: accuracy and margin over pairs.
    """
    assert rewards.dim() == 1
    assert chosen_idx.shape == rejected_idx.shape == group.shape and group.dim() == 1
    diff = rewards[chosen_idx] - rewards[rejected_idx]  # (N,)
    pair_loss = -F.logsigmoid(diff)  # (N,)
    prompt_ids, prompt = torch.unique(group, return_inverse=True)  # (P,), (N,) ids relabelled 0..P-1
    n_prompts = prompt_ids.numel()
    loss_sum = pair_loss.new_zeros(n_prompts).index_add(0, prompt, pair_loss)  # (P,)
    n_pairs = pair_loss.new_zeros(n_prompts).index_add(0, prompt, torch.ones_like(pair_loss))  # (P,)
    loss = (loss_sum / n_pairs).mean()
    stats = {"accuracy": (diff > 0).to(diff.dtype).mean().detach(), "margin": diff.mean().detach()}
    return loss, stats


def mse_reward_loss(pred, target):
    """Regression of the reward model on scalar scores: L = mean((r(x, y) − s)²). (N,), (N,) -> scalar. Lesson 03.

    ChatLLaMA's variant: needs absolute scores rather than comparisons.
    stats: mae (mean absolute error).
    """
    assert pred.shape == target.shape
    loss = F.mse_loss(pred, target)
    stats = {"mae": (pred - target).abs().mean().detach()}
    return loss, stats


# ----------------------------------------------------------------------------
# lesson 04: PPO


def ppo_policy_loss(logp, old_logp, advantages, mask, *, clip_eps):
    """PPO clipped surrogate: L = mean_t max(−A_t ρ_t, −A_t clip(ρ_t, 1−ε, 1+ε)), ρ_t = exp(log π − log π_old).
    (B, T) x4 -> scalar. Lesson 04.

    Schulman et al. 2017, eq. 7 (as a loss to minimise), token-level masked mean.
    stats: clip_frac (fraction of tokens where the clipped branch is active),
    approx_kl (mean of ½(log ρ)²), ratio_mean, ratio_max (over real tokens).
    """
    assert logp.shape == old_logp.shape == advantages.shape == mask.shape
    m = mask.bool()
    log_ratio = torch.where(m, logp - old_logp, 0.0)  # (B, T)
    ratio = log_ratio.exp()  # (B, T)
    adv = torch.where(m, advantages, 0.0)  # (B, T)
    pg_unclipped = -adv * ratio  # (B, T)
    pg_clipped = -adv * ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps)  # (B, T)
    loss = masked_mean(torch.maximum(pg_unclipped, pg_clipped), mask)
    with torch.no_grad():
        stats = {
            "clip_frac": masked_mean((pg_clipped > pg_unclipped).to(ratio.dtype), mask),
            "approx_kl": masked_mean(0.5 * log_ratio**2, mask),
            "ratio_mean": masked_mean(ratio, mask),
            "ratio_max": torch.where(m, ratio, 0.0).max(),  # ratio > 0, so 0-fill never wins
        }
    return loss, stats


def ppo_value_loss(values, old_values, returns, mask, *, clip_eps):
    """Clipped value loss: L = ½ mean_t max((V_t − R_t)², (V_old + clip(V_t − V_old, −ε, ε) − R_t)²).
    (B, T) x4 -> scalar. Lesson 04.

    As in OpenAI baselines / lm-human-preferences. stats: clip_frac
    (fraction of tokens where the clipped error is the larger one).
    """
    assert values.shape == old_values.shape == returns.shape == mask.shape
    m = mask.bool()
    v = torch.where(m, values, 0.0)  # (B, T)
    v_old = torch.where(m, old_values, 0.0)  # (B, T)
    ret = torch.where(m, returns, 0.0)  # (B, T)
    v_clipped = v_old + (v - v_old).clamp(-clip_eps, clip_eps)  # (B, T)
    err_unclipped = (v - ret) ** 2  # (B, T)
    err_clipped = (v_clipped - ret) ** 2  # (B, T)
    loss = 0.5 * masked_mean(torch.maximum(err_unclipped, err_clipped), mask)
    stats = {"clip_frac": masked_mean((err_clipped > err_unclipped).to(v.dtype), mask).detach()}
    return loss, stats
