"""The reward model — InstructGPT step 2 (lesson 03).

"Collect comparison data, and train a reward model." A labeler sees one prompt x with K = 4..9 responses and ranks
them best to worst. The reward model r_θ(x, y) — the SFT transformer with its LM head replaced by a scalar head that
reads the last token (EOS) — learns every pair the ranking implies (InstructGPT eq. 1):

    loss(θ) = − 1/C(K,2) · E_{(x, y_w, y_l) ∼ D} [ log σ(r_θ(x, y_w) − r_θ(x, y_l)) ]

All C(K,2) pairs of one prompt are **one batch element**: each response is scored once and reused in its K − 1
comparisons, and a prompt with nine responses weighs as much as one with four (InstructGPT: shuffling the correlated
pairs into the dataset over-fits within one epoch).

The comparisons are collected as InstructGPT collected them. For each prompt of `data/comparisons.jsonl`, the K
responses are the world's written ones (the first `written`) plus `sft_samples` sampled from the SFT policy (K ≤ 9),
all ranked by ONE simulated labeler (the record's `labeler`, from the calibrated pool of `data/world.json`), who
perceives the gold criteria with his own weights and noise. The noise-free gold order is kept beside it, and a
second, independent labeler ranks the held-out prompts too: their agreement is the measured human ceiling.

    cfg = RMConfig()                          # or panel.value
    data = prepare_comparisons(cfg)           # phases 1–2 (optional: run() does them when data is None)
    metrics = run(cfg, data=data)             # phases 3–5, writes artifacts/rm/
    chat = run_chatllama(cfg, data)           # ChatLLaMA's RewardTrainer on the same data (not saved)

Stage folder `artifacts/rm/`: `model.safetensors` + `config.json` (a `LlamaForSequenceClassification`, num_labels=1,
loads with `AutoModelForSequenceClassification` and `trust_remote_code` off), the tokenizer, `reward_norm.json`
({"gain", "bias"}: `gain · raw + bias` has mean 0 and std 1 on SFT samples of held-out prompts, as OpenAI's
lm-human-preferences normalised its reward model), `stage.json` and `metrics.json`.

**The MLP head.** `head='mlp'` replaces `.score` with Linear → ReLU → Linear (ChatLLaMA's head). `config.json` then
carries `"reward_head": "mlp"` and the head's tensors sit in `model.safetensors` as `score.0.*` and `score.2.*`;
`from_pretrained` only knows the linear head, so `load_reward_model` rebuilds the MLP and loads those tensors itself.
PPO (lesson 04) initialises its critic from a *linear* head, so an MLP reward model cannot be the `rm` stage.
"""
from __future__ import annotations

import json
import math
import random
import textwrap
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from itertools import combinations
from pathlib import Path

import torch
from safetensors.torch import load_file
from tqdm.auto import tqdm
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from transformers.utils import logging as hf_logging

from . import stages
from .build_data import task_from_record
from .config import fixed, knob, to_dict, validate
from .data import COMPARISON, K_MAX, DataError, read_jsonl
from .generation import GenerationConfig, generate
from .labelers import SimulatedLabeler, judge
from .losses import mse_reward_loss, pairwise_loss_grouped
from .models import load_causal_lm
from .sft import warmup_cosine_lr
from .tokenizer import render_prompt

DATA_FIELDS = ("n_prompts", "written", "sft_samples", "max_len", "temperatures", "max_new_tokens", "heldout_frac",
               "seed", "init")


