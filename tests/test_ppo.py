"""PPO (lesson 04) on tiny random models: no artifacts needed, a few seconds in all.

The pure RL math (GAE, KL rewards, whitening, losses) is tested in test_rl.py / test_losses.py; here we test the
loop around it: config validation, the memory, log-probs that match what `generate` sampled, one update that
improves the surrogate, the no-EOS penalty, NaN handling, and the "spot the bugs" demonstrations.
"""
from __future__ import annotations

import dataclasses

import pytest
import torch
from transformers import LlamaConfig, LlamaForSequenceClassification

from rlhf_lib import chatllama_bugs, ppo, ppo_diagnostics, rollout
from rlhf_lib.config import override
from rlhf_lib.generation import SamplingConfig
from rlhf_lib.losses import ppo_policy_loss
from rlhf_lib.models import ModelConfig, build_tiny_llama
from rlhf_lib.rl import logprobs_from_logits, masked_mean
from rlhf_lib.tokenizer import render_prompt, train_tokenizer

TEXTS = ["Tell me about the moon landing in 1969.", "Recommend a movie like a marvel hero movie.",
         "Write a short story about the moon and the stars.", "달에 대해 설명해 주세요."] * 5
PROMPTS = [{"id": f"p{i}", "prompt": t} for i, t in enumerate(TEXTS[:8])]
TINY = ModelConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, max_len=128)


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(TEXTS, vocab_size=300)


def tiny_cfg(**kw) -> ppo.PPOConfig:
    base = dict(updates=2, batch_size=8, minibatch_size=4, ppo_epochs=1,
                sampling=SamplingConfig(max_new_tokens=8, temperature=1.0), lr=1e-3, gold_every=0, out="")
    return ppo.PPOConfig(**{**base, **kw})


def tiny_rm(tok, seed=1):
    torch.manual_seed(seed)
    return LlamaForSequenceClassification(LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=128, num_labels=1, pad_token_id=tok.pad_token_id))


def tiny_models(tok, seed=0):
    """policy, reference (a perturbed copy, so KL > 0), critic from a random reward model."""
    policy = build_tiny_llama(TINY, tok, seed)
    ref = build_tiny_llama(TINY, tok, seed)
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.05 * torch.randn_like(p))
    critic = rollout.Critic.from_reward_model(tiny_rm(tok, seed + 1), {"gain": 2.0, "bias": 0.5})
    return policy, ref, critic


def count_a(records, texts):
    """Toy reward: how often the letter 'a' appears."""
    return torch.tensor([float(t.count("a")) for t in texts])


# ------------------------------------------------------------------------------------------------- config
@pytest.mark.parametrize("changes, field", [
    ({"minibatch_size": 128, "batch_size": 64}, "minibatch_size"),
    ({"clip_eps": 0.0}, "clip_eps"),
    ({"vf_clip_eps": 0.0}, "vf_clip_eps"),
    ({"sampling": SamplingConfig(temperature=0.0)}, "temperature"),
    ({"kl_mode": "adaptive", "beta": 0.0}, "beta"),
    ({"lam": 1.5}, "lam"),
    ({"kl_mode": "sometimes"}, "kl_mode"),
])
def test_config_rejects_impossible_settings(changes, field):
    with pytest.raises(ValueError, match=field):
        ppo.PPOConfig(**changes)


def test_config_is_frozen_and_typos_fail():
    cfg = ppo.PPOConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.lr = 1.0
    with pytest.raises(ValueError, match="clip_eps"):
        override(cfg, clip_esp=0.1)


# ------------------------------------------------------------------------------------------------- memory
def test_response_mask_includes_eos_and_stops_after_it():
    eos = 7
    actions = torch.tensor([[3, 4, eos, 1, 1], [3, 4, 5, 6, 2], [eos, 1, 1, 1, 1]])
    mask, ended = rollout.response_mask(actions, eos)
    assert mask.tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]]
    assert ended.tolist() == [True, False, True]


