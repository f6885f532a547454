"""JSONL files, validated at the boundary.

    write_jsonl("data/demos.jsonl", records)          # atomic: old file intact if anything fails
    demos = read_jsonl("data/demos.jsonl", DEMO_CHAT)  # every line checked before anything is returned

A schema is a dict `field -> spec`. A spec is a type (`str` = non-empty string, `int`, `float`,
`bool`, `list`, `dict`) or a validator: a callable that takes the value and raises
`Invalid(problem, at=...)`, where `at` is appended to the field name (e.g. "[2].content").
Extra fields are ignored unless the schema is `Schema({...}, strict=True)`.

Each world file (`data/README.md`) has one reader, used by every trainer and the command line: `read_demos`,
`read_comparisons`, `read_prompts`, `read_web`. They also check the category, the `meta` the gold labeler needs for
it (`CATEGORY_META`), unique ids and at least one record, and return (physical line, record) pairs.
"""

import json
import math
import os
import tempfile
from pathlib import Path

MAX_LINE_BYTES = 1 << 16   # 64 KiB; the longest line of the committed data/ is under 3 KB


class DataError(ValueError):
    """A problem with one line of a data file: "{path}:{line}: field '{field}': {problem}" (a whole-file problem,
    such as an empty file, has line None: "{path}: {problem}")."""

    def __init__(self, path, line, field, problem):
        self.path, self.line, self.field, self.problem = os.fspath(path), line, field, problem
        where = f"field '{field}': " if field is not None else ""
        super().__init__(f"{self.path}{'' if line is None else f':{line}'}: {where}{problem}")


class Invalid(ValueError):
    """Raised by validators; `at` is appended to the field name ("" / "[2].content" / ".role")."""

    def __init__(self, problem, at=""):
        super().__init__(problem)
        self.problem, self.at = problem, at

    def __str__(self):
        return f"field '{self.at}': {self.problem}" if self.at else self.problem


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
WEB = Schema({"id": str, "kind": str, "lang": LANG, "text": str})


# ---------------------------------------------------------------- the world's categories and their meta

# The gold labeler's eight task families (`world.CATEGORIES`, which sits a floor above this module;
# tests/test_data_faults.py keeps the two equal) and, for each, the shapes its `meta` may take: exactly the keys
# of one shape. `build_data.task_from_record` then checks the values against the world (known events, movies …).
CATEGORY_META = {
    "explain_child": ({"event": str},),
    "factual": ({"event": str, "ask": one_of("year", "who")}, {"person": str, "ask": one_of("born", "died")},
                {"animal": str, "ask": one_of("food", "home")}),
    "false_premise": ({"event": str, "fake": int},),
    "harmful": ({"kind": str, "target": any_str},),
    "story": ({"a": str, "b": str},),
    "recommend": ({"genre": str, "avoid": any_str},),
    "describe": ({"title": str},),
    "intent": ({"label": str},),
}
CATEGORIES = tuple(CATEGORY_META)
CATEGORY = one_of(*CATEGORIES)


def _shapes(category) -> str:   # {event, ask} or {person, ask} …
    return " or ".join("{" + ", ".join(shape) + "}" for shape in CATEGORY_META[category])


def check_meta(category, meta) -> None:
    """Raise Invalid(at="meta…") unless `meta` has exactly the keys of one of the category's shapes, each of its
    type: what the gold labeler reads to judge a response to this task."""
    if not isinstance(meta, dict):
        problem = "missing" if meta is None else f"expected an object, got {_type_name(meta)}"
        raise Invalid(f"{problem}; the gold labeler needs the task's meta: category {category!r} takes "
                      f"{_shapes(category)} (data/README.md)", at="meta")
    keys = set(meta)
    known = {k for shape in CATEGORY_META[category] for k in shape}
    if keys - known:
        raise Invalid(f"unknown key; category {category!r} takes meta {_shapes(category)}",
                      at=f"meta.{sorted(keys - known)[0]}")
    shape = max(CATEGORY_META[category], key=lambda s: (len(keys & set(s)), -len(s)))
    if set(shape) != keys:
        missing = sorted(set(shape) - keys)
        raise Invalid(f"{'missing' if missing else 'keys of two shapes'}; category {category!r} takes meta "
                      f"{_shapes(category)}", at=f"meta.{missing[0]}" if missing else "meta")
    for key, spec in shape.items():
        try:
            check_value(meta[key], spec)
        except Invalid as e:
            raise Invalid(e.problem, at=f"meta.{key}") from None


def _meta_fits(record) -> None:
    check_meta(record["category"], record.get("meta"))


def _meta_fits_if_present(record) -> None:        # SFT reads no meta; one that is there must fit its category
    if "meta" in record:
        _meta_fits(record)


_WORLD = {"id": str, "category": CATEGORY, "lang": LANG}
SFT_ALPACA = Schema({**DEMO_ALPACA, **_WORLD}, checks=[_meta_fits_if_present])
SFT_CHAT = Schema({**DEMO_CHAT, **_WORLD}, checks=[_meta_fits_if_present])
COMPARISONS = Schema({**COMPARISON, **_WORLD}, checks=[*COMPARISON.checks, _meta_fits])
PROMPTS = Schema({**{k: v for k, v in PROMPT.items() if k != "meta"}, **_WORLD}, checks=[_meta_fits])


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


