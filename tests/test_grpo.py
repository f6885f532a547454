"""GRPO and RLOO (lesson 08): the pure functions against plain-Python loops and hand-worked numbers, then the loop
on tiny random models (no artifacts needed, a few seconds in all)."""
from __future__ import annotations

import math
import random

import pytest
import torch

from rlhf_lib import group_rollout, grpo, rloo, rollout
from rlhf_lib.generation import SamplingConfig
from rlhf_lib.losses import grpo_loss, rloo_loss
from rlhf_lib.models import ModelConfig, build_tiny_llama
from rlhf_lib.rl import group_advantages, k3_kl, leave_one_out_baseline, zero_advantage_groups
from rlhf_lib.tokenizer import train_tokenizer


# ------------------------------------------------------------------------------------------------- pure functions
def loop_group_advantages(rewards: list[float], G: int, eps: float) -> list[float]:
    out = []
    for start in range(0, len(rewards), G):
        group = rewards[start:start + G]
        mean = sum(group) / G
        std = math.sqrt(sum((r - mean) ** 2 for r in group) / (G - 1))
        out += [(r - mean) / (std + eps) for r in group]
    return out


def loop_leave_one_out(rewards: list[float], k: int) -> list[float]:
    out = []
    for start in range(0, len(rewards), k):
        group = rewards[start:start + k]
        out += [sum(r for j, r in enumerate(group) if j != i) / (k - 1) for i in range(k)]
    return out


@pytest.mark.parametrize("G", [2, 3, 4, 8])
def test_group_advantages_match_a_loop(G):
    rng = random.Random(G)
    rewards = [rng.gauss(0, 2) for _ in range(5 * G)]
    got = group_advantages(torch.tensor(rewards, dtype=torch.float64), G, eps=1e-4)
    assert got.tolist() == pytest.approx(loop_group_advantages(rewards, G, 1e-4), abs=1e-10)


def test_group_advantages_by_hand_and_zero_for_a_tied_group():
    # group 1: mean 2.5, unbiased std √(5/3) = 1.29099; group 2: all equal
    adv = group_advantages(torch.tensor([1.0, 2.0, 3.0, 4.0, 7.0, 7.0, 7.0, 7.0]), 4, eps=0.0)
    s = math.sqrt(5 / 3)
    assert adv[:4].tolist() == pytest.approx([-1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s], abs=1e-6)
    adv = group_advantages(torch.tensor([1.0, 2.0, 3.0, 4.0, 7.0, 7.0, 7.0, 7.0]), 4)
    assert adv[4:].tolist() == [0.0] * 4                                   # 0 / (0 + ε): no signal at all
    with pytest.raises(AssertionError):
        group_advantages(torch.ones(6), 4)                                 # 6 rewards are not groups of 4


@pytest.mark.parametrize("k", [2, 3, 4])
def test_leave_one_out_baseline_matches_a_loop_and_the_closed_form(k):
    rng = random.Random(k)
    rewards = [rng.gauss(0, 1) for _ in range(4 * k)]
    r = torch.tensor(rewards, dtype=torch.float64)
    b = leave_one_out_baseline(r, k)
    assert b.tolist() == pytest.approx(loop_leave_one_out(rewards, k), abs=1e-12)
    mean = r.view(-1, k).mean(1, keepdim=True)
    assert (r - b).tolist() == pytest.approx((k / (k - 1) * (r.view(-1, k) - mean)).reshape(-1).tolist(), abs=1e-12)


def test_leave_one_out_by_hand():
    b = leave_one_out_baseline(torch.tensor([1.0, 2.0, 3.0, 4.0]), 4)
    assert b.tolist() == pytest.approx([3.0, 8 / 3, 7 / 3, 2.0])
    assert leave_one_out_baseline(torch.tensor([5.0, -1.0]), 2).tolist() == [-1.0, 5.0]   # k = 2: the other one


def test_zero_advantage_groups():
    r = torch.tensor([1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.3, 0.3, 0.3 + 1e-9])
    assert zero_advantage_groups(r, 3).tolist() == [True, False, True, True]


