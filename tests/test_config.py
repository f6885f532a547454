import dataclasses
import json
from dataclasses import dataclass

import ipywidgets as w
import pytest
import traitlets

from rlhf_lib.config import (
    allowed,
    check_field,
    fixed,
    from_dict,
    knob,
    nested,
    override,
    parse_override,
    parse_overrides,
    to_dict,
    tunable_fields,
    validate,
)
from rlhf_lib.widgets import ConfigPanel


@dataclass(frozen=True, kw_only=True)
class ExampleConfig:
    lr: float = knob(1e-3, lo=1e-5, hi=1e-1, log=True, help="AdamW learning rate")
    batch_size: int = knob(8, lo=1, hi=64, help="prompts per optimizer step")
    kl_coef: float = knob(0.02, lo=0.0, hi=0.5, step=0.01, help="KL penalty toward the SFT policy")
    optimizer: str = knob("adamw", choices=("adamw", "sgd"), help="optimizer")
    use_ema: bool = knob(False, help="keep an exponential moving average of the weights")
    steps: int = knob(100, lo=1, hi=10_000, help="optimizer steps")
    warmup_steps: int = knob(10, lo=0, hi=1_000, help="linear warmup steps")
    seed: int = fixed(0, help="random seed")
    model_name: str = fixed("sshleifer/tiny-gpt2", help="base model")

    def __post_init__(self):
        validate(self)
        if self.warmup_steps > self.steps:
            raise ValueError(f"ExampleConfig.warmup_steps = {self.warmup_steps} must be ≤ steps = {self.steps}; "
                             "lower warmup_steps or raise steps")


# ---------------------------------------------------------------- config mechanism

def test_defaults_valid_and_metadata():
    cfg = ExampleConfig()
    assert cfg.lr == 1e-3
    assert tunable_fields(cfg) == ["lr", "batch_size", "kl_coef", "optimizer", "use_ema", "steps", "warmup_steps"]
    meta = {f.name: f.metadata for f in dataclasses.fields(cfg)}
    assert meta["lr"]["log"] and meta["lr"]["lo"] == 1e-5 and meta["lr"]["hi"] == 1e-1
    assert meta["seed"] == {"help": "random seed", "tunable": False}
    assert allowed(cfg, "optimizer") == "one of 'adamw', 'sgd'"


def test_out_of_range_message_names_field_and_range():
    with pytest.raises(ValueError) as e:
        ExampleConfig(lr=0.5)
    assert str(e.value) == "ExampleConfig.lr = 0.5 is out of range; allowed: 1e-05 ≤ lr ≤ 0.1"
    with pytest.raises(ValueError, match=r"ExampleConfig.batch_size = 0 is out of range; allowed: 1 ≤ batch_size ≤ 64"):
        ExampleConfig(batch_size=0)
    with pytest.raises(ValueError, match="kl_coef = nan is out of range"):
        ExampleConfig(kl_coef=float("nan"))


@pytest.mark.parametrize("kwargs, match", [
    ({"batch_size": 8.0}, r"ExampleConfig.batch_size = 8.0 has the wrong type; expected int, got float"),
    ({"batch_size": True}, r"batch_size = True has the wrong type; expected int, got bool"),
    ({"lr": "1e-3"}, r"lr = '1e-3' has the wrong type; expected float, got str"),
    ({"use_ema": 1}, r"use_ema = 1 has the wrong type; expected bool, got int"),
    ({"optimizer": "adam"}, r"ExampleConfig.optimizer = 'adam' is not allowed; allowed: one of 'adamw', 'sgd'"),
])
def test_type_and_choice_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ExampleConfig(**kwargs)


def test_float_field_accepts_int_and_cross_field_rule():
    assert ExampleConfig(kl_coef=0).kl_coef == 0
    with pytest.raises(ValueError, match="warmup_steps = 200 must be ≤ steps = 100"):
        ExampleConfig(warmup_steps=200)


def test_frozen():
    cfg = ExampleConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.lr = 1e-4


