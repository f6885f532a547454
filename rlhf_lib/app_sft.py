"""Teaching the aligned policy the applications' formats (lesson 09): SFT's loop on `data/apps/sft.jsonl`.

The deck's applications call a ChatGPT that has already seen routing, rewriting and SQL in its training. Our
policy has seen the world's intent prompts (lesson 02) but never a schema or a query, so it first learns the five
app families from demonstrations (`app_tasks`): the same supervised loss as lesson 02,

    L_SFT(θ) = − 1/|R| Σ_{t ∈ R} log π_θ(y_t | x, y_<t)        R = the last assistant turn's tokens (+ EOS)

starting from the aligned policy (`init`, default `ppo`), with a share of the world's own chat demonstrations
mixed in (`replay`) so that what PPO taught is not forgotten while the new formats are learned. Only the loader is
new: the loop is `sft.run`.

    metrics = run(AppsConfig())            # writes artifacts/app_sft/
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from . import sft, stages
from .app_data import apps_dir, read_app_demos
from .config import fixed, knob
from .data import read_demos
from .sft import SFTConfig
from .training import LOCAL, Parallel


@dataclass(frozen=True, kw_only=True)
class AppsConfig(SFTConfig):
    """SFT on the applications' demonstrations (lesson 09); the fields not listed here are SFTConfig's."""
    lr: float = knob(1.5e-3, lo=1e-6, hi=1e-2, log=True, help="peak AdamW learning rate (cosine decay to 10 %)")
    epochs: float = knob(6.0, lo=0.1, hi=10.0, step=0.1, help="passes over the app demonstrations and the replay")
    replay: int = knob(200, lo=0, hi=2000, step=50, help="the world's chat demonstrations mixed in, against "
                                                         "forgetting what the aligned policy learned")
    use_alpaca: bool = fixed(False, help="not used: the app demonstrations are chat messages")
    init: str = fixed("ppo", help="stage the policy starts from: the aligned policy")
    out: str = fixed("app_sft", help="stage written")


def load_app_demos(cfg: AppsConfig) -> list[tuple[str, int, list, str]]:
    """(path, line, messages, answer) of every app demonstration, then `cfg.replay` of the world's chat
    demonstrations drawn with `cfg.seed`; every line validated before any training."""
    path = apps_dir(stages.DATA_DIR) / "sft.jsonl"
    out = [(str(path), i, r["messages"], r["messages"][-1]["content"]) for i, r in read_app_demos(path)]
    if cfg.replay and cfg.use_chat:
        world = stages.DATA_DIR / "sft_chat.jsonl"
        rows = read_demos(world, "chat")
        picked = random.Random(cfg.seed).sample(rows, min(cfg.replay, len(rows)))
        out += [(str(world), i, r["messages"], r["messages"][-1]["content"]) for i, r in picked]
    return out


def run(cfg: AppsConfig, on_log=None, *, par: Parallel = LOCAL, max_steps: int | None = None) -> dict:
    """Fine-tune stage `cfg.init` on the app demonstrations (+ replay) with SFT's loop; save stage `cfg.out`."""
    return sft.run(cfg, on_log, par=par, max_steps=max_steps, load=load_app_demos, name="Apps SFT")


summary = sft.summary
