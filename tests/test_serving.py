"""The policy behind an OpenAI-compatible API (lesson 09): `transformers serve` on a tiny model folder made here,
called through the official `openai` client, the same greedy answer as the in-process backend, and the server
gone afterwards — after a normal end, an interrupt, or a start that fails."""
from __future__ import annotations

import pytest
import torch

from rlhf_lib import serving
from rlhf_lib.models import ModelConfig, build_tiny_llama
from rlhf_lib.tokenizer import train_tokenizer

WORDS = "the moon star landing rocket tell me about it was great a small answer".split()
MESSAGES = [{"role": "user", "content": "tell me about the moon landing"}]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A tiny LLaMA with the course's tokenizer and chat template, saved as a stage's model files are."""
    out = tmp_path_factory.mktemp("served")
    tok = train_tokenizer([" ".join(WORDS[i:] + WORDS[:i]) for i in range(len(WORDS))] * 5, vocab_size=300)
    torch.manual_seed(0)
    model = build_tiny_llama(ModelConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64,
                                         max_len=256), tok, seed=0)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out


def test_the_server_answers_like_the_local_backend_and_is_gone_afterwards(folder):
    with serving.Server(folder, timeout=180) as server:
        assert server.running() and server.healthy()
        http = serving.HTTPChat(server, max_tokens=12)
        answer = serving.get_chatgpt_msg(MESSAGES, http)
        assert answer == http(MESSAGES)                               # greedy: the same answer twice
    assert not server.running() and not server.healthy()
    assert answer == serving.LocalChat(folder, max_tokens=12)(MESSAGES)


def test_an_interrupt_inside_the_block_stops_the_server(folder):
    with pytest.raises(KeyboardInterrupt):
        with serving.Server(folder, timeout=180) as server:
            raise KeyboardInterrupt                                   # Ctrl-C, or a kernel interrupt
    assert not server.running()


def test_a_folder_without_a_model_is_refused_before_starting(tmp_path):
    with pytest.raises(serving.ServingError, match="has no config.json: serve a stage folder"):
        serving.Server(tmp_path)


def test_a_server_that_dies_at_start_says_so_with_its_log(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "no-such-architecture"}', encoding="utf-8")
    server = serving.Server(tmp_path, timeout=180)
    with pytest.raises(serving.ServingError) as err:
        server.start()
    assert "did not answer" in str(err.value) or "exited with status" in str(err.value)
    assert not server.running()