@dataclass(frozen=True, kw_only=True)
class RMConfig:
    """Reward-model hyperparameters (lesson 03). Defaults measured: lesson 03 runs in about 85 s on 2 CPU cores."""
    lr: float = knob(1e-3, lo=1e-6, hi=1e-2, log=True, help="peak AdamW learning rate, cosine decay to 10 % "
                                                             "(InstructGPT: 9e-6 for its 6B RM)")
    epochs: int = knob(2, lo=1, hi=50, help="passes over the training prompts (InstructGPT: 1 over far more "
                                            "prompts; one pass over 240 misses the hedge)")
    prompts_per_batch: int = knob(4, lo=1, hi=64,
                                  help="prompts per optimizer step; each brings all C(K,2) of its pairs")
    loss: str = knob("pairwise", choices=("pairwise", "mse"),
                     help="pairwise ranking loss (InstructGPT) or MSE on the labeler's scores (ChatLLaMA)")
    freeze_backbone: bool = knob(False, help="train the head only (ChatLLaMA); off = fine-tune the whole transformer")
    head: str = knob("linear", choices=("linear", "mlp"),
                     help="scalar head on the last token: linear (InstructGPT) or Linear→ReLU→Linear (ChatLLaMA)")
    n_prompts: int = knob(300, lo=20, hi=3000, step=10,
                          help="comparison prompts used, train + held-out (sampling and training time grow with it)")
    written: int = knob(0, lo=0, hi=9, help="written responses kept per prompt, the record's first ones (build_data "
                                            "shuffled them); 0 = only the policy's own samples, as InstructGPT's "
                                            "comparisons of model outputs")
    sft_samples: int = knob(8, lo=1, hi=8, help="responses sampled from the SFT policy per prompt, added to the "
                                                "written ones (fewer where K would exceed 9)")
    max_len: int = knob(256, lo=32, hi=4096, step=32,
                        help="longest prompt + response + EOS in tokens; longer is an error")
    temperatures: tuple[float, ...] = fixed((0.7, 1.0), help="SFT sampling temperatures, cycled over a prompt's samples")
    max_new_tokens: int = fixed(48, help="length limit of the SFT samples in tokens")
    heldout_frac: float = fixed(0.2, help="fraction of the prompts held out: accuracy, ceiling and normalisation")
    eval_every: int = fixed(10, help="optimizer steps between held-out measurements for the curves")
    curve_prompts: int = fixed(20, help="held-out prompts measured for the live curves (the final metrics use all)")
    warmup_steps: int = fixed(4, help="linear learning-rate warm-up steps")
    seed: int = fixed(0, help="seed for the split, SFT sampling, labelers, head initialisation and data order")
    init: str = fixed("sft", help="stage the reward model starts from, and the policy whose samples it ranks")
    out: str = fixed("rm", help="stage name written")

    def __post_init__(self):
        validate(self)
        if self.written + self.sft_samples < 2:
            raise ValueError(f"RMConfig.written + sft_samples = {self.written + self.sft_samples}: a ranking needs at "
                             "least 2 responses per prompt; raise written or sft_samples")
        n_held = n_heldout(self)
        if n_held < 2:
            raise ValueError(f"RMConfig.n_prompts = {self.n_prompts} holds out only {n_held} prompt(s) at "
                             f"heldout_frac = {self.heldout_frac}; raise n_prompts")
        if self.n_prompts - n_held < self.prompts_per_batch:
            raise ValueError(f"RMConfig.prompts_per_batch = {self.prompts_per_batch} is more than the "
                             f"{self.n_prompts - n_held} training prompts of n_prompts = {self.n_prompts}; "
                             "lower prompts_per_batch or raise n_prompts")
        if self.head == "mlp" and self.out == "rm":
            raise ValueError("RMConfig.head = 'mlp' cannot be saved as stage 'rm': PPO (lesson 04) copies a linear "
                             "head into its critic. Keep head='linear', or write elsewhere with "
                             "dataclasses.replace(cfg, head='mlp', out='rm_mlp'), or use reward.run_chatllama")
        if not self.temperatures or any(not 0 < t <= 2 for t in self.temperatures):
            raise ValueError(f"RMConfig.temperatures = {self.temperatures!r}: give one or more values in (0, 2]")


def n_heldout(cfg: RMConfig) -> int:
    return round(cfg.n_prompts * cfg.heldout_frac)


@dataclass
class Comparison:
    """One prompt and its K ranked responses: one batch element."""
    record: dict           # the comparisons.jsonl record (id, category, lang, prompt, meta …)
    responses: list        # K responses: the world's written ones, then the SFT samples
    kinds: list            # who wrote each: 'ideal', 'toxic', 'wrong_fact' … or 'sft'
    ranking: list          # response indices, best first, by this prompt's labeler (the training label)
    scores: list           # that labeler's perceived scores; the ranking sorts them (ChatLLaMA's regression target)
    gold: list             # gold scores, noise-free
    second: list           # ranking by a second, independent labeler (the measured agreement)
    source: str            # "file:line"


@dataclass
class ComparisonData:
    train: list
    heldout: list
    built_with: dict       # the config fields that built it (DATA_FIELDS)
    prepare_s: float = 0.0                          # wall time of phases 1–2
    features: dict = field(default_factory=dict)    # frozen-backbone features by stage: computed once, reused


# ------------------------------------------------------------------------------------------------ inputs and scores
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


def _length_chunks(ids: list[list[int]], max_tokens: int) -> list[list[int]]:
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
    for chunk in _length_chunks(ids, max_tokens):
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
    for chunk in _length_chunks(ids, max_tokens):
        b = pad_right([ids[i] for i in chunk], pad_id)
        out = model.base_model(input_ids=b["input_ids"], attention_mask=b["attention_mask"])
        h = out.last_hidden_state                                                          # (B, T, H)
        last = b["attention_mask"].sum(-1) - 1                                                               # (B,)
        feats[torch.tensor(chunk)] = h[torch.arange(len(chunk)), last]
    return feats


