"""The reward model itself — InstructGPT step 2 (lessons 03–05): its input, its scores, saving and loading.

r_θ(x, y) is the SFT transformer with its LM head replaced by a scalar head that reads the last token (EOS) of
the chat-rendered prompt ⊕ response ⊕ EOS. `score_texts` gives normalised rewards (`gain · raw + bias`, mean 0 and
std 1 on SFT samples of held-out prompts, as OpenAI's lm-human-preferences normalised its reward model).

Stage folder `artifacts/rm/`: `model.safetensors` + `config.json` (a `LlamaForSequenceClassification`, num_labels=1,
loads with `AutoModelForSequenceClassification` and `trust_remote_code` off), the tokenizer, `reward_norm.json`
({"gain", "bias"}), `stage.json` and `metrics.json`.

**The MLP head.** `head='mlp'` replaces `.score` with Linear → ReLU → Linear (ChatLLaMA's head). `config.json` then
carries `"reward_head": "mlp"` and the head's tensors sit in `model.safetensors` as `score.0.*` and `score.2.*`;
`from_pretrained` only knows the linear head, so `load_reward_model` rebuilds the MLP and loads those tensors itself.
PPO (lesson 04) initialises its critic from a *linear* head, so an MLP reward model cannot be the `rm` stage.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from transformers.utils import logging as hf_logging

from . import stages
from .models import check_folder, check_loaded
from .tokenizer import render_prompt


def encode(tokenizer, prompts: list[str], responses: list[str]) -> list[list[int]]:
    """Token ids of chat-rendered prompt ⊕ response ⊕ EOS, one list per pair (no padding, no truncation)."""
    rendered = {p: render_prompt(tokenizer, p, "chat") for p in set(prompts)}     # the template is slow: once each
    ids = tokenizer([rendered[p] + r for p, r in zip(prompts, responses)], add_special_tokens=False)["input_ids"]
    return [x + [tokenizer.eos_token_id] for x in ids]


def pad_right(ids: list[list[int]], pad_id: int, max_len: int | None = None) -> dict:
    """input_ids and attention_mask, right-padded, (B, T). A sequence longer than `max_len` keeps its last
    `max_len` tokens, so the EOS the head reads survives (training data is checked for length up front)."""
    if max_len is not None:
        ids = [x[-max_len:] for x in ids]
    T = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), T), pad_id, dtype=torch.long)                   # (B, T)
    attention_mask = torch.zeros(len(ids), T, dtype=torch.long)                       # (B, T)
    for i, x in enumerate(ids):
        input_ids[i, :len(x)] = torch.tensor(x)
        attention_mask[i, :len(x)] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def reward_inputs(tokenizer, prompts: list[str], responses: list[str], max_len: int) -> dict:
    """The reward model's input: chat-rendered prompt ⊕ response ⊕ EOS, right-padded.
    Returns input_ids and attention_mask, both (B, T)."""
    if tokenizer.pad_token_id is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        raise ValueError("reward_inputs: the tokenizer's pad token must differ from EOS, or the head (which reads the "
                         "last non-pad token) would skip the EOS; add a pad token, e.g. "
                         "tokenizer.add_special_tokens({'pad_token': '<|pad|>'}), and resize the embeddings")
    return pad_right(encode(tokenizer, prompts, responses), tokenizer.pad_token_id, max_len)


def score_batch(model, batch: dict, norm: dict | None = None) -> torch.Tensor:
    """r(x, y) = gain · raw + bias for each row of a `reward_inputs` batch, (B,); raw scores if norm is None.
    Gradients flow if enabled: the caller decides (torch.no_grad() for scoring)."""
    raw = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, 0]   # (B,)
    return raw if norm is None else norm["gain"] * raw + norm["bias"]


def score_texts(model, tokenizer, prompts: list[str], responses: list[str], norm: dict | None,
                batch_size: int = 64, max_len: int | None = None) -> list[float]:
    """Normalised rewards of (prompt, response) pairs, in batches, without gradients."""
    max_len = max_len or model.config.max_position_embeddings
    was_training = model.training
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(prompts), batch_size):
            batch = reward_inputs(tokenizer, prompts[i:i + batch_size], responses[i:i + batch_size], max_len)
            out += score_batch(model, batch, norm).tolist()
    model.train(was_training)
    return out


def length_chunks(ids: list[list[int]], max_tokens: int) -> list[list[int]]:
    """Indices of `ids` sorted by length and cut into chunks of at most `max_tokens` padded tokens: batches of
    similar lengths waste little compute on padding (a repetitive response is 3x longer than a typical one)."""
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    chunks, cur = [], []
    for i in order:
        if cur and (len(cur) + 1) * len(ids[i]) > max_tokens:
            chunks.append(cur)
            cur = []
        cur.append(i)
    return chunks + [cur] if cur else chunks


def rewards_of(model, ids: list[list[int]], pad_id: int, max_tokens: int = 4096) -> torch.Tensor:
    """Raw rewards of many sequences in length-sorted chunks, back in the given order: (N,). Keeps the autograd
    graph when gradients are enabled, so one loss can span all chunks."""
    parts, order = [], []
    for chunk in length_chunks(ids, max_tokens):
        parts.append(score_batch(model, pad_right([ids[i] for i in chunk], pad_id)))   # (n_chunk,)
        order += chunk
    where = torch.empty(len(ids), dtype=torch.long)
    where[torch.tensor(order)] = torch.arange(len(ids))
    return torch.cat(parts)[where]                                                     # (N,)


@torch.no_grad()
def last_token_features(model, ids: list[list[int]], pad_id: int, max_tokens: int = 8192) -> torch.Tensor:
    """The backbone's last hidden state at each sequence's EOS, (N, H): what the head reads. With a frozen backbone
    they are computed once and the head trains on them in milliseconds."""
    feats = torch.empty(len(ids), model.config.hidden_size)
    for chunk in length_chunks(ids, max_tokens):
        b = pad_right([ids[i] for i in chunk], pad_id)
        out = model.base_model(input_ids=b["input_ids"], attention_mask=b["attention_mask"])
        h = out.last_hidden_state                                                          # (B, T, H)
        last = b["attention_mask"].sum(-1) - 1                                                               # (B,)
        feats[torch.tensor(chunk)] = h[torch.arange(len(chunk)), last]
    return feats



@contextmanager
def quiet_loading():
    """from_pretrained reports the new head as 'MISSING'; that is expected here, so hush it while loading."""
    level, bar = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bar:
            hf_logging.enable_progress_bar()


def mlp_head(hidden_size: int) -> torch.nn.Sequential:
    """ChatLLaMA's reward head: Linear → ReLU → Linear to one score."""
    return torch.nn.Sequential(torch.nn.Linear(hidden_size, hidden_size), torch.nn.ReLU(),
                               torch.nn.Linear(hidden_size, 1))


