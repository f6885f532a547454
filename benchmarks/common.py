"""Shared pieces of the benchmarks: the models both sides train, timing statistics and the printed report.

The models are the course's own when its artifacts exist (`artifacts/tokenizer`, `base`, `sft`, `rm`), copied into a
temporary folder first so a lesson rewriting a stage meanwhile cannot change them; otherwise same-shaped models are
built with random weights (`ModelConfig` defaults). Nothing is fetched from a model hub, and nothing is written to
`artifacts/`.
"""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")              # nothing is fetched from a hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")                   # no progress bars in the printed report

import atexit
import copy
import importlib.metadata
import platform
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:                               # run as `python benchmarks/x.py` from anywhere
    sys.path.insert(0, str(ROOT))

from rlhf_lib import stages  # noqa: E402
from rlhf_lib.machine import cpu_model  # noqa: E402
from rlhf_lib.models import ModelConfig, build_tiny_llama  # noqa: E402

_WORK: list[Path] = []


def work_dir() -> Path:
    """A private temporary folder for model copies, made on first use and removed when the process ends."""
    if not _WORK:
        _WORK.append(Path(tempfile.mkdtemp(prefix="rlhf-bench-")))
        atexit.register(cleanup)
    return _WORK[0]


def quiet(with_datasets: bool = True) -> None:
    """Silence progress bars, deprecation notices and info logs of transformers, datasets and TRL."""
    import warnings
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    from transformers.utils import logging as hf_logging
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    if not with_datasets:
        return
    try:
        import datasets
        datasets.disable_progress_bars()
        datasets.logging.set_verbosity_error()
    except ImportError:
        pass


# ------------------------------------------------------------------------------------------------- the models
def _snapshot(stage: str, needs: str = "model.safetensors") -> Path | None:
    """A private copy of a complete stage folder, or None when the stage is absent or incomplete."""
    src = stages.stage_dir(stage)
    if not ((src / "stage.json").is_file() and (src / needs).is_file()):
        return None
    dst = work_dir() / stage
    try:
        shutil.copytree(src, dst, dirs_exist_ok=True)
    except (OSError, shutil.Error):                         # the stage was being replaced while we copied
        shutil.rmtree(dst, ignore_errors=True)
        return None
    return dst


def tokenizer_dir() -> tuple[Path, str]:
    """(folder, origin) of the course's tokenizer; trained from data/web.jsonl (in a few seconds) if absent."""
    found = _snapshot("tokenizer", needs="tokenizer.json")
    if found is not None:
        return found, "artifacts/tokenizer"
    from rlhf_lib.pretrain import PretrainConfig, load_web, split_docs
    from rlhf_lib.tokenizer import train_tokenizer
    cfg = PretrainConfig()
    out = work_dir() / "tokenizer"
    out.mkdir(exist_ok=True)
    train_tokenizer([d["text"] for d in split_docs(load_web(), cfg)[0]], cfg.vocab_size, out)
    return out, "trained from data/web.jsonl"


def causal_lm_dir(stage: str, seed: int = 0) -> tuple[Path, str]:
    """(folder, origin) of a causal-LM stage ('base', 'sft'): the course's artifact, or a same-shaped random model."""
    found = _snapshot(stage)
    if found is not None:
        return found, f"artifacts/{stage}"
    from transformers import AutoTokenizer
    tok_dir, _ = tokenizer_dir()
    tok = AutoTokenizer.from_pretrained(tok_dir)
    out = work_dir() / f"random-{stage}"
    model = build_tiny_llama(ModelConfig(), tok, seed)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out, f"random init, ModelConfig() shape (no artifacts/{stage})"