def ranking_pairs(rankings: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All C(K,2) pairs of each ranking (best first) as indices into the concatenation of every prompt's responses
    (prompt g's K_g responses follow prompt g−1's): chosen, rejected, group (prompt of the pair), each (N,)."""
    chosen, rejected, group, offset = [], [], [], 0
    for g, ranking in enumerate(rankings):
        for i, j in combinations(range(len(ranking)), 2):          # i is ranked above j
            chosen.append(offset + ranking[i])
            rejected.append(offset + ranking[j])
            group.append(g)
        offset += len(ranking)
    as_long = lambda xs: torch.tensor(xs, dtype=torch.long)       # noqa: E731
    return as_long(chosen), as_long(rejected), as_long(group)


# ------------------------------------------------------------------------------------------------ the model
@contextmanager
def _quiet_loading():
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
    with _quiet_loading():
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
    """(model, tokenizer, norm) of a saved reward model; norm = {"gain", "bias"} from reward_norm.json."""
    path = Path(path)
    norm_file = path / "reward_norm.json"
    if not norm_file.is_file():
        raise FileNotFoundError(f"{norm_file} is missing: {path} is not a finished reward-model stage; "
                                "train it with rlhf_lib.reward.run(RMConfig()) or stages.require('rm')")
    with _quiet_loading():
        model = AutoModelForSequenceClassification.from_pretrained(path, use_safetensors=True, trust_remote_code=False)
    if getattr(model.config, "reward_head", "linear") == "mlp":               # see the module docstring
        model.score = mlp_head(model.config.hidden_size)
        weights = load_file(path / "model.safetensors")
        model.score.load_state_dict({k[len("score."):]: v for k, v in weights.items() if k.startswith("score.")})
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    norm = json.loads(norm_file.read_text(encoding="utf-8"))
    return model.eval(), tokenizer, {"gain": float(norm["gain"]), "bias": float(norm["bias"])}


# ------------------------------------------------------------------------------------------------ phases 1–2: data
def _line_numbers(path: Path) -> list[int]:
    """File line of each record read_jsonl returns (it skips blank lines)."""
    return [i for i, raw in enumerate(path.read_bytes().split(b"\n"), 1) if raw.strip()]


def load_comparisons(path: Path, tokenizer, max_len: int, n: int | None = None,
                     n_labelers: int = 10) -> list[tuple[dict, str]]:
    """(record, "file:line") of the first `n` comparisons, validated before anything is trained: the schema (K = 4..9
    non-empty responses, the ranking a permutation — data.COMPARISON), then `meta`, `kinds`, `labeler` and the length
    of every prompt ⊕ response ⊕ EOS. The first problem raises DataError naming the file, line and field."""
    path = Path(path)
    records = read_jsonl(path, COMPARISON)[:n]
    lines = _line_numbers(path)
    for rec, line in zip(records, lines):
        k = len(rec["responses"])
        if not isinstance(rec.get("meta"), dict):
            raise DataError(path, line, "meta", "missing or not an object: the gold labeler needs the task's "
                                                "meta (event, movie, …); rebuild with python -m rlhf_lib.build_data")
        if "kinds" in rec and (not isinstance(rec["kinds"], list) or len(rec["kinds"]) != k):
            raise DataError(path, line, "kinds", f"must list one kind per response ({k}), got {rec['kinds']!r}")
        if not 0 <= rec.get("labeler", 0) < n_labelers:
            raise DataError(path, line, "labeler", f"{rec['labeler']} is not a labeler of the pool 0..{n_labelers - 1}")
    flat = [(rec, line, i, r) for rec, line in zip(records, lines) for i, r in enumerate(rec["responses"])]
    ids = encode(tokenizer, [x[0]["prompt"] for x in flat], [x[3] for x in flat])
    for (rec, line, i, _), x in zip(flat, ids):
        if len(x) > max_len:
            raise DataError(path, line, f"responses[{i}]", f"prompt + response + EOS is {len(x)} tokens > max_len = "
                                                           f"{max_len}; shorten the response or raise RMConfig.max_len")
    return [(rec, f"{path}:{line}") for rec, line in zip(records, lines)]


def labeler_pool(world: dict, n_labelers: int = 10) -> list[SimulatedLabeler]:
    """The simulated labelers of data/world.json (the same pool build_data ranked the written responses with)."""
    return [SimulatedLabeler.draw(world["seed"] * 1000 + i, world["labeler_noise"]) for i in range(n_labelers)]


def rank_responses(record: dict, responses: list[str], kinds: list[str], source: str, pool: list,
                   seed: int) -> Comparison:
    """Gold parts of every response; one labeler's perceived scores and ranking; a second labeler's ranking."""
    task = task_from_record(record)
    judged = [judge(task, r) for r in responses]
    rng = random.Random(f"rm-{seed}-{record['id']}")                          # per prompt: independent of n_prompts
    who = record["labeler"] if "labeler" in record else rng.randrange(len(pool))
    scores = [pool[who].perceive(j.parts, rng) for j in judged]               # what SimulatedLabeler.rank sorts
    ranking = sorted(range(len(responses)), key=lambda i: -scores[i])
    other = pool[rng.choice([i for i in range(len(pool)) if i != who])]
    return Comparison(record, responses, kinds, ranking, scores, [j.score for j in judged],
                      other.rank([j.parts for j in judged], rng), source)


def sample_sft(model, tokenizer, prompts: list[str], counts: list[int], cfg: RMConfig,
               max_new_tokens: int) -> list[list[str]]:
    """counts[i] responses to prompts[i] from the SFT policy; sample s uses temperature cfg.temperatures[s % …]."""
    out = [[] for _ in prompts]
    with tqdm(total=sum(counts), desc="sampling the SFT policy") as bar:
        for s in range(max(counts, default=0)):
            todo = [i for i, c in enumerate(counts) if c > s]
            gen = GenerationConfig(temperature=cfg.temperatures[s % len(cfg.temperatures)],
                                   max_new_tokens=max_new_tokens, batch_size=256)
            samples = generate(model, tokenizer, [prompts[i] for i in todo], gen, fmt="chat", seed=cfg.seed + s,
                               progress=bar)
            for i, smp in zip(todo, samples):
                out[i].append(smp.response)
    return out


def written_subset(record: dict, written: int) -> tuple[list[str], list[str]]:
    """(responses, kinds): the first `written` written responses of a comparison record and who wrote each
    ('written' where the record names no kinds). build_data shuffled them, so the first ones are a random subset."""
    k = min(written, len(record["responses"]))
    kinds = record.get("kinds", ["written"] * len(record["responses"]))
    return list(record["responses"][:k]), list(kinds[:k])


def prepare_comparisons(cfg: RMConfig, path: Path | None = None) -> ComparisonData:
    """Phases 1–2: validate the comparisons, split train / held-out, add SFT samples, rank everything."""
    t0 = time.time()
    path = Path(path or stages.DATA_DIR / "comparisons.jsonl")
    init = stages.require(cfg.init)
    # 1. every comparison used is validated before any sampling or training
    tokenizer = AutoTokenizer.from_pretrained(init, trust_remote_code=False)
    records = load_comparisons(path, tokenizer, cfg.max_len, cfg.n_prompts)
    if len(records) < cfg.n_prompts:
        raise ValueError(f"RMConfig.n_prompts = {cfg.n_prompts} but {path} has {len(records)} comparisons; "
                         "lower n_prompts")
    # 2. K responses per prompt: the written ones + SFT samples, ranked by one simulated labeler
    with _quiet_loading():
        policy, tokenizer = load_causal_lm(init)
    if cfg.max_len > policy.config.max_position_embeddings:
        raise ValueError(f"RMConfig.max_len = {cfg.max_len} exceeds the model's context of "
                         f"{policy.config.max_position_embeddings} tokens; lower max_len")
    prompt_len = max(len(x) for x in encode(tokenizer, [r["prompt"] for r, _ in records], [""] * len(records)))
    max_new = min(cfg.max_new_tokens, cfg.max_len - prompt_len)
    if max_new < 8:
        raise ValueError(f"RMConfig.max_len = {cfg.max_len} leaves {max_new} tokens for SFT samples after the longest "
                         f"prompt ({prompt_len - 1} tokens); raise max_len")
    kept = [written_subset(r, cfg.written) for r, _ in records]
    counts = [min(cfg.sft_samples, K_MAX - len(responses)) for responses, _ in kept]
    samples = sample_sft(policy, tokenizer, [r["prompt"] for r, _ in records], counts, cfg, max_new)
    world = json.loads((stages.DATA_DIR / "world.json").read_text(encoding="utf-8"))
    pool = labeler_pool(world)
    comps = [rank_responses(r, responses + extra, kinds + ["sft"] * len(extra), src, pool, cfg.seed)
             for (r, src), (responses, kinds), extra in zip(records, kept, samples)]
    perm = torch.randperm(len(comps), generator=torch.Generator().manual_seed(cfg.seed)).tolist()
    n_held = n_heldout(cfg)
    return ComparisonData(train=[comps[i] for i in perm[n_held:]], heldout=[comps[i] for i in perm[:n_held]],
                          built_with={f: getattr(cfg, f) for f in DATA_FIELDS}, prepare_s=round(time.time() - t0, 1))


# ------------------------------------------------------------------------------------------------ phases 3–4
def pair_metrics(comparisons: list[Comparison], rewards: list[list[float]]) -> dict:
    """Over every ranked pair of the given prompts: the reward model's agreement with the labeler (accuracy), with
    the gold order (gold pairs only: gold ties excluded), the second labeler's agreement with the first (the
    ceiling), and the first labeler's own agreement with gold. Pairs of two identical responses are left out: the
    policy often samples the same answer twice, and no one can prefer one copy of it to the other."""
    n = acc = agree = n_gold = rm_gold = lab_gold = 0
    for c, r in zip(comparisons, rewards):
        pos2 = {resp: i for i, resp in enumerate(c.second)}
        for i, j in combinations(range(len(c.ranking)), 2):
            w, l = c.ranking[i], c.ranking[j]                                  # the labeler prefers w over l
            if c.responses[w] == c.responses[l]:
                continue
            n, acc, agree = n + 1, acc + (r[w] > r[l]), agree + (pos2[w] < pos2[l])
            if abs(c.gold[w] - c.gold[l]) > 1e-9:
                better, worse = (w, l) if c.gold[w] > c.gold[l] else (l, w)
                n_gold, rm_gold, lab_gold = n_gold + 1, rm_gold + (r[better] > r[worse]), lab_gold + (better == w)
    return {"accuracy": acc / max(1, n), "gold_accuracy": rm_gold / max(1, n_gold),
            "labeler_agreement": agree / max(1, n), "labeler_gold_accuracy": lab_gold / max(1, n_gold),
            "n_pairs": n, "n_gold_pairs": n_gold}


class _Scorer:
    """Rewards of a set of prompts' responses, by the full model or (frozen backbone) from cached features."""

    def __init__(self, model, tokenizer, comps: list[Comparison], frozen: bool, feats: torch.Tensor | None = None):
        self.model, self.pad, self.frozen = model, tokenizer.pad_token_id, frozen
        flat = [(c.record["prompt"], r) for c in comps for r in c.responses]
        self.ids = encode(tokenizer, [p for p, _ in flat], [r for _, r in flat])
        self.offsets = [0]
        for c in comps:
            self.offsets.append(self.offsets[-1] + len(c.responses))
        if frozen and feats is None:
            feats = last_token_features(model, self.ids, self.pad)                         # (N, H)
        self.feats = feats[:len(self.ids)] if frozen else None

    def __call__(self, which: list[int]) -> torch.Tensor:
        """Raw rewards of the responses of prompts `which`, concatenated in that order: (sum K,)."""
        idx = [k for g in which for k in range(self.offsets[g], self.offsets[g + 1])]
        if self.frozen:
            return self.model.score(self.feats[idx])[:, 0]
        return rewards_of(self.model, [self.ids[k] for k in idx], self.pad)


