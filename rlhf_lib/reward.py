"""The reward model's trainer — InstructGPT step 2 (lesson 03).

"Collect comparison data, and train a reward model." A labeler sees one prompt x with K = 4..9 responses and ranks
them best to worst (`comparisons.py` collects and ranks them). The reward model r_θ(x, y) (`reward_model.py`) learns
every pair the ranking implies (InstructGPT eq. 1):

    loss(θ) = − 1/C(K,2) · E_{(x, y_w, y_l) ∼ D} [ log σ(r_θ(x, y_w) − r_θ(x, y_l)) ]

All C(K,2) pairs of one prompt are **one batch element**: each response is scored once and reused in its K − 1
comparisons, and a prompt with nine responses weighs as much as one with four (InstructGPT: shuffling the correlated
pairs into the dataset over-fits within one epoch).

    cfg = RMConfig()                          # or panel.value
    data = prepare_comparisons(cfg)           # phases 1–2 (optional: run() does them when data is None)
    metrics = run(cfg, data=data)             # phases 3–5, writes artifacts/rm/
    chat = run_chatllama(cfg, data)           # ChatLLaMA's RewardTrainer on the same data (not saved)
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from transformers import AutoTokenizer

from . import stages
from .comparisons import SAVED, Comparison, ComparisonData, collect, pair_metrics, ranking_pairs, to_json
from .config import fixed, knob, validate
from .data import check_stage_fields
from .generation import sampling_processes
from .losses import mse_reward_loss, pairwise_loss_grouped
from .reward_model import (
    build_reward_model,
    encode,
    last_token_features,
    pad_right,
    quiet_loading,
    rewards_of,
    save_reward_model,
    score_batch,
)
from .training import LOCAL, Parallel, adamw, ensure_finite, save_stage, stage_info, warmup_cosine_lr

DATA_FIELDS = ("n_prompts", "written", "sft_samples", "other_prompts", "other_from", "wrong_years", "max_len",
               "temperatures", "max_new_tokens", "heldout_frac", "seed", "init")


@dataclass(frozen=True, kw_only=True)
class RMConfig:
    """Reward-model hyperparameters (lesson 03)."""
    lr: float = knob(1e-3, lo=1e-6, hi=1e-2, log=True, help="peak AdamW learning rate, cosine decay to 10 % "
                                                             "(InstructGPT: 9e-6 for its 6B RM)")
    epochs: int = knob(2, lo=1, hi=50, help="passes over the training prompts (InstructGPT: 1 over far more "
                                            "prompts; benchmarks/rm_data.py measures both)")
    prompts_per_batch: int = knob(4, lo=1, hi=64,
                                  help="prompts per optimizer step; each brings all C(K,2) of its pairs")
    loss: str = knob("pairwise", choices=("pairwise", "mse"),
                     help="pairwise ranking loss (InstructGPT) or MSE on the labeler's scores (ChatLLaMA)")
    freeze_backbone: bool = knob(False, help="train the head only (ChatLLaMA); off = fine-tune the whole transformer")
    head: str = knob("linear", choices=("linear", "mlp"),
                     help="scalar head on the last token: linear (InstructGPT) or Linear→ReLU→Linear (ChatLLaMA)")
    n_prompts: int = knob(1200, lo=20, hi=3000, step=10,
                          help="comparison prompts used, train + held-out (sampling and training time grow with it)")
    written: int = knob(0, lo=0, hi=9, help="written responses kept per prompt, the record's first ones (build_data "
                                            "shuffled them: an ideal answer, an insult, a wrong fact …); 0 = only "
                                            "model outputs, as InstructGPT's comparisons")
    sft_samples: int = knob(7, lo=1, hi=8, help="responses sampled from the SFT policy per prompt, added to the "
                                                "written ones (fewer where K would exceed 9)")
    other_prompts: int = knob(1, lo=0, hi=8, help="SFT answers to other prompts added per prompt (K ≤ 9): the "
                                                  "candidates that teach the reward model to read the prompt")
    other_from: str = knob("any", choices=("any", "same_kind"),
                           help="whose answers those are: any other prompt's, or another prompt's of the same "
                                "category and language (another event's date for a factual question)")
    wrong_years: int = knob(1, lo=0, hi=8, help="SFT samples that name a year added again with the years swapped "
                                                "(K ≤ 9): the candidates that teach the reward model the facts")
    max_len: int = knob(256, lo=32, hi=4096, step=32,
                        help="longest prompt + response + EOS in tokens; longer is an error")
    temperatures: tuple[float, ...] = fixed((0.7, 1.0),
                                            help="SFT sampling temperatures, cycled over a prompt's samples")
    max_new_tokens: int = fixed(48, help="length limit of the SFT samples in tokens")
    heldout_frac: float = fixed(0.2, help="fraction of the prompts held out: accuracy, ceiling and normalisation")
    eval_every: int = fixed(10, help="optimizer steps between held-out measurements for the curves")
    curve_prompts: int = fixed(20, help="held-out prompts measured for the live curves (the final metrics use all)")
    warmup_steps: int = fixed(4, help="linear learning-rate warm-up steps")
    betas: tuple[float, float] = fixed((0.9, 0.95), help="AdamW β1, β2")
    weight_decay: float = fixed(0.0, help="AdamW weight decay")
    max_grad_norm: float = fixed(1.0, help="gradient-norm clip before each optimizer step")
    sample_batch_size: int = fixed(256, help="prompts sampled together from the SFT policy in phase 2")
    score_tokens: int = fixed(4096, help="padded tokens per forward pass when scoring responses (length-sorted)")
    feature_tokens: int = fixed(8192, help="padded tokens per forward pass of the frozen backbone's features")
    seed: int = fixed(0, help="seed for the split, SFT sampling, labelers, head initialisation and data order")
    init: str = fixed("sft", help="stage the reward model starts from, and the policy whose samples it ranks")
    out: str = fixed("rm", help="stage name written")

    def __post_init__(self):
        validate(self)
        check_stage_fields(self, "init", "out")
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


def prepare_comparisons(cfg: RMConfig, path: Path | None = None) -> ComparisonData:
    """Phases 1–2 (`comparisons.collect`) with the config's settings, from stage `cfg.init`."""
    return collect(stages.existing(cfg.init), Path(path or stages.DATA_DIR / "comparisons.jsonl"),
                   stages.DATA_DIR / "world.json", n_prompts=cfg.n_prompts, written=cfg.written,
                   sft_samples=cfg.sft_samples, max_len=cfg.max_len, temperatures=cfg.temperatures,
                   max_new_tokens=cfg.max_new_tokens, n_heldout=n_heldout(cfg), seed=cfg.seed,
                   other_prompts=cfg.other_prompts, other_from=cfg.other_from, wrong_years=cfg.wrong_years,
                   sample_batch_size=cfg.sample_batch_size, built_with={f: getattr(cfg, f) for f in DATA_FIELDS},
                   processes=sampling_processes(cfg.n_prompts * cfg.sft_samples))


