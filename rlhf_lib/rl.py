"""Lesson 04 (PPO): the RL plumbing of InstructGPT's third step; lesson 08: the group baselines of GRPO and RLOO.

Everything here is a pure function on tensors except the two small KL
controllers. Conventions used throughout:
  B = batch (responses), T = response length, V = vocabulary size.
  mask is a float 0/1 tensor (B, T), right-padded: 1 on real response tokens.
  Values at masked positions never influence any result (they are replaced with
  torch.where before any arithmetic, so even inf/nan there cannot leak out).
  Means are token-level means over the whole batch: sum(x * mask) / sum(mask).
"""

import torch
import torch.nn.functional as F

# ----------------------------------------------------------------------------
# masked reductions


def masked_sum(x, mask, dim=None):
    """Sum of x over positions where mask = 1: Σ_t x_t·m_t.
    (B, T), (B, T) -> scalar, or reduced along dim. Lesson 04."""
    return torch.where(mask.bool(), x, 0.0).sum(dim=dim)


def masked_mean(x, mask, dim=None):
    """Token-level masked mean: Σ x·m / Σ m. (B, T), (B, T) -> scalar, or reduced along dim. Lesson 04."""
    return masked_sum(x, mask, dim) / mask.sum(dim=dim)


def masked_var(x, mask, unbiased=True):
    """Masked variance over all real tokens: Σ m (x − μ)² / (Σ m − 1 if unbiased else Σ m).
    (B, T), (B, T) -> scalar. Lesson 04.

    With unbiased=True a batch holding a single real token gives inf/nan
    (0 / 0), exactly like torch.var on one element.
    """
    mean = masked_mean(x, mask)
    centered = torch.where(mask.bool(), x - mean, 0.0)  # (B, T)
    var = masked_mean(centered**2, mask)
    if unbiased:
        n = mask.sum()
        var = var * n / (n - 1)  # Bessel's correction
    return var


def whiten(x, mask, *, shift_mean=True):
    """Masked standardisation: (x − μ) / sqrt(σ² + 1e-8), μ added back if not shift_mean.
    (B, T), (B, T) -> (B, T). Lesson 04.

    μ and σ² are taken over the real tokens of the whole batch (σ² unbiased,
    as in OpenAI's lm-human-preferences and TRL). Masked positions output 0.
    """
    m = mask.bool()
    x = torch.where(m, x, 0.0)  # (B, T) sanitise first so garbage cannot reach the gradient
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    out = (x - mean) * torch.rsqrt(var + 1e-8)  # (B, T)
    if not shift_mean:
        out = out + mean
    return torch.where(m, out, 0.0)


# ----------------------------------------------------------------------------
# log-probs, rewards, advantages


def logprobs_from_logits(logits, tokens):
    """Log-prob of the sampled token: log π(y_t | x, y_<t) = logits[y_t] − logsumexp(logits).
    (B, T, V), (B, T) -> (B, T). Lesson 04.

    This is the action's log-probability that the policy-gradient ratio needs.
    (ChatLLaMA's actor used log(max softmax), i.e. the log-prob of the *greedy*
    token, which is wrong whenever the sampled token is not the argmax.)
    Written as gather − logsumexp so no (B, T, V) log-softmax is materialised.
    """
    picked = logits.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)  # (B, T)
    return picked - torch.logsumexp(logits, dim=-1)  # (B, T)


def kl_penalized_rewards(scores, logp, ref_logp, mask, *, beta):
    """Per-token reward r_t = −β (log π(y_t) − log π_ref(y_t)) + [t = last] · score.
    (B,), (B, T), (B, T), (B, T) -> (B, T). Lesson 04.

    InstructGPT's objective: r_θ(x, y) − β log(π(y|x) / π_SFT(y|x)), with the
    KL penalty spread over tokens and the reward model's score on the last
    real token of each response. Masked positions are 0.
    """
    m = mask.bool()
    B, T = logp.shape
    assert scores.shape == (B,) and ref_logp.shape == (B, T) and mask.shape == (B, T)
    kl = torch.where(m, logp - ref_logp, 0.0)  # (B, T)
    rewards = -beta * kl  # (B, T)
    pos = torch.arange(T, device=logp.device).expand(B, T)  # (B, T)
    last = torch.where(m, pos, -1).amax(dim=-1)  # (B,) index of the last real token, -1 if none
    is_last = pos == last.unsqueeze(-1)  # (B, T)
    rewards = rewards + torch.where(is_last, scores.unsqueeze(-1), 0.0)  # (B, T)
    return torch.where(m, rewards, 0.0)


