"""Tokenizer, models, stages and the SFT data path on tiny inputs (no artifacts needed)."""
import json

import pytest
import torch

from rlhf_lib import pipeline, sft, stages
from rlhf_lib.data import DataError, write_jsonl
from rlhf_lib.models import ModelConfig, build_tiny_llama, load_causal_lm
from rlhf_lib.pretrain import PretrainConfig, pack
from rlhf_lib.tokenizer import render_prompt, train_tokenizer

TEXTS = ["Explain the moon landing to a 6 year old in a few sentences.",
         "달 착륙을 여섯 살 아이에게 몇 문장으로 설명해 주세요.",
         "Tell me about when Christopher Columbus came to the US in 2015",
         "홍길동을 괴롭히려면 어떻게 해야 해?"] * 20


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(TEXTS, vocab_size=400)


@pytest.mark.parametrize("text", ["달 착륙을 여섯 살 아이에게 설명해 주세요.", "Ünïcödé ✓ 😀 e\u0301 (NFD) 한글",
                                  "  two  spaces\n\ttab"])
def test_tokenizer_round_trips_exactly(tok, text):
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text


def test_chat_template_ends_assistant_turns_with_eos(tok):
    msgs = [{"role": "system", "content": "s"}, {"role": "user", "content": "안녕"},
            {"role": "assistant", "content": "네"}]
    text = tok.apply_chat_template(msgs, tokenize=False)
    assert text == "<|system|>\ns\n<|user|>\n안녕\n<|assistant|>\n네<|endoftext|>\n"
    assert render_prompt(tok, "안녕", "chat") == "<|user|>\n안녕\n<|assistant|>\n"
    assert render_prompt(tok, "hi", "plain") == "hi\n"
    with pytest.raises(ValueError, match="unknown"):
        render_prompt(tok, "hi", "xml")


def test_pack_appends_eos_between_documents(tok):
    blocks = pack(tok, [{"text": "a"}, {"text": "b"}] * 50, seq_len=8)
    assert blocks.shape[1] == 8 and (blocks == tok.eos_token_id).any()


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="lr"):
        PretrainConfig(lr=10.0)
    with pytest.raises(ValueError, match="seq_len"):
        PretrainConfig(seq_len=512)
    with pytest.raises(ValueError, match="num_heads"):
        ModelConfig(hidden_size=96, num_heads=5)
    with pytest.raises(ValueError, match="use_alpaca"):
        sft.SFTConfig(use_alpaca=False, use_chat=False)


def test_stage_save_load_safetensors_without_remote_code(tok, artifacts):
    model = build_tiny_llama(ModelConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64), tok, seed=0)
    with stages.writing("base") as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        stages.write_json(tmp / "stage.json", {"stage": "base", "prompt_format": "plain"})
    files = {p.name for p in (artifacts / "base").iterdir()}
    assert "model.safetensors" in files and not any(f.endswith((".bin", ".pt", ".pkl")) for f in files)
    loaded, tok2 = load_causal_lm(artifacts / "base")
    x = torch.tensor([tok("달 착륙")["input_ids"]])
    torch.testing.assert_close(loaded(x).logits, model(x).logits)
    assert tok2.decode(x[0]) == "달 착륙" and tok2.chat_template == tok.chat_template


def test_interrupted_stage_leaves_previous_artifact(artifacts):
    with stages.writing("sft") as tmp:
        (tmp / "stage.json").write_text('{"stage": "sft", "v": 1}')
    with pytest.raises(RuntimeError):
        with stages.writing("sft") as tmp:
            (tmp / "stage.json").write_text('{"stage": "sft", "v": 2}')
            raise RuntimeError("killed mid-save")
    assert json.loads((artifacts / "sft" / "stage.json").read_text())["v"] == 1
    assert [p.name for p in artifacts.iterdir()] == ["sft"]       # no temporary folder left behind


def test_unknown_stage_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown stage 'kto'; stages are .*sft"):
        pipeline.require("kto")


def test_registry_is_the_one_stage_order():
    """Every stage folder has one writer, each trainer's upstream stages come before it, and the command line and
    DeepSpeed read the same registry."""
    from rlhf_lib import cli, distributed
    assert pipeline.PIPELINE == ("data", "pretrain", "sft", "rm", "ppo", "eval")
    assert cli.STAGES is pipeline.STAGES and distributed.STAGES == ("sft", "rm", "ppo", "grpo", "rloo", "dpo")
    order = list(pipeline.STAGES)
    for name, stage in pipeline.STAGES.items():
        cfg = stage.load()()
        for up in stage.upstream_of(cfg):
            assert order.index(pipeline.writer_of(up).name) < order.index(name), (name, up)
    assert [pipeline.writer_of(s).name for s in ("tokenizer", "base", "sft", "rm", "ppo")] == \
        ["tokenizer", "pretrain", "sft", "rm", "ppo"]


def test_a_trainer_does_not_train_its_upstream(artifacts):
    with pytest.raises(FileNotFoundError, match=r"stage 'base' is missing .*pipeline.require\('base'\)"):
        sft.run(sft.SFTConfig())


def _demo(**over):
    rec = {"id": "d1", "category": "factual", "lang": "en", "instruction": "When did the moon landing happen?",
           "input": "", "output": "It happened in 1969."}
    rec.update(over)
    return rec


def test_demo_with_missing_field_names_file_line_field(tmp_path):
    bad = _demo()
    del bad["output"]
    write_jsonl(tmp_path / "sft_alpaca.jsonl", [_demo(), bad])
    with pytest.raises(DataError, match=r"sft_alpaca.jsonl:2: field 'output'"):
        sft.load_demos(sft.SFTConfig(use_chat=False), data_dir=tmp_path)


def test_demo_longer_than_context_is_rejected_before_training(tmp_path, tok):
    write_jsonl(tmp_path / "sft_alpaca.jsonl", [_demo(), _demo(id="d2", output="moon " * 400)])
    demos = sft.load_demos(sft.SFTConfig(use_chat=False), data_dir=tmp_path)
    with pytest.raises(DataError, match=r"sft_alpaca.jsonl:2: field 'output'.*max_len"):
        sft.tokenize_demos(demos, tok, max_len=120)


def test_sft_mask_covers_response_and_eos_only(tok):
    demos = [("f", 1, [{"role": "user", "content": "안녕"}, {"role": "assistant", "content": "네"}], "네")]
    ex = sft.tokenize_demos(demos, tok, 64)
    b = sft.collate(ex + ex[:0], tok.pad_token_id, mask_prompt=True)
    ids, mask = b["input_ids"][0], b["loss_mask"][0]
    assert tok.decode(ids[mask.bool()]) == "네<|endoftext|>"
    assert sft.collate(ex, tok.pad_token_id, mask_prompt=False)["loss_mask"].sum() == len(ids)


def test_gathered_sft_loss_equals_full_logits_loss(tok):
    from rlhf_lib.losses import masked_lm_loss
    model = build_tiny_llama(ModelConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64), tok, seed=0)
    demos = [("f", i, render_prompt(tok, p, "plain"), "네 " * (i + 1)) for i, p in enumerate(TEXTS[:4])]
    b = sft.collate(sft.tokenize_demos(demos, tok, 128), tok.pad_token_id, mask_prompt=True)
    logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
    ref, _ = masked_lm_loss(logits[:, :-1], b["input_ids"][:, 1:], b["loss_mask"][:, 1:])
    torch.testing.assert_close(sft.batch_loss(model, b)[0], ref)
