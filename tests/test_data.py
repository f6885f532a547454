import json

import pytest

from rlhf_lib.data import (
    COMPARISON,
    DEMO_ALPACA,
    DEMO_CHAT,
    PROMPT,
    DataError,
    Schema,
    check_lengths,
    read_jsonl,
    write_jsonl,
)

KO = "달 착륙을 여섯 살 아이에게 설명해 주세요."


def alpaca(**kw):
    return {"id": "a1", "category": "open_qa", "lang": "en", "instruction": "Explain the moon landing.",
            "input": "", "output": "People flew to the moon in 1969.", **kw}


def chat(messages=None, **kw):
    messages = messages or [{"role": "system", "content": "Be kind."},
                            {"role": "user", "content": KO},
                            {"role": "assistant", "content": "사람들이 로켓을 타고 달에 갔어요."}]
    return {"id": "c1", "category": "explain", "lang": "ko", "messages": messages, **kw}


def comparison(**kw):
    return {"id": "r1", "category": "open_qa", "lang": "en", "prompt": "Explain the moon landing.",
            "responses": ["a", "b", "c", "d"], "ranking": [2, 0, 3, 1], **kw}


def prompt(**kw):
    return {"id": "p1", "category": "brainstorm", "lang": "ko", "prompt": KO, **kw}


# ---------------------------------------------------------------- writing

def test_round_trip_korean_byte_exact(tmp_path):
    path = tmp_path / "demos.jsonl"
    records = [alpaca(), alpaca(id="a2", lang="ko", instruction=KO)]
    write_jsonl(path, records)
    expected = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")
    assert path.read_bytes() == expected
    assert KO.encode("utf-8") in path.read_bytes()  # not \uXXXX escapes
    assert read_jsonl(path, DEMO_ALPACA) == records
    assert list(read_jsonl(path, DEMO_ALPACA)[0]) == list(records[0])  # insertion order kept, not sorted
    write_jsonl(path, read_jsonl(path, DEMO_ALPACA))
    assert path.read_bytes() == expected  # deterministic


def test_round_trip_all_schemas(tmp_path):
    for schema, record in [(DEMO_CHAT, chat()), (COMPARISON, comparison(labeler=3)), (PROMPT, prompt(meta={"k": 1}))]:
        path = tmp_path / "x.jsonl"
        write_jsonl(path, [record, record])
        assert read_jsonl(path, schema) == [record, record]


def test_atomic_write_leaves_no_temp_file(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [prompt()])
    assert [p.name for p in tmp_path.iterdir()] == ["a.jsonl"]


def test_interrupted_write_keeps_previous_file(tmp_path):
    path = tmp_path / "a.jsonl"
    write_jsonl(path, [prompt()])
    before = path.read_bytes()

    def records():
        yield prompt(id="new1")
        raise RuntimeError("generation crashed")

    with pytest.raises(RuntimeError, match="generation crashed"):
        write_jsonl(path, records())
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["a.jsonl"]


def test_write_rejects_unserializable_and_non_dicts(tmp_path):
    path = tmp_path / "a.jsonl"
    with pytest.raises(ValueError, match="record 2 cannot be written as JSON"):
        write_jsonl(path, [prompt(), prompt(meta={"score": float("nan")})])
    with pytest.raises(TypeError, match="record 1 is a list"):
        write_jsonl(path, [["not", "a", "dict"]])
    assert list(tmp_path.iterdir()) == []


def test_blank_lines_skipped_and_extra_fields_allowed(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps(prompt(extra="ok")) + "\n\n  \n" + json.dumps(prompt(id="p2")) + "\n", encoding="utf-8")
    assert [r["id"] for r in read_jsonl(path, PROMPT)] == ["p1", "p2"]


def test_strict_schema_rejects_unknown_field(tmp_path):
    path = tmp_path / "s.jsonl"
    write_jsonl(path, [{"id": "x", "idd": "y"}])
    with pytest.raises(DataError, match=r"s.jsonl:1: field 'idd': unknown field"):
        read_jsonl(path, Schema({"id": str}, strict=True))
    assert read_jsonl(path, Schema({"id": str})) == [{"id": "x", "idd": "y"}]


# ---------------------------------------------------------------- malformed files

def write_lines(path, good, bad, n_good=2):
    """n_good valid lines, then the bad line, then one more valid line; the bad one is line n_good+1."""
    bad_line = bad if isinstance(bad, bytes) else json.dumps(bad, ensure_ascii=False).encode()
    lines = [json.dumps(good).encode()] * n_good + [bad_line]
    path.write_bytes(b"\n".join(lines + [json.dumps(good).encode()]) + b"\n")