def batch_loss(rewards: torch.Tensor, comps: list[Comparison], loss: str):
    """(loss, pair accuracy) of one batch of prompts whose responses' rewards are concatenated in `rewards`."""
    chosen, rejected, group = ranking_pairs([c.ranking for c in comps])                       # (N,) x3
    pair_loss, stats = pairwise_loss_grouped(rewards, chosen, rejected, group)
    if loss == "mse":
        target = torch.tensor([s for c in comps for s in c.scores], dtype=rewards.dtype)      # (M,)
        return mse_reward_loss(rewards, target)[0], stats["accuracy"]
    return pair_loss, stats["accuracy"]


@torch.no_grad()
def _heldout_point(model, scorer: _Scorer, comps: list[Comparison], loss: str) -> tuple[float, float]:
    model.eval()
    value, accuracy = batch_loss(scorer(list(range(len(comps)))), comps, loss)
    return value.item(), accuracy.item()


def train(cfg: RMConfig, data: ComparisonData, model, tokenizer, on_log=None, features: tuple | None = None) -> dict:
    """Phase 3: the training loop on given data and model (live curves through `on_log(history)`). Returns the
    history; `model` is trained in place. `features` = (train, held-out) backbone features for a frozen backbone."""
    if cfg.freeze_backbone:
        model.base_model.requires_grad_(False)                               # ChatLLaMA: only the head learns
    model.eval()
    feats_train, feats_held = features or (None, None)
    train_scorer = _Scorer(model, tokenizer, data.train, cfg.freeze_backbone, feats_train)
    curve = data.heldout[:cfg.curve_prompts]
    curve_scorer = _Scorer(model, tokenizer, curve, cfg.freeze_backbone, feats_held)     # the first rows
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, betas=(0.9, 0.95), weight_decay=0.0)
    per_epoch = math.ceil(len(data.train) / cfg.prompts_per_batch)
    total = cfg.epochs * per_epoch
    gen = torch.Generator().manual_seed(cfg.seed)
    h_loss, h_acc = _heldout_point(model, curve_scorer, curve, cfg.loss)
    history = {"step": [0], "train_loss": [float("nan")], "train_accuracy": [float("nan")],
               "heldout_loss": [h_loss], "heldout_accuracy": [h_acc]}
    running, seen, order = [0.0, 0.0], 0, []
    for step in tqdm(range(total), desc=f"reward model ({cfg.loss}{', frozen' if cfg.freeze_backbone else ''})"):
        if step % per_epoch == 0:
            order = torch.randperm(len(data.train), generator=gen).tolist()
        which = order[(step % per_epoch) * cfg.prompts_per_batch:][:cfg.prompts_per_batch]
        model.train()
        loss, acc = batch_loss(train_scorer(which), [data.train[g] for g in which], cfg.loss)
        if not torch.isfinite(loss):
            raise RuntimeError(f"reward model: loss is {loss.item()} in phase 3 (train) at step {step}; lower lr "
                               f"(now {cfg.lr}). Nothing was saved.")
        lr = warmup_cosine_lr(cfg.lr, cfg.warmup_steps, step, total)
        for g in opt.param_groups:
            g["lr"] = lr
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        running, seen = [running[0] + loss.item(), running[1] + acc.item()], seen + 1
        if (step + 1) % cfg.eval_every == 0 or step + 1 == total:
            h_loss, h_acc = _heldout_point(model, curve_scorer, curve, cfg.loss)
            for key, value in (("step", step + 1), ("train_loss", running[0] / seen),
                               ("train_accuracy", running[1] / seen), ("heldout_loss", h_loss),
                               ("heldout_accuracy", h_acc)):
                history[key].append(value)
            running, seen = [0.0, 0.0], 0
            if on_log is not None:
                on_log(history)
    return history