# ------------------------------------------------------------------------------------------------ phases 3–4
class Scorer:
    """Rewards of a set of prompts' responses, by the full model or (frozen backbone) from cached features.

    `one_pass` scores a batch in one forward pass instead of length-sorted chunks: under ZeRO-3 every rank must run
    as many passes as the others, which chunks of different lengths would not guarantee."""

    def __init__(self, model, tokenizer, comps: list[Comparison], frozen: bool, feats: torch.Tensor | None = None, *,
                 max_tokens: int = 4096, feature_tokens: int = 8192, one_pass: bool = False):
        self.model, self.pad, self.frozen = model, tokenizer.pad_token_id, frozen
        self.max_tokens, self.one_pass = max_tokens, one_pass
        flat = [(c.record["prompt"], r) for c in comps for r in c.responses]
        self.ids = encode(tokenizer, [p for p, _ in flat], [r for _, r in flat])
        self.offsets = [0]
        for c in comps:
            self.offsets.append(self.offsets[-1] + len(c.responses))
        if frozen and feats is None:
            feats = last_token_features(model, self.ids, self.pad, feature_tokens)            # (N, H)
        self.feats = feats[:len(self.ids)] if frozen else None

    def __call__(self, which: list[int]) -> torch.Tensor:
        """Raw rewards of the responses of prompts `which`, concatenated in that order: (sum K,)."""
        idx = [k for g in which for k in range(self.offsets[g], self.offsets[g + 1])]
        if self.frozen:
            return self.model.score(self.feats[idx])[:, 0]
        ids = [self.ids[k] for k in idx]
        if self.one_pass:
            batch = pad_right(ids, self.pad)
            device = next(self.model.parameters()).device
            return score_batch(self.model, {k: v.to(device) for k, v in batch.items()})
        return rewards_of(self.model, ids, self.pad, self.max_tokens)


