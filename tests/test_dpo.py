"""DPO (lesson 07): the losses against plain-python loops, its identity with the reward model's loss, the sequence
log-probs against a full forward pass, the comparisons a reward-model stage keeps, and a tiny run that learns a
separable preference. Nothing here reads artifacts/."""
from __future__ import annotations

import math
import re
from itertools import combinations

import pytest
import torch
from torch.testing import assert_close
from transformers import LlamaConfig, LlamaForCausalLM

from rlhf_lib import comparisons, dpo, evaluation, frontier, stages
from rlhf_lib.data import DataError
from rlhf_lib.generation import SamplingConfig
from rlhf_lib.losses import dpo_loss, implicit_reward, pairwise_loss_grouped
from rlhf_lib.sft import collate
from rlhf_lib.tokenizer import train_tokenizer

WORDS = "good bad answer reply yes no the a moon star tell me about it is was fine great awful".split()


def log_sigmoid(z):
    return -math.log1p(math.exp(-z)) if z >= 0 else z - math.log1p(math.exp(z))


def rankings_data(seed=0, sizes=(4, 3, 5)):
    """Random sequence log-probs for prompts of K responses each, and a random ranking per prompt."""
    g = torch.Generator().manual_seed(seed)
    M = sum(sizes)
    logp, ref = -5 * torch.rand(M, generator=g) - 1, -5 * torch.rand(M, generator=g) - 1
    rankings = [torch.randperm(k, generator=g).tolist() for k in sizes]
    return logp, ref, rankings


def loop_loss(logp, ref, rankings, beta, kind, eps=0.0):
    """Per prompt, the mean over its C(K,2) pairs; then the mean over prompts: plain python."""
    per_prompt, offset = [], 0
    for ranking in rankings:
        losses = []
        for i, j in combinations(range(len(ranking)), 2):
            w, lo = offset + ranking[i], offset + ranking[j]
            h = (logp[w].item() - ref[w].item()) - (logp[lo].item() - ref[lo].item())
            if kind == "sigmoid":
                losses.append(-log_sigmoid(beta * h))
            elif kind == "cdpo":
                losses.append(-(1 - eps) * log_sigmoid(beta * h) - eps * log_sigmoid(-beta * h))
            else:
                losses.append((h - 1 / (2 * beta)) ** 2)
        per_prompt.append(sum(losses) / len(losses))
        offset += len(ranking)
    return sum(per_prompt) / len(per_prompt)


# ------------------------------------------------------------------------------------------------ the losses
@pytest.mark.parametrize("kind,eps", [("sigmoid", 0.0), ("cdpo", 0.1), ("cdpo", 0.3), ("ipo", 0.0)])
@pytest.mark.parametrize("beta", [0.05, 0.1, 1.0])
def test_dpo_loss_matches_a_loop_over_every_pair(kind, eps, beta):
    logp, ref, rankings = rankings_data()
    chosen, rejected, group = comparisons.ranking_pairs(rankings)
    loss, stats = dpo_loss(logp, ref, chosen, rejected, group, beta=beta, loss=kind, label_smoothing=eps)
    assert loss.item() == pytest.approx(loop_loss(logp, ref, rankings, beta, kind, eps), rel=1e-5)
    r = [beta * (a - b) for a, b in zip(logp.tolist(), ref.tolist())]
    margins = [r[w] - r[lo] for w, lo in zip(chosen.tolist(), rejected.tolist())]
    assert stats["accuracy"].item() == pytest.approx(sum(m > 0 for m in margins) / len(margins))
    assert stats["margin"].item() == pytest.approx(sum(margins) / len(margins), rel=1e-5)
    assert not any(v.requires_grad for v in stats.values())


def test_dpo_is_the_reward_models_loss_on_the_implicit_reward():
    """L_DPO(π) = L_RM(r̂) with r̂ = β log π/π_ref: the same comparisons, the same Bradley–Terry likelihood."""
    logp, ref, rankings = rankings_data(seed=3)
    chosen, rejected, group = comparisons.ranking_pairs(rankings)
    loss, _ = dpo_loss(logp, ref, chosen, rejected, group, beta=0.2)
    rm_loss, _ = pairwise_loss_grouped(implicit_reward(logp, ref, beta=0.2), chosen, rejected, group)
    assert_close(loss, rm_loss)


def test_at_the_reference_every_variant_has_its_known_value():
    logp, _, rankings = rankings_data()
    chosen, rejected, group = comparisons.ranking_pairs(rankings)
    same = dict(chosen_idx=chosen, rejected_idx=rejected, group=group, beta=0.1)
    assert dpo_loss(logp, logp.clone(), **same)[0].item() == pytest.approx(math.log(2))
    assert dpo_loss(logp, logp.clone(), loss="cdpo", label_smoothing=0.2, **same)[0].item() == pytest.approx(
        math.log(2))
    assert dpo_loss(logp, logp.clone(), loss="ipo", **same)[0].item() == pytest.approx((1 / 0.2) ** 2)