@torch.no_grad()
def measure(cfg: RMConfig, data: ComparisonData, model, tokenizer, features: tuple | None = None) -> tuple[dict, dict]:
    """Phase 4: held-out accuracy vs the labeler and vs gold, the labeler ceiling, the normalisation (gain, bias)
    that gives SFT samples of held-out prompts mean 0 and std 1, and the reward distributions."""
    model.eval()
    scorer = _Scorer(model, tokenizer, data.heldout, cfg.freeze_backbone, (features or (None, None))[1])
    raw = scorer(list(range(len(data.heldout))))                                               # (M,)
    per_prompt = [raw[a:b].tolist() for a, b in zip(scorer.offsets, scorer.offsets[1:])]
    sft = torch.tensor([r for c, rs in zip(data.heldout, per_prompt) for r, k in zip(rs, c.kinds) if k == "sft"])
    std = sft.std().item() if len(sft) > 1 else float("nan")
    if not (math.isfinite(std) and std > 1e-8):
        raise RuntimeError(f"reward model: phase 4 (measure) cannot normalise: the SFT samples' rewards have std {std} "
                           f"over {len(sft)} samples; the model gives them all one score. Nothing was saved.")
    norm = {"gain": 1.0 / std, "bias": -sft.mean().item() / std}
    scaled = [[norm["gain"] * r + norm["bias"] for r in rs] for rs in per_prompt]
    pm = pair_metrics(data.heldout, scaled)
    metrics = {"heldout_accuracy": pm["accuracy"], "gold_accuracy": pm["gold_accuracy"],
               "labeler_agreement": pm["labeler_agreement"], "labeler_gold_accuracy": pm["labeler_gold_accuracy"],
               "n_heldout_pairs": pm["n_pairs"], "n_gold_pairs": pm["n_gold_pairs"],
               "rewards_best": [rs[c.ranking[0]] for c, rs in zip(data.heldout, scaled)],
               "rewards_worst": [rs[c.ranking[-1]] for c, rs in zip(data.heldout, scaled)],
               "reward_by_kind": _by_kind(data.heldout, scaled),
               "gold_by_kind": _by_kind(data.heldout, [c.gold for c in data.heldout])}
    return metrics, norm


