"""Frozen config dataclasses whose fields carry their own range and help text.

A config is declared once and drives three things: validation, command-line
overrides (`--set lr=3e-4`) and notebook widgets (`rlhf_lib.widgets.ConfigPanel`).

    @dataclass(frozen=True, kw_only=True)
    class SFTConfig:
        lr: float = knob(1e-4, lo=1e-6, hi=1e-2, log=True, help="AdamW learning rate")
        epochs: int = knob(2, lo=1, hi=16, help="passes over the demonstrations")
        seed: int = fixed(0, help="random seed for init and data order")

        def __post_init__(self):
            validate(self)
            # cross-field rules go here, e.g. warmup_steps <= total_steps

`knob` fields are tunable (they get a widget); `fixed` fields are not; a `nested` field holds another config whose
knobs are tunable too (the panel shows them as `sampling.temperature`, `--set sampling.temperature=0.9`).
"""

import dataclasses
import difflib
import functools
import typing
from dataclasses import MISSING, field

_NUMERIC = (int, float)


def knob(default, *, lo=None, hi=None, step=None, choices=None, log=False, help: str) -> dataclasses.Field:
    """A tunable field: a numeric range lo..hi (inclusive), or a set of choices, or a bool.

    `log=True` asks for a log-scale slider (learning rates); `step` is the slider
    step, in decades when `log=True`.
    """
    _check_help(help, default)
    if isinstance(default, bool):
        if lo is not None or hi is not None or choices is not None or log:
            raise ValueError(f"knob({default!r}): a bool knob is a checkbox; drop lo/hi/choices/log")
    elif choices is not None:
        if lo is not None or hi is not None or log:
            raise ValueError(f"knob({default!r}): give either choices= or lo=/hi=, not both")
        choices = tuple(choices)
        if not choices:
            raise ValueError(f"knob({default!r}): choices= is empty; list the allowed values")
        if default not in choices:
            raise ValueError(f"knob({default!r}): default is not one of choices={choices}")
    elif isinstance(default, _NUMERIC):
        if lo is None or hi is None:
            raise ValueError(f"knob({default!r}): a numeric knob needs both lo= and hi= "
                             "(the widget slider is built from them); use fixed() for an untunable value")
        if not lo <= hi:
            raise ValueError(f"knob({default!r}): lo={lo!r} is greater than hi={hi!r}")
        if log and not lo > 0:
            raise ValueError(f"knob({default!r}): log=True needs lo > 0, got lo={lo!r}")
        if not lo <= default <= hi:
            raise ValueError(f"knob({default!r}): default is out of range; allowed: {lo} ≤ value ≤ {hi}")
    else:
        raise ValueError(f"knob({default!r}): only bool, numeric (lo=/hi=) or choices= knobs are "
                         "supported; use fixed() for other values")
    meta = {"help": help, "tunable": True, "lo": lo, "hi": hi, "step": step, "choices": choices, "log": bool(log)}
    return field(default=default, metadata=meta)


def fixed(default, *, help: str) -> dataclasses.Field:
    """A non-tunable field (no widget), documented by its help string."""
    _check_help(help, default)
    return field(default=default, metadata={"help": help, "tunable": False})


def nested(default, *, help: str) -> dataclasses.Field:
    """A field holding another frozen config (e.g. PPO's sampling settings, a `GenerationConfig`) whose own knobs are
    tunable: panels and `--help` list them under `name.field`."""
    _check_help(help, default)
    if not dataclasses.is_dataclass(default) or isinstance(default, type):
        raise ValueError(f"nested({default!r}): the default must be a config instance")
    return field(default=default, metadata={"help": help, "tunable": True, "nested": True})


def _check_help(help, default):
    if not isinstance(help, str) or not help.strip():
        raise ValueError(f"field with default {default!r}: help= must be a non-empty string saying what it does")


@functools.cache
def _types(cls) -> dict:
    """Field name -> resolved type (works with `from __future__ import annotations`)."""
    return typing.get_type_hints(cls)


