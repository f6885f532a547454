"""Seconds per PPO update: rlhf_lib.ppo against TRL's PPOTrainer and against the floor of bare Hugging Face calls.

    python benchmarks/ppo.py --trl-path .bench/trl-1.12.0        # or: make bench-ppo (creates .venv-bench first)
    python benchmarks/ppo.py --trl-path .bench/trl-1.12.0 --rounds 1 --batch 16 --response-len 16 --updates 2

TRL's PPOTrainer left TRL after 1.12.0 (it lived in `trl.experimental.ppo` there), so this script imports TRL from
`--trl-path`, a folder holding trl==1.12.0 (`make bench-setup` installs it into .bench/trl-1.12.0), ahead of the
TRL 1.16.0 of the benchmark environment.

Three implementations of one PPO update run in one process, in turn (ours, TRL, floor, ours, TRL, floor …), on the
SAME four models: the policy and a frozen reference (both `artifacts/sft`), the frozen reward model (`artifacts/rm`)
and a critic initialised from it (a copy of the reward model; ours folds the RM normalisation into its head, which
costs nothing). Same prompts (`data/rl_prompts.jsonl`, rendered with the chat template; every run goes once through
the same `--batch × --updates` prompts), same rollout batch, response length, sampling (temperature 0.7, no top-k or
top-p), PPO epochs and minibatches, fp32, same threads.

**Fixed response length.** EOS and the pad token are suppressed during sampling on every side (the policy's
`generation_config.suppress_tokens`), so every response is exactly `--response-len` tokens. An early EOS would make
the work depend on what the policy happens to sample; TRL would still generate to the full length while ours trims
the padding, which is a real difference but not one a speed comparison should depend on. The script checks that no
response ended early.

**The floor** is what any PPO update must do, written with bare `transformers` calls and nothing else:
`model.generate` with the same shapes; one no-grad forward of the policy, the reference, the critic and the reward
model on prompt ⊕ response (LM head only on the response positions, `logits_to_keep`); and per minibatch and epoch
one forward + backward of the policy and the critic and an Adam step, with a stand-in loss. Ours over the floor is the
price of everything else (decoding responses for the reward model, GAE, the losses, diagnostics, checks).

The first `--warmup` updates of every run are not timed. This is a benchmark that prints figures, not a test.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import common  # first: it sets the offline environment before transformers is imported
import torch

from rlhf_lib import ppo, rollout, stages
from rlhf_lib.data import PROMPT, read_jsonl
from rlhf_lib.generation import SamplingConfig
from rlhf_lib.models import load_causal_lm
from rlhf_lib.rl import logprobs_from_logits
from rlhf_lib.tokenizer import render_prompt

PHASES = ("generate", "score", "forward", "update")
PHASE_NAMES = {"generate": "1. rollout (`generate`)", "score": "2. score (reward model)",
               "forward": "3. forward passes (policy, reference, critic)",
               "update": "6. update (epochs × minibatches)", "other": "bookkeeping (4–5, 7, diagnostics, checks)"}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trl-path", default=str(common.ROOT / ".bench" / "trl-1.12.0"),
                   help="folder holding trl==1.12.0 (pip install --no-deps --target FOLDER trl==1.12.0)")
    p.add_argument("--rounds", type=int, default=3, help="alternating runs of each implementation")
    p.add_argument("--updates", type=int, default=4, help="PPO updates per run, warm-up included")
    p.add_argument("--warmup", type=int, default=1, help="untimed updates at the start of every run")
    p.add_argument("--batch", type=int, default=64, help="prompts per rollout (PPOConfig default: 64)")
    p.add_argument("--minibatch", type=int, default=8, help="responses per gradient step (PPOConfig default: 8)")
    p.add_argument("--epochs", type=int, default=1, help="PPO epochs per rollout (PPOConfig default: 1)")
    p.add_argument("--response-len", type=int, default=64,
                   help="tokens per response (PPOConfig.sampling.max_new_tokens: 64)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    p.add_argument("--skip-trl", action="store_true", help="time ours and the floor only")
    args = p.parse_args(argv)
    if args.updates <= args.warmup:
        p.error("--updates must be larger than --warmup")
    if args.batch % args.minibatch:
        p.error("--batch must be a multiple of --minibatch (TRL splits a rollout into equal minibatches)")
    return args


def import_trl_ppo(path: str):
    """TRL's PPOTrainer from the trl==1.12.0 in `path`, ahead of any other TRL."""
    if not (Path(path) / "trl").is_dir():
        sys.exit(f"no TRL in {path}: run `make bench-setup` (it installs trl==1.12.0 there), or pass --trl-path, "
                 "or --skip-trl")
    sys.path.insert(0, str(Path(path).resolve()))
    try:
        import trl
        from transformers import PrinterCallback, TrainerCallback
        from trl.experimental.ppo import PPOConfig, PPOTrainer
    except ImportError as e:
        sys.exit(f"cannot import PPOTrainer from {path} ({e}); it needs trl==1.12.0 and the benchmark environment "
                 "(make bench-setup)")
    return trl, PPOConfig, PPOTrainer, TrainerCallback, PrinterCallback