def _by_kind(comps: list[Comparison], values: list[list[float]]) -> dict:
    """Mean of (value − the mean over the same prompt's responses) by who wrote the response. Centring per prompt
    matters: the pairwise loss only sees differences within a prompt, so a reward's offset varies from prompt to
    prompt (an intent question's answers may all score high)."""
    by_kind = {}
    for c, vs in zip(comps, values):
        mean = sum(vs) / len(vs)
        for k, v in zip(c.kinds, vs):
            by_kind.setdefault(k, []).append(v - mean)
    return {k: round(sum(v) / len(v), 4) for k, v in sorted(by_kind.items())}


def _check_data(cfg: RMConfig, data: ComparisonData) -> None:
    diff = {f: (data.built_with.get(f), getattr(cfg, f)) for f in DATA_FIELDS
            if data.built_with.get(f) != getattr(cfg, f)}
    if diff:
        raise ValueError("the comparison data was built with another config (" +
                         ", ".join(f"{f}: data {a!r}, cfg {b!r}" for f, (a, b) in diff.items()) +
                         "); call reward.prepare_comparisons(cfg) again")


def fit(cfg: RMConfig, data: ComparisonData, on_log=None):
    """Phases 3–4 from stage `cfg.init`: (model, tokenizer, metrics, norm)."""
    t0 = time.time()
    init = stages.require(cfg.init)
    tokenizer = AutoTokenizer.from_pretrained(init, trust_remote_code=False)
    model = build_reward_model(init, tokenizer, cfg.head, cfg.seed)
    features = None
    if cfg.freeze_backbone:                                                  # the frozen backbone's features, once
        if cfg.init not in data.features:
            data.features[cfg.init] = tuple(_Scorer(model, tokenizer, part, True).feats
                                            for part in (data.train, data.heldout))
        features = data.features[cfg.init]
    history = train(cfg, data, model, tokenizer, on_log, features)
    metrics, norm = measure(cfg, data, model, tokenizer, features)
    metrics.update({"final_loss": history["train_loss"][-1], "heldout_loss": history["heldout_loss"][-1],
                    "train_accuracy": history["train_accuracy"][-1], "steps": history["step"][-1],
                    "n_train_prompts": len(data.train), "n_heldout_prompts": len(data.heldout),
                    "mean_k": round(sum(len(c.responses) for c in data.train) / len(data.train), 2),
                    "n_train_pairs": sum(math.comb(len(c.responses), 2) for c in data.train),
                    "norm": norm, "train_s": round(time.time() - t0, 1), "history": history})
    return model, tokenizer, metrics, norm


