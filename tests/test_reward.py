"""Tests for rlhf_lib.reward on a tiny random LLaMA reward model and a freshly trained tiny tokenizer.

Nothing here reads artifacts/: the tests run on a fresh clone, before any notebook. The loss itself is tested in
test_losses.py; here: the inputs the head reads, the C(K,2) pairs of a ranking, the data checks, that training
learns a separable toy preference (full model and frozen-backbone ChatLLaMA variant), the measured metrics on a
hand-worked example, save/load, and the NaN stop.
"""
from __future__ import annotations

import json
import math
from itertools import combinations

import pytest
import torch
from torch.testing import assert_close
from transformers import LlamaConfig, LlamaForSequenceClassification

from rlhf_lib import comparisons, reward, reward_model
from rlhf_lib.config import from_dict, override, to_dict
from rlhf_lib.data import DataError
from rlhf_lib.losses import pairwise_loss_grouped
from rlhf_lib.tokenizer import train_tokenizer

WORDS = "good bad answer reply yes no the a moon star tell me about it is was fine great awful".split()


@pytest.fixture(scope="module")
def tok():
    texts = [" ".join(WORDS[i:] + WORDS[:i]) for i in range(len(WORDS))] * 5
    return train_tokenizer(texts, vocab_size=300)


def tiny_rm(tok, seed=0, head="linear"):
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256, num_labels=1,
                         pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=None)
    return reward_model.set_head(LlamaForSequenceClassification(config), head).eval()


def toy_data(n=20, n_held=4):
    """Separable: a response with 'good' beats one with 'bad' (gold 1 vs 0; two goods or two bads tie in gold, the
    labeler orders them anyway); the response order is shuffled per prompt."""
    comps = []
    for i in range(n):
        good = [f"good answer {WORDS[(i + j) % 8]}" for j in range(2)]
        bad = [f"bad reply {WORDS[(i + j) % 8]}" for j in range(2)]
        responses = [bad[0], good[0], bad[1], good[1]] if i % 2 else [good[0], bad[0], good[1], bad[1]]
        ranking = [responses.index(r) for r in (good[0], good[1], bad[0], bad[1])]
        gold = [1.0 if r.startswith("good") else 0.0 for r in responses]
        comps.append(comparisons.Comparison(
            record={"id": f"toy-{i}", "prompt": f"tell me about it {i % 3}"}, responses=responses,
            kinds=["sft" if r in (good[1], bad[1]) else "written" for r in responses], ranking=ranking,
            scores=[1.0 - ranking.index(j) / 3 for j in range(4)], gold=gold, second=list(ranking),
            source=f"toy.jsonl:{i + 1}"))
    return comparisons.ComparisonData(train=comps[n_held:], heldout=comps[:n_held], built_with={})


TOY_CFG = reward.RMConfig(n_prompts=20, prompts_per_batch=4, epochs=6, lr=3e-3, eval_every=4, curve_prompts=4,
                          warmup_steps=1)


# ------------------------------------------------------------------------------------------------ inputs and scores
def test_reward_inputs_are_right_padded_and_end_with_eos(tok):
    prompts, responses = ["tell me", "about the moon and the star"], ["yes", "a good answer it is, fine"]
    b = reward_model.reward_inputs(tok, prompts, responses, max_len=128)
    ids = reward_model.encode(tok, prompts, responses)
    lengths = [len(x) for x in ids]
    assert b["input_ids"].shape == b["attention_mask"].shape == (2, max(lengths))
    assert b["attention_mask"].sum(-1).tolist() == lengths
    for row, mask, n in zip(b["input_ids"], b["attention_mask"], lengths):
        assert mask[:n].eq(1).all() and mask[n:].eq(0).all()                         # right padding
        assert row[n - 1] == tok.eos_token_id and row[n:].eq(tok.pad_token_id).all()
    assert tok.pad_token_id != tok.eos_token_id
    text = tok.decode(ids[0])
    assert text.startswith("<|user|>\ntell me\n<|assistant|>\nyes") and text.endswith("<|endoftext|>")


def test_reward_inputs_keep_the_end_of_an_overlong_sequence(tok):
    b = reward_model.reward_inputs(tok, ["tell me"], [" ".join(WORDS * 3)], max_len=16)
    assert b["input_ids"].shape == (1, 16) and b["input_ids"][0, -1] == tok.eos_token_id