def batch_loss(rewards: torch.Tensor, comps: list[Comparison], loss: str):
    """(loss, pair accuracy) of one batch of prompts whose responses' rewards are concatenated in `rewards`.

    The accuracy leaves out pairs of two identical responses, as `pair_metrics` does: the policy often samples the
    same answer twice, both copies get the same reward, and no one can prefer one copy to the other (counted, they
    would pull the curve below chance). NaN if the batch has no pair of different responses."""
    chosen, rejected, group = ranking_pairs([c.ranking for c in comps])                       # (N,) x3
    pair_loss, _ = pairwise_loss_grouped(rewards, chosen, rejected, group)
    texts = [r for c in comps for r in c.responses]
    distinct = torch.tensor([texts[a] != texts[b] for a, b in zip(chosen.tolist(), rejected.tolist())])   # (N,)
    right = (rewards[chosen] > rewards[rejected])[distinct].detach()
    accuracy = right.float().mean() if len(right) else torch.tensor(float("nan"))
    if loss == "mse":
        target = torch.tensor([s for c in comps for s in c.scores], dtype=rewards.dtype)      # (M,)
        return mse_reward_loss(rewards, target)[0], accuracy
    return pair_loss, accuracy


@torch.no_grad()
def heldout_point(model, scorer: Scorer, comps: list[Comparison], loss: str) -> tuple[float, float]:
    """(loss, accuracy) of the model on the prompts `comps` that `scorer` was built for."""
    model.eval()
    value, accuracy = batch_loss(scorer(list(range(len(comps)))), comps, loss)
    return value.item(), accuracy.item()