@pytest.mark.parametrize("call, match", [
    (lambda: knob(1.0, help="x"), "needs both lo= and hi="),
    (lambda: knob(2, lo=0, hi=1, help="x"), "default is out of range"),
    (lambda: knob(1e-3, lo=0.0, hi=1.0, log=True, help="x"), "log=True needs lo > 0"),
    (lambda: knob("a", choices=("b", "c"), help="x"), "not one of choices"),
    (lambda: knob(1, lo=0, hi=2, choices=(1, 2), help="x"), "either choices= or lo=/hi="),
    (lambda: knob(True, lo=0, hi=1, help="x"), "bool knob is a checkbox"),
    (lambda: knob(1, lo=0, hi=2, help=""), "help= must be a non-empty string"),
    (lambda: fixed(0, help="  "), "help= must be a non-empty string"),
])
def test_knob_declaration_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_override_and_typo_suggestion():
    cfg = override(ExampleConfig(), lr=3e-4, batch_size=16)
    assert (cfg.lr, cfg.batch_size) == (3e-4, 16)
    with pytest.raises(ValueError) as e:
        override(ExampleConfig(), learning_rat=1e-4, lr=1e-4)
    msg = str(e.value)
    assert "'learning_rat'" in msg and "valid fields: lr, batch_size" in msg
    with pytest.raises(ValueError, match=r"no field 'bach_size' \(did you mean 'batch_size'\?\)"):
        override(ExampleConfig(), bach_size=4)
    with pytest.raises(ValueError, match="out of range"):
        override(ExampleConfig(), batch_size=1000)


def test_parse_overrides_types():
    cfg = parse_overrides(ExampleConfig(), ["lr=3e-4", "batch_size=16", "use_ema=True", "optimizer=sgd",
                                            "kl_coef=0", "seed=7", "model_name=gpt2"])
    assert (cfg.lr, cfg.batch_size, cfg.use_ema, cfg.optimizer, cfg.seed, cfg.model_name) == \
        (3e-4, 16, True, "sgd", 7, "gpt2")
    assert cfg.kl_coef == 0.0 and isinstance(cfg.kl_coef, float)
    assert parse_overrides(ExampleConfig(), ["use_ema=false"]).use_ema is False
    assert parse_overrides(ExampleConfig(), []) == ExampleConfig()


@pytest.mark.parametrize("item, match", [
    ("batch_size=8.5", r"ExampleConfig.batch_size: cannot parse '8.5' as int; allowed: 1 ≤ batch_size ≤ 64"),
    ("lr=fast", r"ExampleConfig.lr: cannot parse 'fast' as float; allowed: 1e-05 ≤ lr ≤ 0.1"),
    ("use_ema=yes", r"use_ema: cannot parse 'yes' as bool; allowed: true or false"),
    ("optimizer=adam", r"optimizer = 'adam' is not allowed; allowed: one of 'adamw', 'sgd'"),
    ("batch_size=100", r"batch_size = 100 is out of range; allowed: 1 ≤ batch_size ≤ 64"),
    ("lrr=1e-4", r"no field 'lrr' \(did you mean 'lr'\?\)"),
    ("lr", r"--set expects field=value, got 'lr'"),
])
def test_parse_overrides_errors(item, match):
    with pytest.raises(ValueError, match=match) as e:
        parse_overrides(ExampleConfig(), [item])
    assert "\n" not in str(e.value)


def test_parse_overrides_duplicate():
    with pytest.raises(ValueError, match="given twice"):
        parse_overrides(ExampleConfig(), ["lr=1e-4", "lr=2e-4"])


def test_to_from_dict_round_trip_through_json():
    cfg = override(ExampleConfig(), lr=2e-4, optimizer="sgd", use_ema=True)
    d = to_dict(cfg)
    assert list(d) == [f.name for f in dataclasses.fields(cfg)]
    assert from_dict(ExampleConfig, json.loads(json.dumps(d))) == cfg
    assert from_dict(ExampleConfig, {"lr": 2e-4}) == override(ExampleConfig(), lr=2e-4)


