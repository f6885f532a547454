"""SFT tokens/s and reward-model pairs/s: rlhf_lib against TRL's SFTTrainer and RewardTrainer.

    python benchmarks/sft_rm.py                      # or: make bench-sft-rm (creates .venv-bench first)
    python benchmarks/sft_rm.py --rounds 1 --sft-steps 4 --rm-steps 4      # a quick check that it runs

Both sides train the same model (same weights) on the same examples with the same batch size, sequence limit,
optimizer (AdamW, gradient clipping at 1.0, constant learning rate) and number of steps, in fp32 on the CPU, in one
process, alternating runs (ours, TRL, ours, TRL …). Each run is one pass over the same fixed subset of the data, so
both sides see exactly the same examples, only in another order; the first `--warmup` steps of every run are not
timed. Throughput counts the real (non-padding) tokens each step fed the model.

* SFT: `data/sft_chat.jsonl`, loss on the response only (our `mask_prompt=True`; TRL's `completion_only_loss` on a
  prompt-completion dataset whose prompt is the same chat-template text). The model is `artifacts/base`.
* Reward model: `data/comparisons.jsonl` (K = 4..9 ranked responses per prompt). Ours takes `--rm-prompts` prompts per
  step and scores each response once for all of its K − 1 comparisons (InstructGPT's batching); TRL takes
  (chosen, rejected) pairs and scores both sides of every pair. TRL's batch is the mean number of pairs in one of our
  steps, and it runs over exactly the same pairs. The model is `artifacts/sft` with a fresh linear head.

This is a benchmark that prints figures, not a test: nothing is asserted about speed.
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
from itertools import combinations

import common  # first: it sets the offline environment before transformers is imported
import torch

from rlhf_lib import reward, reward_model, sft, stages
from rlhf_lib.comparisons import Comparison
from rlhf_lib.data import COMPARISON, read_jsonl
from rlhf_lib.models import load_causal_lm
from rlhf_lib.tokenizer import render_prompt


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5, help="alternating runs of each side (median over them)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps at the start of every run")
    p.add_argument("--max-len", type=int, default=256, help="longest prompt + response in tokens (both sides)")
    p.add_argument("--lr", type=float, default=1e-4, help="learning rate (constant; it does not change the speed)")
    p.add_argument("--sft-batch", type=int, default=32, help="demonstrations per SFT step (SFTConfig default: 32)")
    p.add_argument("--sft-steps", type=int, default=20, help="SFT steps per run, warm-up included")
    p.add_argument("--rm-prompts", type=int, default=4, help="prompts per RM step, ours (RMConfig default: 4)")
    p.add_argument("--rm-steps", type=int, default=12, help="RM steps per run, warm-up included")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    p.add_argument("--only", choices=("sft", "rm"), help="run one of the two benchmarks")
    args = p.parse_args(argv)
    if min(args.sft_steps, args.rm_steps) <= args.warmup:
        p.error("--sft-steps and --rm-steps must be larger than --warmup")
    return args


def import_trl():
    try:
        import trl
        from transformers import PrinterCallback, TrainerCallback
    except ImportError as e:  # the course environment has no TRL
        sys.exit(f"benchmarks/sft_rm.py needs TRL ({e}). Run it in the benchmark environment: make bench-setup, "
                 "then .venv-bench/bin/python benchmarks/sft_rm.py (or simply: make bench-sft-rm)")
    return trl, TrainerCallback, PrinterCallback


def trl_common(args, out_dir: str) -> dict:
    """TrainingArguments both TRL trainers share: the same optimizer and schedule as ours, on the CPU, no extras.
    TRL's own defaults differ in two ways that change speed: gradient checkpointing (on) and bf16 (on)."""
    return dict(output_dir=out_dir, learning_rate=args.lr, lr_scheduler_type="constant", warmup_steps=0,
                optim="adamw_torch", adam_beta1=0.9, adam_beta2=0.95, weight_decay=0.0, max_grad_norm=1.0,
                gradient_accumulation_steps=1, gradient_checkpointing=False, use_cpu=True, bf16=False, fp16=False,
                logging_strategy="no", save_strategy="no", eval_strategy="no", report_to="none", disable_tqdm=True,
                dataloader_num_workers=0, seed=0, max_length=args.max_len)


