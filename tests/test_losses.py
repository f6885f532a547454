"""Tests for rlhf_lib.losses against plain-python references, hand-worked numbers and symmetries."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from rlhf_lib.losses import (
    masked_lm_loss,
    mse_reward_loss,
    pairwise_loss,
    pairwise_loss_grouped,
    ppo_policy_loss,
    ppo_value_loss,
)

GARBAGE = [1e30, -1e30, float("inf"), float("nan")]
LN2 = math.log(2.0)


def make_mask(lengths, T):
    return (torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]).float()


def fill_masked(x, mask, value):
    return torch.where(mask.bool(), x, torch.full_like(x, value))


def log_sigmoid(z):
    """Plain-python stable log σ(z)."""
    return -math.log1p(math.exp(-z)) if z >= 0 else z - math.log1p(math.exp(z))


def assert_detached(stats):
    for v in stats.values():
        assert isinstance(v, torch.Tensor) and not v.requires_grad


# ----------------------------------------------------------------------------
# lesson 02: masked LM loss


def test_masked_lm_loss_hand_example():
    # softmax([0, ln 3]) = [1/4, 3/4]; softmax([ln 3, 0]) = [3/4, 1/4]
    # labels 1, 1 -> nll = −ln 3/4, −ln 1/4 -> loss = −½ ln(3/16); third token is padding
    logits = torch.tensor([[[0.0, math.log(3.0)], [math.log(3.0), 0.0], [50.0, -50.0]]], requires_grad=True)
    labels = torch.tensor([[1, 1, -100]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    loss, stats = masked_lm_loss(logits, labels, mask)
    assert_close(loss, torch.tensor(-0.5 * math.log(3.0 / 16.0)))
    assert_close(stats["n_tokens"], torch.tensor(2.0))
    assert_close(stats["ppl"], torch.tensor(math.sqrt(16.0 / 3.0)))
    assert_detached(stats)
    loss.backward()
    assert (logits.grad[0, 2] == 0).all()


def test_masked_lm_loss_uniform_is_log_vocab():
    logits = torch.zeros(2, 3, 4)
    loss, stats = masked_lm_loss(logits, torch.zeros(2, 3, dtype=torch.long), make_mask([3, 1], 3))
    assert_close(loss, torch.tensor(math.log(4.0)))
    assert_close(stats["ppl"], torch.tensor(4.0))


def test_masked_lm_loss_matches_loop_and_cross_entropy():
    g = torch.Generator().manual_seed(0)
    B, T, V = 3, 5, 6
    lengths = [5, 2, 3]
    logits = torch.randn(B, T, V, generator=g, dtype=torch.float64)
    labels = torch.randint(0, V, (B, T), generator=g)
    mask = make_mask(lengths, T).double()
    total, n = 0.0, 0
    for b, L in enumerate(lengths):
        for t in range(L):
            row = [float(v) for v in logits[b, t]]
            total += math.log(sum(math.exp(v) for v in row)) - row[int(labels[b, t])]
            n += 1
    loss, stats = masked_lm_loss(logits, labels, mask)
    assert_close(loss, torch.tensor(total / n, dtype=torch.float64))
    assert_close(stats["n_tokens"], torch.tensor(float(n), dtype=torch.float64))
    ce = F.cross_entropy(logits.view(-1, V), torch.where(mask.bool(), labels, -100).view(-1), ignore_index=-100)
    assert_close(loss, ce)


def test_masked_lm_loss_ignores_garbage():
    g = torch.Generator().manual_seed(1)
    B, T, V = 2, 4, 5
    mask = make_mask([4, 2], T)
    logits = torch.randn(B, T, V, generator=g)
    labels = torch.randint(0, V, (B, T), generator=g)
    loss, _ = masked_lm_loss(logits, labels, mask)
    pad = ~mask.bool()
    logits_g = torch.where(pad[..., None], 1e4 * torch.randn(B, T, V, generator=g), logits).requires_grad_(True)
    labels_g = torch.where(pad, torch.tensor(10**9), labels)  # out-of-vocab ids at padding
    loss_g, _ = masked_lm_loss(logits_g, labels_g, mask)
    assert_close(loss_g, loss)
    loss_g.backward()
    assert torch.isfinite(logits_g.grad).all()
    assert (logits_g.grad[pad] == 0).all()


# ----------------------------------------------------------------------------
# lesson 03: reward model losses


def test_pairwise_loss_equal_rewards_is_log2():
    r = torch.randn(7)
    loss, stats = pairwise_loss(r, r.clone())
    assert_close(loss, torch.tensor(LN2))
    assert_close(stats["margin"], torch.tensor(0.0))
    assert_close(stats["accuracy"], torch.tensor(0.0))  # ties are not counted as correct


def test_pairwise_loss_hand_example_and_symmetry():
    # difference ln 3: σ(ln 3) = 3/4 -> loss −ln 3/4; swapped: σ(−ln 3) = 1/4 -> loss −ln 1/4
    rc = torch.tensor([math.log(3.0) + 1.0])
    rr = torch.tensor([1.0])
    loss, stats = pairwise_loss(rc, rr)
    assert_close(loss, torch.tensor(-math.log(0.75)))
    assert_close(stats["accuracy"], torch.tensor(1.0))
    loss_sw, stats_sw = pairwise_loss(rr, rc)
    assert_close(loss_sw, torch.tensor(-math.log(0.25)))
    assert_close(stats_sw["margin"], -stats["margin"])
    assert_close(stats_sw["accuracy"], torch.tensor(0.0))


def test_pairwise_loss_matches_loop_and_is_stable():
    g = torch.Generator().manual_seed(2)
    rc = torch.randn(9, generator=g, dtype=torch.float64) * 3
    rr = torch.randn(9, generator=g, dtype=torch.float64) * 3
    loss, stats = pairwise_loss(rc, rr)
    diffs = [float(a - b) for a, b in zip(rc, rr)]
    assert_close(loss, torch.tensor(-sum(log_sigmoid(d) for d in diffs) / 9, dtype=torch.float64))
    assert_close(stats["accuracy"], torch.tensor(sum(d > 0 for d in diffs) / 9, dtype=torch.float64))
    assert_close(stats["margin"], torch.tensor(sum(diffs) / 9, dtype=torch.float64))
    assert_detached(stats)
    # a badly wrong pair: loss ≈ 1000, gradient −1 / +1, no overflow
    rc = torch.tensor([-1000.0], requires_grad=True)
    rr = torch.tensor([0.0], requires_grad=True)
    loss, _ = pairwise_loss(rc, rr)
    assert_close(loss, torch.tensor(1000.0))
    loss.backward()
    assert_close(rc.grad, torch.tensor([-1.0]))
    assert_close(rr.grad, torch.tensor([1.0]))


def make_ranked_batch(ks, prompt_ids, seed=3):
    """All C(K,2) pairs for each prompt; response order inside a prompt = human ranking (best first)."""
    g = torch.Generator().manual_seed(seed)
    rewards = torch.randn(sum(ks), generator=g, dtype=torch.float64)
    chosen, rejected, group, offset = [], [], [], 0
    for k, pid in zip(ks, prompt_ids):
        for i, j in itertools.combinations(range(k), 2):
            chosen.append(offset + i)
            rejected.append(offset + j)
            group.append(pid)
        offset += k
    return rewards, torch.tensor(chosen), torch.tensor(rejected), torch.tensor(group)


def test_pairwise_loss_grouped_matches_loop_over_prompts():
    ks, ids = [2, 4, 3, 9], [42, 7, 1000, 3]  # arbitrary, unsorted prompt ids
    rewards, ci, ri, group = make_ranked_batch(ks, ids)
    # shuffle the pairs: grouping must not rely on order
    perm = torch.randperm(len(group), generator=torch.Generator().manual_seed(5))
    ci, ri, group = ci[perm], ri[perm], group[perm]
    per_prompt = []
    for pid in ids:
        losses = [-log_sigmoid(float(rewards[c] - rewards[r])) for c, r, p in zip(ci, ri, group) if int(p) == pid]
        per_prompt.append(sum(losses) / len(losses))
    loss, stats = pairwise_loss_grouped(rewards, ci, ri, group)
    assert_close(loss, torch.tensor(sum(per_prompt) / len(per_prompt), dtype=torch.float64))
    diffs = [float(rewards[c] - rewards[r]) for c, r in zip(ci, ri)]
    assert_close(stats["margin"], torch.tensor(sum(diffs) / len(diffs), dtype=torch.float64))
    assert_close(stats["accuracy"], torch.tensor(sum(d > 0 for d in diffs) / len(diffs), dtype=torch.float64))
    assert_detached(stats)


def test_pairwise_loss_grouped_vs_flat():
    # equal K everywhere -> same as the flat pairwise loss
    rewards, ci, ri, group = make_ranked_batch([4, 4, 4], [0, 1, 2])
    assert_close(pairwise_loss_grouped(rewards, ci, ri, group)[0], pairwise_loss(rewards[ci], rewards[ri])[0])
    # unequal K: prompt 0 has one tied pair (loss ln 2), prompt 1 three easy pairs (loss ≈ 0)
    # grouped = (ln 2 + 0)/2, flat = ln 2 / 4
    rewards = torch.tensor([0.0, 0.0, 300.0, 200.0, 100.0], requires_grad=True)
    ci, ri, group = torch.tensor([0, 2, 2, 3]), torch.tensor([1, 3, 4, 4]), torch.tensor([0, 1, 1, 1])
    loss, _ = pairwise_loss_grouped(rewards, ci, ri, group)
    assert_close(loss, torch.tensor(LN2 / 2))
    assert_close(pairwise_loss(rewards[ci], rewards[ri])[0], torch.tensor(LN2 / 4))
    loss.backward()
    assert torch.isfinite(rewards.grad).all()
    # d/dr0 of ½·(−log σ(r0 − r1)) at r0 = r1: −½ · ½ = −¼
    assert_close(rewards.grad[:2], torch.tensor([-0.25, 0.25]))


def test_mse_reward_loss_hand_example():
    # errors 1, −2 -> mse (1 + 4)/2 = 2.5, mae 1.5
    loss, stats = mse_reward_loss(torch.tensor([1.0, 2.0]), torch.tensor([0.0, 4.0]))
    assert_close(loss, torch.tensor(2.5))
    assert_close(stats["mae"], torch.tensor(1.5))


# ----------------------------------------------------------------------------
# lesson 04: PPO


def ref_ppo_policy(logp, old_logp, adv, lengths, eps):
    terms, clipped, n = [], 0, 0
    for b, L in enumerate(lengths):
        for t in range(L):
            ratio = math.exp(float(logp[b, t] - old_logp[b, t]))
            a = float(adv[b, t])
            u, c = -a * ratio, -a * min(max(ratio, 1 - eps), 1 + eps)
            terms.append(max(u, c))
            clipped += c > u
            n += 1
    return sum(terms) / n, clipped / n


@pytest.fixture
def ppo_batch():
    g = torch.Generator().manual_seed(6)
    lengths = [6, 2, 4]
    B, T = len(lengths), 6
    logp = -torch.rand(B, T, generator=g, dtype=torch.float64) * 4
    old_logp = logp + 0.3 * torch.randn(B, T, generator=g, dtype=torch.float64)
    adv = torch.randn(B, T, generator=g, dtype=torch.float64)
    return logp, old_logp, adv, make_mask(lengths, T).double(), lengths


def test_ppo_policy_loss_ratio_one_is_minus_advantage(ppo_batch):
    logp, _, adv, mask, lengths = ppo_batch
    logp = logp.clone().requires_grad_(True)
    loss, stats = ppo_policy_loss(logp, logp.detach(), adv, mask, clip_eps=0.2)
    real_adv = [float(adv[b, t]) for b, L in enumerate(lengths) for t in range(L)]
    n = len(real_adv)
    assert_close(loss, torch.tensor(-sum(real_adv) / n, dtype=torch.float64))
    assert_close(stats["clip_frac"], torch.tensor(0.0, dtype=torch.float64))
    assert_close(stats["approx_kl"], torch.tensor(0.0, dtype=torch.float64))
    assert_close(stats["ratio_mean"], torch.tensor(1.0, dtype=torch.float64))
    assert_close(stats["ratio_max"], torch.tensor(1.0, dtype=torch.float64))
    loss.backward()
    assert_close(logp.grad, -adv * mask / n)  # the vanilla policy gradient


def test_ppo_policy_loss_worked_clip_example():
    # ε = 0.2, four real tokens + one padding token
    #   A=+1 ρ=1.5: max(−1.5, −1.2) = −1.2  clipped  (grad 0)
    #   A=+1 ρ=0.5: max(−0.5, −0.8) = −0.5           (grad −A·ρ/4 = −0.125)
    #   A=−1 ρ=1.5: max( 1.5,  1.2) =  1.5           (grad −A·ρ/4 = +0.375)
    #   A=−1 ρ=0.5: max( 0.5,  0.8) =  0.8  clipped  (grad 0)
    # loss = (−1.2 − 0.5 + 1.5 + 0.8)/4 = 0.15, clip_frac = 1/2
    lr = [math.log(1.5), math.log(0.5), math.log(1.5), math.log(0.5), 77.0]
    logp = torch.tensor([lr], dtype=torch.float64, requires_grad=True)
    old_logp = torch.zeros(1, 5, dtype=torch.float64)
    adv = torch.tensor([[1.0, 1.0, -1.0, -1.0, 1e30]], dtype=torch.float64)
    mask = torch.tensor([[1.0, 1.0, 1.0, 1.0, 0.0]], dtype=torch.float64)
    loss, stats = ppo_policy_loss(logp, old_logp, adv, mask, clip_eps=0.2)
    assert_close(loss, torch.tensor(0.15, dtype=torch.float64))
    assert_close(stats["clip_frac"], torch.tensor(0.5, dtype=torch.float64))
    assert_close(stats["ratio_mean"], torch.tensor(1.0, dtype=torch.float64))
    assert_close(stats["ratio_max"], torch.tensor(1.5, dtype=torch.float64))
    kl = 0.5 * (math.log(1.5) ** 2 + math.log(2.0) ** 2) / 2  # ½·mean of (log ρ)²
    assert_close(stats["approx_kl"], torch.tensor(kl, dtype=torch.float64))
    assert_detached(stats)
    loss.backward()
    assert_close(logp.grad, torch.tensor([[0.0, -0.125, 0.375, 0.0, 0.0]], dtype=torch.float64))


@pytest.mark.parametrize("value", GARBAGE)
def test_ppo_policy_loss_matches_loop_and_ignores_garbage(ppo_batch, value):
    logp, old_logp, adv, mask, lengths = ppo_batch
    ref_loss, ref_clip = ref_ppo_policy(logp, old_logp, adv, lengths, 0.2)
    loss, stats = ppo_policy_loss(logp, old_logp, adv, mask, clip_eps=0.2)
    assert_close(loss, torch.tensor(ref_loss, dtype=torch.float64))
    assert_close(stats["clip_frac"], torch.tensor(ref_clip, dtype=torch.float64))
    lg = fill_masked(logp, mask, value).requires_grad_(True)
    loss_g, stats_g = ppo_policy_loss(lg, fill_masked(old_logp, mask, -value), fill_masked(adv, mask, value), mask,
                                      clip_eps=0.2)
    assert_close(loss_g, loss)
    for k in stats:
        assert_close(stats_g[k], stats[k])
    loss_g.backward()
    assert torch.isfinite(lg.grad).all()
    assert (lg.grad[mask == 0] == 0).all()


def test_ppo_value_loss_worked_example():
    # ε = 0.2, V_old = 0, R = 1:
    #   V=1.0:  (1−1)² = 0,    V_clip=0.2:  (0.2−1)² = 0.64 -> 0.64  clipped
    #   V=0.1:  0.81,          V_clip=0.1:  0.81            -> 0.81  (tie, not clipped)
    #   V=−1.0: 4,             V_clip=−0.2: 1.44            -> 4
    # loss = ½ · (0.64 + 0.81 + 4)/3 = 0.908333…, clip_frac = 1/3
    values = torch.tensor([[1.0, 0.1, -1.0, 5e29]], dtype=torch.float64, requires_grad=True)
    old_values = torch.tensor([[0.0, 0.0, 0.0, -5e29]], dtype=torch.float64)
    returns = torch.tensor([[1.0, 1.0, 1.0, 1e30]], dtype=torch.float64)
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]], dtype=torch.float64)
    loss, stats = ppo_value_loss(values, old_values, returns, mask, clip_eps=0.2)
    assert_close(loss, torch.tensor(0.5 * 5.45 / 3, dtype=torch.float64))
    assert_close(stats["clip_frac"], torch.tensor(1.0 / 3.0, dtype=torch.float64))
    assert_detached(stats)
    loss.backward()
    # token 0 clipped -> no gradient to V; token 2 unclipped: ½·2(V−R)/3 = −2/3; padding 0
    assert_close(values.grad[0, [0, 2, 3]], torch.tensor([0.0, -2.0 / 3.0, 0.0], dtype=torch.float64))


@pytest.mark.parametrize("value", GARBAGE)
def test_ppo_value_loss_matches_loop_and_ignores_garbage(ppo_batch, value):
    _, _, returns, mask, lengths = ppo_batch
    g = torch.Generator().manual_seed(7)
    old_values = torch.randn(returns.shape, generator=g, dtype=torch.float64)
    values = old_values + 0.5 * torch.randn(returns.shape, generator=g, dtype=torch.float64)
    terms, clipped = [], 0
    for b, L in enumerate(lengths):
        for t in range(L):
            v, vo, r = float(values[b, t]), float(old_values[b, t]), float(returns[b, t])
            vc = vo + min(max(v - vo, -0.2), 0.2)
            terms.append(max((v - r) ** 2, (vc - r) ** 2))
            clipped += (vc - r) ** 2 > (v - r) ** 2
    loss, stats = ppo_value_loss(values, old_values, returns, mask, clip_eps=0.2)
    assert_close(loss, torch.tensor(0.5 * sum(terms) / len(terms), dtype=torch.float64))
    assert_close(stats["clip_frac"], torch.tensor(clipped / len(terms), dtype=torch.float64))
    vg = fill_masked(values, mask, value).requires_grad_(True)
    loss_g, stats_g = ppo_value_loss(vg, fill_masked(old_values, mask, -value), fill_masked(returns, mask, value), mask,
                                     clip_eps=0.2)
    assert_close(loss_g, loss)
    assert_close(stats_g["clip_frac"], stats["clip_frac"])
    loss_g.backward()
    assert torch.isfinite(vg.grad).all()
    assert (vg.grad[mask == 0] == 0).all()
