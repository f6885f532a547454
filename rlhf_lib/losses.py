"""Lessons 02-04 and 07-08: the losses of InstructGPT's three steps (SFT, reward model, PPO) and of what came after
(DPO and its variants; GRPO's clipped loss with the KL as a loss term).

Every loss returns (loss, stats): loss is a scalar tensor to backpropagate,
stats a dict of detached scalar tensors for logging. Masks are float 0/1
tensors (B, T); values at masked positions never influence a result.
"""

import torch
import torch.nn.functional as F

from rlhf_lib.rl import k3_kl, logprobs_from_logits, masked_mean, masked_sum

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
    loss = prompt_mean(pair_loss, group)
    stats = {"accuracy": (diff > 0).to(diff.dtype).mean().detach(), "margin": diff.mean().detach()}
    return loss, stats


def prompt_mean(pair_loss, group):
    """Mean over prompts of each prompt's mean pair loss: 1/P Σ_p 1/|pairs(p)| Σ_{i ∈ pairs(p)} ℓ_i.
    (N,), (N,) -> scalar. Lessons 03 and 07.

    group[i] is the prompt (any integer id) of pair i: every prompt weighs the same, however many pairs it has."""
    assert pair_loss.shape == group.shape and group.dim() == 1
    prompt_ids, prompt = torch.unique(group, return_inverse=True)  # (P,), (N,) ids relabelled 0..P-1
    n_prompts = prompt_ids.numel()
    loss_sum = pair_loss.new_zeros(n_prompts).index_add(0, prompt, pair_loss)  # (P,)
    n_pairs = pair_loss.new_zeros(n_prompts).index_add(0, prompt, torch.ones_like(pair_loss))  # (P,)
    return (loss_sum / n_pairs).mean()


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


# ----------------------------------------------------------------------------
# lesson 07: DPO and its variants


def implicit_reward(logp, ref_logp, *, beta):
    """DPO's implicit reward of a response: r̂(x, y) = β log(π(y|x) / π_ref(y|x)). (M,), (M,) -> (M,). Lesson 07.

    logp and ref_logp are sequence log-probs (summed over the response's tokens) under the policy and the frozen
    reference. Rafailov et al. 2023, eq. 5: the reward a policy is optimal for, up to a term of x alone (which cancels
    in every comparison of two answers to the same prompt)."""
    assert logp.shape == ref_logp.shape
    return beta * (logp - ref_logp)


def dpo_loss(logp, ref_logp, chosen_idx, rejected_idx, group, *, beta, loss="sigmoid", label_smoothing=0.0):
    """DPO on ranked comparisons, every C(K,2) pair of a prompt weighted 1/C(K,2) as the reward model's loss.
    (M,) x2, (N,) x3 -> scalar. Lesson 07.

    With h = log π(y_w|x)/π_ref(y_w|x) − log π(y_l|x)/π_ref(y_l|x) (logp, ref_logp: one sequence log-prob per
    response; pair i prefers response chosen_idx[i] to rejected_idx[i] and belongs to prompt group[i]):

        sigmoid  DPO (Rafailov et al. 2023, eq. 7)       ℓ = −log σ(β h)
        cdpo     conservative DPO (labels flipped with    ℓ = −(1 − ε) log σ(β h) − ε log σ(−β h)
                 probability ε = label_smoothing)
        ipo      IPO (Azar et al. 2023, eq. 17)           ℓ = (h − 1/(2β))²

    stats: accuracy (implicit reward of the chosen above the rejected), margin (mean β h), chosen and rejected
    (mean implicit reward of each side)."""
    assert logp.shape == ref_logp.shape and logp.dim() == 1
    assert chosen_idx.shape == rejected_idx.shape == group.shape and group.dim() == 1
    assert beta > 0 and 0.0 <= label_smoothing < 0.5
    r = implicit_reward(logp, ref_logp, beta=beta)  # (M,)
    margin = r[chosen_idx] - r[rejected_idx]  # (N,) β h
    if loss == "sigmoid":
        pair_loss = -F.logsigmoid(margin)
    elif loss == "cdpo":
        pair_loss = -(1 - label_smoothing) * F.logsigmoid(margin) - label_smoothing * F.logsigmoid(-margin)
    elif loss == "ipo":
        pair_loss = (margin / beta - 1 / (2 * beta)) ** 2
    else:
        raise ValueError(f"dpo_loss: loss = {loss!r}; choose 'sigmoid', 'cdpo' or 'ipo'")
    stats = {"accuracy": (margin > 0).to(margin.dtype).mean().detach(), "margin": margin.mean().detach(),
             "chosen": r[chosen_idx].mean().detach(), "rejected": r[rejected_idx].mean().detach()}
    return prompt_mean(pair_loss, group), stats