def init_fields(cfg_or_cls) -> dict:
    """Init fields by name."""
    if not dataclasses.is_dataclass(cfg_or_cls):
        raise TypeError(f"expected a config dataclass, got {type(cfg_or_cls).__name__}")
    return {f.name: f for f in dataclasses.fields(cfg_or_cls) if f.init}


def tunable_fields(cfg_or_cls) -> list[str]:
    """Names of the knob() fields, in declaration order; a nested() config's knobs as `name.field`."""
    out = []
    for n, f in init_fields(cfg_or_cls).items():
        if f.metadata.get("nested"):
            inner = f.default if isinstance(cfg_or_cls, type) else getattr(cfg_or_cls, n)
            out += [f"{n}.{sub}" for sub in tunable_fields(inner)]
        elif f.metadata.get("tunable"):
            out.append(n)
    return out


def field_type(cfg_or_cls, name: str):
    cls = cfg_or_cls if isinstance(cfg_or_cls, type) else type(cfg_or_cls)
    return _types(cls)[name]


def allowed(cfg_or_cls, name: str) -> str:
    """Human-readable description of the values a field accepts."""
    meta = init_fields(cfg_or_cls)[name].metadata
    typ = field_type(cfg_or_cls, name)
    if meta.get("choices") is not None:
        return "one of " + ", ".join(repr(c) for c in meta["choices"])
    if meta.get("lo") is not None:
        return f"{meta['lo']} ≤ {name} ≤ {meta['hi']}"
    if typ is bool:
        return "true or false"
    return f"any {getattr(typ, '__name__', typ)}"


def _type_ok(value, typ) -> bool:
    if typ is bool:
        return isinstance(value, bool)
    if typ is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if typ is float:
        return isinstance(value, _NUMERIC) and not isinstance(value, bool)
    if typ is str:
        return isinstance(value, str)
    return True  # other annotations (tuples, paths, ...) are not type-checked here


def check_field(cfg_or_cls, name: str, value) -> None:
    """Check one value for one field (type, range, choices) without building a config, so cross-field rules are not
    involved; raise ValueError naming the field and its allowed values."""
    cls = (cfg_or_cls if isinstance(cfg_or_cls, type) else type(cfg_or_cls)).__name__
    typ, meta = field_type(cfg_or_cls, name), init_fields(cfg_or_cls)[name].metadata
    if meta.get("log") and typ is not float:
        raise ValueError(f"{cls}.{name}: log=True only applies to float fields; drop log=True")
    if not _type_ok(value, typ) or (dataclasses.is_dataclass(typ) and not isinstance(value, typ)):
        raise ValueError(f"{cls}.{name} = {value!r} has the wrong type; expected {getattr(typ, '__name__', typ)}, "
                         f"got {type(value).__name__}")
    choices, lo, hi = meta.get("choices"), meta.get("lo"), meta.get("hi")
    if choices is not None and value not in choices:
        raise ValueError(f"{cls}.{name} = {value!r} is not allowed; allowed: {allowed(cfg_or_cls, name)}")
    if lo is not None and not lo <= value <= hi:  # also rejects NaN
        raise ValueError(f"{cls}.{name} = {value!r} is out of range; allowed: {lo} ≤ {name} ≤ {hi}")


def validate(cfg) -> None:
    """Check every field's type, range and choices; raise ValueError naming the field and allowed values."""
    for name in init_fields(cfg):
        check_field(cfg, name, getattr(cfg, name))


def _check_names(cls, names) -> None:
    valid = list(init_fields(cls))
    for key in names:
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"{cls.__name__} has no field {key!r}{hint}; valid fields: {', '.join(valid)}")


def override(cfg, **changes):
    """`dataclasses.replace` that rejects misspelled field names and validates the result."""
    _check_names(type(cfg), changes)
    new = dataclasses.replace(cfg, **changes)
    validate(new)
    return new


