"""Direct preference optimisation — what replaced PPO, part 1 (lesson 07).

Rafailov et al. 2023 start from the objective PPO maximises (InstructGPT's eq. 2 without the ptx term),

    max_π  E_x E_{y∼π} [ r(x, y) ]  −  β KL( π(·|x) ‖ π_ref(·|x) ),

whose optimum has a closed form, π*(y|x) = π_ref(y|x) exp(r(x, y)/β) / Z(x). Read backwards, every policy is the
optimum of one reward, r̂(x, y) = β log π(y|x)/π_ref(y|x) + β log Z(x) (the *implicit reward*), and the
Bradley–Terry likelihood the reward model was trained with (eq. 1) becomes a loss on the policy itself; Z(x)
cancels because both answers of a comparison share the prompt:

    L_DPO(θ) = − E_{(x, y_w, y_l)} [ log σ( β log π_θ(y_w|x)/π_ref(y_w|x) − β log π_θ(y_l|x)/π_ref(y_l|x) ) ]

No reward model, no sampling during training, no critic: one model trains, like SFT. As the loop reads:

    1. data       the comparisons the reward model learned from (stage `rm`'s comparisons.json): same prompts, same
                  responses, same labeler, same train / held-out split; all C(K,2) pairs of a prompt together
    2. reference  log π_ref(y|x) of every response, once, with the SFT policy before its first step (π_ref = π_SFT)
    3. update     the loss on batches of prompts (`losses.dpo_loss`: DPO, conservative DPO or IPO)
    4. measure    the implicit reward's accuracy on the held-out comparisons (`comparisons.pair_metrics`, the number
                  the reward model reports), and how the log-probs of the chosen and the rejected answers move
    5. save       stage `dpo` (and its eval.json on the held-out prompts)

    cfg = DPOConfig()                 # or panel.value
    metrics = run(cfg)                # writes artifacts/dpo/ (and artifacts/dpo/eval.json)
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from . import stages
from .comparisons import SAVED, Comparison, ComparisonData, from_json, pair_metrics, ranking_pairs
from .config import fixed, knob, validate
from .data import check_stage_fields
from .lora import check_one_process, save_merged, special_tokens, trainable, with_lora
from .losses import dpo_loss, implicit_reward
from .models import load_causal_lm
from .reward_model import encode
from .rl import logprobs_from_logits
from .sft import Example, collate, loss_positions
from .tokenizer import render_prompt
from .training import LOCAL, Parallel, adamw, ensure_finite, save_stage, stage_info, warmup_cosine_lr


@dataclass(frozen=True, kw_only=True)
class DPOConfig:
    """DPO hyperparameters (lesson 07)."""
    loss: str = knob("sigmoid", choices=("sigmoid", "cdpo", "ipo"),
                     help="DPO (Rafailov et al.), conservative DPO (label smoothing) or IPO (Azar et al.)")
    beta: float = knob(0.3, lo=0.01, hi=2.0, step=0.01,
                       help="β: strength of the pull toward the reference (TRL's reproduction: 0.1; here 0.3 gave "
                            "the most gold of 0.03–1: benchmarks/frontier.json)")
    label_smoothing: float = knob(0.0, lo=0.0, hi=0.45, step=0.05,
                                  help="ε: cdpo's probability that a label is flipped (0 with the other losses)")
    lr: float = knob(1e-4, lo=1e-7, hi=1e-2, log=True, help="peak AdamW learning rate, cosine decay to 10 %")
    epochs: int = knob(1, lo=1, hi=20, help="passes over the training prompts")
    prompts_per_batch: int = knob(8, lo=1, hi=64,
                                  help="prompts per optimizer step; each brings all C(K,2) of its pairs")
    n_prompts: int = knob(0, lo=0, hi=3000, step=10,
                          help="training prompts used (0 = all of the reward model's)")
    lora_rank: int = knob(0, lo=0, hi=64, help="LoRA rank r (0 = every weight): train low-rank adapters on the "
                                               "policy with peft, merged into the saved model (lora.py)")
    warmup_steps: int = fixed(4, help="linear learning-rate warm-up steps")
    betas: tuple[float, float] = fixed((0.9, 0.95), help="AdamW β1, β2 (those of the reward model)")
    weight_decay: float = fixed(0.0, help="AdamW weight decay")
    max_grad_norm: float = fixed(1.0, help="gradient-norm clip before each optimizer step")
    eval_every: int = fixed(10, help="optimizer steps between held-out measurements for the curves")
    curve_prompts: int = fixed(40, help="held-out prompts measured for the live curves (the final metrics use all)")
    forward_batch: int = fixed(64, help="responses per forward pass when no gradient is needed")
    evaluate: bool = fixed(True, help="after training, evaluate the saved stage on all held-out prompts")
    seed: int = fixed(0, help="seed for the data order")
    init: str = fixed("sft", help="stage the policy starts from, and the frozen reference π_ref")
    comparisons: str = fixed("rm", help="reward-model stage whose comparisons (and split) DPO learns from")
    out: str = fixed("dpo", help="stage written ('' = do not save)")

    def __post_init__(self):
        validate(self)
        check_stage_fields(self, "init", "comparisons", "out", empty_ok=("out",))
        if self.label_smoothing > 0 and self.loss != "cdpo":
            raise ValueError(f"DPOConfig.label_smoothing = {self.label_smoothing} only applies to loss='cdpo' "
                             f"(loss is {self.loss!r}); set loss='cdpo' or label_smoothing=0")
        if 0 < self.n_prompts < self.prompts_per_batch:
            raise ValueError(f"DPOConfig.n_prompts = {self.n_prompts} is fewer than prompts_per_batch = "
                             f"{self.prompts_per_batch}; raise n_prompts or lower prompts_per_batch")


# ------------------------------------------------------------------------------------------------ 1. data
def comparisons_of(stage: str) -> ComparisonData:
    """The comparisons reward-model stage `stage` learned from (its comparisons.json), checked."""
    path = stages.existing(stage) / SAVED
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: stage '{stage}' was trained before reward-model stages kept "
                                f"their comparisons; train it again (rlhf rm, or move {path.parent} away)")
    fix = f"train stage '{stage}' again (rlhf rm, or move {path.parent} away)"
    return from_json(stages.load_json(path, fix), str(path))          # `existing` has verified the checksums


def examples(tokenizer, comps: list[Comparison]) -> list[Example]:
    """Every response of every comparison as (chat prompt ids, response ids + EOS), prompt by prompt: the tokens
    the policy would have produced, split where the prompt ends."""
    rendered = {c.record["prompt"]: render_prompt(tokenizer, c.record["prompt"], "chat") for c in comps}
    prompt_ids = {p: tokenizer(t, add_special_tokens=False)["input_ids"] for p, t in rendered.items()}
    flat = [(c.record["prompt"], r, c.source) for c in comps for r in c.responses]
    ids = encode(tokenizer, [p for p, _, _ in flat], [r for _, r, _ in flat])
    out = []
    for (p, _, src), x in zip(flat, ids):
        n = len(prompt_ids[p])
        if x[:n] != prompt_ids[p]:                   # the chat template ends in a fixed marker; never split a token
            raise ValueError(f"{src}: the prompt's tokens change when a response follows it; the chat template must "
                             "end the prompt with a special token")
        out.append(Example(x[:n], x[n:], src))
    return out


# ------------------------------------------------------------------------------------------------ 2.–3.
def sequence_logps(model, batch: dict) -> torch.Tensor:
    """log π(y|x) = Σ_t log π(y_t | x, y_<t) over each response's tokens (EOS included): (B, T) batch -> (B,).
    Only the response positions go through the LM head (`sft.loss_positions`, as SFT's loss)."""
    logits, labels, rows = loss_positions(model, batch)                                   # (N, V), (N,), (N,)
    token_logp = logprobs_from_logits(logits, labels)                                     # (N,)
    return token_logp.new_zeros(len(batch["input_ids"])).index_add(0, rows, token_logp)   # (B,)


@torch.no_grad()
def all_logps(model, exs: list[Example], pad_id: int, batch_size: int) -> torch.Tensor:
    """`sequence_logps` of many responses, `batch_size` at a time: (M,)."""
    model.eval()
    return torch.cat([sequence_logps(model, collate(exs[i:i + batch_size], pad_id, mask_prompt=True))
                      for i in range(0, len(exs), batch_size)])


class Pairs:
    """One split's responses, their cached reference log-probs and the ranked pairs of each prompt."""

    def __init__(self, comps: list[Comparison], exs: list[Example], ref_logp: torch.Tensor):
        self.comps, self.exs, self.ref_logp = comps, exs, ref_logp
        self.offsets = [0]
        for c in comps:
            self.offsets.append(self.offsets[-1] + len(c.responses))

    def head(self, n: int) -> Pairs:
        """The first n prompts."""
        end = self.offsets[min(n, len(self.comps))]
        return Pairs(self.comps[:n], self.exs[:end], self.ref_logp[:end])

    def rows(self, which: list[int]) -> list[int]:
        return [k for g in which for k in range(self.offsets[g], self.offsets[g + 1])]

    def loss(self, model, which: list[int], cfg: DPOConfig, pad_id: int):
        """dpo_loss of prompts `which` with the model's log-probs now."""
        rows = self.rows(which)
        logp = sequence_logps(model, collate([self.exs[k] for k in rows], pad_id, mask_prompt=True))  # (M,)
        chosen, rejected, group = ranking_pairs([self.comps[g].ranking for g in which])          # (N,) x3
        return dpo_loss(logp, self.ref_logp[rows], chosen, rejected, group, beta=cfg.beta, loss=cfg.loss,
                        label_smoothing=cfg.label_smoothing)


def references(model, tokenizer, data: ComparisonData, cfg: DPOConfig) -> tuple[Pairs, Pairs]:
    """Phase 2 for the training prompts used and all held-out ones: π_ref = π_SFT, so the reference log-probs are
    the policy's before its first step, computed once (no second model is ever loaded)."""
    out = []
    for comps in (data.train[:cfg.n_prompts or None], data.heldout):
        exs = examples(tokenizer, comps)
        out.append(Pairs(comps, exs, all_logps(model, exs, tokenizer.pad_token_id, cfg.forward_batch)))
    return out[0], out[1]


# ------------------------------------------------------------------------------------------------ 4. measure
@torch.no_grad()
def measure(model, pairs: Pairs, cfg: DPOConfig, pad_id: int) -> dict:
    """On held-out comparisons: the implicit reward's pair accuracy against the labeler and against gold (the reward
    model's `pair_metrics`), and the mean log-ratio log π/π_ref of the labeler's best and worst responses."""
    logp = all_logps(model, pairs.exs, pad_id, cfg.forward_batch)                          # (M,)
    r = implicit_reward(logp, pairs.ref_logp, beta=cfg.beta)                                # (M,)
    per_prompt = [r[a:b].tolist() for a, b in zip(pairs.offsets, pairs.offsets[1:])]
    pm = pair_metrics(pairs.comps, per_prompt)
    best = [a + c.ranking[0] for c, a in zip(pairs.comps, pairs.offsets)]
    worst = [a + c.ranking[-1] for c, a in zip(pairs.comps, pairs.offsets)]
    ratio = logp - pairs.ref_logp                                                           # (M,)
    return {"accuracy": pm["accuracy"], "gold_accuracy": pm["gold_accuracy"],
            "chosen_logratio": ratio[best].mean().item(), "rejected_logratio": ratio[worst].mean().item(),
            "chosen_logp": logp[best].mean().item(), "rejected_logp": logp[worst].mean().item()}


# ------------------------------------------------------------------------------------------------- the loop
def train(cfg: DPOConfig, model, tokenizer, train_pairs: Pairs, curve_pairs: Pairs, on_log=None, *,
          par: Parallel = LOCAL) -> dict:
    """Phases 3–4 on a given policy (trained in place). Returns the history: per `eval_every` steps the training
    loss and accuracy, and the curve prompts' held-out accuracy and log-ratios (`measure`)."""
    pad, n = tokenizer.pad_token_id, len(train_pairs.comps)
    with par.device():
        # 3. the update
        params = list(model.parameters())
        engine = par.engine([model], adamw(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay),
                            clip=[(params, cfg.max_grad_norm)])
        per_epoch = n // cfg.prompts_per_batch if par.even_split else math.ceil(n / cfg.prompts_per_batch)
        total, micro = cfg.epochs * per_epoch, par.micro(cfg.prompts_per_batch)
        gen = torch.Generator().manual_seed(cfg.seed)
        h = {"step": [0], "train_loss": [float("nan")], "train_accuracy": [float("nan")],
             **{k: [v] for k, v in measure(model, curve_pairs, cfg, pad).items()}}
        running, seen, order = [0.0, 0.0], 0, []
        for step in par.progress(range(total), f"DPO ({cfg.loss}, β = {cfg.beta})"):
            if step % per_epoch == 0:
                order = torch.randperm(n, generator=gen, device="cpu").tolist()
            which = par.shard(order[(step % per_epoch) * cfg.prompts_per_batch:][:cfg.prompts_per_batch])
            lr = warmup_cosine_lr(cfg.lr, cfg.warmup_steps, step, total)
            model.train()
            loss_acc = [0.0, 0.0]
            for k in range(par.accum):
                loss, stats = engine(train_pairs.loss, which[k * micro:(k + 1) * micro], cfg, pad)
                engine.step(loss, lr)
                loss_acc = [loss_acc[0] + loss.item() / par.accum, loss_acc[1] + stats["accuracy"].item() / par.accum]
            loss_acc = par.reduce(loss_acc)
            ensure_finite(loss_acc[0], "DPO, phase 3 (update)", step, f"lower lr (now {cfg.lr}) or raise beta")
            running, seen = [running[0] + loss_acc[0], running[1] + loss_acc[1]], seen + 1
            if (step + 1) % cfg.eval_every == 0 or step + 1 == total:
                point = {"step": step + 1, "train_loss": running[0] / seen, "train_accuracy": running[1] / seen,
                         **measure(model, curve_pairs, cfg, pad)}
                for key, value in point.items():
                    h[key].append(value)
                running, seen = [0.0, 0.0], 0
                if on_log is not None:
                    on_log(h)
    return h


# ------------------------------------------------------------------------------------------------- the stage
def fit(cfg: DPOConfig, on_log=None, *, par: Parallel = LOCAL):
    """Phases 1–4 from stage `cfg.init` on the comparisons of stage `cfg.comparisons`: (model, tokenizer, metrics)."""
    t0 = time.time()
    # 1. the comparisons, checked before the policy is loaded
    data = comparisons_of(cfg.comparisons)
    built_from = data.built_with.get("init")
    if built_from != cfg.init:
        raise ValueError(f"stage '{cfg.comparisons}' ranked samples of stage {built_from!r}, not of "
                         f"DPOConfig.init = {cfg.init!r}: DPO's reference must be the policy that wrote them")
    model, tokenizer = load_causal_lm(stages.existing(cfg.init))
    pad = tokenizer.pad_token_id
    t_ref = time.time()
    with par.device():
        train_pairs, held = references(model, tokenizer, data, cfg)                     # 2. once
    if cfg.lora_rank:               # after the reference pass: π_ref is the policy before any adapter
        check_one_process(cfg, par.world)
        model = with_lora(model, cfg.lora_rank, tokens=special_tokens(tokenizer))
    t_train = time.time()
    h = train(cfg, model, tokenizer, train_pairs, held.head(cfg.curve_prompts), on_log, par=par)
    train_s = time.time() - t_train
    with par.device():
        final = measure(model, held, cfg, pad)
    steps = h["step"][-1]
    metrics = {"heldout_accuracy": final["accuracy"], "gold_accuracy": final["gold_accuracy"],
               "chosen_logratio": final["chosen_logratio"], "rejected_logratio": final["rejected_logratio"],
               "final_loss": h["train_loss"][-1], "steps": steps, "n_train_prompts": len(train_pairs.comps),
               "n_heldout_prompts": len(data.heldout), "s_per_step": round(train_s / max(1, steps), 3),
               "reference_s": round(t_train - t_ref, 1), "train_s": round(train_s, 1),
               "wall_s": round(time.time() - t0, 1), "history": h}
    metrics["trainable_params"], metrics["params"] = trainable(model)
    return model, tokenizer, metrics


def run(cfg: DPOConfig, on_log=None, *, par: Parallel = LOCAL) -> dict:
    """Train DPO (`fit`) and save stage `cfg.out` with metrics.json and (if cfg.evaluate) eval.json. Returns the
    metrics."""
    from .evaluation import evaluate_into
    t0 = time.time()
    model, tokenizer, metrics = fit(cfg, on_log, par=par)
    metrics["wall_s"] = round(time.time() - t0, 1)
    if cfg.out:
        save_stage(par, cfg.out, model, tokenizer, stage_info(cfg.out, cfg, [cfg.init, cfg.comparisons]), metrics,
                   write_model=(lambda folder: save_merged(model, folder)) if cfg.lora_rank else None)
        if cfg.evaluate:
            metrics = par.once(lambda: evaluate_into(cfg.out, metrics))
    return metrics


def summary(m: dict) -> str:
    """One line of a finished DPO run's metrics (the command line prints it)."""
    parts = [f"{m['steps']} steps, implicit-reward accuracy {m['heldout_accuracy']:.3f} held out "
             f"(gold {m['gold_accuracy']:.3f}), log π/π_ref chosen {m['chosen_logratio']:+.2f}, "
             f"rejected {m['rejected_logratio']:+.2f}"]
    if "eval_gold_mean" in m:
        parts.append(f"eval gold mean {m['eval_gold_mean']:.3f}")
    return ", ".join(parts) + f", {m['wall_s']} s"
