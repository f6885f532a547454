"""`generation.generate_runs` and `comparisons.sample_sft` on a tiny random LLaMA saved to disk: seeded runs give
the same responses on two processes as one `generate` call after another in this process (the two processes start
a fresh Python each, which takes most of this file's time)."""
from __future__ import annotations

import os

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from rlhf_lib import comparisons, generation
from rlhf_lib.generation import GenerationConfig
from rlhf_lib.tokenizer import train_tokenizer

WORDS = "good bad answer reply yes no the a moon star tell me about it is was fine great awful".split()
PROMPTS = [f"tell me about {WORDS[i]} {WORDS[(3 * i) % len(WORDS)]}" for i in range(7)]


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    """(folder, model, tokenizer): a tiny random LLaMA and its tokenizer, saved as a stage folder is."""
    tok = train_tokenizer([" ".join(WORDS[i:] + WORDS[:i]) for i in range(len(WORDS))] * 5, vocab_size=300)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=256, pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id, bos_token_id=None)).eval()
    folder = tmp_path_factory.mktemp("policy")
    model.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return folder, model, tok


def test_seeded_runs_on_two_processes_match_one_after_another(policy):
    folder, model, tok = policy
    runs = [(PROMPTS, GenerationConfig(temperature=1.0, max_new_tokens=12, batch_size=3), 5),
            (PROMPTS[:4], GenerationConfig(temperature=0.7, max_new_tokens=12, batch_size=4), 6),
            (PROMPTS[2:], GenerationConfig(temperature=1.3, max_new_tokens=12, batch_size=2), 7)]
    by_hand = [generation.generate(model, tok, p, c, fmt="plain", seed=s) for p, c, s in runs]
    on_two = generation.generate_runs(folder, runs, fmt="plain", processes=2)
    assert on_two == by_hand
    assert len({tuple(x.response for x in r) for r in by_hand}) == 3           # the runs differ: seeds do count
    assert generation.generate_runs(folder, runs, fmt="plain", processes=1) == by_hand


def test_sft_samples_are_one_seeded_run_per_pass(policy):
    """`sample_sft` hands its passes to `generate_runs` (whose process count changes nothing: the test above)."""
    folder, model, tok = policy
    counts = [3, 1, 2, 0, 3, 2, 1]
    temperatures = (0.7, 1.0)
    one = comparisons.sample_sft(folder, PROMPTS, counts, temperatures=temperatures, seed=11, max_new_tokens=10,
                                 batch_size=4, processes=1)
    assert [len(r) for r in one] == counts
    # sample s of prompt i is pass s's response: seed 11 + s, temperature temperatures[s % 2], the prompts with c > s
    for s in range(3):
        todo = [i for i, c in enumerate(counts) if c > s]
        cfg = GenerationConfig(temperature=temperatures[s % 2], max_new_tokens=10, batch_size=4)
        expected = generation.generate(model, tok, [PROMPTS[i] for i in todo], cfg, fmt="chat", seed=11 + s)
        assert [one[i][s] for i in todo] == [x.response for x in expected]


def test_one_process_per_core_at_most_two_and_one_for_little_work():
    assert generation.sampling_processes(10**6) == min(2, os.cpu_count() or 1)
    assert generation.sampling_processes(generation.WORKER_MIN_SAMPLES - 1) == 1