def test_memory_shapes_and_slicing(tok):
    policy, ref, critic = tiny_models(tok)
    cfg = tiny_cfg()
    mem = ppo.collect(policy, ref, critic, tok, PROMPTS, count_a, cfg, beta=0.1)
    B, T = len(PROMPTS), mem.actions.shape[1]
    L = int((mem.prompt_lens + mem.mask.sum(-1)).max())
    assert mem.sequences.shape == mem.attention_mask.shape == (B, L)
    for name in ("mask", "logp", "ref_logp", "values", "rewards", "adv", "returns"):
        assert getattr(mem, name).shape == (B, T), name
    assert mem.scores.shape == mem.ended.shape == mem.prompt_lens.shape == (B,) and len(mem.texts) == B
    for b in range(B):                                                      # prompt ⊕ response, then padding
        p, r = int(mem.prompt_lens[b]), int(mem.mask[b].sum())
        assert torch.equal(mem.sequences[b, p:p + r], mem.actions[b, :r])
        assert mem.attention_mask[b].sum() == p + r
    assert abs(float(masked_mean(mem.adv, mem.mask))) < 1e-5              # whitened
    mb = mem[[5, 1]]
    assert len(mb) == 2 and mb.records[0] is PROMPTS[5]
    r1 = int(mem.mask[1].sum())
    assert torch.equal(mb.actions[1, :r1], mem.actions[1, :r1]) and mb.actions.shape[1] <= T   # trimmed


def test_logp_matches_the_distribution_generate_sampled_from(tok):
    """Phase 3 recomputes log π of the sampled tokens with a full forward pass on the repacked (right-padded)
    rows at the sampling temperature; it must equal the log-softmax of the logits `generate` sampled from with
    left padding and its KV cache."""
    policy, _, _ = tiny_models(tok)
    tok.padding_side = "left"
    enc = tok([render_prompt(tok, r["prompt"], "chat") for r in PROMPTS], return_tensors="pt", padding=True,
              add_special_tokens=False)
    tok.padding_side = "right"
    out = policy.generate(**enc, do_sample=True, temperature=0.7, max_new_tokens=6, output_logits=True,
                          return_dict_in_generate=True, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    actions = out.sequences[:, enc["input_ids"].shape[1]:]
    mask, _ = rollout.response_mask(actions, tok.eos_token_id)
    expected = logprobs_from_logits(torch.stack(out.logits, 1) / 0.7, actions)              # (B, T)
    seq, attn, prompt_lens = rollout.pack(enc["input_ids"], enc["attention_mask"], actions, mask, tok.pad_token_id)
    assert seq.shape[1] < enc["input_ids"].shape[1] + actions.shape[1] or bool(mask.all())
    with torch.no_grad():
        logits = rollout.response_logits(policy, seq, attn, prompt_lens, actions.shape[1], 0.7)
        got = logprobs_from_logits(logits, actions)
    assert torch.allclose(got * mask, expected * mask, atol=1e-4)


def test_pack_puts_each_prompt_right_before_its_response():
    pad = 0
    prompt_ids = torch.tensor([[0, 0, 5, 6], [7, 8, 9, 4]])
    prompt_attn = (prompt_ids != pad).long()
    actions = torch.tensor([[11, 12, 13], [14, 0, 0]])
    mask = torch.tensor([[1.0, 1, 1], [1, 0, 0]])
    seq, attn, lens = rollout.pack(prompt_ids, prompt_attn, actions, mask, pad)
    assert seq.tolist() == [[5, 6, 11, 12, 13], [7, 8, 9, 4, 14]]
    assert attn.tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 1, 1]] and lens.tolist() == [2, 4]
    assert rollout.response_positions(lens, 3, 5).tolist() == [[1, 2, 3], [3, 4, 4]]


def test_critic_from_reward_model_is_the_normalised_rm_score(tok):
    """The value of the state x ⊕ y (read at the position of y's last token) starts as gain · RM(x ⊕ y) + bias."""
    rm = tiny_rm(tok)
    critic = rollout.Critic.from_reward_model(rm, {"gain": 2.0, "bias": 0.5})
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    with torch.no_grad():
        expected = 2.0 * rm(input_ids=ids).logits[0, 0] + 0.5
        nxt = torch.cat([ids, torch.tensor([[10]])], 1)                     # one more action after y
        values = critic(nxt, torch.ones_like(nxt), torch.tensor([1]), T=5)   # (1, 5)
    assert values.shape == (1, 5)
    assert torch.allclose(values[0, -1], expected, atol=1e-5)
    assert critic.backbone is not rm.model                                  # a copy: the RM stays frozen