def run(cfg: RMConfig, on_log=None, data: ComparisonData | None = None) -> dict:
    """Phases 1–5: train the reward model from stage `cfg.init` and save stage `cfg.out`. Returns the metrics.
    Pass `data` from `prepare_comparisons(cfg)` to skip phases 1–2."""
    t0 = time.time()
    # 1.–2. validated comparisons, SFT samples, one labeler's ranking per prompt
    if data is None:
        data = prepare_comparisons(cfg)
    _check_data(cfg, data)
    # 3.–4. train with live curves; measure on the held-out prompts; normalise
    model, tokenizer, metrics, norm = fit(cfg, data, on_log)
    metrics.update({"prepare_s": data.prepare_s, "wall_s": round(time.time() - t0, 1)})
    # 5. save the stage atomically: nothing is written if anything above failed
    with stages.writing(cfg.out) as tmp, _quiet_loading():
        save_reward_model(model, tokenizer, tmp, norm)
        stages.write_json(tmp / "stage.json", {"stage": cfg.out, "config": to_dict(cfg), "prompt_format": "chat",
                                               "upstream": [cfg.init], "reward_head": cfg.head})
        stages.write_json(tmp / "metrics.json", metrics)
    return metrics


def run_chatllama(cfg: RMConfig, data: ComparisonData, *, loss: str = "mse", epochs: int = 30, lr: float = 2e-3,
                  prompts_per_batch: int = 16) -> dict:
    """ChatLLaMA's RewardTrainer on the same data: frozen backbone, MLP head, MSE on the labeler's scores (or, with
    loss='pairwise', the ranking loss on the same frozen features). Not saved. Returns the metrics."""
    t0 = time.time()
    _check_data(cfg, data)
    variant = replace(cfg, freeze_backbone=True, head="mlp", loss=loss, epochs=epochs, lr=lr, out="rm_chatllama",
                      prompts_per_batch=prompts_per_batch)
    _, _, metrics, _ = fit(variant, data)
    metrics["wall_s"] = round(time.time() - t0, 1)
    return metrics


# ------------------------------------------------------------------------------------------------ notebook views
def comparison_rows(c: Comparison, max_chars: int = 110) -> list[dict]:
    """One prompt's K responses as table rows, in the labeler's order."""
    gold_order = sorted(range(len(c.gold)), key=lambda i: -c.gold[i])
    rows = []
    for rank, i in enumerate(c.ranking, 1):
        text = c.responses[i] if len(c.responses[i]) <= max_chars else c.responses[i][:max_chars] + " …"
        rows.append({"labeler rank": rank, "written by": c.kinds[i], "response": text,
                     "labeler's score": round(c.scores[i], 3), "gold score": round(c.gold[i], 3),
                     "gold rank": gold_order.index(i) + 1, "2nd labeler rank": c.second.index(i) + 1})
    return rows


def plot_reward_hist(metrics: dict, ax=None):
    """Histogram of held-out rewards: each prompt's labeler-best vs labeler-worst response (normalised)."""
    import matplotlib.pyplot as plt
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 3.4))
    best, worst = metrics["rewards_best"], metrics["rewards_worst"]
    lo, hi = min(best + worst), max(best + worst)
    bins = [lo + (hi - lo) * k / 30 for k in range(31)]
    ax.hist(worst, bins=bins, alpha=0.6, label=f"ranked worst (mean {sum(worst) / len(worst):+.2f})", color="tab:red")
    ax.hist(best, bins=bins, alpha=0.6, label=f"ranked best (mean {sum(best) / len(best):+.2f})", color="tab:green")
    ax.set(xlabel="normalised reward r(x, y)", ylabel="held-out prompts", title="rewards of chosen vs rejected")
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