def set_head(model, head: str):
    """Give the model a fresh `head` ('linear' keeps HF's bias-free Linear; 'mlp' installs ChatLLaMA's)."""
    if head == "mlp":
        model.score = mlp_head(model.config.hidden_size)
    model.config.reward_head = head
    return model


def build_reward_model(path: str | Path, tokenizer, head: str = "linear", seed: int = 0):
    """A sequence-classification model with one output on the backbone of the causal LM at `path`."""
    torch.manual_seed(seed)                                                   # the new head's initialisation
    with quiet_loading():
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, use_safetensors=True,
                                                                   trust_remote_code=False)
    model.config.pad_token_id = tokenizer.pad_token_id                        # the head reads the last non-pad token
    return set_head(model, head)


def save_reward_model(model, tokenizer, folder: Path, norm: dict) -> None:
    """save_pretrained (safetensors) + tokenizer + reward_norm.json into `folder`."""
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    stages.write_json(Path(folder) / "reward_norm.json", {"gain": float(norm["gain"]), "bias": float(norm["bias"])})


def load_reward_model(path: str | Path):
    """(model, tokenizer, norm) of a saved reward model; norm = {"gain", "bias"} from reward_norm.json. The folder is
    checked before and after loading (its recorded sha256, whole safetensors, config.json against the weights)."""
    path = Path(path)
    norm_file = path / "reward_norm.json"
    if not norm_file.is_file():
        raise FileNotFoundError(f"{norm_file} is missing: {path} is not a finished reward-model stage; "
                                "train it with rlhf_lib.reward.run(RMConfig()) or pipeline.require('rm')")
    stages.verify(path)
    fix = f"restore it from a backup, or move {path} away or delete it to retrain the reward model"
    norm = stages.load_json(norm_file, fix)
    if not (isinstance(norm, dict) and all(isinstance(norm.get(k), (int, float)) and math.isfinite(norm[k])
                                           for k in ("gain", "bias"))):
        raise stages.StageError(f"{norm_file} must hold finite numbers 'gain' and 'bias', not {norm!r}: {fix}")
    check_folder(path)
    with quiet_loading():
        model, info = AutoModelForSequenceClassification.from_pretrained(
            path, use_safetensors=True, trust_remote_code=False, output_loading_info=True, ignore_mismatched_sizes=True)
    if getattr(model.config, "reward_head", "linear") == "mlp":               # see the module docstring
        model.score = mlp_head(model.config.hidden_size)
        weights = load_file(path / "model.safetensors")
        head = model.score.load_state_dict({k[len("score."):]: v for k, v in weights.items()
                                            if k.startswith("score.")}, strict=False)
        info = {"mismatched_keys": info["mismatched_keys"], **{     # the HF head's keys are no longer the model's
            kind: [k for k in info[kind] if not str(k).startswith("score.")] + [f"score.{k}" for k in found]
            for kind, found in (("missing_keys", head.missing_keys), ("unexpected_keys", head.unexpected_keys))}}
    check_loaded(path, model, info)
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    return model.eval(), tokenizer, {"gain": float(norm["gain"]), "bias": float(norm["bias"])}