def clock_callback(TrainerCallback, clock: common.StepClock, work_of):
    """A TrainerCallback that stamps every step end; `work_of(trainer)` is the cumulative work count."""
    class Clock(TrainerCallback):
        trainer = None
        done = 0.0
        checkpointing = None

        def on_train_begin(self, args, state, control, model=None, **kw):
            self.checkpointing = bool(getattr(model, "is_gradient_checkpointing", False))
            clock.start()

        def on_step_end(self, args, state, control, **kw):
            total = work_of(self.trainer)
            clock.step(total - self.done)
            self.done = total
    return Clock()


def total_tokens(trainer) -> float:
    if not hasattr(trainer, "_total_train_tokens"):
        raise RuntimeError("this TRL version does not count training tokens (_total_train_tokens); pin trl==1.16.0")
    return float(trainer._total_train_tokens)


# ------------------------------------------------------------------------------------------------- SFT
def sft_bench(args, trl, TrainerCallback, PrinterCallback):
    from datasets import Dataset
    model_dir, origin = common.causal_lm_dir("base")
    template, tok = load_causal_lm(model_dir)
    demos = sft.load_demos(sft.SFTConfig(use_alpaca=False, use_chat=True))
    n = args.sft_batch * args.sft_steps
    if n > len(demos):
        sys.exit(f"--sft-batch × --sft-steps = {n} is more than the {len(demos)} chat demonstrations")
    pick = torch.randperm(len(demos), generator=torch.Generator().manual_seed(0))[:n].tolist()
    demos = [demos[i] for i in pick]
    examples = sft.tokenize_demos(demos, tok, args.max_len)
    ours_tokens = sum(len(e.prompt_ids) + len(e.response_ids) for e in examples)
    data = Dataset.from_list([{"prompt": tok.apply_chat_template(msgs[:-1], tokenize=False, add_generation_prompt=True),
                               "completion": response} for _, _, msgs, response in demos])
    pad = tok.pad_token_id

    def ours():
        model = common.fresh(template).train()
        opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.0)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(1)).tolist()
        clock = common.StepClock(args.warmup)
        clock.start()
        for s in range(args.sft_steps):                       # sft.run's step, without held-out evaluation
            b = sft.collate([examples[i] for i in order[s * args.sft_batch:(s + 1) * args.sft_batch]], pad, True)
            loss, _ = sft.batch_loss(model, b)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            loss.item()
            clock.step(float(b["attention_mask"].sum()))
        sec, tokens, steps = clock.timed()
        return {"tokens_per_s": tokens / sec, "s_per_step": sec / steps}

    checks = {}

    def theirs():
        clock = common.StepClock(args.warmup)
        cb = clock_callback(TrainerCallback, clock, total_tokens)
        with tempfile.TemporaryDirectory() as out:
            cfg = trl.SFTConfig(**trl_common(args, out), per_device_train_batch_size=args.sft_batch,
                                max_steps=args.sft_steps, packing=False, completion_only_loss=True)
            trainer = trl.SFTTrainer(model=common.fresh(template), args=cfg, train_dataset=data,
                                     processing_class=tok, callbacks=[cb])
            cb.trainer = trainer
            trainer.remove_callback(PrinterCallback)
            checks["trl_tokens"] = sum(len(x) for x in trainer.train_dataset["input_ids"])
            trainer.train()
            checks["checkpointing"] = cb.checkpointing
        sec, tokens, steps = clock.timed()
        return {"tokens_per_s": tokens / sec, "s_per_step": sec / steps}

    print(f"SFT: {n} demonstrations, batch {args.sft_batch}, {args.sft_steps} steps per run "
          f"({args.warmup} untimed), model {origin}", flush=True)
    res = common.alternate({"rlhf_lib": ours, "TRL": theirs}, args.rounds)
    same = checks.get("trl_tokens") == ours_tokens
    note = (f"both sides tokenize the {n} demonstrations into the same {ours_tokens:,} tokens" if same else
            f"tokenization differs: ours {ours_tokens:,} tokens, TRL {checks.get('trl_tokens'):,}")
    if checks.get("checkpointing"):
        note += "; WARNING: TRL ran with gradient checkpointing"
    return res, {"origin": origin, "note": note, "n": n}


