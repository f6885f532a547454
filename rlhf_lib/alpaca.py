"""The student of self-instruct: Alpaca and KoAlpaca at the world's scale (lesson 10).

Stanford Alpaca fine-tuned the *base* LLaMA on the 52k demonstrations its teacher wrote; KoAlpaca did the same with
the Korean copy added. The student here is a fresh copy of the base model (lesson 00) fine-tuned with SFT's loss on
the teacher's demonstrations of stage `data` (`self_instruct.py`),

    L_SFT(θ) = − 1/|R| Σ_{t ∈ R} log π_θ(y_t | x, y_<t)        y = the teacher's output, R = its tokens (+ EOS)

in the languages of `langs`: "en" is Alpaca (English only), "en,ko" KoAlpaca. Only the loader is new: the loop is
`sft.run`, LoRA included (`lora_rank`, as KoAlpaca trained its largest backbone).

    run(AlpacaConfig())                                        # artifacts/alpaca/: English only
    run(AlpacaConfig(langs="en,ko", out="koalpaca"))           # + the Korean demonstrations
"""
from __future__ import annotations

from dataclasses import dataclass

from . import sft, stages
from .config import fixed, knob
from .data import DataError, check_stage_fields, read_demos
from .self_instruct import DATA_FILE
from .sft import SFTConfig
from .training import LOCAL, Parallel
from .world import Task

LANGS = ("en", "ko", "en,ko")


@dataclass(frozen=True, kw_only=True)
class AlpacaConfig(SFTConfig):
    """SFT of the base model on the teacher's demonstrations (lesson 10); the fields not listed are SFTConfig's."""
    langs: str = knob("en", choices=LANGS, help="languages of the demonstrations: en = Alpaca, en,ko = KoAlpaca")
    epochs: float = knob(4.0, lo=0.1, hi=20.0, step=0.1, help="passes over the teacher's demonstrations")
    use_alpaca: bool = fixed(False, help="not used: the demonstrations are rendered as chat turns")
    data: str = fixed("self_instruct", help="stage holding the teacher's demonstrations (alpaca_data.jsonl)")
    init: str = fixed("base", help="stage the student starts from: the base model, as Alpaca started from LLaMA")
    out: str = fixed("alpaca", help="stage written")

    def __post_init__(self):
        super().__post_init__()
        check_stage_fields(self, "data")


def load_teacher_demos(cfg: AlpacaConfig) -> list[tuple[str, int, list, str]]:
    """(path, line, messages, output) of every demonstration of stage `cfg.data` in `cfg.langs`, validated first;
    the instruction (and input) is the user turn, as in every chat prompt the course evaluates."""
    path = stages.existing(cfg.data) / DATA_FILE
    langs = cfg.langs.split(",")
    out = []
    for line, r in read_demos(path, "alpaca"):
        if r["lang"] in langs:
            prompt = Task(id=r["id"], category=r["category"], lang=r["lang"], instruction=r["instruction"],
                          input=r["input"]).prompt                      # instruction, then the input after a blank line
            out.append((str(path), line, [{"role": "user", "content": prompt},
                                          {"role": "assistant", "content": r["output"]}], r["output"]))
    if not out:
        raise DataError(path, None, "lang", f"no demonstration in {cfg.langs}; run self_instruct with "
                                            "translate=true for Korean, or choose langs=en")
    return out


def run(cfg: AlpacaConfig, on_log=None, *, par: Parallel = LOCAL, max_steps: int | None = None) -> dict:
    """Fine-tune stage `cfg.init` on the teacher's demonstrations with SFT's loop; save stage `cfg.out`."""
    return sft.run(cfg, on_log, par=par, max_steps=max_steps, load=load_teacher_demos,
                   name=f"student ({cfg.langs})")


summary = sft.summary
