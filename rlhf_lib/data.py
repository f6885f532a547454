"""JSONL files, validated at the boundary.

    write_jsonl("data/demos.jsonl", records)          # atomic: old file intact if anything fails
    demos = read_jsonl("data/demos.jsonl", DEMO_CHAT)  # every line checked before anything is returned

A schema is a dict `field -> spec`. A spec is a type (`str` = non-empty string, `int`, `float`,
`bool`, `list`, `dict`) or a validator: a callable that takes the value and raises
`Invalid(problem, at=...)`, where `at` is appended to the field name (e.g. "[2].content").
Extra fields are ignored unless the schema is `Schema({...}, strict=True)`.
"""

import json
import math
import os
import tempfile
from pathlib import Path


class DataError(ValueError):
    """A problem with one line of a data file: "{path}:{line}: field '{field}': {problem}"."""

    def __init__(self, path, line, field, problem):
        self.path, self.line, self.field, self.problem = os.fspath(path), line, field, problem
        where = f"field '{field}': " if field is not None else ""
        super().__init__(f"{self.path}:{line}: {where}{problem}")


class Invalid(Exception):
    """Raised by validators; `at` is appended to the field name ("" / "[2].content" / ".role")."""

    def __init__(self, problem, at=""):
        super().__init__(problem)
        self.problem, self.at = problem, at


class Schema(dict):
    """A dict field -> spec, plus `strict` (reject unknown fields) and record-level `checks`.

    Each check takes the whole record and raises `Invalid(problem, at=field_name)`; checks run
    only after every field passed its own spec.
    """

    def __init__(self, fields, *, strict=False, checks=()):
        super().__init__(fields)
        self.strict, self.checks = strict, tuple(checks)


class optional:
    """Spec wrapper: the field may be absent; if present it must match `spec`."""

    def __init__(self, spec):
        self.spec = spec


# ---------------------------------------------------------------- checking values

def _type_name(value) -> str:
    return "null" if value is None else type(value).__name__


def check_value(value, spec) -> None:
    """Raise Invalid if `value` does not match `spec`."""
    if isinstance(spec, type):
        ok = isinstance(value, spec)
        if spec in (int, float):
            ok = isinstance(value, (int, float) if spec is float else int) and not isinstance(value, bool)
        if not ok:
            raise Invalid(f"expected {spec.__name__}, got {_type_name(value)}")
        if spec is str and not value.strip():
            raise Invalid("empty")
        if spec is float and not math.isfinite(value):
            raise Invalid(f"not a finite number: {value!r}")
    elif callable(spec):
        spec(value)
    else:
        raise TypeError(f"schema spec must be a type or a validator function, got {spec!r}")


def check_record(record, schema) -> None:
    """Raise Invalid(problem, at=full_field_name) for the first problem in `record`."""
    for name, spec in schema.items():
        if isinstance(spec, optional):
            if name not in record:
                continue
            spec = spec.spec
        if name not in record:
            raise Invalid("missing", at=name)
        try:
            check_value(record[name], spec)
        except Invalid as e:
            raise Invalid(e.problem, at=name + e.at) from None
    if getattr(schema, "strict", False):
        extra = [k for k in record if k not in schema]
        if extra:
            raise Invalid(f"unknown field (allowed: {', '.join(schema)})", at=extra[0])
    for check in getattr(schema, "checks", ()):
        check(record)


def any_str(value) -> None:
    """A string, possibly empty (Alpaca's `input`)."""
    if not isinstance(value, str):
        raise Invalid(f"expected str, got {_type_name(value)}")


def one_of(*values):
    def check(value):
        if value not in values:
            raise Invalid(f"{value!r} is not allowed; allowed: {', '.join(repr(v) for v in values)}")
    return check


def list_of(spec, *, min_len=0, max_len=None, hint=""):
    def check(value):
        if not isinstance(value, list):
            raise Invalid(f"expected list, got {_type_name(value)}")
        if len(value) < min_len or (max_len is not None and len(value) > max_len):
            bound = f"{min_len}..{max_len}" if max_len is not None else f"at least {min_len}"
            raise Invalid(f"has {len(value)} items; allowed: {bound}{hint}")
        for i, item in enumerate(value):
            try:
                check_value(item, spec)
            except Invalid as e:
                raise Invalid(e.problem, at=f"[{i}]{e.at}") from None
    return check