def test_the_gradient_raises_the_chosen_and_lowers_the_rejected():
    logp = torch.tensor([-3.0, -3.0], requires_grad=True)
    one = torch.tensor([0])
    loss, _ = dpo_loss(logp, torch.tensor([-3.0, -3.0]), one, torch.tensor([1]), one, beta=0.5)
    loss.backward()
    assert logp.grad[0] < 0 < logp.grad[1]                    # descent raises log π(y_w), lowers log π(y_l)
    assert logp.grad[0].item() == pytest.approx(-0.5 * 0.5)    # −β σ(−β h) at h = 0


def test_ipo_stops_at_its_target_margin_and_dpo_does_not():
    """IPO's loss is 0 at h = 1/(2β) and grows beyond it; DPO's keeps falling as h grows (it can push forever)."""
    ref, one = torch.zeros(2), torch.tensor([0])
    beta = 0.25
    at = lambda h, kind: dpo_loss(torch.tensor([h, 0.0]), ref, one, torch.tensor([1]), one, beta=beta,  # noqa: E731
                                  loss=kind)[0].item()
    assert at(1 / (2 * beta), "ipo") == pytest.approx(0.0, abs=1e-9)
    assert at(4.0, "ipo") > at(2.0, "ipo")
    assert at(4.0, "sigmoid") < at(2.0, "sigmoid")


def test_bad_arguments_are_refused():
    logp, ref, rankings = rankings_data()
    chosen, rejected, group = comparisons.ranking_pairs(rankings)
    with pytest.raises(ValueError, match="choose 'sigmoid', 'cdpo' or 'ipo'"):
        dpo_loss(logp, ref, chosen, rejected, group, beta=0.1, loss="hinge")
    with pytest.raises(ValueError, match="label_smoothing = 0.1 only applies to loss='cdpo'"):
        dpo.DPOConfig(label_smoothing=0.1)
    with pytest.raises(ValueError, match="fewer than prompts_per_batch"):
        dpo.DPOConfig(n_prompts=4, prompts_per_batch=8)


# ------------------------------------------------------------------------------------------------ the model side
@pytest.fixture(scope="module")
def tok():
    texts = [" ".join(WORDS[i:] + WORDS[:i]) for i in range(len(WORDS))] * 5
    return train_tokenizer(texts, vocab_size=300)


def tiny_lm(tok, seed=0):
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
                         pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=None)
    return LlamaForCausalLM(config).eval()


def toy_data(n=24, n_held=4):
    """Separable: 'good …' beats 'bad …' in every prompt (the response order shuffled)."""
    comps = []
    for i in range(n):
        good = [f"good answer {WORDS[(i + j) % 8]}" for j in range(2)]
        bad = [f"bad reply {WORDS[(i + j) % 8]}" for j in range(2)]
        responses = [bad[0], good[0], bad[1], good[1]] if i % 2 else [good[0], bad[0], good[1], bad[1]]
        ranking = [responses.index(r) for r in (good[0], good[1], bad[0], bad[1])]
        comps.append(comparisons.Comparison(
            record={"id": f"toy-{i}", "prompt": f"tell me about it {i % 3}"}, responses=responses,
            kinds=["sft"] * 4, ranking=ranking, scores=[0.0] * 4,
            gold=[1.0 if r.startswith("good") else 0.0 for r in responses], second=list(ranking),
            source=f"toy.jsonl:{i + 1}"))
    return comparisons.ComparisonData(train=comps[n_held:], heldout=comps[:n_held], built_with={"init": "sft"})


def test_examples_split_exactly_where_the_prompt_ends(tok):
    data = toy_data(4, 1)
    exs = dpo.examples(tok, data.train)
    assert len(exs) == sum(len(c.responses) for c in data.train)
    assert all(e.response_ids[-1] == tok.eos_token_id for e in exs)
    first = data.train[0]
    assert tok.decode(exs[0].response_ids[:-1]).strip() == first.responses[0]


def test_sequence_logps_match_a_full_forward_pass(tok):
    model, exs = tiny_lm(tok), dpo.examples(tok, toy_data(4, 1).train)
    batch = collate(exs, tok.pad_token_id, mask_prompt=True)
    fast = dpo.sequence_logps(model, batch)
    with torch.no_grad():
        for b, e in enumerate(exs):
            ids = torch.tensor([e.prompt_ids + e.response_ids])
            logits = model(input_ids=ids).logits[0]                         # (T, V) position t predicts t + 1
            n = len(e.prompt_ids)
            want = sum(torch.log_softmax(logits[t - 1], -1)[ids[0, t]].item() for t in range(n, ids.shape[1]))
            assert fast[b].item() == pytest.approx(want, abs=1e-4)