# ------------------------------------------------------------------------------------------------- reward model
def rm_bench(args, trl, TrainerCallback, PrinterCallback):
    from datasets import Dataset
    sft_dir, origin = common.causal_lm_dir("sft")
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(sft_dir)
    template = reward_model.build_reward_model(sft_dir, tok)
    records = read_jsonl(stages.DATA_DIR / "comparisons.jsonl", COMPARISON)
    n = args.rm_prompts * args.rm_steps
    pick = torch.randperm(len(records), generator=torch.Generator().manual_seed(0)).tolist()
    comps, ids = [], []
    for i in pick:                                            # the first n comparisons that fit in --max-len
        r = records[i]
        x = reward_model.encode(tok, [r["prompt"]] * len(r["responses"]), r["responses"])
        if max(map(len, x)) > args.max_len:
            continue
        comps.append(Comparison(record=r, responses=r["responses"], kinds=r.get("kinds", []), ranking=r["ranking"],
                                scores=[0.0] * len(x), gold=[], second=[], source=""))
        ids.append(x)
        if len(comps) == n:
            break
    offsets = [0]
    for x in ids:
        offsets.append(offsets[-1] + len(x))
    flat = [s for x in ids for s in x]
    pairs = [{"prompt": render_prompt(tok, c.record["prompt"], "chat"), "chosen": c.responses[c.ranking[a]],
              "rejected": c.responses[c.ranking[b]]}
             for c in comps for a, b in combinations(range(len(c.ranking)), 2)]
    ours_pair_tokens = sum(len(x[c.ranking[a]]) + len(x[c.ranking[b]])
                           for c, x in zip(comps, ids) for a, b in combinations(range(len(c.ranking)), 2))
    trl_batch = round(len(pairs) / args.rm_steps)
    trl_steps = len(pairs) // trl_batch
    data = Dataset.from_list(pairs)
    pad = tok.pad_token_id

    def ours():
        model = common.fresh(template).train()
        opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.0)
        order = torch.randperm(len(comps), generator=torch.Generator().manual_seed(1)).tolist()
        clock, seqs, toks = common.StepClock(args.warmup), [], []
        clock.start()
        for s in range(args.rm_steps):                        # reward.train's step, without held-out evaluation
            which = order[s * args.rm_prompts:(s + 1) * args.rm_prompts]
            idx = [k for g in which for k in range(offsets[g], offsets[g + 1])]
            rewards = reward_model.rewards_of(model, [flat[k] for k in idx], pad)
            loss, _ = reward.batch_loss(rewards, [comps[g] for g in which], "pairwise")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            loss.item()
            clock.step(sum(math.comb(len(comps[g].responses), 2) for g in which))
            seqs.append(len(idx))
            toks.append(sum(len(flat[k]) for k in idx))
        sec, n_pairs, _ = clock.timed()
        w = args.warmup
        return {"pairs_per_s": n_pairs / sec, "seqs_per_s": sum(seqs[w:]) / sec, "tokens_per_s": sum(toks[w:]) / sec}

    checks = {}

    def theirs():
        clock = common.StepClock(args.warmup)
        cb = clock_callback(TrainerCallback, clock, total_tokens)
        with tempfile.TemporaryDirectory() as out:
            cfg = trl.RewardConfig(**trl_common(args, out), per_device_train_batch_size=trl_batch,
                                   max_steps=trl_steps, dataloader_drop_last=True)
            trainer = trl.RewardTrainer(model=common.fresh(template), args=cfg, train_dataset=data,
                                        processing_class=tok, callbacks=[cb])
            cb.trainer = trainer
            trainer.remove_callback(PrinterCallback)
            d = trainer.train_dataset
            checks["trl_tokens"] = sum(map(len, d["chosen_ids"])) + sum(map(len, d["rejected_ids"]))
            trainer.train()
            checks["checkpointing"] = cb.checkpointing
        sec, tokens, steps = clock.timed()
        return {"pairs_per_s": steps * trl_batch / sec, "seqs_per_s": 2 * steps * trl_batch / sec,
                "tokens_per_s": tokens / sec}

    print(f"RM: {len(comps)} prompts, {len(pairs)} ranked pairs; ours {args.rm_prompts} prompts "
          f"(≈ {len(pairs) / args.rm_steps:.1f} pairs) per step for {args.rm_steps} steps, TRL {trl_batch} pairs per "
          f"step for {trl_steps} steps ({args.warmup} untimed each); model {origin} + a fresh linear head", flush=True)
    res = common.alternate({"rlhf_lib": ours, "TRL": theirs}, args.rounds)
    same = checks.get("trl_tokens") == ours_pair_tokens
    note = (f"both sides tokenize every (prompt, response) identically ({ours_pair_tokens:,} tokens over the pairs)"
            if same else f"tokenization differs: ours {ours_pair_tokens:,} tokens over the pairs, "
                         f"TRL {checks.get('trl_tokens'):,}")
    if checks.get("checkpointing"):
        note += "; WARNING: TRL ran with gradient checkpointing"
    mean_k = len(flat) / len(comps)
    return res, {"origin": origin, "note": note, "pairs": len(pairs), "prompts": len(comps), "trl_batch": trl_batch,
                 "trl_steps": trl_steps, "mean_k": mean_k}