def test_score_reads_the_last_real_token_whatever_the_padding(tok):
    model = tiny_rm(tok)
    prompts, responses = ["tell me", "about the moon", "yes"], ["yes", "the star was great and fine", "no"]
    with torch.no_grad():
        batch = reward_model.reward_inputs(tok, prompts, responses, max_len=128)
        together = reward_model.score_batch(model, batch)                                   # (3,)
        alone = torch.cat([reward_model.score_batch(model, reward_model.reward_inputs(tok, [p], [r], 128))
                           for p, r in zip(prompts, responses)])
        wider = {k: torch.cat([v, torch.full((3, 7), tok.pad_token_id if k == "input_ids" else 0)], 1)
                 for k, v in batch.items()}
        more_pad = reward_model.score_batch(model, wider)
        chunked = reward_model.rewards_of(model, reward_model.encode(tok, prompts, responses), tok.pad_token_id,
                                          max_tokens=20)
    assert together.shape == (3,)
    assert_close(together, alone, rtol=1e-4, atol=1e-5)
    assert_close(together, more_pad, rtol=1e-4, atol=1e-5)
    assert_close(together, chunked, rtol=1e-4, atol=1e-5)                            # length-sorted chunks, same order


def test_norm_is_gain_times_raw_plus_bias_and_score_texts_has_no_grad(tok):
    model = tiny_rm(tok)
    batch = reward_model.reward_inputs(tok, ["tell me"] * 2, ["yes", "no"], 64)
    raw = reward_model.score_batch(model, batch)
    assert raw.requires_grad                                                          # the caller decides
    assert_close(reward_model.score_batch(model, batch, {"gain": 2.0, "bias": -1.0}), 2.0 * raw - 1.0)
    texts = reward_model.score_texts(model, tok, ["tell me"] * 2, ["yes", "no"], {"gain": 2.0, "bias": -1.0},
                                     batch_size=1)
    assert texts == pytest.approx((2.0 * raw - 1.0).tolist(), rel=1e-5)


