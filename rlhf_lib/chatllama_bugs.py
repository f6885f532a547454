"""Spot the bugs (lesson 04): three mistakes of ChatLLaMA's PPO trainer, each measured on a real rollout.

1. `log(max softmax)` as the action's log-prob instead of the sampled token's;
2. the KL penalty against the old policy (0 right after a rollout) instead of the frozen reference;
3. `advantages = rewards − values` without the KL penalty and without GAE.
"""
from __future__ import annotations

import torch

from .rl import gae, kl_estimates, kl_penalized_rewards, logprobs_from_logits, masked_mean
from .rollout import Memory, memory_logits


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


def measure_bugs(policy, mem: Memory, *, temperature: float, beta: float, gamma: float, lam: float) -> dict:
    """All three bugs measured on one fresh rollout `mem` of `policy`: {"log_max_softmax": …, "kl_vs_old": …,
    "no_gae": …}, the dicts of the three functions above."""
    return {"log_max_softmax": bug_max_softmax_logp(policy, mem, temperature),
            "kl_vs_old": bug_kl_vs_old_policy(policy, mem, temperature),
            "no_gae": bug_advantage_without_gae(mem, beta=beta, gamma=gamma, lam=lam)}


def bug_rows(bugs: dict) -> list[dict]:
    """Lesson 04's table of `measure_bugs`: what each bug gets wrong, the buggy and the correct number, and what
    follows."""
    b1, b2, b3 = bugs["log_max_softmax"], bugs["kl_vs_old"], bugs["no_gae"]
    return [
        {"bug": "(1) log max softmax",
         "what it gets wrong": f"{b1['frac_sampled_not_argmax']:.1%} of sampled tokens are not the argmax",
         "buggy": f"mean log max π = {b1['log_max_softmax']:.3f}",
         "correct": f"mean log π(y_t) = {b1['logp_sampled']:.3f}",
         "consequence": f"cosine(gradient_bug, gradient_correct) = {b1['grad_cosine']:.2f}"},
        {"bug": "(2) KL to the old policy", "what it gets wrong": "π_old is the policy that just sampled",
         "buggy": f"KL(π ‖ π_old) = {b2['kl_vs_old_policy']:.4f} nats/token",
         "correct": f"KL(π ‖ π_SFT) = {b2['kl_vs_reference']:.4f} nats/token",
         "consequence": f"{b2['kl_vs_reference_per_response']:.2f} nats per response of drift go unpenalised"},
        {"bug": "(3) r − V, no GAE", "what it gets wrong": "the KL penalty is not in the reward; λ = 1",
         "buggy": f"Var[A] = {b3['var_naive']:.3f}", "correct": f"Var[A_GAE] = {b3['var_gae']:.3f}",
         "consequence": f"β·KL = {b3['kl_penalty_dropped']:.3f} per response missing from the return"},
    ]