def train(cfg: RMConfig, data: ComparisonData, model, tokenizer, on_log=None, features: tuple | None = None, *,
          par: Parallel = LOCAL) -> dict:
    """Phase 3: the training loop on given data and model (live curves through `on_log(history)`). Returns the
    history; `model` is trained in place. `features` = (train, held-out) backbone features for a frozen backbone.

    With `par.even_split` (DeepSpeed) the last, incomplete batch of an epoch is dropped (it would not
    split evenly over the ranks) and each micro-batch is scored in one forward pass."""
    if cfg.freeze_backbone:
        model.base_model.requires_grad_(False)                               # ChatLLaMA: only the head learns
    model.eval()
    feats_train, feats_held = features or (None, None)
    sizes = dict(max_tokens=cfg.score_tokens, feature_tokens=cfg.feature_tokens)
    train_scorer = Scorer(model, tokenizer, data.train, cfg.freeze_backbone, feats_train, **sizes,
                          one_pass=par.even_split)
    curve = data.heldout[:cfg.curve_prompts]
    curve_scorer = Scorer(model, tokenizer, curve, cfg.freeze_backbone, feats_held, **sizes)   # the first rows
    params = [p for p in model.parameters() if p.requires_grad]
    engine = par.engine([model], adamw(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay),
                        clip=[(params, cfg.max_grad_norm)])
    n = len(data.train)
    per_epoch = n // cfg.prompts_per_batch if par.even_split else math.ceil(n / cfg.prompts_per_batch)
    total, micro = cfg.epochs * per_epoch, par.micro(cfg.prompts_per_batch)
    gen = torch.Generator().manual_seed(cfg.seed)

    def micro_loss(model, which: list[int]):
        return batch_loss(train_scorer(which), [data.train[g] for g in which], cfg.loss)

    with par.device():
        h_loss, h_acc = heldout_point(model, curve_scorer, curve, cfg.loss)
        history = {"step": [0], "train_loss": [float("nan")], "train_accuracy": [float("nan")],
                   "heldout_loss": [h_loss], "heldout_accuracy": [h_acc]}
        running, seen, order = [0.0, 0.0], 0, []
        desc = f"reward model ({cfg.loss}{', frozen' if cfg.freeze_backbone else ''})"
        for step in par.progress(range(total), desc):
            if step % per_epoch == 0:
                order = torch.randperm(n, generator=gen, device="cpu").tolist()
            which = par.shard(order[(step % per_epoch) * cfg.prompts_per_batch:][:cfg.prompts_per_batch])
            lr = warmup_cosine_lr(cfg.lr, cfg.warmup_steps, step, total)
            model.train()
            loss_acc = [0.0, 0.0]
            for k in range(par.accum):                   # each micro-batch holds `micro` prompts: equal weights
                loss, acc = engine(micro_loss, which[k * micro:(k + 1) * micro])
                engine.step(loss, lr)
                loss_acc = [loss_acc[0] + loss.item() / par.accum, loss_acc[1] + acc.item() / par.accum]
            loss_acc = par.reduce(loss_acc)
            ensure_finite(loss_acc[0], "reward model, phase 3 (train)", step, f"lower lr (now {cfg.lr})")
            running, seen = [running[0] + loss_acc[0], running[1] + loss_acc[1]], seen + 1
            if (step + 1) % cfg.eval_every == 0 or step + 1 == total:
                h_loss, h_acc = heldout_point(model, curve_scorer, curve, cfg.loss)
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
    scorer = Scorer(model, tokenizer, data.heldout, cfg.freeze_backbone, (features or (None, None))[1],
                    max_tokens=cfg.score_tokens, feature_tokens=cfg.feature_tokens)
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
               "reward_by_kind": by_kind(data.heldout, scaled),
               "gold_by_kind": by_kind(data.heldout, [c.gold for c in data.heldout])}
    return metrics, norm


def by_kind(comps: list[Comparison], values: list[list[float]]) -> dict:
    """Mean of (value − the mean over the same prompt's responses) by who wrote the response. Centring per prompt
    matters: the pairwise loss only sees differences within a prompt, so a reward's offset varies from prompt to
    prompt (an intent question's answers may all score high)."""
    by_kind = {}
    for c, vs in zip(comps, values):
        mean = sum(vs) / len(vs)
        for k, v in zip(c.kinds, vs):
            by_kind.setdefault(k, []).append(v - mean)
    return {k: round(sum(v) / len(v), 4) for k, v in sorted(by_kind.items())}


def check_data(cfg: RMConfig, data: ComparisonData) -> None:
    diff = {f: (data.built_with.get(f), getattr(cfg, f)) for f in DATA_FIELDS
            if data.built_with.get(f) != getattr(cfg, f)}
    if diff:
        raise ValueError("the comparison data was built with another config (" +
                         ", ".join(f"{f}: data {a!r}, cfg {b!r}" for f, (a, b) in diff.items()) +
                         "); call reward.prepare_comparisons(cfg) again")