def record_of(schema):
    """Spec for a nested JSON object; nested field names are joined with '.'."""
    def check(value):
        if not isinstance(value, dict):
            raise Invalid(f"expected an object, got {_type_name(value)}")
        try:
            check_record(value, schema)
        except Invalid as e:
            raise Invalid(e.problem, at=f".{e.at}") from None
    return check


# ---------------------------------------------------------------- the course's schemas

LANG = one_of("en", "ko")
_COMMON = {"id": str, "category": str, "lang": LANG}

DEMO_ALPACA = Schema({**_COMMON, "instruction": str, "input": any_str, "output": str})

MESSAGE = Schema({"role": one_of("system", "user", "assistant"), "content": str})


def _chat_messages(value) -> None:
    list_of(record_of(MESSAGE), min_len=1)(value)
    if value[-1]["role"] != "assistant":
        raise Invalid(f"the last message must be from the assistant (it is the demonstration), "
                      f"got {value[-1]['role']!r}", at=f"[{len(value) - 1}].role")
    if not any(m["role"] == "user" for m in value):
        raise Invalid("needs at least one user message")


DEMO_CHAT = Schema({**_COMMON, "messages": _chat_messages})

K_MIN, K_MAX = 4, 9  # InstructGPT shows labelers K = 4..9 responses per prompt


def _ranking_is_permutation(record) -> None:
    ranking, k = record["ranking"], len(record["responses"])
    if sorted(ranking) != list(range(k)):
        raise Invalid(f"must be a permutation of 0..{k - 1} (each of the {k} response indices exactly "
                      f"once, best first), got {ranking}", at="ranking")


COMPARISON = Schema(
    {**_COMMON, "prompt": str,
     "responses": list_of(str, min_len=K_MIN, max_len=K_MAX, hint=" (K responses per prompt, as in InstructGPT)"),
     "ranking": list_of(int),
     "labeler": optional(int)},
    checks=[_ranking_is_permutation],
)

PROMPT = Schema({**_COMMON, "prompt": str, "meta": optional(dict)})


# ---------------------------------------------------------------- files

def write_jsonl(path, records) -> None:
    """Write one JSON object per line (UTF-8, keys in insertion order), atomically.

    The records go to a temp file in the same directory, which is fsync'ed and then
    renamed over `path`; if anything fails, an existing file at `path` is left untouched.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            for i, record in enumerate(records):
                if not isinstance(record, dict):
                    raise TypeError(f"{path}: record {i + 1} is a {type(record).__name__}; "
                                    "write_jsonl writes one JSON object (dict) per line")
                try:
                    line = json.dumps(record, ensure_ascii=False, allow_nan=False)
                except (TypeError, ValueError) as e:
                    raise ValueError(f"{path}: record {i + 1} cannot be written as JSON: {e}") from e
                f.write(line.encode("utf-8") + b"\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)  # only still there if something failed


def read_jsonl(path, schema) -> list[dict]:
    """Read and validate every line of a JSONL file; raise DataError on the first bad line.

    Blank lines are skipped. Nothing is returned unless the whole file is valid.
    """
    records = []
    for lineno, raw in enumerate(Path(path).read_bytes().split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise DataError(path, lineno, None, f"not valid UTF-8 (byte {raw[e.start:e.end]!r} at offset {e.start}); "
                                                "re-save the file as UTF-8") from None
        try:
            record = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(path, lineno, None, f"bad JSON: {e.msg} (column {e.colno})") from None
        if not isinstance(record, dict):
            raise DataError(path, lineno, None, f"expected a JSON object, got {_type_name(record)}")
        try:
            check_record(record, schema)
        except Invalid as e:
            raise DataError(path, lineno, e.at or None, e.problem) from None
        records.append(record)
    return records


def check_lengths(records, count_tokens, max_len, *, path, field) -> None:
    """Raise DataError for the first record whose `field` has more than max_len tokens.

    `count_tokens(text) -> int`, e.g. `lambda s: len(tok(s)["input_ids"])`. The reported line
    is the record's index + 1 (the line number for files written by write_jsonl).
    """
    for i, record in enumerate(records):
        if field not in record:
            raise DataError(path, i + 1, field, "missing")
        n = count_tokens(record[field])
        if n > max_len:
            raise DataError(path, i + 1, field, f"{field} longer than the context: {n} tokens > "
                                                f"max_len={max_len}; shorten it or raise max_len")