def test_from_dict_rejects_unknown_and_bad_values():
    with pytest.raises(ValueError, match=r"no field 'batchsize' \(did you mean 'batch_size'\?\)"):
        from_dict(ExampleConfig, {**to_dict(ExampleConfig()), "batchsize": 3})
    with pytest.raises(ValueError, match="out of range"):
        from_dict(ExampleConfig, {"batch_size": 0})


@dataclass(frozen=True, kw_only=True)
class OuterConfig:
    epochs: float = knob(2.0, lo=0.1, hi=10.0, help="passes")
    inner: ExampleConfig = fixed(ExampleConfig(), help="a nested config")

    def __post_init__(self):
        validate(self)


def test_check_field_alone_ignores_cross_field_rules():
    check_field(ExampleConfig, "warmup_steps", 500)                      # > steps, but that is a cross-field rule
    with pytest.raises(ValueError, match=r"ExampleConfig.warmup_steps = 5000 is out of range"):
        check_field(ExampleConfig(), "warmup_steps", 5000)
    with pytest.raises(ValueError, match=r"OuterConfig.inner = \{\} has the wrong type; expected ExampleConfig"):
        check_field(OuterConfig, "inner", {})


def test_parse_override_single_item_and_nested_fields():
    assert parse_override(ExampleConfig(), "lr=3e-4") == ("lr", 3e-4)
    assert parse_override(OuterConfig(), "inner.batch_size=16") == ("inner.batch_size", 16)
    with pytest.raises(ValueError, match=r"ExampleConfig.batch_size = 100 is out of range"):
        parse_override(OuterConfig(), "inner.batch_size=100")
    with pytest.raises(ValueError, match=r"OuterConfig.epochs is not a nested config"):
        parse_override(OuterConfig(), "epochs.x=1")
    cfg = parse_overrides(OuterConfig(), ["inner.steps=500", "inner.warmup_steps=400", "epochs=1"])
    assert (cfg.epochs, cfg.inner.steps, cfg.inner.warmup_steps) == (1.0, 500, 400)
    with pytest.raises(ValueError, match="warmup_steps = 400 must be ≤ steps = 100"):
        parse_overrides(OuterConfig(), ["inner.warmup_steps=400"])


def test_from_dict_nested_configs_and_int_for_float():
    cfg = parse_overrides(OuterConfig(), ["inner.optimizer=sgd"])
    assert from_dict(OuterConfig, json.loads(json.dumps(to_dict(cfg)))) == cfg
    cfg = from_dict(OuterConfig, {"epochs": 3, "inner": {"batch_size": 4}})
    assert cfg.epochs == 3.0 and isinstance(cfg.epochs, float) and cfg.inner.batch_size == 4
    with pytest.raises(ValueError, match=r"ExampleConfig has no field 'bs'"):
        from_dict(OuterConfig, {"inner": {"bs": 4}})


# ---------------------------------------------------------------- widgets

def test_panel_builds_one_widget_per_tunable_field():
    panel = ConfigPanel(ExampleConfig())
    kinds = {name: type(wd) for name, wd in panel.widgets.items()}
    assert kinds == {"lr": w.FloatLogSlider, "batch_size": w.IntSlider, "kl_coef": w.FloatSlider,
                     "optimizer": w.Dropdown, "use_ema": w.Checkbox, "steps": w.IntSlider,
                     "warmup_steps": w.IntSlider}
    assert isinstance(panel.widget, w.VBox) and len(panel.widget.children) == 7
    lr = panel.widgets["lr"]
    assert lr.description == "lr" and "AdamW learning rate" in lr.tooltip
    assert panel.widgets["kl_coef"].description == "kl coef"
    assert (lr.min, lr.max) == pytest.approx((-5, -1))
    assert (panel.widgets["batch_size"].min, panel.widgets["batch_size"].max) == (1, 64)
    assert panel.value == ExampleConfig() and panel.changed() == {}