def fit(cfg: RMConfig, data: ComparisonData, on_log=None, *, par: Parallel = LOCAL):
    """Phases 3–4 from stage `cfg.init`: (model, tokenizer, metrics, norm)."""
    t0 = time.time()
    init = stages.existing(cfg.init)
    tokenizer = AutoTokenizer.from_pretrained(init, trust_remote_code=False)
    model = build_reward_model(init, tokenizer, cfg.head, cfg.seed)
    features = None
    if cfg.freeze_backbone:                                                  # the frozen backbone's features, once
        if cfg.init not in data.features:
            data.features[cfg.init] = tuple(
                Scorer(model, tokenizer, part, True, feature_tokens=cfg.feature_tokens).feats
                for part in (data.train, data.heldout))
        features = data.features[cfg.init]
    history = train(cfg, data, model, tokenizer, on_log, features, par=par)
    with par.device():
        metrics, norm = measure(cfg, data, model, tokenizer, features)
    metrics.update({"final_loss": history["train_loss"][-1], "heldout_loss": history["heldout_loss"][-1],
                    "train_accuracy": history["train_accuracy"][-1], "steps": history["step"][-1],
                    "n_train_prompts": len(data.train), "n_heldout_prompts": len(data.heldout),
                    "mean_k": round(sum(len(c.responses) for c in data.train) / len(data.train), 2),
                    "n_train_pairs": sum(math.comb(len(c.responses), 2) for c in data.train),
                    "norm": norm, "train_s": round(time.time() - t0, 1), "history": history})
    return model, tokenizer, metrics, norm


def run(cfg: RMConfig, on_log=None, data: ComparisonData | None = None, *, par: Parallel = LOCAL) -> dict:
    """Phases 1–5: train the reward model from stage `cfg.init` and save stage `cfg.out`. Returns the metrics.
    Pass `data` from `prepare_comparisons(cfg)` to skip phases 1–2 (under DeepSpeed rank 0 prepares them once)."""
    t0 = time.time()
    # 1.–2. validated comparisons, SFT samples, one labeler's ranking per prompt
    if data is None:
        data = par.once(lambda: prepare_comparisons(cfg))
    check_data(cfg, data)
    # 3.–4. train with live curves; measure on the held-out prompts; normalise
    model, tokenizer, metrics, norm = fit(cfg, data, on_log, par=par)
    metrics.update({"prepare_s": data.prepare_s, "wall_s": round(time.time() - t0, 1)})
    # 5. save the stage atomically: nothing is written if anything above failed
    with quiet_loading():
        save_stage(par, cfg.out, model, tokenizer, stage_info(cfg.out, cfg, [cfg.init], reward_head=cfg.head),
                   metrics, write_model=lambda tmp: write(tmp, model, tokenizer, norm, data))
    return metrics


def write(folder: Path, model, tokenizer, norm: dict, data: ComparisonData) -> None:
    """The reward model's files, and the comparisons it learned from (DPO, lesson 07, learns from the same)."""
    save_reward_model(model, tokenizer, folder, norm)
    stages.write_json(folder / SAVED, to_json(data))


def run_chatllama(cfg: RMConfig, data: ComparisonData, *, loss: str = "mse", epochs: int = 30, lr: float = 2e-3,
                  prompts_per_batch: int = 16) -> dict:
    """ChatLLaMA's RewardTrainer on the same data: frozen backbone, MLP head, MSE on the labeler's scores (or, with
    loss='pairwise', the ranking loss on the same frozen features). Not saved. Returns the metrics."""
    t0 = time.time()
    check_data(cfg, data)
    variant = replace(cfg, freeze_backbone=True, head="mlp", loss=loss, epochs=epochs, lr=lr, out="rm_chatllama",
                      prompts_per_batch=prompts_per_batch)
    _, _, metrics, _ = fit(variant, data)
    metrics["wall_s"] = round(time.time() - t0, 1)
    return metrics


def summary(m: dict) -> str:
    """One line of a finished reward-model run's metrics (the command line prints it)."""
    return (f"{m['steps']} steps, heldout accuracy {m['heldout_accuracy']:.3f} (vs gold {m['gold_accuracy']:.3f}; "
            f"labelers agree {m['labeler_agreement']:.3f}), {m['wall_s']} s")

