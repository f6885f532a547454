"""Tests for rlhf_lib.rl against plain-python references, hand-worked numbers and closed forms."""

import math

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from rlhf_lib.rl import (
    AdaptiveKLController,
    FixedKLController,
    entropy_from_logits,
    gae,
    kl_estimates,
    kl_penalized_rewards,
    logprobs_from_logits,
    masked_mean,
    masked_sum,
    masked_var,
    whiten,
)

GARBAGE = [1e30, -1e30, float("inf"), float("nan")]


def make_mask(lengths, T):
    """Right-padded float 0/1 mask (B, T)."""
    return (torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]).float()


def fill_masked(x, mask, value):
    return torch.where(mask.bool(), x, torch.full_like(x, value))


def real_values(x, lengths):
    """Plain python list of the real-token values of x, row by row."""
    return [float(x[b, t]) for b, L in enumerate(lengths) for t in range(L)]


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    lengths = [5, 3, 1, 4]
    B, T = len(lengths), 6
    x = torch.randn(B, T, generator=g, dtype=torch.float64)
    return x, make_mask(lengths, T).double(), lengths


# ----------------------------------------------------------------------------
# masked reductions


def test_masked_sum_mean_match_python_loop(batch):
    x, mask, lengths = batch
    vals = real_values(x, lengths)
    assert_close(masked_sum(x, mask), torch.tensor(sum(vals), dtype=x.dtype))
    assert_close(masked_mean(x, mask), torch.tensor(sum(vals) / len(vals), dtype=x.dtype))
    row_means = torch.tensor([sum(float(v) for v in x[b, :L]) / L for b, L in enumerate(lengths)], dtype=x.dtype)
    assert_close(masked_mean(x, mask, dim=1), row_means)