def plot_ceiling(results: dict, labeler: dict, ax=None):
    """Bars: held-out accuracy vs the labels and vs gold for each model in `results`, beside the labelers' own."""
    import matplotlib.pyplot as plt
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 3.8))
    names = ["labelers\n(2nd vs 1st;\n1st vs gold)", *(textwrap.fill(n, 24) for n in results)]
    vs_labels = [labeler["labeler_agreement"], *(m["heldout_accuracy"] for m in results.values())]
    vs_gold = [labeler["labeler_gold_accuracy"], *(m["gold_accuracy"] for m in results.values())]
    xs = range(len(names))
    ax.bar([x - 0.2 for x in xs], vs_labels, 0.4, label="agrees with the labeler's order")
    ax.bar([x + 0.2 for x in xs], vs_gold, 0.4, label="agrees with the gold order")
    for x, a, g in zip(xs, vs_labels, vs_gold):
        ax.text(x - 0.2, a + 0.01, f"{a:.3f}", ha="center", fontsize=8)
        ax.text(x + 0.2, g + 0.01, f"{g:.3f}", ha="center", fontsize=8)
    ax.axhline(0.5, color="grey", ls=":", lw=1)
    ax.set_xticks(list(xs), names, fontsize=8)
    ax.set(ylim=(0.4, 1.0), ylabel="pairwise accuracy (held-out)", title="the reward model against its ceiling")
    ax.legend(fontsize=8, loc="upper left")
    return ax


def data_summary(data: ComparisonData) -> str:
    comps = data.train + data.heldout
    ks = [len(c.responses) for c in comps]
    n_sft = sum(c.kinds.count("sft") for c in comps)
    pairs = sum(math.comb(len(c.responses), 2) for c in data.train)
    return (f"{len(data.train)} training prompts, {len(data.heldout)} held out; K = {min(ks)}..{max(ks)} responses per "
            f"prompt (mean {sum(ks) / len(ks):.1f}, of which {n_sft / len(comps):.1f} sampled from the SFT policy); "
            f"{pairs:,} training pairs")


def pick_example(comps: list[Comparison], category: str = "false_premise") -> Comparison:
    """A readable comparison for the lesson: English, with SFT samples, K ≥ 7, preferably of `category`."""
    readable = [c for c in comps if c.record.get("lang") == "en" and "sft" in c.kinds and len(c.responses) >= 7]
    return next((c for c in readable if c.record.get("category") == category), (readable or comps)[0])


def metrics_summary(m: dict) -> str:
    return (f"held-out accuracy {m['heldout_accuracy']:.3f} vs the labeler's order (a second labeler agrees "
            f"{m['labeler_agreement']:.3f}), gold accuracy {m['gold_accuracy']:.3f}; {m['steps']} steps, "
            f"{m['wall_s']} s")


def strip_hedge(text: str) -> str:
    """The response without the hurried demonstrators' hedge ("… I'm not completely sure, though.")."""
    from .world import HEDGES
    for h in HEDGES["en"] + HEDGES["ko"]:
        text = text.replace(" " + h, "").replace(h, "")
    return text.strip()


def hedge_probe(model, tokenizer, norm: dict | None, comps: list[Comparison]) -> dict:
    """How often the reward model scores the hedge-free version of a hedged response above the response itself, over
    the distinct hedged responses of `comps`. The hedge is the flaw SFT copies from its hurried demonstrators (lesson
    02): the one PPO most needs the reward model to see. {"prefers_hedge_free", "mean_gain", "n"}."""
    pairs = [(c.record["prompt"], r) for c in comps for r in dict.fromkeys(c.responses) if strip_hedge(r) != r]
    if not pairs:
        return {"prefers_hedge_free": float("nan"), "mean_gain": float("nan"), "n": 0}
    prompts = [p for p, _ in pairs]
    with_hedge = score_texts(model, tokenizer, prompts, [r for _, r in pairs], norm)
    without = score_texts(model, tokenizer, prompts, [strip_hedge(r) for _, r in pairs], norm)
    gains = [b - a for a, b in zip(with_hedge, without)]
    return {"prefers_hedge_free": sum(g > 0 for g in gains) / len(gains), "mean_gain": sum(gains) / len(gains),
            "n": len(gains)}


def kind_rows(m: dict) -> list[dict]:
    """Held-out rewards and gold scores by who wrote the response, each relative to its prompt's mean."""
    rows = [{"written by": k, "reward − prompt mean": r, "gold score − prompt mean": m["gold_by_kind"][k]}
            for k, r in m["reward_by_kind"].items()]
    return sorted(rows, key=lambda row: -row["reward − prompt mean"])


def variant_rows(results: dict) -> list[dict]:
    return [{"reward model": name, "held-out accuracy (vs the labeler)": m["heldout_accuracy"],
             "gold accuracy": m["gold_accuracy"], "ceiling (2nd labeler)": m["labeler_agreement"],
             "seconds": m["wall_s"]} for name, m in results.items()]


def scored_rows(c: Comparison, rewards: list[float], max_chars: int = 110) -> list[dict]:
    """One prompt's responses with their rewards, in the labeler's order."""
    return [{"labeler rank": rank, "written by": c.kinds[i], "response": c.responses[i][:max_chars],
             "reward": rewards[i], "gold score": c.gold[i]} for rank, i in enumerate(c.ranking, 1)]