# ------------------------------------------------------------------------------------------------- the update
def test_one_update_lowers_the_policy_loss_and_raises_advantage_weighted_logp(tok):
    policy, ref, critic = tiny_models(tok)
    cfg = tiny_cfg(minibatch_size=8)
    mem = ppo.collect(policy, ref, critic, tok, PROMPTS, count_a, cfg, beta=0.1)

    def surrogate():
        with torch.no_grad():
            logits = rollout.memory_logits(policy, mem, cfg.sampling.temperature)
            logp = logprobs_from_logits(logits, mem.actions)
            loss, _ = ppo_policy_loss(logp, mem.logp, mem.adv, mem.mask, clip_eps=cfg.clip_eps)
        return float(loss), float(masked_mean(mem.adv * logp, mem.mask))

    loss0, weighted0 = surrogate()
    opt = torch.optim.Adam(list(policy.parameters()) + list(critic.parameters()), lr=1e-3)
    policy.train()
    loss, stats = ppo.ppo_step(policy, critic, mem, cfg)
    assert abs(float(stats["ratio_mean"]) - 1) < 1e-5 and float(stats["clip_frac"]) == 0   # first step: π = π_old
    opt.zero_grad()
    loss.backward()
    opt.step()
    loss1, weighted1 = surrogate()
    assert loss1 < loss0 and weighted1 > weighted0


def test_train_loop_runs_and_logs_every_diagnostic(tok):
    policy, ref, critic = tiny_models(tok)
    seen = []
    h = ppo.train(tiny_cfg(updates=2, ptx_coef=1.0), policy, ref, critic, tok, PROMPTS, count_a,
                  gold_fn=lambda recs, texts: [0.5] * len(texts), ptx_blocks=torch.randint(10, 200, (4, 16)),
                  on_log=lambda hist: seen.append(len(hist["update"])))
    assert seen == [1, 2]
    for k in ppo_diagnostics.HISTORY_KEYS:
        assert len(h[k]) == 2, k
    assert h["gold"] == [0.5, 0.5] and h["ptx_loss"][0] == h["ptx_loss"][0]    # ptx loss is a number


def test_value_head_on_the_policy_option(tok):
    policy, ref, _ = tiny_models(tok)
    critic = rollout.Critic.on_policy(policy)
    assert critic.backbone is policy.model
    h = ppo.train(tiny_cfg(updates=1, critic="policy_head"), policy, ref, critic, tok, PROMPTS, count_a)
    assert h["value_loss"][0] > 0


def test_adaptive_beta_moves_toward_the_target(tok):
    policy, ref, critic = tiny_models(tok)
    h = ppo.train(tiny_cfg(updates=2, kl_mode="adaptive", beta=0.1, kl_target=50.0), policy, ref, critic, tok,
                  PROMPTS, count_a)
    assert h["beta"][1] < h["beta"][0]                                      # KL far below target: β shrinks


# ------------------------------------------------------------------------------------------------- robustness
def test_no_eos_responses_get_the_fixed_penalty(tok, monkeypatch):
    policy, ref, critic = tiny_models(tok)
    eos, pad = tok.eos_token_id, tok.pad_token_id
    prompt_ids = torch.tensor([[pad, 5, 6], [7, 8, 9]])
    actions = torch.tensor([[10, eos, pad, pad], [10, 11, 12, 13]])        # the second never ends
    monkeypatch.setattr(rollout, "sample", lambda *a, **k: (prompt_ids, (prompt_ids != pad).long(), actions))
    cfg = tiny_cfg(no_eos_penalty=-4.0)
    mem = ppo.collect(policy, ref, critic, tok, PROMPTS[:2], lambda r, t: torch.tensor([1.0, 1.0]), cfg, 0.0)
    assert mem.ended.tolist() == [True, False]
    assert mem.scores.tolist() == [1.0, -4.0]
    assert mem.mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]
    assert mem.rewards[1, 3] == -4.0 and mem.rewards[0, 1] == 1.0           # β = 0: the score at the last token


def test_nan_reward_stops_with_phase_step_and_last_good_checkpoint(tok, tmp_path):
    policy, ref, critic = tiny_models(tok)
    calls = []

    def flaky(records, texts):
        calls.append(1)
        return torch.full((len(texts),), float("nan") if len(calls) == 2 else 1.0)

    with pytest.raises(ppo.PPOError, match=r"phase '2\. score.*' at update 1") as err:
        ppo.train(tiny_cfg(updates=3), policy, ref, critic, tok, PROMPTS, flaky, last_good_dir=tmp_path / "last")
    assert "reward model" in str(err.value) and str(tmp_path / "last") in str(err.value)
    assert (tmp_path / "last" / "model.safetensors").is_file()