def test_panel_value_reflects_widgets_and_changed():
    panel = ConfigPanel(ExampleConfig())
    panel.widgets["batch_size"].value = 32
    panel.widgets["optimizer"].value = "sgd"
    panel.widgets["use_ema"].value = True
    panel.widgets["lr"].value = 10 ** (-5 + 0.05 * 20)  # slider round-off: 1e-4 give or take an ulp
    cfg = panel.value
    assert isinstance(cfg, ExampleConfig)
    assert (cfg.batch_size, cfg.optimizer, cfg.use_ema, cfg.lr) == (32, "sgd", True, 1e-4)
    assert panel.changed() == {"batch_size": 32, "optimizer": "sgd", "use_ema": True, "lr": 1e-4}
    panel.reset()
    assert panel.value == ExampleConfig()


def test_panel_changed_is_relative_to_declared_defaults_and_subset():
    panel = ConfigPanel(override(ExampleConfig(), seed=3, steps=500), fields=["lr", "warmup_steps"])
    assert list(panel.widgets) == ["lr", "warmup_steps"]
    panel.widgets["warmup_steps"].value = 400
    assert panel.value.warmup_steps == 400 and panel.value.steps == 500
    assert panel.changed() == {"steps": 500, "warmup_steps": 400, "seed": 3}


def test_panel_cannot_hold_out_of_range_values():
    panel = ConfigPanel(ExampleConfig())
    panel.widgets["batch_size"].value = 1000  # sliders clamp to the knob's lo..hi
    panel.widgets["lr"].value = 1.0
    panel.widgets["kl_coef"].value = -3.0
    cfg = panel.value
    assert (cfg.batch_size, cfg.lr, cfg.kl_coef) == (64, 0.1, 0.0)
    with pytest.raises(traitlets.TraitError):  # a Dropdown refuses values outside its choices
        panel.widgets["optimizer"].value = "adam"
    assert panel.value.optimizer == "adamw"


def test_panel_cross_field_rule_raises_on_value_not_on_display():
    panel = ConfigPanel(ExampleConfig())
    panel.widgets["warmup_steps"].value = 1000
    with pytest.raises(ValueError, match="lower warmup_steps or raise steps"):
        _ = panel.value
    assert "invalid" in repr(panel)


def test_panel_rejects_fixed_or_unknown_fields():
    with pytest.raises(ValueError, match=r"ExampleConfig.seed is fixed \(not tunable\); tunable fields: lr"):
        ConfigPanel(ExampleConfig(), fields=["seed"])
    with pytest.raises(ValueError, match="ExampleConfig.nope does not exist"):
        ConfigPanel(ExampleConfig(), fields=["nope"])


def test_panel_ipython_display(monkeypatch):
    import IPython.display
    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj: shown.append(obj))
    panel = ConfigPanel(ExampleConfig())
    panel._ipython_display_()
    assert shown == [panel.widget]


def test_nested_config_knobs_get_widgets_and_dotted_overrides():
    from rlhf_lib.generation import SamplingConfig
    from rlhf_lib.ppo import PPOConfig
    assert "sampling.temperature" in tunable_fields(PPOConfig) and "sampling" not in tunable_fields(PPOConfig)
    panel = ConfigPanel(PPOConfig())
    panel.widgets["sampling.temperature"].value = 0.9
    panel.widgets["lr"].value = 3e-4
    cfg = panel.value
    assert cfg.sampling == SamplingConfig(temperature=0.9) and cfg.lr == pytest.approx(3e-4)
    assert parse_overrides(PPOConfig(), ["sampling.max_new_tokens=32"]).sampling.max_new_tokens == 32
    with pytest.raises(ValueError, match="sampling.temperature = 0.0"):
        parse_overrides(PPOConfig(), ["sampling.temperature=0"])      # PPO's own rule on the nested value
    with pytest.raises(ValueError, match="the default must be a config instance"):
        nested(0.7, help="not a config")
