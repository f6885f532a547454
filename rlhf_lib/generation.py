"""Sampling responses from a policy (lessons 01–05).

A thin layer over `model.generate` (which keeps a KV cache): render prompts in the model's prompt format, left-pad a
batch, sample with temperature / top-k / top-p, stop at EOS, and return the response text plus whether it ended
with EOS. A response that never emits EOS within `max_new_tokens` is cut there; the evaluation counts it, and PPO
penalises it.
"""
from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from .config import knob, validate
from .tokenizer import render_prompt


@dataclass(frozen=True, kw_only=True)
class SamplingConfig:
    """How one response is sampled (PPO's rollout nests one: `PPOConfig.sampling`)."""
    temperature: float = knob(0.7, lo=0.0, hi=2.0, step=0.05,
                              help="softmax temperature (0 = greedy); Ziegler et al. used 0.7")
    top_k: int = knob(0, lo=0, hi=500, help="keep the k most likely tokens (0 = off)")
    top_p: float = knob(1.0, lo=0.05, hi=1.0, step=0.05, help="nucleus sampling mass (1 = off)")
    max_new_tokens: int = knob(64, lo=4, hi=512, help="response length limit in tokens; longer responses are cut")

    def __post_init__(self):
        validate(self)


@dataclass(frozen=True, kw_only=True)
class GenerationConfig(SamplingConfig):
    """How responses to many prompts are sampled: the sampling settings and how many prompts go together."""
    batch_size: int = knob(64, lo=1, hi=512, help="prompts generated together")


@dataclass
class Sample:
    prompt: str
    response: str
    ended: bool            # emitted EOS before max_new_tokens
    n_tokens: int


@contextmanager
def one_thread():
    """Run the body on one CPU thread, then restore the caller's count. Sampling is thousands of small steps (one
    token of a batch each): a second thread costs more to wake and join than it saves. Measured on the course's
    2-core machine (AMD EPYC), 320 held-out prompts sampled by the SFT policy: 5.2 s on one thread, 7.5 s on two,
    the same tokens. Training's larger matrix products keep both threads (a step of 32 × 128 tokens: 0.52 s on two,
    0.76 s on one)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@torch.no_grad()
def sample(model, tokenizer, prompts: list[str], cfg: SamplingConfig, *, fmt: str):
    """One batch of responses with `model.generate` (KV cache, one thread: `one_thread`; no seeding: the caller's
    random stream goes on).
    Returns the left-padded prompt ids and attention mask (B, P) and the new tokens (B, T), padded after EOS.
    `generate` (texts) and PPO's rollout (tensors) both sample through here."""
    model.eval()
    side, tokenizer.padding_side = tokenizer.padding_side, "left"           # generation appends on the right
    try:
        texts = [render_prompt(tokenizer, p, fmt) for p in prompts]
        enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    finally:
        tokenizer.padding_side = side
    with one_thread():
        out = model.generate(
            **enc, do_sample=cfg.temperature > 0, temperature=cfg.temperature or None,
            top_k=cfg.top_k or None, top_p=cfg.top_p if cfg.top_p < 1 else None,
            max_new_tokens=cfg.max_new_tokens, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id, use_cache=True)
    P = enc["input_ids"].shape[1]
    return enc["input_ids"], enc["attention_mask"], out[:, P:]              # (B, P), (B, P), (B, T)


@torch.no_grad()
def generate(model, tokenizer, prompts: list[str], cfg: GenerationConfig, *, fmt: str, seed: int,
             progress=None) -> list[Sample]:
    """Sample one response per prompt, `cfg.batch_size` prompts at a time. Same seed, same model, same prompts →
    same responses."""
    torch.manual_seed(seed)
    out: list[Sample] = []
    for start in range(0, len(prompts), cfg.batch_size):
        chunk = prompts[start:start + cfg.batch_size]
        _, _, new = sample(model, tokenizer, chunk, cfg, fmt=fmt)         # (B, T_new)
        for p, row in zip(chunk, new.tolist()):
            ended = tokenizer.eos_token_id in row
            ids = row[:row.index(tokenizer.eos_token_id)] if ended else row
            ids = [i for i in ids if i != tokenizer.pad_token_id]
            out.append(Sample(p, tokenizer.decode(ids, skip_special_tokens=True).strip(), ended, len(ids)))
        if progress is not None:
            progress.update(len(chunk))
    return out


# ------------------------------------------------------------------------------------------------ on both cores
WORKER_MIN_SAMPLES = 2000   # fewer to draw: one process (a worker's start costs 500-2,500 samples' time)


def sampling_processes(n_samples: int) -> int:
    """How many processes should draw `n_samples` responses: one per core, at most two (the course is sized for 2
    cores), and one below WORKER_MIN_SAMPLES. A worker is a fresh Python that imports torch and transformers and
    loads the policy: 5 s on a quiet 2-core machine, 25 s on a busy one, while the SFT policy draws about 100
    responses a second on one thread (lesson 03: 8,400 in 84 s)."""
    return max(1, min(2, os.cpu_count() or 1)) if n_samples >= WORKER_MIN_SAMPLES else 1


def generate_runs(folder: Path, runs: list[tuple[list[str], GenerationConfig, int]], *, fmt: str, processes: int = 1,
                  progress=None) -> list[list[Sample]]:
    """Several `generate` calls (prompts, config, seed) of the policy saved in `folder`, on `processes` processes at
    once: this one takes every `processes`-th run, fresh worker processes the others. Sampling runs on one thread
    (`one_thread`), so one process leaves the other core idle; each call seeds its own random stream, so the
    responses are the same for any number of processes (every process loads the same saved weights and samples the
    same batches on one thread). Lesson 03's seven passes over its comparison prompts are such runs. A script that
    calls it with `processes` > 1 needs Python's `if __name__ == "__main__":` guard: workers start a fresh Python
    (multiprocessing's "spawn"), which imports the calling script again."""
    from .models import load_causal_lm
    model, tokenizer = load_causal_lm(folder)
    processes = max(1, min(processes, len(runs)))
    here = set(range(0, len(runs), processes))
    out: dict[int, list[Sample]] = {}
    pool = (ProcessPoolExecutor(max_workers=processes - 1, mp_context=multiprocessing.get_context("spawn"))
            if processes > 1 else None)
    try:
        futures = {i: pool.submit(_generate_in_worker, str(folder), prompts, cfg, fmt, seed)
                   for i, (prompts, cfg, seed) in enumerate(runs) if i not in here}
        for i in sorted(here):
            prompts, cfg, seed = runs[i]
            out[i] = generate(model, tokenizer, prompts, cfg, fmt=fmt, seed=seed, progress=progress)
        for i, future in futures.items():
            out[i] = future.result()
            if progress is not None:
                progress.update(len(runs[i][0]))
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return [out[i] for i in range(len(runs))]


_WORKER_POLICY: dict = {}          # folder -> (model, tokenizer), loaded once per worker process


def _generate_in_worker(folder: str, prompts: list[str], cfg: GenerationConfig, fmt: str, seed: int) -> list[Sample]:
    if folder not in _WORKER_POLICY:
        from transformers.utils import logging as hf_logging

        from .models import load_causal_lm
        hf_logging.disable_progress_bar()                  # the caller's bar counts the samples
        _WORKER_POLICY[folder] = load_causal_lm(folder)
    model, tokenizer = _WORKER_POLICY[folder]
    return generate(model, tokenizer, prompts, cfg, fmt=fmt, seed=seed)