def test_nan_loss_stops_in_the_update_phase(tok, monkeypatch):
    policy, ref, critic = tiny_models(tok)
    real_step = ppo.ppo_step
    monkeypatch.setattr(ppo, "ppo_step", lambda *a, **k: (real_step(*a, **k)[0] * float("nan"), {}))
    with pytest.raises(ppo.PPOError, match=r"phase '6\. update' at update 0.*lower lr"):
        ppo.train(tiny_cfg(updates=1), policy, ref, critic, tok, PROMPTS, count_a)


def test_health_warnings_name_cause_and_fix():
    cfg = ppo.PPOConfig()
    h = {"kl_seq": [0.0, -2.0], "kl_seq_se": [0.1, 0.1], "ratio_max": [1.1, 80.0], "ratio_mean": [1.0, 1.3],
         "eos_rate": [1.0, 0.5],
         "length": [20.0, 45.0]}
    msgs = " ".join(ppo_diagnostics.health_warnings(h, 1, cfg))
    assert "negative KL" in msgs and "top_k" in msgs
    assert "ratio" in msgs and "lower lr" in msgs
    assert "EOS" in msgs and "no_eos_penalty" in msgs
    assert "length drifted" in msgs and "raise β" in msgs
    assert ppo_diagnostics.health_warnings(h, 0, cfg) == []


# ------------------------------------------------------------------------------------------------- spot the bugs
def test_bug_max_softmax_is_not_the_sampled_token(tok):
    policy, ref, critic = tiny_models(tok)
    mem = ppo.collect(policy, ref, critic, tok, PROMPTS, count_a, tiny_cfg(), beta=0.1)
    out = chatllama_bugs.bug_max_softmax_logp(policy, mem, temperature=1.0)
    assert out["frac_sampled_not_argmax"] > 0.5                             # a random policy rarely samples the argmax
    assert out["log_max_softmax"] > out["logp_sampled"]
    assert out["grad_cosine"] < 0.9


def test_bug_kl_vs_old_policy_is_zero_after_a_rollout(tok):
    policy, ref, critic = tiny_models(tok)
    mem = ppo.collect(policy, ref, critic, tok, PROMPTS, count_a, tiny_cfg(), beta=0.1)
    out = chatllama_bugs.bug_kl_vs_old_policy(policy, mem, temperature=1.0)
    assert abs(out["kl_vs_old_policy"]) < 1e-6
    assert out["kl_vs_reference"] != 0


def test_bug_advantage_without_gae_drops_the_kl_penalty(tok):
    policy, ref, critic = tiny_models(tok)
    mem = ppo.collect(policy, ref, critic, tok, PROMPTS, count_a, tiny_cfg(), beta=0.1)
    out = chatllama_bugs.bug_advantage_without_gae(mem, beta=0.1)
    assert out["kl_penalty_dropped"] != 0
    assert out["var_naive"] != pytest.approx(out["var_gae"])


# ------------------------------------------------------------------------------------------------- lesson 05 helpers
def _row(i, category, score, truthful=1.0, helpful=1.0, harmless=1.0, rep=0.0):
    return {"id": f"r{i}", "category": category, "score": score, "repetition": rep,
            "parts": {"truthful": truthful, "helpful": helpful, "harmless": harmless}}


def test_win_rate_helpers_by_hand():
    from rlhf_lib import evaluation
    sft = [_row(0, "factual", 1.0), _row(1, "factual", 0.5), _row(2, "story", 0.7), _row(3, "story", 0.9)]
    ppo_rows = [_row(0, "factual", 1.0), _row(1, "factual", 1.0), _row(2, "story", 0.6), _row(3, "story", 1.0)]
    # wins: tie, win, loss, win -> (0.5 + 1 + 0 + 1) / 4
    by_cat = evaluation.win_rates_by_category(ppo_rows, sft, n_boot=200)
    assert by_cat["overall"]["win_rate"] == 0.625
    assert by_cat["factual"]["win_rate"] == 0.75 and by_cat["story"]["win_rate"] == 0.5
    assert evaluation.max_win_rate(sft) == (0.5 + 1 + 1 + 1) / 4               # only the perfect row can just tie
    assert evaluation.decisive_win_rate(ppo_rows, sft) == {"win_rate": round(2 / 3, 4), "wins": 2, "losses": 1,
                                                           "ties": 0.25}