def reward_model(sft_dir: Path):
    """(model, tokenizer, norm, origin): the course's reward model, or one built on `sft_dir` with a fresh head."""
    from rlhf_lib.reward_model import build_reward_model, load_reward_model
    found = _snapshot("rm")
    if found is not None:
        model, tok, norm = load_reward_model(found)
        return model, tok, norm, "artifacts/rm"
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(sft_dir)
    model = build_reward_model(sft_dir, tok).eval()
    return model, tok, {"gain": 1.0, "bias": 0.0}, "the SFT model with a fresh linear head (no artifacts/rm)"


def fresh(model):
    """An independent copy with the same weights: every run starts from identical parameters."""
    return copy.deepcopy(model)


# ------------------------------------------------------------------------------------------------- timing
def alternate(runners: dict, rounds: int, log=print) -> dict[str, list]:
    """Run each runner once per round, in the same order every round (A B A B …), and collect the results."""
    results = {name: [] for name in runners}
    for r in range(rounds):
        for name, run in runners.items():
            t = time.perf_counter()
            results[name].append(run())
            log(f"  round {r + 1}/{rounds}: {name} done in {time.perf_counter() - t:.1f} s", flush=True)
    return results


def spread(values: list[float], digits: int = 3) -> str:
    """'median (min–max, n)' of a list of measurements."""
    med = statistics.median(values)
    fmt = f"{{:.{digits}g}}"
    if len(values) == 1:
        return f"{fmt.format(med)} (n=1)"
    return f"{fmt.format(med)} ({fmt.format(min(values))}–{fmt.format(max(values))}, n={len(values)})"


def median(values: list[float]) -> float:
    return statistics.median(values)


class StepClock:
    """Wall time and a work count between consecutive step ends; the first `warmup` steps are dropped."""

    def __init__(self, warmup: int):
        self.warmup, self.last, self.times, self.work = warmup, None, [], []

    def start(self) -> None:
        self.last = time.perf_counter()

    def step(self, work: float) -> None:
        now = time.perf_counter()
        self.times.append(now - self.last)
        self.work.append(work)
        self.last = now

    def timed(self) -> tuple[float, float, int]:
        """(seconds, work, steps) of the steps after the warm-up."""
        t, w = self.times[self.warmup:], self.work[self.warmup:]
        if not t:
            raise ValueError(f"no step left to time: {len(self.times)} steps, {self.warmup} of them warm-up")
        return sum(t), sum(w), len(t)


# ------------------------------------------------------------------------------------------------- the report
def _version(pkg: str, module=None) -> str:
    if module is not None and getattr(module, "__version__", None):
        return module.__version__
    try:
        return importlib.metadata.version(pkg)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine_lines(trl_module=None) -> list[str]:
    """The machine and library versions, as markdown bullet lines."""
    import transformers
    lines = [f"- machine: {cpu_model()}, {os.cpu_count()} logical cores, torch threads {torch.get_num_threads()}, "
             f"{platform.system()} {platform.release()}, Python {platform.python_version()}"]
    if torch.cuda.is_available():
        lines.append(f"- GPU: {torch.cuda.get_device_name(0)}")
    versions = [f"torch {torch.__version__}", f"transformers {transformers.__version__}"]
    if trl_module is not None:
        versions += [f"trl {_version('trl', trl_module)}", f"accelerate {_version('accelerate')}",
                     f"datasets {_version('datasets')}"]
    lines.append("- versions: " + ", ".join(versions))
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    if load is not None:
        lines.append(f"- load average at the end: {load[0]:.2f} (1 min), {load[1]:.2f} (5 min): figures need a "
                     f"quiet machine")
    return lines


def command_line() -> str:
    """The command that reproduces this run, from the repository root."""
    script = os.path.relpath(os.path.abspath(sys.argv[0]), ROOT)
    return shlex.join(["python", script, *sys.argv[1:]])


def table(headers: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def ratio(ours: float, theirs: float) -> str:
    return f"{ours / theirs:.2f}×" if theirs else "n/a"


def cleanup() -> None:
    while _WORK:
        shutil.rmtree(_WORK.pop(), ignore_errors=True)