def _parse_value(cfg, name: str, raw: str):
    typ, cls = field_type(cfg, name), type(cfg).__name__
    bad = f"{cls}.{name}: cannot parse {raw!r} as {getattr(typ, '__name__', typ)}; allowed: {allowed(cfg, name)}"
    if typ is bool:
        if raw.strip().lower() not in ("true", "false"):
            raise ValueError(bad)
        return raw.strip().lower() == "true"
    if typ is int:
        try:
            return int(raw)
        except ValueError:
            raise ValueError(bad) from None
    if typ is float:
        try:
            return float(raw)
        except ValueError:
            raise ValueError(bad) from None
    if typ is str:
        return raw
    raise ValueError(f"{cls}.{name} has type {typ!r}; --set only supports int, float, bool and str fields")


def parse_override(cfg, item: str) -> tuple[str, object]:
    """One "field=value" item, parsed by the field's type and checked on its own: (field, value).

    A dotted field reaches into a nested config ("model.hidden_size=64"). Cross-field rules need every change at
    once, so they are left to `parse_overrides`."""
    name, sep, raw = item.partition("=")
    name = name.strip()
    if not sep or not name:
        raise ValueError(f"--set expects field=value, got {item!r}; valid fields: {', '.join(init_fields(cfg))}")
    head, dot, rest = name.partition(".")
    _check_names(type(cfg), [head])
    if dot:
        inner = getattr(cfg, head)
        if not dataclasses.is_dataclass(inner):
            raise ValueError(f"{type(cfg).__name__}.{head} is not a nested config; use {head}=value")
        return name, parse_override(inner, f"{rest}={raw}")[1]
    value = _parse_value(cfg, name, raw)
    check_field(cfg, name, value)
    return name, value


def parse_overrides(cfg, items):
    """Apply ["field=value", ...] (from `--set field=value`) to cfg, parsing each value by its field type.

    Dotted fields set a nested config's fields ("model.hidden_size=64")."""
    changes = {}
    for item in items:
        name, value = parse_override(cfg, item)
        if name in changes:
            raise ValueError(f"--set {name}=... given twice; keep one")
        changes[name] = value
    return override_dotted(cfg, changes)


def override_dotted(cfg, changes: dict):
    """`override` with dotted names for nested configs ({"sampling.temperature": 0.9}), validated."""
    flat, nested = {}, {}
    for name, value in changes.items():
        head, dot, rest = name.partition(".")
        if dot:
            nested.setdefault(head, {})[rest] = value
        else:
            flat[name] = value
    for head, sub in nested.items():
        flat[head] = override_dotted(getattr(cfg, head), sub)
    return override(cfg, **flat)


def to_dict(cfg) -> dict:
    """Field name -> value, in declaration order; nested configs become nested dicts (JSON-ready)."""
    out = {}
    for name in init_fields(cfg):
        value = getattr(cfg, name)
        out[name] = to_dict(value) if dataclasses.is_dataclass(value) else value
    return out


def from_dict(cls, d):
    """Rebuild a config saved with `to_dict` (or read from a config file); unknown keys are an error, missing ones
    take their defaults, nested dicts become nested configs."""
    if not isinstance(d, dict):
        raise TypeError(f"from_dict({cls.__name__}, ...) expects a dict, got {type(d).__name__}")
    _check_names(cls, d)
    fields = init_fields(cls)
    missing = [n for n, f in fields.items() if n not in d and f.default is MISSING and f.default_factory is MISSING]
    if missing:
        raise ValueError(f"{cls.__name__}: missing required field(s) {', '.join(missing)}")
    kwargs = {}
    for name, value in d.items():
        typ = field_type(cls, name)
        if dataclasses.is_dataclass(typ) and isinstance(value, dict):
            value = from_dict(typ, value)  # a nested config
        elif typing.get_origin(typ) is tuple and isinstance(value, list):
            value = tuple(value)  # JSON has no tuples
        elif typ is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)  # "lr = 1" in a file
        kwargs[name] = value
    cfg = cls(**kwargs)
    validate(cfg)
    return cfg