def test_a_tiny_run_learns_the_preference_and_moves_chosen_above_rejected(tok):
    model, data = tiny_lm(tok), toy_data()
    cfg = dpo.DPOConfig(beta=0.5, lr=3e-3, epochs=6, prompts_per_batch=4, eval_every=5, warmup_steps=1,
                        curve_prompts=4, out="")
    train_pairs, held = dpo.references(model, tok, data, cfg)
    h = dpo.train(cfg, model, tok, train_pairs, held, par=dpo.LOCAL)
    assert h["accuracy"][0] == 0.0                              # π = π_ref: every implicit reward 0, all ties
    assert h["chosen_logratio"][0] == pytest.approx(0.0, abs=1e-5)                 # π = π_ref before the first step
    final = dpo.measure(model, held, cfg, tok.pad_token_id)
    assert final["gold_accuracy"] == 1.0
    assert final["chosen_logratio"] - final["rejected_logratio"] > 1.0
    assert h["train_loss"][-1] < 0.5 * math.log(2)


# ------------------------------------------------------------------------------------------------ kept comparisons
def test_comparisons_round_trip_through_json():
    data = toy_data(6, 2)
    back = comparisons.from_json(comparisons.to_json(data), "rm/comparisons.json")
    assert back.train == data.train and back.heldout == data.heldout and back.built_with == data.built_with


@pytest.mark.parametrize("damage,field", [(lambda o: o.pop("train"), "train"),
                                          (lambda o: o["heldout"][0].pop("ranking"), "heldout"),
                                          (lambda o: o["train"][1].update(ranking=[0, 0, 1, 2]), "train[1].ranking")])
def test_a_damaged_comparisons_file_names_its_field(damage, field):
    obj = comparisons.to_json(toy_data(6, 2))
    damage(obj)
    with pytest.raises(DataError, match=rf"rm/comparisons.json: field '{re.escape(field)}'"):
        comparisons.from_json(obj, "rm/comparisons.json")


def test_a_reward_stage_without_comparisons_says_what_to_do(artifacts):
    with stages.writing("rm") as tmp:                         # a stage written before stages kept comparisons
        stages.write_json(tmp / "stage.json", {"stage": "rm", "config": {}, "upstream": []})
    with pytest.raises(FileNotFoundError, match="train it again"):
        dpo.comparisons_of("rm")


def test_the_frontier_point_of_a_policy_against_itself_has_zero_kl(tok):
    model = tiny_lm(tok)
    records = evaluation.eval_prompts()[:6]
    p = frontier.point(model, model, tok, records, SamplingConfig(max_new_tokens=8), seed=0)
    assert p["n"] == 6 and p["kl"] == pytest.approx(0.0, abs=1e-5) and 0.0 <= p["gold"] <= 1.0
    assert frontier.point(model, model, tok, records, SamplingConfig(max_new_tokens=8), seed=0) == p
    other = tiny_lm(tok, seed=1)
    assert frontier.point(model, other, tok, records, SamplingConfig(max_new_tokens=8), seed=0)["kl"] > 0.0


# ------------------------------------------------------------------------------------------------ the methods table
def test_add_to_eval_keeps_lesson_05s_keys_and_extends_upstream(artifacts):
    with stages.writing("eval") as tmp:
        stages.write_json(tmp / "stage.json", {"stage": "eval", "upstream": ["sft", "ppo"]})
        stages.write_json(tmp / "metrics.json", {"win_rate_ppo_vs_sft": {"win_rate": 0.8}, "axes": {"a": 1}})
    merged = evaluation.add_to_eval({"win_rate_dpo_vs_sft": {"win_rate": 0.6}}, upstream=["sft", "dpo"])
    assert merged == stages.metrics("eval") == {"win_rate_ppo_vs_sft": {"win_rate": 0.8}, "axes": {"a": 1},
                                                "win_rate_dpo_vs_sft": {"win_rate": 0.6}}
    assert stages.info("eval")["upstream"] == ["sft", "ppo", "dpo"]


def test_training_seconds_and_models_come_from_each_trainers_metrics():
    from rlhf_lib.method_views import models_held, training_seconds
    assert training_seconds({"s_per_update": 2.5, "updates": 12, "wall_s": 99}) == 30.0
    assert training_seconds({"reference_s": 20.0, "train_s": 50.5, "wall_s": 99}) == 70.5
    assert training_seconds({"wall_s": 183.1}) == 183.1
    assert models_held("GRPO", {"models": {"policy": 1, "reference": 1, "reward model": 1}}) == 3
    assert models_held("PPO-ptx", {}) == 4 and models_held("DPO", {}) == 1