# ------------------------------------------------------------------------------------------------- report
def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    common.quiet()
    trl, *callbacks = import_trl()
    rows, notes = [], []
    try:
        if args.only in (None, "sft"):
            res, info = sft_bench(args, trl, *callbacks)
            o = [r["tokens_per_s"] for r in res["rlhf_lib"]]
            t = [r["tokens_per_s"] for r in res["TRL"]]
            rows.append(["SFT tokens/s", common.spread(o), common.spread(t), common.ratio(common.median(o),
                                                                                         common.median(t))])
            so = [r["s_per_step"] for r in res["rlhf_lib"]]
            st = [r["s_per_step"] for r in res["TRL"]]
            rows.append([f"SFT s/step (batch {args.sft_batch})", common.spread(so), common.spread(st),
                         common.ratio(common.median(so), common.median(st))])
            notes.append(f"SFT: {info['n']} chat demonstrations, model {info['origin']}; {info['note']}.")
        if args.only in (None, "rm"):
            res, info = rm_bench(args, trl, *callbacks)
            for key, label in (("pairs_per_s", "RM pairs/s"), ("seqs_per_s", "RM sequences scored/s"),
                               ("tokens_per_s", "RM tokens/s")):
                o = [r[key] for r in res["rlhf_lib"]]
                t = [r[key] for r in res["TRL"]]
                rows.append([label, common.spread(o), common.spread(t), common.ratio(common.median(o),
                                                                                      common.median(t))])
            notes.append(f"RM: {info['prompts']} prompts (mean K = {info['mean_k']:.1f}), {info['pairs']} pairs; ours "
                         f"{args.rm_prompts} prompts per step, TRL {info['trl_batch']} pairs per step for "
                         f"{info['trl_steps']} steps; model {info['origin']} + a fresh linear head; {info['note']}. "
                         "Ours scores each response once for its K − 1 pairs, TRL scores both sides of every pair: "
                         "'sequences scored/s' and 'tokens/s' compare raw model throughput, at "
                         f"{args.rm_prompts * info['mean_k']:.0f} sequences per step (ours) vs "
                         f"{2 * info['trl_batch']} (TRL).")
    finally:
        common.cleanup()
    print()
    print(f"### rlhf_lib vs TRL {trl.__version__}: SFT and reward-model training throughput (CPU, fp32)")
    print()
    print(common.table(["benchmark", "rlhf_lib", f"TRL {trl.__version__}", "ratio (rlhf_lib / TRL)"], rows))
    print()
    print(f"Median (min–max, n runs) over {args.rounds} alternating runs per side; {args.warmup} untimed warm-up "
          f"steps per run; sequences ≤ {args.max_len} tokens; AdamW, clip 1.0, fp32, no gradient checkpointing on "
          "either side. Higher is better except for s/step; a ratio above 1 on a throughput row (below 1 on s/step) "
          "means rlhf_lib is faster.")
    for line in notes:
        print(f"- {line}")
    for line in common.machine_lines(trl):
        print(line)
    print(f"- command: `{common.command_line()}`")


if __name__ == "__main__":
    main()