def test_masked_mean_hand_example():
    # real values 1, 3 | 5 -> mean 3; the 100 is padding
    x = torch.tensor([[1.0, 3.0], [5.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    assert_close(masked_mean(x, mask), torch.tensor(3.0))
    assert_close(masked_sum(x, mask), torch.tensor(9.0))
    # unbiased var of {1, 3, 5} = ((−2)² + 0² + 2²) / 2 = 4; biased = 8/3
    assert_close(masked_var(x, mask), torch.tensor(4.0))
    assert_close(masked_var(x, mask, unbiased=False), torch.tensor(8.0 / 3.0))


def test_masked_var_matches_numpy(batch):
    x, mask, lengths = batch
    vals = np.array(real_values(x, lengths))
    assert_close(masked_var(x, mask), torch.tensor(vals.var(ddof=1), dtype=x.dtype))
    assert_close(masked_var(x, mask, unbiased=False), torch.tensor(vals.var(ddof=0), dtype=x.dtype))


@pytest.mark.parametrize("value", GARBAGE)
def test_masked_reductions_ignore_garbage(batch, value):
    x, mask, _ = batch
    xg = fill_masked(x, mask, value)
    assert_close(masked_sum(xg, mask), masked_sum(x, mask))
    assert_close(masked_mean(xg, mask), masked_mean(x, mask))
    assert_close(masked_mean(xg, mask, dim=1), masked_mean(x, mask, dim=1))
    assert_close(masked_var(xg, mask), masked_var(x, mask))


# ----------------------------------------------------------------------------
# whiten


def test_whiten_matches_numpy(batch):
    x, mask, lengths = batch
    vals = np.array(real_values(x, lengths))
    mean, var = vals.mean(), vals.var(ddof=1)
    expected = torch.zeros_like(x)
    expected_unshifted = torch.zeros_like(x)
    for b, L in enumerate(lengths):
        for t in range(L):
            z = (float(x[b, t]) - mean) / math.sqrt(var + 1e-8)
            expected[b, t] = z
            expected_unshifted[b, t] = z + mean
    assert_close(whiten(x, mask), expected)
    assert_close(whiten(x, mask, shift_mean=False), expected_unshifted)


def test_whiten_moments_and_zero_padding(batch):
    x, mask, _ = batch
    w = whiten(x, mask)
    assert_close(masked_mean(w, mask), torch.tensor(0.0, dtype=x.dtype), atol=1e-12, rtol=0)
    assert_close(masked_var(w, mask), torch.tensor(1.0, dtype=x.dtype), atol=1e-6, rtol=0)
    assert (w[mask == 0] == 0).all()
    w2 = whiten(x, mask, shift_mean=False)
    assert_close(masked_mean(w2, mask), masked_mean(x, mask))  # mean kept, only the scale changes
    assert (w2[mask == 0] == 0).all()


@pytest.mark.parametrize("value", GARBAGE)
def test_whiten_ignores_garbage_and_grads_finite(batch, value):
    x, mask, _ = batch
    xg = fill_masked(x, mask, value).requires_grad_(True)
    out = whiten(xg, mask, shift_mean=False)
    assert_close(out, whiten(x, mask, shift_mean=False))
    (out * torch.arange(out.numel(), dtype=x.dtype).view_as(out)).sum().backward()
    assert torch.isfinite(xg.grad).all()
    assert (xg.grad[mask == 0] == 0).all()


# ----------------------------------------------------------------------------
# logprobs, entropy


def test_logprobs_hand_example_and_chatllama_bug():
    # softmax([0, ln 3]) = [1/4, 3/4]
    logits = torch.tensor([[[0.0, math.log(3.0)], [0.0, math.log(3.0)]]])  # (1, 2, 2)
    tokens = torch.tensor([[0, 1]])
    lp = logprobs_from_logits(logits, tokens)
    assert_close(lp, torch.tensor([[math.log(0.25), math.log(0.75)]]))
    # the log(max softmax) shortcut gives log(3/4) for both, wrong for the sampled token 0
    buggy = logits.softmax(-1).max(-1).values.log()
    assert not torch.allclose(buggy[0, 0], lp[0, 0])


def test_logprobs_match_python_loop():
    g = torch.Generator().manual_seed(1)
    B, T, V = 3, 4, 7
    logits = torch.randn(B, T, V, generator=g, dtype=torch.float64) * 3
    tokens = torch.randint(0, V, (B, T), generator=g)
    expected = torch.empty(B, T, dtype=torch.float64)
    for b in range(B):
        for t in range(T):
            row = [float(v) for v in logits[b, t]]
            z = math.log(sum(math.exp(v) for v in row))
            expected[b, t] = row[int(tokens[b, t])] - z
    assert_close(logprobs_from_logits(logits, tokens), expected)


def test_logprobs_stable_for_huge_logits():
    logits = torch.tensor([[[1e4, 0.0, -1e4]]], requires_grad=True)
    lp = logprobs_from_logits(logits, torch.tensor([[1]]))
    assert_close(lp, torch.tensor([[-1e4]]))
    lp.sum().backward()
    assert torch.isfinite(logits.grad).all()


def test_entropy_matches_numpy_and_uniform():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 3, 5, generator=g, dtype=torch.float64)
    p = np.exp(logits.numpy()) / np.exp(logits.numpy()).sum(-1, keepdims=True)
    expected = torch.from_numpy(-(p * np.log(p)).sum(-1))
    assert_close(entropy_from_logits(logits), expected)
    # uniform over V = 8 -> ln 8
    assert_close(entropy_from_logits(torch.zeros(1, 1, 8)), torch.tensor([[math.log(8.0)]]))


def test_entropy_with_neg_inf_logits():
    # two live tokens with equal logits -> ln 2; the -inf entries contribute exactly 0
    logits = torch.tensor([[[0.0, -math.inf, -math.inf, 0.0]]], requires_grad=True)
    h = entropy_from_logits(logits)
    assert_close(h, torch.tensor([[math.log(2.0)]]))
    h.sum().backward()
    assert torch.isfinite(logits.grad).all()


# ----------------------------------------------------------------------------
# KL-penalised rewards


def ref_kl_rewards(scores, logp, ref_logp, lengths, beta, T):
    out = [[0.0] * T for _ in lengths]
    for b, L in enumerate(lengths):
        for t in range(L):
            out[b][t] = -beta * (float(logp[b, t]) - float(ref_logp[b, t]))
        if L > 0:
            out[b][L - 1] += float(scores[b])
    return torch.tensor(out, dtype=torch.float64)


def test_kl_rewards_hand_example():
    # kl = [0.5, 0]; beta 0.1 -> [-0.05, 0]; score 5 lands on the last real token (t = 1)
    logp = torch.tensor([[-1.0, -2.0, -3.0]])
    ref_logp = torch.tensor([[-1.5, -2.0, -2.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    r = kl_penalized_rewards(torch.tensor([5.0]), logp, ref_logp, mask, beta=0.1)
    assert_close(r, torch.tensor([[-0.05, 5.0, 0.0]]))


@pytest.mark.parametrize("value", GARBAGE)
def test_kl_rewards_match_loop_and_ignore_garbage(batch, value):
    x, mask, lengths = batch
    B, T = x.shape
    g = torch.Generator().manual_seed(3)
    logp = -torch.rand(B, T, generator=g, dtype=torch.float64) * 3
    ref_logp = -torch.rand(B, T, generator=g, dtype=torch.float64) * 3
    scores = torch.randn(B, generator=g, dtype=torch.float64)
    expected = ref_kl_rewards(scores, logp, ref_logp, lengths, 0.2, T)
    assert_close(kl_penalized_rewards(scores, logp, ref_logp, mask, beta=0.2), expected)
    lg = fill_masked(logp, mask, value).requires_grad_(True)
    rg = fill_masked(ref_logp, mask, -value)
    out = kl_penalized_rewards(scores, lg, rg, mask, beta=0.2)
    assert_close(out, expected)
    out.sum().backward()
    assert torch.isfinite(lg.grad).all()


def test_kl_rewards_empty_row_gets_nothing():
    mask = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    z = torch.zeros(2, 2)
    r = kl_penalized_rewards(torch.tensor([1.0, 7.0]), z, z, mask, beta=0.1)
    assert_close(r, torch.tensor([[0.0, 1.0], [0.0, 0.0]]))


# ----------------------------------------------------------------------------
# GAE


def ref_gae(rewards, values, lengths, gamma, lam, T):
    adv = [[0.0] * T for _ in lengths]
    ret = [[0.0] * T for _ in lengths]
    for b, L in enumerate(lengths):
        a = 0.0
        for t in reversed(range(L)):
            next_v = float(values[b, t + 1]) if t + 1 < L else 0.0
            delta = float(rewards[b, t]) + gamma * next_v - float(values[b, t])
            a = delta + gamma * lam * a
            adv[b][t] = a
            ret[b][t] = a + float(values[b, t])
    return torch.tensor(adv, dtype=torch.float64), torch.tensor(ret, dtype=torch.float64)


def test_gae_hand_example():
    # r = [1, 2], V = [0.5, 1.0], γ = λ = 0.5, third position is padding
    # t=1: δ = 2 + 0.5·0 − 1 = 1            A = 1
    # t=0: δ = 1 + 0.5·1 − 0.5 = 1          A = 1 + 0.25·1 = 1.25
    # returns = A + V = [1.75, 2.0]
    rewards = torch.tensor([[1.0, 2.0, 9.0]])
    values = torch.tensor([[0.5, 1.0, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    adv, ret = gae(rewards, values, mask, gamma=0.5, lam=0.5)
    assert_close(adv, torch.tensor([[1.25, 1.0, 0.0]]))
    assert_close(ret, torch.tensor([[1.75, 2.0, 0.0]]))


@pytest.mark.parametrize("gamma,lam", [(1.0, 0.95), (0.9, 0.5), (0.99, 1.0), (1.0, 0.0)])
def test_gae_matches_python_loop(batch, gamma, lam):
    x, mask, lengths = batch
    values = torch.randn_like(x)
    adv, ret = gae(x, values, mask, gamma=gamma, lam=lam)
    ref_adv, ref_ret = ref_gae(x, values, lengths, gamma, lam, x.shape[1])
    assert_close(adv, ref_adv)
    assert_close(ret, ref_ret)


def test_gae_closed_forms(batch):
    x, mask, lengths = batch
    values = torch.randn_like(x)
    # γ = λ = 1: A_t = Σ_{k≥t} r_k − V_t (Monte-Carlo return minus baseline)
    adv, ret = gae(x, values, mask, gamma=1.0, lam=1.0)
    rtg = torch.flip(torch.cumsum(torch.flip(x * mask, [1]), 1), [1])  # reversed cumsum
    assert_close(adv, (rtg - values) * mask)
    assert_close(ret, rtg * mask)
    # λ = 0: A_t = δ_t (one-step TD error)
    adv0, _ = gae(x, values, mask, gamma=0.9, lam=0.0)
    next_v = torch.cat([values[:, 1:] * mask[:, 1:], torch.zeros_like(values[:, :1])], dim=1)
    assert_close(adv0, (x + 0.9 * next_v - values) * mask)


@pytest.mark.parametrize("value", GARBAGE)
def test_gae_ignores_garbage_and_grads_finite(batch, value):
    x, mask, _ = batch
    values = torch.randn_like(x)
    adv, ret = gae(x, values, mask, gamma=0.99, lam=0.95)
    rg = fill_masked(x, mask, value)
    vg = fill_masked(values, mask, value).requires_grad_(True)
    adv_g, ret_g = gae(rg, vg, mask, gamma=0.99, lam=0.95)
    assert_close(adv_g, adv)
    assert_close(ret_g, ret)
    (adv_g.sum() + ret_g.sum()).backward()
    assert torch.isfinite(vg.grad).all()
    assert (vg.grad[mask == 0] == 0).all()


# ----------------------------------------------------------------------------
# KL estimates


def test_kl_estimates_hand_example():
    # row 0: log ratios [ln 2, 0]  -> r = ref/π = [1/2, 1] -> k3 = [ln 2 − 1/2, 0]
    # row 1: log ratio [−ln 2, pad] -> r = 2                -> k3 = 1 − ln 2
    # k1 = (ln 2 + 0 − ln 2)/3 = 0;  k3 = (ln 2 − 1/2 + 1 − ln 2)/3 = 1/6
    # k1_seq = mean(ln 2, −ln 2) = 0
    ln2 = math.log(2.0)
    logp = torch.tensor([[ln2 - 1.0, -1.0], [-ln2 - 1.0, 123.0]])
    ref_logp = torch.tensor([[-1.0, -1.0], [-1.0, -456.0]])
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    kl = kl_estimates(logp, ref_logp, mask)
    assert_close(kl["k1"], torch.tensor(0.0), atol=1e-6, rtol=0)
    assert_close(kl["k3"], torch.tensor(1.0 / 6.0))
    assert_close(kl["k1_seq"], torch.tensor(0.0), atol=1e-6, rtol=0)
    # single row: k1_seq is the summed log ratio of the response
    kl0 = kl_estimates(logp[:1], ref_logp[:1], mask[:1])
    assert_close(kl0["k1_seq"], torch.tensor(ln2))
    assert_close(kl0["k1"], torch.tensor(ln2 / 2))


def test_kl_estimates_unbiased_monte_carlo():
    # tokens sampled from π: E[k1] = E[k3] = KL(π ‖ π_ref), computed exactly here
    g = torch.Generator().manual_seed(4)
    logp_all = torch.log_softmax(torch.randn(5, generator=g, dtype=torch.float64), 0)
    ref_all = torch.log_softmax(torch.randn(5, generator=g, dtype=torch.float64), 0)
    true_kl = float((logp_all.exp() * (logp_all - ref_all)).sum())
    tokens = torch.multinomial(logp_all.exp(), 200_000, replacement=True, generator=g).view(1000, 200)
    mask = torch.ones(1000, 200, dtype=torch.float64)
    kl = kl_estimates(logp_all[tokens], ref_all[tokens], mask)
    assert_close(kl["k1"], torch.tensor(true_kl, dtype=torch.float64), atol=0.02, rtol=0)
    assert_close(kl["k3"], torch.tensor(true_kl, dtype=torch.float64), atol=0.02, rtol=0)
    assert_close(kl["k1_seq"], torch.tensor(200 * true_kl, dtype=torch.float64), rtol=0.05, atol=0)


@pytest.mark.parametrize("value", GARBAGE)
def test_kl_estimates_ignore_garbage(batch, value):
    x, mask, lengths = batch
    ref = torch.randn_like(x)
    kl = kl_estimates(x, ref, mask)
    klg = kl_estimates(fill_masked(x, mask, value), fill_masked(ref, mask, value), mask)
    for k in ("k1", "k3", "k1_seq"):
        assert_close(klg[k], kl[k])
    lr = [float(x[b, t] - ref[b, t]) for b, L in enumerate(lengths) for t in range(L)]
    k3 = [math.exp(-v) - 1 + v for v in lr]
    assert_close(kl["k1"], torch.tensor(sum(lr) / len(lr), dtype=x.dtype))
    assert_close(kl["k3"], torch.tensor(sum(k3) / len(k3), dtype=x.dtype))
    assert (torch.tensor(k3) >= 0).all()


# ----------------------------------------------------------------------------
# KL controllers


def test_adaptive_kl_controller_worked_example():
    # target 6, horizon 10_000, n_steps 256 -> step factor 256/10_000 = 0.0256
    ctl = AdaptiveKLController(0.1, target=6.0, horizon=10_000)
    ctl.update(6.6, 256)  # e = 6.6/6 − 1 = 0.1 -> β = 0.1 · (1 + 0.1·0.0256) = 0.100256
    assert ctl.value == pytest.approx(0.100256)
    ctl = AdaptiveKLController(0.1, target=6.0, horizon=10_000)
    ctl.update(12.0, 256)  # e = 1 clipped to 0.2 -> β = 0.1 · 1.00512
    assert ctl.value == pytest.approx(0.100512)
    ctl = AdaptiveKLController(0.1, target=6.0, horizon=10_000)
    ctl.update(0.0, 256)  # e = −1 clipped to −0.2 -> β = 0.1 · 0.99488
    assert ctl.value == pytest.approx(0.099488)
    ctl.update(6.0, 256)  # on target: unchanged
    assert ctl.value == pytest.approx(0.099488)


def test_adaptive_kl_controller_direction():
    ctl = AdaptiveKLController(0.2, target=1.0, horizon=100)
    for _ in range(5):
        before = ctl.value
        ctl.update(3.0, 10)
        assert ctl.value > before
    for _ in range(5):
        before = ctl.value
        ctl.update(0.5, 10)
        assert ctl.value < before


def test_fixed_kl_controller():
    ctl = FixedKLController(0.05)
    ctl.update(100.0, 1000)
    assert ctl.value == 0.05