class Setup:
    """The models, prompts and settings every implementation shares."""

    def __init__(self, args):
        self.args = args
        sft_dir, self.origin = common.causal_lm_dir("sft")
        self.policy, self.tok = load_causal_lm(sft_dir)
        self.rm, self.rm_tok, self.norm, self.rm_origin = common.reward_model(sft_dir)
        self.rm.eval().requires_grad_(False)
        self.eos, self.pad = self.tok.eos_token_id, self.tok.pad_token_id
        self.policy.generation_config.suppress_tokens = [self.eos, self.pad]    # fixed-length responses
        records = read_jsonl(stages.DATA_DIR / "rl_prompts.jsonl", PROMPT)
        n = args.batch * args.updates
        pick = torch.randperm(len(records), generator=torch.Generator().manual_seed(0))[:n].tolist()
        self.records = [records[i] for i in pick]
        self.prompt_ids = [self.tok(render_prompt(self.tok, r["prompt"], "chat"), add_special_tokens=False)["input_ids"]
                           for r in self.records]
        self.cfg = ppo.PPOConfig(updates=args.updates, batch_size=args.batch, minibatch_size=args.minibatch,
                                 ppo_epochs=args.epochs, sampling=SamplingConfig(max_new_tokens=args.response_len),
                                 out="", evaluate=False)
        self.n_params = sum(p.numel() for p in self.policy.parameters())
        self.early_eos = {"rlhf_lib": 0, "TRL": 0, "floor": 0}      # responses that stopped before the limit

    def left_padded(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        P = max(map(len, rows))
        ids = torch.full((len(rows), P), self.pad, dtype=torch.long)
        attn = torch.zeros(len(rows), P, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, P - len(r):], attn[i, P - len(r):] = torch.tensor(r), 1
        return ids, attn


# ------------------------------------------------------------------------------------------------- ours
def run_ours(s: Setup) -> dict:
    """rlhf_lib.ppo.train on the shared models; per-update wall time between on_log calls."""
    policy, ref = common.fresh(s.policy), common.fresh(s.policy)
    critic = rollout.Critic.from_reward_model(s.rm, s.norm)
    reward_fn = ppo.reward_model_fn(s.rm, s.rm_tok, s.norm)
    clock = common.StepClock(s.args.warmup)

    def on_log(h):
        clock.step(1)
    clock.start()
    h = ppo.train(s.cfg, policy, ref, critic, s.tok, list(s.records), reward_fn, on_log=on_log)
    sec, n, _ = clock.timed()
    w = s.args.warmup
    phases = {k: statistics.mean(h[f"t_{k}"][w:]) for k in PHASES}
    phases["other"] = sec / n - sum(phases.values())
    s.early_eos["rlhf_lib"] += round(sum(h["eos_rate"]) * s.args.batch)
    return {"s_per_update": sec / n, "phases": phases}


# ------------------------------------------------------------------------------------------------- TRL
def make_run_trl(s: Setup, trl_parts):
    trl, PPOConfig, PPOTrainer, TrainerCallback, PrinterCallback = trl_parts
    from datasets import Dataset
    tok = copy.deepcopy(s.tok)
    tok.padding_side = "left"                                  # TRL's PPO expects left-padded queries
    data = Dataset.from_dict({"input_ids": s.prompt_ids})
    a = s.args

    def run() -> dict:
        clock = common.StepClock(a.warmup)
        eos_seen = []

        class Clock(TrainerCallback):
            def on_train_begin(self, args, state, control, **kw):
                clock.start()

            def on_step_end(self, args, state, control, **kw):
                clock.step(1)

            def on_log(self, args, state, control, logs=None, **kw):
                if logs and "val/num_eos_tokens" in logs:
                    eos_seen.append(logs["val/num_eos_tokens"])

        with tempfile.TemporaryDirectory() as out:
            cfg = PPOConfig(output_dir=out, per_device_train_batch_size=a.batch, gradient_accumulation_steps=1,
                            num_mini_batches=a.batch // a.minibatch, num_ppo_epochs=a.epochs,
                            total_episodes=a.batch * a.updates, response_length=a.response_len,
                            local_rollout_forward_batch_size=a.batch, temperature=s.cfg.sampling.temperature,
                            stop_token=None, missing_eos_penalty=None, kl_coef=s.cfg.beta, cliprange=s.cfg.clip_eps,
                            cliprange_value=s.cfg.vf_clip_eps, vf_coef=s.cfg.vf_coef, gamma=s.cfg.gamma,
                            lam=s.cfg.lam, learning_rate=s.cfg.lr, num_sample_generations=0, report_to="none",
                            save_strategy="no", disable_tqdm=True, use_cpu=True, bf16=False, fp16=False,
                            gradient_checkpointing=False, dataloader_num_workers=0, seed=0)
            value = common.fresh(s.rm).requires_grad_(True)
            trainer = PPOTrainer(args=cfg, processing_class=tok, model=common.fresh(s.policy),
                                 ref_model=common.fresh(s.policy), reward_model=s.rm, value_model=value,
                                 train_dataset=data, eval_dataset=None, callbacks=[Clock()])
            trainer.remove_callback(PrinterCallback)
            trainer.train()
        s.early_eos["TRL"] += int(sum(eos_seen))
        sec, n, _ = clock.timed()
        return {"s_per_update": sec / n}
    return run


# ------------------------------------------------------------------------------------------------- the floor
def run_floor(s: Setup) -> dict:
    """Bare transformers calls with the same shapes: the compute any PPO update needs, and nothing else."""
    a, T, temp = s.args, s.args.response_len, s.cfg.sampling.temperature
    policy, value = common.fresh(s.policy), common.fresh(s.rm).requires_grad_(True)
    ref, rm = s.policy, s.rm                                 # frozen: shared read-only
    opt = torch.optim.Adam(list(policy.parameters()) + list(value.parameters()), lr=s.cfg.lr, eps=1e-5)
    torch.manual_seed(0)
    times = {k: [] for k in PHASES}
    for u in range(a.updates):
        q, q_attn = s.left_padded(s.prompt_ids[u * a.batch:(u + 1) * a.batch])
        P = q.shape[1]
        t = time.perf_counter()
        with torch.no_grad():
            policy.eval()
            seq = policy.generate(input_ids=q, attention_mask=q_attn, do_sample=True, temperature=temp, top_k=None,
                                  top_p=None, max_new_tokens=T, pad_token_id=s.pad, use_cache=True)
            t1 = time.perf_counter()
            attn = torch.cat([q_attn, torch.ones(len(seq), T, dtype=q_attn.dtype)], 1)
            actions = seq[:, P:]
            _ = rm(input_ids=seq, attention_mask=attn).logits
            t2 = time.perf_counter()
            logits = policy(input_ids=seq, attention_mask=attn, logits_to_keep=T + 1).logits[:, :-1]
            old_logp = logprobs_from_logits(logits / temp, actions)
            logits = ref(input_ids=seq, attention_mask=attn, logits_to_keep=T + 1).logits[:, :-1]
            logprobs_from_logits(logits / temp, actions)
            value.score(value.model(input_ids=seq, attention_mask=attn).last_hidden_state[:, P - 1:-1])
            t3 = time.perf_counter()
        policy.train(), value.train()
        for _ in range(a.epochs):
            for mb in torch.randperm(a.batch).split(a.minibatch):
                logits = policy(input_ids=seq[mb], attention_mask=attn[mb], logits_to_keep=T + 1).logits[:, :-1]
                logp = logprobs_from_logits(logits / temp, actions[mb])
                v = value.score(value.model(input_ids=seq[mb], attention_mask=attn[mb]).last_hidden_state[:, P - 1:-1])
                loss = -(logp - old_logp[mb]).exp().mean() + v.square().mean()      # a stand-in loss
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        t4 = time.perf_counter()
        for k, (x, y) in zip(PHASES, ((t, t1), (t1, t2), (t2, t3), (t3, t4))):
            times[k].append(y - x)
        s.early_eos["floor"] += int(((actions == s.eos) | (actions == s.pad)).any(-1).sum())
    w = a.warmup
    phases = {k: statistics.mean(v[w:]) for k, v in times.items()}
    return {"s_per_update": sum(phases.values()), "phases": phases}


# ------------------------------------------------------------------------------------------------- report
def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    common.quiet()
    warnings.filterwarnings("ignore", category=ppo.PPOWarning)   # see the module docstring
    trl_parts = None if args.skip_trl else import_trl_ppo(args.trl_path)
    try:
        s = Setup(args)
        runners = {"rlhf_lib": lambda: run_ours(s)}
        if trl_parts is not None:
            runners["TRL"] = make_run_trl(s, trl_parts)
        runners["floor"] = lambda: run_floor(s)
        print(f"PPO: batch {args.batch}, minibatch {args.minibatch}, {args.epochs} epoch(s), responses of exactly "
              f"{args.response_len} tokens, {args.updates} updates per run ({args.warmup} untimed); policy "
              f"{s.origin} ({s.n_params:,} parameters), reward model {s.rm_origin}", flush=True)
        res = common.alternate(runners, args.rounds)
    finally:
        common.cleanup()
    su = {k: [r["s_per_update"] for r in v] for k, v in res.items()}
    med = {k: common.median(v) for k, v in su.items()}
    sps = {k: [args.batch / x for x in v] for k, v in su.items()}
    trl_name = f"TRL {trl_parts[0].__version__} PPOTrainer" if trl_parts else None

    print()
    print("### PPO update: rlhf_lib vs TRL vs the floor (CPU, fp32)")
    print()
    headers = ["", "rlhf_lib"] + ([trl_name] if trl_name else []) + ["floor (bare transformers)"]
    headers += (["ratio rlhf_lib / TRL"] if trl_name else []) + ["ratio rlhf_lib / floor"]
    rows = []
    for label, data, _better_low in (("s per PPO update", su, True), ("samples/s", sps, False)):
        row = [label, common.spread(data["rlhf_lib"])]
        if trl_name:
            row.append(common.spread(data["TRL"]))
        row.append(common.spread(data["floor"]))
        m = {k: common.median(v) for k, v in data.items()}
        if trl_name:
            row.append(common.ratio(m["rlhf_lib"], m["TRL"]))
        row.append(common.ratio(m["rlhf_lib"], m["floor"]))
        rows.append(row)
    print(common.table(headers, rows))
    print()
    print("Per phase, seconds per update (median over runs):")
    print()
    phase_rows = []
    for k in (*PHASES, "other"):
        ours = common.median([r["phases"][k] for r in res["rlhf_lib"]])
        floor = common.median([r["phases"][k] for r in res["floor"]]) if k in PHASES else 0.0
        phase_rows.append([PHASE_NAMES[k], f"{ours:.3f}", f"{100 * ours / med['rlhf_lib']:.0f} %", f"{floor:.3f}",
                           common.ratio(ours, floor) if floor else "—"])
    print(common.table(["phase", "rlhf_lib s", "share", "floor s", "ratio"], phase_rows))
    print()
    print(f"Median (min–max, n runs) over {args.rounds} alternating runs; {args.updates - args.warmup} timed updates "
          f"per run after {args.warmup} warm-up. Samples/s = rollout batch / seconds per update. A ratio below 1 on "
          "the s row (above 1 on samples/s) means rlhf_lib is faster; an odd number of rounds keeps the two rows "
          "consistent.")
    early = ", ".join(f"{k} {v}" for k, v in s.early_eos.items() if k in res)
    print(f"- settings: batch {args.batch}, minibatch {args.minibatch}, PPO epochs {args.epochs}, responses of exactly "
          f"{args.response_len} tokens (EOS and pad suppressed when sampling, on every side; responses that stopped "
          f"early, all runs: {early}), temperature {s.cfg.sampling.temperature}, top-k and top-p off, fp32")
    print(f"- models: policy and reference {s.origin} ({s.n_params:,} parameters); reward model {s.rm_origin}; "
          "critic = a copy of the reward model")
    for line in common.machine_lines(trl_parts[0] if trl_parts else None):
        print(line)
    print(f"- command: `{common.command_line()}`")


if __name__ == "__main__":
    main()