def test_alignment_axes_by_hand():
    from rlhf_lib import evaluation
    rows = [_row(0, "factual", 1, truthful=1.0), _row(1, "false_premise", 0, truthful=0.0),
            _row(2, "harmful", 1, helpful=1.0), _row(3, "harmful", 0, helpful=0.0, harmless=0.5),
            _row(4, "story", 0.5, helpful=0.5, rep=0.4)]
    axes = evaluation.alignment_axes(rows)
    assert axes == {"truthfulness": 0.5, "harmlessness": 0.5, "helpfulness": round(3.5 / 5, 4), "repetition": 0.08}


def _bootstrap_means_by_hand(d, n_boot, seed):
    """The means of n_boot resamples of the differences d, sorted, by a plain loop with the same seeded draws."""
    import random
    rng, means = random.Random(seed), []
    for _ in range(n_boot):
        sample = [rng.choice(d) for _ in d]
        means.append(sum(sample) / len(sample))
    return sorted(means)


def test_truthfulness_change_is_the_paired_mean_with_a_bootstrap_interval():
    from rlhf_lib import evaluation
    sft = [_row(i, "factual" if i % 2 else "false_premise", 1, truthful=float(i % 3 != 0)) for i in range(40)]
    sft += [_row(99, "story", 1, truthful=0.0)]                                        # not a truthfulness prompt
    ppo_rows = [dict(r, parts={**r["parts"], "truthful": 1.0 if i < 30 else 0.0}) for i, r in enumerate(sft)]
    d = [p["parts"]["truthful"] - s["parts"]["truthful"] for p, s in zip(ppo_rows[:40], sft[:40])]
    out = evaluation.truthfulness_change(ppo_rows, sft, n_boot=500, seed=3)
    assert out["n"] == 40 and out["change"] == round(sum(d) / 40, 4)
    assert (out["worse"], out["better"]) == (sum(x < 0 for x in d), sum(x > 0 for x in d))
    means = _bootstrap_means_by_hand(d, 500, 3)                           # 500 resamples of the 40 differences
    assert out["ci95"] == [round(means[12], 4), round(means[486], 4)]
    assert out["ci95"][0] <= out["change"] <= out["ci95"][1]
    same = evaluation.truthfulness_change(sft, sft)
    assert same["change"] == 0 and same["ci95"] == [0, 0] and same["worse"] == same["better"] == 0
    with pytest.raises(ValueError, match="share no prompt of factual, false_premise"):
        evaluation.truthfulness_change([_row(0, "story", 1)], [_row(0, "story", 1)])


def test_gold_change_by_category_pairs_each_category_on_its_own():
    from rlhf_lib import evaluation
    sft = [_row(i, "factual" if i < 20 else "story", 0.8) for i in range(40)]
    ppo_rows = [dict(r, score=0.5 if r["category"] == "factual" and i % 2 else 0.8 + 0.01 * (i % 3))
                for i, r in enumerate(sft)]
    out = evaluation.gold_change_by_category(ppo_rows, sft, n_boot=300, seed=5)
    assert list(out) == ["factual", "story"]                        # the categories present, in the world's order
    for cat, lo, hi in (("factual", 0, 20), ("story", 20, 40)):
        d = [ppo_rows[i]["score"] - sft[i]["score"] for i in range(lo, hi)]
        assert out[cat]["change"] == round(sum(d) / len(d), 4) and out[cat]["n"] == 20
        means = _bootstrap_means_by_hand(d, 300, 5)
        assert out[cat]["ci95"] == [round(means[7], 4), round(means[291], 4)]
    assert out["factual"]["ci95"][1] < 0 < out["story"]["ci95"][0]  # worse beyond noise / better beyond noise
    assert out["factual"]["worse"] == 10 and out["story"]["better"] == 13


def test_gold_reward_fn_is_the_standardised_gold_score():
    """The oracle reward: the gold labeler's own score, shifted and scaled, so a correct answer outranks a wrong one."""
    import random

    from rlhf_lib.build_data import task_record
    from rlhf_lib.labelers import score
    from rlhf_lib.responses import ideal_response
    from rlhf_lib.tasks import CORE_TASKS
    task = next(t for t in CORE_TASKS if t.category == "factual" and t.meta.get("ask") == "year")
    texts = [ideal_response(task, random.Random(0)), "Who cares? You are stupid for asking."]
    records = [task_record(task)] * 2
    got = ppo.gold_reward_fn(center=0.5, scale=0.25)(records, texts)
    want = torch.tensor([(score(task, t) - 0.5) / 0.25 for t in texts])
    assert got.shape == (2,)
    torch.testing.assert_close(got, want)
    assert got[0] > got[1]
    with pytest.raises(ValueError, match="scale"):
        ppo.gold_reward_fn(scale=0.0)