def read_numbered(path, schema, *, max_line_bytes=MAX_LINE_BYTES) -> list[tuple[int, dict]]:
    """(line, record) for every line of a JSONL file, each validated; raise DataError on the first bad line.

    `line` is the physical line number: blank lines are skipped but counted. A line longer than `max_line_bytes`
    is refused before it is parsed. Nothing is returned unless the whole file is valid."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file; build the world's data with `rlhf data --data DIR`")
    out = []
    for lineno, raw in enumerate(path.read_bytes().split(b"\n"), start=1):
        if not raw.strip():
            continue
        if len(raw) > max_line_bytes:
            raise DataError(path, lineno, None, f"the line is {len(raw):,} bytes, over the limit of "
                                                f"{max_line_bytes:,} (data.MAX_LINE_BYTES; no record of the course "
                                                "comes near it); shorten the record")
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
        out.append((lineno, record))
    return out


def read_jsonl(path, schema) -> list[dict]:
    """Read and validate every line of a JSONL file; raise DataError on the first bad line (`read_numbered`
    without the line numbers). Blank lines are skipped. Nothing is returned unless the whole file is valid."""
    return [record for _, record in read_numbered(path, schema)]


def _world_file(path, schema, task=None) -> list[tuple[int, dict]]:
    """`read_numbered`, then the rules of every world file: at least one record, unique ids, and (with `task`, e.g.
    `build_data.task_from_record`, which raises Invalid) each record one the gold labeler can judge."""
    rows = read_numbered(path, schema)
    if not rows:
        raise DataError(path, None, None, "no records (the file is empty or blank); every trainer needs at least "
                                          "one: rebuild the world's data with `rlhf data --data DIR`")
    first = {}
    for line, record in rows:
        if record["id"] in first:
            raise DataError(path, line, "id", f"{record['id']!r} is also the id of line {first[record['id']]}; "
                                              "ids are unique within a file (data/README.md): rename one")
        first[record["id"]] = line
        if task is not None:
            try:
                task(record)
            except Invalid as e:
                raise DataError(path, line, e.at or None, e.problem) from None
    return rows


def read_demos(path, fmt: str) -> list[tuple[int, dict]]:
    """SFT demonstrations, `fmt` 'alpaca' (data/sft_alpaca.jsonl) or 'chat' (data/sft_chat.jsonl): (line, record)."""
    return _world_file(path, {"alpaca": SFT_ALPACA, "chat": SFT_CHAT}[fmt])


def read_comparisons(path, task=None) -> list[tuple[int, dict]]:
    """Ranked comparisons (data/comparisons.jsonl), each with the meta the gold labeler needs: (line, record)."""
    return _world_file(path, COMPARISONS, task)


def read_prompts(path, task=None) -> list[tuple[int, dict]]:
    """Prompts for PPO or evaluation (data/rl_prompts.jsonl, data/eval_prompts.jsonl), each with its meta."""
    return _world_file(path, PROMPTS, task)


def read_web(path) -> list[tuple[int, dict]]:
    """The pretraining corpus (data/web.jsonl): (line, document)."""
    return _world_file(path, WEB)


# ---------------------------------------------------------------- lengths

def check_lengths(records, count_tokens, max_len, *, path, field, lines=None) -> None:
    """Raise DataError for the first record whose `field` has more than max_len tokens. `count_tokens(text) -> int`,
    e.g. `lambda s: len(tok(s)["input_ids"])`. The line reported is `lines[i]` (from `read_numbered`), else i + 1."""
    for i, record in enumerate(records):
        line = i + 1 if lines is None else lines[i]
        if field not in record:
            raise DataError(path, line, field, "missing")
        n = count_tokens(record[field])
        if n > max_len:
            raise DataError(path, line, field, f"{field} longer than the context: {n} tokens > "
                                               f"max_len={max_len}; shorten it or raise max_len")



# ---------------------------------------------------------------- config values that name stage folders or seeds

SEED_MAX = 2**32 - 1          # numpy's limit (torch and random take more); a seed of the course fits it


def check_stage_fields(cfg, *names, empty_ok=()) -> None:
    """Raise ValueError unless each config field in `names` is a stage name, one folder right under artifacts/ (not
    empty, no '/', '\\' or leading '.'; '' only in `empty_ok`), and `cfg.seed` (if any) is in 0..SEED_MAX."""
    for name in names:
        v = getattr(cfg, name)
        if not (v == "" and name in empty_ok) and (v.strip() != v or not v or v[0] == "." or set(v) & set("/\\\0")):
            raise ValueError(f"{type(cfg).__name__}.{name} = {v!r} is not a stage name: give one folder under "
                             "artifacts/, not empty, without '/', '\\' or a leading '.'"
                             + (f", or {name}='' (do not save)" if name in empty_ok else ""))
    if not 0 <= getattr(cfg, "seed", 0) <= SEED_MAX:
        raise ValueError(f"{type(cfg).__name__}.seed = {cfg.seed} is out of range; allowed: 0 ≤ seed ≤ {SEED_MAX} "
                         "(a 32-bit seed)")