# ----------------------------------------------------------------------------
# lesson 08: GRPO and RLOO (no critic: a group of responses per prompt is the baseline)


def grpo_loss(logp, old_logp, ref_logp, advantages, mask, *, clip_eps, beta):
    """GRPO's objective as a loss (Shao et al. 2024, eq. 3), ρ_t = π_θ(y_t) / π_old(y_t):
        L = 1/B Σ_i 1/|y_i| Σ_t [ max(−Â_i ρ_t, −Â_i clip(ρ_t, 1−ε, 1+ε)) + β k3_t ],
        k3_t = π_ref(y_t)/π_θ(y_t) − log(π_ref(y_t)/π_θ(y_t)) − 1.
    (B, T) x3, (B,), (B, T) -> scalar. Lesson 08.

    PPO's clipped surrogate with one advantage per response (`rl.group_advantages`), and the KL to the reference
    as a term of the loss (`rl.k3_kl`, through the current policy) instead of a penalty in the reward. Each
    response's tokens are averaged first, then the responses: a long response weighs as much as a short one.
    stats: clip_frac, kl (mean k3 per token), ratio_mean, ratio_max, pg_loss (the surrogate alone)."""
    assert logp.shape == old_logp.shape == ref_logp.shape == mask.shape and advantages.shape == logp.shape[:1]
    m = mask.bool()
    ratio = torch.where(m, logp - old_logp, 0.0).exp()  # (B, T)
    adv = advantages.unsqueeze(-1)  # (B, 1) Â_i for every token of response i
    pg_unclipped = -adv * ratio  # (B, T)
    pg_clipped = -adv * ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps)  # (B, T)
    pg = torch.maximum(pg_unclipped, pg_clipped)  # (B, T)
    kl = k3_kl(logp, ref_logp, mask)  # (B, T)
    n_tokens = mask.sum(-1).clamp(min=1)  # (B,) |y_i|
    loss = (masked_sum(pg + beta * kl, mask, dim=-1) / n_tokens).mean()
    with torch.no_grad():
        stats = {"clip_frac": masked_mean((pg_clipped > pg_unclipped).to(ratio.dtype), mask),
                 "kl": masked_mean(kl, mask), "ratio_mean": masked_mean(ratio, mask),
                 "ratio_max": torch.where(m, ratio, 0.0).max(),
                 "pg_loss": (masked_sum(pg, mask, dim=-1) / n_tokens).mean()}
    return loss, stats


def rloo_loss(logp, old_logp, advantages, mask):
    """RLOO's REINFORCE loss, the whole completion one action (Ahmadian et al. 2024, eq. 5):
        L = −1/B Σ_i Â_i Σ_t log π_θ(y_{i,t}),    Â_i = r_i − 1/(k−1) Σ_{j≠i} r_j  (`rl.leave_one_out_baseline`),
    with r_i = score − β log(π_old(y_i)/π_ref(y_i)): the KL penalty is in the reward, as in InstructGPT.
    (B, T), (B, T), (B,), (B, T) -> scalar. Lesson 08.

    old_logp (the rollout's log-probs) is used only for stats: ratio_mean is the mean sequence ratio
    π_θ(y)/π_old(y), which drifts from 1 as the minibatch steps of one rollout move the policy (then REINFORCE is
    slightly off-policy). stats: ratio_mean, logp_seq (mean Σ_t log π_θ)."""
    assert logp.shape == old_logp.shape == mask.shape and advantages.shape == logp.shape[:1]
    logp_seq = masked_sum(logp, mask, dim=-1)  # (B,) log π_θ(y_i | x_i)
    loss = -(advantages * logp_seq).mean()
    with torch.no_grad():
        stats = {"ratio_mean": (logp_seq - masked_sum(old_logp, mask, dim=-1)).exp().mean(),
                 "logp_seq": logp_seq.mean()}
    return loss, stats