def test_k3_kl_by_hand_masked_and_never_negative():
    logp = torch.tensor([[math.log(0.5), math.log(0.2), float("nan")]])
    ref = torch.tensor([[math.log(0.25), math.log(0.2), float("inf")]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    kl = k3_kl(logp, ref, mask)
    assert kl[0].tolist() == pytest.approx([0.5 - math.log(0.5) - 1, 0.0, 0.0])   # ratio 1/2; ratio 1; masked
    x = torch.randn(4, 6)
    assert (k3_kl(x, torch.randn(4, 6), torch.ones(4, 6)) >= 0).all()


def loop_grpo_loss(logp, old, ref, adv, mask, clip_eps, beta) -> float:
    total = 0.0
    for b in range(len(logp)):
        terms = []
        for t in range(len(logp[b])):
            if not mask[b][t]:
                continue
            ratio = math.exp(logp[b][t] - old[b][t])
            clipped = min(max(ratio, 1 - clip_eps), 1 + clip_eps)
            surrogate = min(ratio * adv[b], clipped * adv[b])
            d = ref[b][t] - logp[b][t]
            terms.append(-(surrogate - beta * (math.exp(d) - d - 1)))
        total += sum(terms) / len(terms)
    return total / len(logp)


def test_grpo_loss_matches_a_loop_and_masked_garbage_never_leaks():
    torch.manual_seed(0)
    B, T = 5, 7
    logp, old, ref = (torch.randn(B, T, dtype=torch.float64) * 0.3 - 1 for _ in range(3))
    adv = torch.randn(B, dtype=torch.float64)
    mask = torch.ones(B, T, dtype=torch.float64)
    for b, n in enumerate([7, 3, 1, 5, 6]):
        mask[b, n:] = 0
    want = loop_grpo_loss(logp.tolist(), old.tolist(), ref.tolist(), adv.tolist(), mask.tolist(), 0.2, 0.04)
    loss, stats = grpo_loss(logp, old, ref, adv, mask, clip_eps=0.2, beta=0.04)
    assert float(loss) == pytest.approx(want, abs=1e-10)
    garbage = mask == 0
    x = logp.clone().requires_grad_(True)
    loss2, _ = grpo_loss(torch.where(garbage, float("nan"), x), old.masked_fill(garbage, float("inf")),
                         ref.masked_fill(garbage, -float("inf")), adv, mask, clip_eps=0.2, beta=0.04)
    loss2.backward()
    assert float(loss2.detach()) == pytest.approx(want, abs=1e-10)
    assert torch.isfinite(x.grad).all() and (x.grad[garbage] == 0).all()
    assert 0 <= float(stats["clip_frac"]) <= 1 and float(stats["kl"]) >= 0


def test_grpo_gradient_on_policy_is_the_advantage_over_the_length():
    """At π = π_old = π_ref nothing is clipped and the KL's gradient is 0: ∂L/∂log π(y_bt) = −Â_b / (|y_b| · B)."""
    logp = torch.log(torch.tensor([[0.5, 0.25, 0.1], [0.3, 0.3, 0.3]])).requires_grad_(True)
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    adv = torch.tensor([1.0, -2.0])
    loss, stats = grpo_loss(logp, logp.detach(), logp.detach(), adv, mask, clip_eps=0.2, beta=0.5)
    loss.backward()
    assert logp.grad.flatten().tolist() == pytest.approx([-1 / 6] * 3 + [2 / 4, 2 / 4, 0.0])
    assert float(stats["ratio_mean"]) == 1.0 and float(stats["kl"]) == 0.0


def test_grpo_kl_term_pulls_toward_the_reference():
    logp = torch.full((1, 2), math.log(0.5), requires_grad=True)
    ref = torch.full((1, 2), math.log(0.25))                               # π above π_ref: the KL pushes π down
    loss, _ = grpo_loss(logp, logp.detach(), ref, torch.zeros(1), torch.ones(1, 2), clip_eps=0.2, beta=1.0)
    loss.backward()
    assert logp.grad.flatten().tolist() == pytest.approx([0.25, 0.25])             # (1 − π_ref/π) / |y| = (1 − ½) / 2


def test_rloo_loss_by_hand_and_masked():
    logp = torch.tensor([[-1.0, -2.0, 99.0], [-0.5, -0.5, -0.5]], requires_grad=True)
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    adv = torch.tensor([2.0, -1.0])
    loss, stats = rloo_loss(logp, logp.detach(), adv, mask)
    assert float(loss.detach()) == pytest.approx(-(2.0 * -3.0 + -1.0 * -1.5) / 2)
    loss.backward()
    assert logp.grad.flatten().tolist() == pytest.approx([-1.0, -1.0, 0.0, 0.5, 0.5, 0.5])    # −Â_i / B per real token
    assert float(stats["ratio_mean"]) == 1.0


def test_a_tied_group_gives_no_gradient_through_either_loss():
    scores = torch.tensor([0.7, 0.7, 0.7, 0.7])
    logp = torch.randn(4, 5, requires_grad=True)
    mask = torch.ones(4, 5)
    loss, _ = grpo_loss(logp, logp.detach(), logp.detach(), group_advantages(scores, 4), mask, clip_eps=0.2,
                        beta=0.04)
    loss.backward()
    assert (logp.grad == 0).all()
    logp.grad = None
    loss, _ = rloo_loss(logp, logp.detach(), scores - leave_one_out_baseline(scores, 4), mask)
    loss.backward()
    assert (logp.grad == 0).all()


# ------------------------------------------------------------------------------------------------- configs
@pytest.mark.parametrize("cls", [grpo.GRPOConfig, rloo.RLOOConfig])
def test_defaults_generate_as_many_responses_per_update_as_ppo(cls):
    from rlhf_lib.ppo import PPOConfig
    cfg = cls()
    assert cfg.batch_size * cfg.group_size == PPOConfig().batch_size
    assert cfg.minibatch_size == PPOConfig().minibatch_size


@pytest.mark.parametrize("cls, changes, message", [
    (grpo.GRPOConfig, {"minibatch_size": 6}, r"minibatch_size = 6 does not divide .* = 64"),
    (grpo.GRPOConfig, {"clip_eps": 0.0}, r"GRPOConfig.clip_eps = 0.0 must be > 0"),
    (grpo.GRPOConfig, {"group_size": 1}, r"group_size = 1 is out of range"),
    (rloo.RLOOConfig, {"sampling": SamplingConfig(temperature=0.0)}, r"RLOOConfig.sampling.temperature = 0.0"),
    (rloo.RLOOConfig, {"out": "a/b"}, r"RLOOConfig.out = 'a/b' is not a stage name"),
])
def test_config_errors_name_the_setting_and_the_fix(cls, changes, message):
    with pytest.raises(ValueError, match=message):
        cls(**changes)


# ------------------------------------------------------------------------------------------------- verifiable reward
def test_verifiable_reward_checks_labels_and_years_exactly():
    intent = {"id": "a", "category": "intent", "meta": {"label": "search"}, "prompt": "…", "lang": "en"}
    year = {"id": "b", "category": "factual", "lang": "en", "meta": {"event": "moon_landing", "ask": "year"},
            "prompt": "When did people first land on the moon?", "instruction": "", "input": ""}
    animal = {"id": "c", "category": "factual", "lang": "en", "meta": {"animal": "honeybee", "ask": "home"}}
    assert grpo.verifiable(intent) and grpo.verifiable(year) and not grpo.verifiable(animal)
    texts = ["search", "'Search.'", "search I'm not sure", "recommended"]
    assert grpo.verifiable_reward([intent] * 4, texts).tolist() == [1.0, 1.0, 0.0, 0.0]
    assert grpo.verifiable_score(year, "It happened in 1969.") == 1.0
    assert grpo.verifiable_score(year, "It happened in 1968.") == 0.0
    assert grpo.verifiable_score(year, "It happened in 1969, or maybe 1971.") == 0.0      # an untrue year too
    with pytest.raises(ValueError, match="no exact check"):
        grpo.verifiable_score(animal, "a hive")


# ------------------------------------------------------------------------------------------------- the loop
TEXTS = ["Tell me about the moon landing in 1969.", "Recommend a movie like a marvel hero movie.",
         "Write a short story about the moon and the stars.", "달에 대해 설명해 주세요."] * 5
PROMPTS = [{"id": f"p{i}", "prompt": t, "category": "story"} for i, t in enumerate(TEXTS[:8])]
TINY = ModelConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, max_len=128)


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(TEXTS, vocab_size=300)


def count_a(records, texts):
    """Toy reward: how often the letter 'a' appears."""
    return torch.tensor([float(t.count("a")) for t in texts])


def tiny(cls, **kw):
    base = dict(updates=2, batch_size=4, group_size=4, minibatch_size=8, lr=1e-3, gold_every=0, out="",
                sampling=SamplingConfig(max_new_tokens=8, temperature=1.0))
    return cls(**{**base, **kw})


def test_rollout_groups_repeats_each_prompt_and_slices_like_memory(tok):
    policy, ref = build_tiny_llama(TINY, tok, 0), build_tiny_llama(TINY, tok, 0)
    torch.manual_seed(0)
    timings = {}
    g = group_rollout.rollout_groups(policy, ref, tok, PROMPTS[:3], count_a, group_size=4,
                                     sampling=SamplingConfig(max_new_tokens=8, temperature=1.0), no_eos_penalty=-3.0,
                                     timings=timings)
    assert len(g) == 12 and [r["id"] for r in g.records] == [p["id"] for p in PROMPTS[:3] for _ in range(4)]
    assert set(timings) == {"generate", "score", "forward"}
    assert torch.equal(torch.where(g.mask.bool(), g.logp, 0.0), torch.where(g.mask.bool(), g.ref_logp, 0.0))
    mb = g[[0, 5]]
    assert len(mb) == 2 and mb.actions.shape[1] == int(g.mask[[0, 5]].sum(-1).max())
    cut = ~g.ended
    assert (g.scores[cut] == -3.0).all()


def every_response_ends(monkeypatch):
    """A random tiny model almost never samples EOS, and a response without one gets the fixed no-EOS penalty
    instead of the toy reward: count every response as ended (its mask keeps all its tokens)."""
    real = rollout.response_mask
    monkeypatch.setattr(rollout, "response_mask",
                        lambda actions, eos: (real(actions, eos)[0], torch.ones(len(actions), dtype=torch.bool)))


@pytest.mark.parametrize("module, cls", [(grpo, grpo.GRPOConfig), (rloo, rloo.RLOOConfig)])
def test_the_loop_raises_a_toy_reward(tok, module, cls, monkeypatch):
    """Sixteen updates against 'count the letter a' (about 0.3 per response at first): the mean reward of the last
    three is more than 1 above that of the first three."""
    every_response_ends(monkeypatch)
    policy, ref = build_tiny_llama(TINY, tok, 0), build_tiny_llama(TINY, tok, 0)
    extra = {"advantages": rloo.rloo_advantages, "step": rloo.rloo_step} if module is rloo else {}
    h = grpo.train(tiny(cls, updates=16, lr=1e-2, beta=0.0), policy, ref, tok, PROMPTS, count_a, **extra)
    for k in grpo.HISTORY_KEYS:
        assert len(h[k]) == 16, k
    assert sum(h["score"][-3:]) / 3 > sum(h["score"][:3]) / 3 + 1.0
    assert sum(v["groups"] for v in h["groups_by_category"].values()) == 16 * 4
    assert len(h["samples"]) == 16 and h["zero_adv_frac"][0] < 1


def test_tied_groups_leave_the_policy_where_it_was(tok, monkeypatch):
    """A reward that never differs within a group: every advantage is 0, and with β = 0 no weight moves."""
    every_response_ends(monkeypatch)
    policy, ref = build_tiny_llama(TINY, tok, 0), build_tiny_llama(TINY, tok, 0)
    before = [p.detach().clone() for p in policy.parameters()]
    h = grpo.train(tiny(grpo.GRPOConfig, beta=0.0), policy, ref, tok, PROMPTS, lambda r, t: torch.ones(len(t)))
    assert h["zero_adv_frac"] == [1.0, 1.0] and h["zero_adv_best_frac"] == [0.0, 0.0]     # none above another
    assert all(torch.equal(a, b) for a, b in zip(before, policy.parameters()))


def test_nan_reward_stops_with_phase_and_update(tok):
    policy, ref = build_tiny_llama(TINY, tok, 0), build_tiny_llama(TINY, tok, 0)
    with pytest.raises(grpo.GroupError, match=r"RLOO stopped: non-finite scores in phase '3\. score' at update 0"):
        grpo.train(tiny(rloo.RLOOConfig), policy, ref, tok, PROMPTS, lambda r, t: torch.full((len(t),), math.nan),
                   advantages=rloo.rloo_advantages, step=rloo.rloo_step, name="RLOO")


def test_peak_memory_sees_a_large_allocation():
    kept = torch.ones(256 * 2**20 // 4)                                    # freed, and kept for reuse (memory.py)
    del kept
    mem = grpo.PeakMemory()                                                # hands the kept memory back first
    x = torch.ones(64 * 2**20 // 4)                                        # 64 MiB
    x += 1
    assert mem.peak() >= mem.start + (60 if mem.resets else 0)
    del x