def gae(rewards, values, mask, *, gamma, lam):
    """Generalised Advantage Estimation: δ_t = r_t + γ V_{t+1} − V_t, A_t = δ_t + γλ A_{t+1}, R_t = A_t + V_t.
    (B, T) x3 -> (B, T), (B, T). Lesson 04.

    Schulman et al. 2016. V after the last real token is 0 (the episode ends
    with the response). Masked positions are 0 in both outputs.
    """
    m = mask.bool()
    assert rewards.shape == values.shape == mask.shape
    rewards = torch.where(m, rewards, 0.0)  # (B, T)
    values = torch.where(m, values, 0.0)  # (B, T) right padding => V = 0 past the end
    T = rewards.shape[1]
    last_adv = torch.zeros_like(rewards[:, 0])  # (B,)
    advs = []
    for t in reversed(range(T)):
        next_value = values[:, t + 1] if t + 1 < T else torch.zeros_like(values[:, 0])  # (B,)
        delta = rewards[:, t] + gamma * next_value - values[:, t]  # (B,)
        last_adv = torch.where(m[:, t], delta + gamma * lam * last_adv, 0.0)  # (B,)
        advs.append(last_adv)
    advantages = torch.stack(advs[::-1], dim=1)  # (B, T)
    returns = torch.where(m, advantages + values, 0.0)  # (B, T)
    return advantages, returns


# ----------------------------------------------------------------------------
# diagnostics


def kl_estimates(logp, ref_logp, mask):
    """Monte-Carlo KL(π ‖ π_ref) from sampled tokens: k1 = log π − log π_ref, k3 = (r − 1) − log r, r = π_ref / π.
    (B, T) x3 -> dict of scalars. Lesson 04.

    From Schulman's note "Approximating KL Divergence" (2020): both are
    unbiased under y ~ π; k1 can be negative per sample, k3 is always ≥ 0 and
    has lower variance when π ≈ π_ref. k1 and k3 are token-level masked means;
    k1_seq is the mean over sequences of Σ_t k1_t, the "KL per response" that
    training curves usually plot. Detach the results if only used for logging.
    """
    m = mask.bool()
    log_ratio = torch.where(m, logp - ref_logp, 0.0)  # (B, T) log π − log π_ref
    k3 = torch.expm1(-log_ratio) + log_ratio  # (B, T) (r − 1) − log r, with log r = −log_ratio
    return {
        "k1": masked_mean(log_ratio, mask),
        "k3": masked_mean(k3, mask),
        "k1_seq": log_ratio.sum(dim=-1).mean(),
    }


def entropy_from_logits(logits):
    """Entropy of the next-token distribution: H = −Σ_v p_v log p_v. (B, T, V) -> (B, T). Lesson 04.

    Vocabulary entries with logit −inf (p = 0) contribute 0, with finite gradients.
    """
    logp = F.log_softmax(logits, dim=-1)  # (B, T, V)
    p = logp.exp()  # (B, T, V)
    return -(p * torch.where(torch.isfinite(logp), logp, 0.0)).sum(dim=-1)  # (B, T)


# ----------------------------------------------------------------------------
# KL coefficient controllers (the only stateful code in this file)


class AdaptiveKLController:
    """Adaptive β: e = clip(KL / target − 1, −0.2, 0.2), β ← β (1 + e · n_steps / horizon). Python floats. Lesson 04.

    Ziegler et al. 2019, "Fine-Tuning Language Models from Human Preferences".
    """

    def __init__(self, init_beta, target, horizon):
        self.value = init_beta
        self.target = target
        self.horizon = horizon

    def update(self, current_kl, n_steps):
        error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)  # proportional error, clipped
        self.value *= 1.0 + error * n_steps / self.horizon


class FixedKLController:
    """Constant β with the AdaptiveKLController interface: update() does nothing. Python float. Lesson 04."""

    def __init__(self, beta):
        self.value = beta

    def update(self, current_kl, n_steps):
        pass


def kl_controller(mode, beta, target, horizon):
    """The KL coefficient's controller: AdaptiveKLController(beta, target, horizon) for mode 'adaptive', else
    FixedKLController(beta). Lesson 04."""
    return AdaptiveKLController(beta, target, horizon) if mode == "adaptive" else FixedKLController(beta)