def test_frozen_features_feed_the_same_head(tok):
    for head in ("linear", "mlp"):
        model = tiny_rm(tok, head=head)
        ids = reward_model.encode(tok, ["tell me", "about it"], ["yes it is", "no"])
        with torch.no_grad():
            via_features = model.score(reward_model.last_token_features(model, ids, tok.pad_token_id))[:, 0]
            direct = reward_model.score_batch(model, reward_model.pad_right(ids, tok.pad_token_id))
        assert_close(via_features, direct, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------------------------ pairs
def test_ranking_pairs_are_all_c_k_2_pairs_best_first():
    rankings = [[2, 0, 1], [1, 0, 3, 2], [4, 3, 2, 1, 0]]
    chosen, rejected, group = reward.ranking_pairs(rankings)
    assert len(chosen) == sum(math.comb(len(r), 2) for r in rankings) == 3 + 6 + 10
    offsets = [0, 3, 7]
    expected = {(g, offsets[g] + r[i], offsets[g] + r[j]) for g, r in enumerate(rankings)
                for i, j in combinations(range(len(r)), 2)}
    assert set(zip(group.tolist(), chosen.tolist(), rejected.tolist())) == expected
    # rewards that follow the rankings exactly: every pair right, each prompt's pairs in their own group
    rewards = torch.zeros(12)
    for g, r in enumerate(rankings):
        for pos, resp in enumerate(r):
            rewards[offsets[g] + resp] = -float(pos)
    _, stats = pairwise_loss_grouped(rewards, chosen, rejected, group)
    assert stats["accuracy"] == 1.0


# ------------------------------------------------------------------------------------------------ data checks
GOOD = {"id": "cmp-1", "category": "factual", "lang": "en", "prompt": "In what year was the telephone invented?",
        "instruction": "In what year was the telephone invented?", "input": "",
        "meta": {"event": "telephone", "ask": "year"},
        "responses": ["It happened in 1876.", "I am not sure.", "Who cares?", "It happened in 1900."],
        "kinds": ["ideal", "partial", "toxic", "wrong_fact"], "ranking": [0, 1, 3, 2], "labeler": 3}


def write(tmp_path, records, blank_first=False):
    path = tmp_path / "comparisons.jsonl"
    lines = ([""] if blank_first else []) + [json.dumps(r) for r in records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("change, field", [
    ({"ranking": [0, 1, 1, 2]}, "ranking"),                         # not a permutation
    ({"ranking": [0, 1, 2]}, "ranking"),                            # too short
    ({"responses": ["It happened in 1876.", "  ", "Who cares?", "no"]}, "responses[1]"),    # empty response
    ({"responses": ["It happened in 1876.", "ok", "no", " ".join(WORDS * 20)]}, "responses[3]"),  # > max_len
    ({"meta": None}, "meta"),
    ({"kinds": ["ideal"]}, "kinds"),
    ({"labeler": 12}, "labeler"),
])
def test_bad_comparisons_raise_one_data_error_naming_file_line_and_field(tok, tmp_path, change, field):
    path = write(tmp_path, [GOOD, {**GOOD, "id": "cmp-2", **change}], blank_first=True)
    with pytest.raises(DataError) as err:
        comparisons.load_comparisons(path, tok, max_len=128)
    assert err.value.line == 3 and err.value.field == field and err.value.path == str(path)   # line 1 is blank
    assert str(path) in str(err.value) and field in str(err.value)


def test_good_comparisons_load_with_their_line(tok, tmp_path):
    path = write(tmp_path, [GOOD, {**GOOD, "id": "cmp-2"}, {**GOOD, "id": "cmp-3"}])     # ids are unique in a file
    loaded = comparisons.load_comparisons(path, tok, max_len=128, n=2)
    assert [src for _, src in loaded] == [f"{path}:1", f"{path}:2"]


def test_rank_responses_uses_the_record_labeler_and_keeps_gold(tok):
    pool = comparisons.labeler_pool({"seed": 0, "labeler_noise": 0.0})
    responses = GOOD["responses"] + ["It happened in 1876. Bell invented it."]
    c = comparisons.rank_responses(GOOD, responses, GOOD["kinds"] + ["sft"], "x:1", pool, seed=0)
    assert sorted(c.ranking) == list(range(5)) and sorted(c.second) == list(range(5))
    assert c.ranking == sorted(range(5), key=lambda i: -c.scores[i])
    assert c.gold[0] > c.gold[2]                                     # the gold labeler: right fact beats an insult
    assert c.ranking.index(0) < c.ranking.index(2)                   # a noise-free labeler agrees


# ------------------------------------------------------------------------------------------------ metrics
def test_pair_metrics_hand_worked_example():
    c = comparisons.Comparison(record={"id": "x", "prompt": "p"}, responses=["a", "b", "c"], kinds=["w"] * 3,
                          ranking=[0, 1, 2], scores=[0, 0, 0], gold=[0.9, 0.9, 0.1], second=[1, 0, 2], source="x:1")
    m = comparisons.pair_metrics([c], [[3.0, 1.0, 2.0]])
    # labeler pairs (0>1 ✓, 0>2 ✓, 1>2 ✗); the second labeler disagrees on (0, 1);
    # gold pairs (0>2 ✓, 1>2 ✗), and 0 ~ 1 is a gold tie, left out
    assert m["accuracy"] == pytest.approx(2 / 3) and m["labeler_agreement"] == pytest.approx(2 / 3)
    assert m["gold_accuracy"] == pytest.approx(1 / 2) and m["labeler_gold_accuracy"] == 1.0
    assert m["n_pairs"] == 3 and m["n_gold_pairs"] == 2


def test_pair_metrics_leave_out_identical_responses():
    c = comparisons.Comparison(record={"id": "x", "prompt": "p"}, responses=["a", "a", "c"], kinds=["sft"] * 3,
                          ranking=[1, 0, 2], scores=[0, 0, 0], gold=[0.9, 0.9, 0.1], second=[0, 1, 2], source="x:1")
    m = comparisons.pair_metrics([c], [[1.0, 1.0, 0.0]])
    assert m["n_pairs"] == 2 and m["accuracy"] == 1.0 and m["labeler_agreement"] == 1.0


# ------------------------------------------------------------------------------------------------ training
def test_training_learns_a_separable_preference_and_normalises(tok):
    model, data = tiny_rm(tok), toy_data()
    history = reward.train(TOY_CFG, data, model, tok)
    assert history["heldout_loss"][-1] < 0.5 * history["heldout_loss"][0]
    assert history["heldout_loss"][0] == pytest.approx(math.log(2), abs=0.05)        # untrained: r ≈ const
    metrics, norm = reward.measure(TOY_CFG, data, model, tok)
    assert metrics["gold_accuracy"] == 1.0 and metrics["n_gold_pairs"] == 4 * len(data.heldout)
    assert metrics["heldout_accuracy"] >= 4 / 6                      # the 2 same-kind pairs per prompt are a coin flip
    sft = [r for c in data.heldout for r, k in zip(reward_model.score_texts(model, tok, [c.record["prompt"]] * 4,
                                                                       c.responses, norm), c.kinds) if k == "sft"]
    assert sum(sft) / len(sft) == pytest.approx(0.0, abs=1e-4)
    assert torch.tensor(sft).std().item() == pytest.approx(1.0, abs=1e-3)
    assert len(metrics["rewards_best"]) == len(metrics["rewards_worst"]) == len(data.heldout)


def test_chatllama_variant_trains_only_the_mlp_head_with_mse(tok):
    model, data = tiny_rm(tok, head="mlp"), toy_data()
    backbone = {k: v.clone() for k, v in model.base_model.state_dict().items()}
    cfg = override(TOY_CFG, freeze_backbone=True, loss="mse", epochs=30)
    history = reward.train(cfg, data, model, tok)
    assert history["heldout_loss"][-1] < 0.5 * history["heldout_loss"][0]
    for k, v in model.base_model.state_dict().items():
        assert torch.equal(v, backbone[k]), f"frozen backbone changed: {k}"
    assert reward.measure(cfg, data, model, tok)[0]["gold_accuracy"] == 1.0


def test_nan_loss_stops_with_phase_and_step(tok, monkeypatch):
    monkeypatch.setattr(reward, "pairwise_loss_grouped",
                        lambda r, *a: (r.sum() * float("nan"), {"accuracy": torch.tensor(0.0)}))
    with pytest.raises(RuntimeError, match=r"phase 3 \(train\): loss is nan at step 0"):
        reward.train(TOY_CFG, toy_data(), tiny_rm(tok), tok)


# ------------------------------------------------------------------------------------------------ save / load
@pytest.mark.parametrize("head", ["linear", "mlp"])
def test_save_load_round_trip_gives_identical_scores(tok, tmp_path, head):
    model, norm = tiny_rm(tok, seed=1, head=head), {"gain": 1.5, "bias": -0.25}
    reward_model.save_reward_model(model, tok, tmp_path, norm)
    assert (tmp_path / "model.safetensors").is_file() and not list(tmp_path.glob("*.bin"))
    assert json.loads((tmp_path / "reward_norm.json").read_text()) == norm
    loaded, tok2, norm2 = reward_model.load_reward_model(tmp_path)       # safetensors only, trust_remote_code off
    assert norm2 == norm and type(loaded.score) is type(model.score)
    prompts, responses = ["tell me", "about the moon", "yes"], ["yes", "the star was great", ""]
    before = reward_model.score_texts(model, tok, prompts, responses, norm)
    assert reward_model.score_texts(loaded, tok2, prompts, responses, norm2) == before


def test_load_reward_model_without_norm_says_what_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="reward_norm.json"):
        reward_model.load_reward_model(tmp_path)


# ------------------------------------------------------------------------------------------------ config
def test_config_cross_field_rules_name_the_field():
    with pytest.raises(ValueError, match="prompts_per_batch"):
        reward.RMConfig(n_prompts=20, prompts_per_batch=32)
    with pytest.raises(ValueError, match="head = 'mlp'"):
        reward.RMConfig(head="mlp")
    assert reward.RMConfig(head="mlp", out="rm_mlp").head == "mlp"
    with pytest.raises(ValueError, match="n_prompts"):
        override(reward.RMConfig(), n_prompt=10)                    # misspelled field
    with pytest.raises(ValueError, match="loss"):
        reward.RMConfig(loss="hinge")
    with pytest.raises(ValueError, match="written \\+ sft_samples"):
        reward.RMConfig(written=0, sft_samples=1)                  # one response: no pair to rank
    cfg = reward.RMConfig(lr=3e-4)
    assert from_dict(reward.RMConfig, json.loads(json.dumps(to_dict(cfg)))) == cfg     # stage.json round trip


def test_written_subset_keeps_the_first_responses_and_their_kinds():
    rec = {"responses": ["a", "b", "c", "d"], "kinds": ["ideal", "toxic", "partial", "off_topic"]}
    assert comparisons.written_subset(rec, 2) == (["a", "b"], ["ideal", "toxic"])
    assert comparisons.written_subset(rec, 9) == (rec["responses"], rec["kinds"])          # the default keeps them all
    assert comparisons.written_subset(rec, 0) == ([], [])                                  # SFT samples only
    assert comparisons.written_subset({"responses": ["a", "b"]}, 1) == (["a"], ["written"])


def test_other_prompt_answers_always_come_from_another_prompt():
    samples = [[f"p{i}-s{j}" for j in range(3)] for i in range(7)]
    borrowed = comparisons.other_prompt_answers(samples, 2, seed=0)
    assert [len(b) for b in borrowed] == [2] * 7
    donors = [int(b[0].split("-")[0][1:]) for b in borrowed]
    assert all(d != i for i, d in enumerate(donors))                   # never the prompt's own answers
    assert sorted(donors) == list(range(7))                            # each prompt lends once (a derangement)
    assert borrowed == comparisons.other_prompt_answers(samples, 2, seed=0)             # seeded
    assert comparisons.other_prompt_answers(samples, 0, seed=0) == [[]] * 7
    assert comparisons.other_prompt_answers(samples[:1], 2, seed=0) == [[]]            # no other prompt to borrow from


def test_other_prompt_answers_of_the_same_kind_come_from_a_prompt_of_that_kind():
    kinds = [("factual", "en")] * 4 + [("story", "ko")] * 3 + [("intent", "en")]       # the last one is alone
    samples = [[f"p{i}-s{j}" for j in range(2)] for i in range(len(kinds))]
    borrowed = comparisons.other_prompt_answers(samples, 1, seed=3, kinds=kinds)
    donors = [int(b[0].split("-")[0][1:]) for b in borrowed]
    assert all(d != i for i, d in enumerate(donors))
    assert all(kinds[d] == kinds[i] for i, d in enumerate(donors[:7]))              # within its kind
    assert sorted(donors[:4]) == [0, 1, 2, 3] and sorted(donors[4:7]) == [4, 5, 6]  # each lends once in its kind
    assert kinds[donors[7]] != kinds[7]                                              # alone: any other prompt
    assert borrowed == comparisons.other_prompt_answers(samples, 1, seed=3, kinds=kinds)
    assert comparisons.other_prompt_answers(samples, 1, seed=3) != borrowed          # without kinds: any prompt


def test_swap_years_moves_every_year_and_nothing_else():
    import random
    text = "In 1969 Apollo 11 landed; 1,000 people watched from 2003 on. 12 astronauts."
    out = comparisons.swap_years(text, random.Random(0))
    years_in, years_out = comparisons.YEAR.findall(text), comparisons.YEAR.findall(out)
    assert len(years_out) == len(years_in) == 2
    shifts = {int(b) - int(a) for a, b in zip(years_in, years_out)}
    assert len(shifts) == 1 and 5 <= abs(shifts.pop()) <= 60           # one shift of 5-60 years for the whole text
    assert comparisons.YEAR.sub("Y", out) == comparisons.YEAR.sub("Y", text)     # the rest is untouched
    assert comparisons.swap_years("no year here", random.Random(0)) == "no year here"


def test_wrong_fact_variants_only_for_samples_that_name_a_year():
    samples = [["It was 1969.", "It was 1969.", "It was in July."], ["A story."]]
    out = comparisons.wrong_fact_variants(samples, 2, seed=0, ids=["a", "b"])
    assert len(out[0]) == 1 and out[0][0] != "It was 1969." and comparisons.YEAR.search(out[0][0])   # copies once
    assert out[1] == []