CASES = [
    # name, schema, good record, bad line (record or raw bytes), field, problem fragment
    ("bad_json", PROMPT, prompt(), b'{"id": "p9", "prompt": ', None, "bad JSON: Expecting value"),
    ("not_utf8", PROMPT, prompt(), b'{"id": "p9", "prompt": "caf\xe9"}', None, "not valid UTF-8"),
    ("not_object", PROMPT, prompt(), b'["p9"]', None, "expected a JSON object, got list"),
    ("missing", DEMO_ALPACA, alpaca(), {k: v for k, v in alpaca().items() if k != "output"}, "output", "missing"),
    ("empty", DEMO_ALPACA, alpaca(), alpaca(instruction="  "), "instruction", "empty"),
    ("wrong_type", PROMPT, prompt(), prompt(prompt=5), "prompt", "expected str, got int"),
    ("null", PROMPT, prompt(), prompt(id=None), "id", "expected str, got null"),
    ("lang", PROMPT, prompt(), prompt(lang="fr"), "lang", "'fr' is not allowed; allowed: 'en', 'ko'"),
    ("alpaca_input_type", DEMO_ALPACA, alpaca(), alpaca(input=None), "input", "expected str, got null"),
    ("not_permutation", COMPARISON, comparison(), comparison(ranking=[0, 0, 1, 2]), "ranking",
     "must be a permutation of 0..3"),
    ("ranking_short", COMPARISON, comparison(), comparison(ranking=[0, 1, 2]), "ranking", "must be a permutation"),
    ("ranking_type", COMPARISON, comparison(), comparison(ranking=[0, 1, "2", 3]), "ranking[2]",
     "expected int, got str"),
    ("k_too_small", COMPARISON, comparison(), comparison(responses=["a", "b", "c"], ranking=[0, 1, 2]), "responses",
     "has 3 items; allowed: 4..9"),
    ("k_too_large", COMPARISON, comparison(), comparison(responses=list("abcdefghij"), ranking=list(range(10))),
     "responses", "has 10 items; allowed: 4..9"),
    ("empty_response", COMPARISON, comparison(), comparison(responses=["a", "", "c", "d"]), "responses[1]", "empty"),
    ("labeler_type", COMPARISON, comparison(), comparison(labeler="bob"), "labeler", "expected int, got str"),
    ("meta_type", PROMPT, prompt(), prompt(meta=[1]), "meta", "expected dict, got list"),
    ("chat_not_assistant_last", DEMO_CHAT, chat(), chat(chat()["messages"][:2]), "messages[1].role",
     "last message must be from the assistant"),
    ("chat_no_user", DEMO_CHAT, chat(), chat([{"role": "assistant", "content": "hi"}]), "messages",
     "at least one user message"),
    ("chat_bad_role", DEMO_CHAT, chat(), chat([{"role": "user", "content": "q"}, {"role": "bot", "content": "a"}]),
     "messages[1].role", "'bot' is not allowed"),
    ("chat_empty_content", DEMO_CHAT, chat(),
     chat([{"role": "user", "content": "q"}, {"role": "assistant", "content": ""}]), "messages[1].content", "empty"),
    ("chat_missing_content", DEMO_CHAT, chat(), chat([{"role": "user"}, {"role": "assistant", "content": "a"}]),
     "messages[0].content", "missing"),
    ("chat_not_list", DEMO_CHAT, chat(), chat(messages="hello"), "messages", "expected list, got str"),
]


@pytest.mark.parametrize("name, schema, good, bad, field, problem", CASES, ids=[c[0] for c in CASES])
def test_malformed_line_is_reported_with_file_line_and_field(tmp_path, name, schema, good, bad, field, problem):
    path = tmp_path / f"{name}.jsonl"
    write_lines(path, good, bad)
    with pytest.raises(DataError) as e:
        read_jsonl(path, schema)
    err, msg = e.value, str(e.value)
    assert isinstance(err, ValueError)
    assert (err.path, err.line, err.field) == (str(path), 3, field)
    assert f"{name}.jsonl:3: " in msg and problem in msg
    if field is None:
        assert "field '" not in msg
    else:
        assert msg.startswith(f"{path}:3: field '{field}': ")


def test_crlf_line_endings_are_accepted(tmp_path):
    path = tmp_path / "crlf.jsonl"
    path.write_bytes(json.dumps(prompt()).encode() + b"\r\n" + json.dumps(prompt(id="p2")).encode() + b"\r\n")
    assert len(read_jsonl(path, PROMPT)) == 2


# ---------------------------------------------------------------- lengths

def test_check_lengths(tmp_path):
    records = [prompt(prompt="one two"), prompt(prompt="one two three four five")]
    count = lambda text: len(text.split())  # noqa: E731
    check_lengths(records, count, 5, path="p.jsonl", field="prompt")
    with pytest.raises(DataError) as e:
        check_lengths(records, count, 4, path="p.jsonl", field="prompt")
    assert (e.value.line, e.value.field) == (2, "prompt")
    assert str(e.value) == ("p.jsonl:2: field 'prompt': prompt longer than the context: 5 tokens > max_len=4; "
                            "shorten it or raise max_len")
    with pytest.raises(DataError, match="p.jsonl:1: field 'response': missing"):
        check_lengths(records, count, 4, path="p.jsonl", field="response")
