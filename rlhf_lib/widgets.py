"""Notebook widgets built from a config's knob() metadata.

    panel = ConfigPanel(SFTConfig())
    panel                      # last line of a cell: shows the sliders
    cfg = panel.value          # next cell: a validated SFTConfig with the chosen values
    train(cfg)

The panel only collects values; it never runs anything by itself.
Slider ranges come from the knob metadata, so a widget cannot hold an out-of-range value.
"""

import math
from dataclasses import MISSING

import ipywidgets as w

from rlhf_lib.config import allowed, field_type, init_fields, override_dotted, tunable_fields, validate

_STYLE = {"description_width": "12em"}
_LAYOUT = {"width": "36em"}


def _label(name: str) -> str:
    return name.replace("_", " ")


def _owner(cfg, name: str):
    """(the config that holds field `name`, its own name there): `sampling.temperature` lives in cfg.sampling."""
    head, dot, rest = name.partition(".")
    return _owner(getattr(cfg, head), rest) if dot else (cfg, name)


def _make_widget(root, dotted: str):
    cfg, name = _owner(root, dotted)
    meta, typ, value = init_fields(cfg)[name].metadata, field_type(cfg, name), getattr(cfg, name)
    common = dict(description=_label(dotted), tooltip=f"{meta['help']} (allowed: {allowed(cfg, name)})",
                  style=_STYLE, layout=_LAYOUT)
    if meta["choices"] is not None:
        return w.Dropdown(options=list(meta["choices"]), value=value, **common)
    if typ is bool:
        return w.Checkbox(value=value, indent=True, **common)
    lo, hi, step = meta["lo"], meta["hi"], meta["step"]
    if typ is int:
        return w.IntSlider(value=value, min=lo, max=hi, step=step or 1, **common)
    if typ is float and meta["log"]:
        return w.FloatLogSlider(value=value, base=10, min=math.log10(lo), max=math.log10(hi),
                                step=step or 0.05, readout_format=".2e", **common)
    if typ is float:
        return w.FloatSlider(value=value, min=lo, max=hi, step=step or (hi - lo) / 100 or 1.0,
                             readout_format=".4g", **common)
    raise TypeError(f"{type(cfg).__name__}.{name}: no widget for type {typ!r}; "
                    "make it a fixed() field or give it choices=")


class ConfigPanel:
    """One widget per tunable field of a frozen config; `.value` is the validated config."""

    def __init__(self, cfg, fields=None):
        validate(cfg)
        tunable = tunable_fields(cfg)
        if fields is None:
            fields = tunable
        for name in fields:
            if name not in tunable:
                kind = "is fixed (not tunable)" if name in init_fields(cfg) else "does not exist"
                raise ValueError(f"ConfigPanel: {type(cfg).__name__}.{name} {kind}; "
                                 f"tunable fields: {', '.join(tunable)}")
        self.cfg = cfg
        self.widgets = {name: _make_widget(cfg, name) for name in fields}
        self.widget = w.VBox(list(self.widgets.values()))

    def _read(self, dotted: str):
        """Current widget value, cleaned of slider float round-off and clamped into lo..hi."""
        cfg, name = _owner(self.cfg, dotted)
        value, meta = self.widgets[dotted].value, init_fields(cfg)[name].metadata
        if field_type(cfg, name) is float and meta["choices"] is None:
            if math.isclose(value, getattr(cfg, name), rel_tol=1e-9):
                return getattr(cfg, name)
            value = min(max(float(f"{value:.12g}"), meta["lo"]), meta["hi"])
        return value

    @property
    def value(self):
        """The config with the current widget values (validated; cross-field rules may raise)."""
        return override_dotted(self.cfg, {name: self._read(name) for name in self.widgets})

    def changed(self) -> dict:
        """{field: value} for the fields whose current value differs from the field's declared default."""
        cfg, out = self.value, {}
        for name, f in init_fields(cfg).items():
            default = f.default_factory() if f.default_factory is not MISSING else f.default
            if default is MISSING or getattr(cfg, name) != default:
                out[name] = getattr(cfg, name)
        return out

    def reset(self) -> None:
        """Put every widget back to the value it started from."""
        for name, widget in self.widgets.items():
            widget.value = getattr(*_owner(self.cfg, name))

    def _ipython_display_(self):
        from IPython.display import display
        display(self.widget)

    def __repr__(self):
        try:
            return f"ConfigPanel({self.value!r})"
        except ValueError as e:  # e.g. a cross-field rule fails for the current widget values
            return f"ConfigPanel({type(self.cfg).__name__}, invalid: {e})"