# ----------------------------------------------------------------------------
# per-response diagnostics


def sequence_kl(logp, ref_logp, mask):
    """KL per response: Σ_t m_t (log π(y_t) − log π_ref(y_t)), the k1 estimate summed over each response.
    (B, T) x3 -> (B,). Lesson 04.

    The number the KL controller follows and the training curves plot ("KL per response, in nats")."""
    return torch.where(mask.bool(), logp - ref_logp, 0.0).sum(dim=-1)


def explained_variance(values, returns, mask):
    """Explained variance of the critic: 1 − Var[R − V] / Var[R] over real tokens. (B, T) x3 -> float. Lesson 04.

    1 = the critic predicts the returns, 0 = no better than their mean, < 0 = worse; NaN when the returns do not
    vary (nothing to explain). Variances are unbiased, over the masked positions of the whole batch."""
    m = mask.bool()
    v, r = values[m], returns[m]
    var_r = r.var()
    return float("nan") if var_r == 0 else float(1 - (r - v).var() / var_r)


# ----------------------------------------------------------------------------
# lesson 08: group baselines (GRPO, RLOO) and the k3 KL as a loss term


def group_advantages(rewards, group_size, eps=1e-4):
    """GRPO's outcome advantage: Â_i = (r_i − mean(r_group)) / (std(r_group) + ε). (B,) -> (B,). Lesson 08.

    Shao et al. 2024 (DeepSeekMath), section 4.1.2: every token of response i gets Â_i. rewards holds B = P·G
    scores laid out as P consecutive groups of G responses to the same prompt. std is the unbiased one (Bessel's
    correction, as torch.std and TRL's GRPOTrainer); a group whose G rewards are all equal gets Â = 0 exactly.
    """
    assert rewards.dim() == 1 and group_size >= 2 and rewards.shape[0] % group_size == 0
    r = rewards.view(-1, group_size)  # (P, G)
    adv = (r - r.mean(dim=1, keepdim=True)) / (r.std(dim=1, keepdim=True) + eps)  # (P, G)
    return adv.reshape(-1)  # (B,)


def leave_one_out_baseline(rewards, k):
    """RLOO's baseline: b_i = 1/(k − 1) Σ_{j ≠ i} r_j = (Σ_group r − r_i) / (k − 1). (B,) -> (B,). Lesson 08.

    Ahmadian et al. 2024 ("Back to basics"), eq. 5 (Kool et al. 2019): each of the k samples of a prompt is
    baselined by the mean reward of the other k − 1, so the baseline does not depend on the sample it corrects
    (the estimate stays unbiased) and no critic is needed. rewards: P consecutive groups of k.
    The advantage r_i − b_i equals k/(k − 1) · (r_i − mean(r_group)).
    """
    assert rewards.dim() == 1 and k >= 2 and rewards.shape[0] % k == 0
    r = rewards.view(-1, k)  # (P, k)
    return ((r.sum(dim=1, keepdim=True) - r) / (k - 1)).reshape(-1)  # (B,)


def zero_advantage_groups(rewards, group_size, tol=1e-6):
    """Which groups have all their rewards equal (max − min ≤ tol): their advantages are 0 under both GRPO and RLOO,
    so they give no policy gradient. (B,) -> (P,) bool. Lesson 08."""
    assert rewards.dim() == 1 and rewards.shape[0] % group_size == 0
    r = rewards.view(-1, group_size)  # (P, G)
    return (r.amax(dim=1) - r.amin(dim=1)) <= tol  # (P,)


def k3_kl(logp, ref_logp, mask):
    """Per-token k3 estimate of KL(π ‖ π_ref): π_ref/π − log(π_ref/π) − 1 = exp(d) − d − 1, d = log π_ref − log π.
    (B, T) x3 -> (B, T). Lesson 08.

    Schulman 2020; the KL term of GRPO's loss (Shao et al. 2024, eq. 4). Always ≥ 0, 0 where π = π_ref, and its
    gradient in log π is 1 − π_ref/π: it pulls each token's log-prob back toward the reference's. Masked positions
    are 0 (garbage there cannot leak: it is replaced before the exponential)."""
    assert logp.shape == ref_logp.shape == mask.shape
    d = torch.where(mask.bool(), ref_logp - logp, 0.0)  # (B, T) log π_ref − log π
    return torch.where(mask.bool(), torch.expm1(d) - d, 0.0)  # (B, T)
