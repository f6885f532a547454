"""One short SFT, reward-model and PPO pass of a ~100M-parameter LLaMA in bf16 on one CUDA GPU, with rlhf_lib's code.

    python benchmarks/gpu.py                          # CUDA, bf16 autocast, hidden 768 × 12 layers, seq 512
    python benchmarks/gpu.py --device cpu --tiny      # a smoke test of the same code path on the CPU, in seconds

Prints tokens/s, samples/s, peak GPU memory (`torch.cuda.max_memory_allocated`) and an MFU estimate for each stage.
Needs only torch, transformers and this repository (no TRL, no DeepSpeed, nothing downloaded): the model is a random
LLaMA (`LlamaConfig`, vocabulary 32000, tied embeddings) and the data random token ids, since speed does not depend
on what the tokens say. It is not part of the test command. Finishes in well under 3 minutes on an H100.

What runs is rlhf_lib's code wherever it is tensor-level:

* SFT: `sft.collate` + `sft.batch_loss` (masked LM loss, LM head on response tokens only), AdamW, clipping.
* Reward model: `reward_model.rewards_of` (length-sorted chunks) + `reward.batch_loss` (InstructGPT's per-prompt
  pairwise loss over all C(K,2) pairs) on a `LlamaForSequenceClassification`.
* PPO: the phases of `rollout.make_memory` — `generate` with the KV cache (the arguments `generation.sample` passes),
  `rollout.response_mask`, `rollout.pack`, the reward model on prompt ⊕ response (`reward_model.score_batch`),
  `rollout.response_logits` for the policy and the reference, `rollout.Critic` (initialised from the reward model),
  `rl.kl_penalized_rewards`, `rl.gae`, `rl.whiten`, `rollout.Memory` — then `ppo.ppo_step` per minibatch. The steps
  not taken from make_memory are the ones that need the course's tokenizer: `generation.sample` renders text prompts,
  and the text round trip (decode, re-tokenize for the reward model); here the prompts are token ids and the reward
  model reads the token ids directly.

rlhf_lib's helpers build index tensors without naming a device, so the script makes the GPU torch's default device.

MFU = model FLOPs per second ÷ the GPU's peak dense bf16 FLOP/s (H100 SXM and H200: 989 TFLOP/s; H100 PCIe: 756;
A100: 312; `--peak-tflops` for others). Model FLOPs follow the 6·N·tokens rule (2·N forward, 4·N backward; attention
and the few small ops left out), counting the LM head only where it runs: N = the transformer body's parameters for
every token, plus the V × H head for the positions whose logits are computed.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
import traceback
from contextlib import nullcontext
from dataclasses import dataclass

import common
import torch

from rlhf_lib import ppo, reward, reward_model, rollout, sft
from rlhf_lib.comparisons import Comparison
from rlhf_lib.generation import SamplingConfig
from rlhf_lib.rl import gae, kl_penalized_rewards, logprobs_from_logits, whiten

EOS, PAD, FIRST = 0, 1, 2                       # special ids of the synthetic vocabulary; ordinary tokens follow
PEAK_BF16_TFLOPS = (("H100 PCIE", 756.0), ("H100 NVL", 835.0), ("GH200", 989.4), ("H200", 989.4), ("H100", 989.4),
                    ("H800", 989.4), ("A100", 312.0), ("L40S", 362.0), ("A10G", 70.0), ("L4", 121.0))


@dataclass(frozen=True)
class Shape:
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab: int
    seq: int


FULL = Shape(hidden=768, layers=12, heads=12, intermediate=2048, vocab=32000, seq=512)
TINY = Shape(hidden=64, layers=2, heads=2, intermediate=128, vocab=512, seq=64)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu (with --tiny, a smoke test)")
    p.add_argument("--tiny", action="store_true", help="a tiny model and few steps: checks the code path in seconds")
    p.add_argument("--steps", type=int, default=12, help="timed SFT and RM steps (after --warmup untimed ones)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps (updates for PPO: 1) before timing")
    p.add_argument("--sft-batch", type=int, default=32, help="sequences of --seq tokens per SFT step")
    p.add_argument("--rm-prompts", type=int, default=8, help="prompts per RM step, each with --rm-k responses")
    p.add_argument("--rm-k", type=int, default=4, help="ranked responses per prompt (InstructGPT: 4..9)")
    p.add_argument("--ppo-batch", type=int, default=64, help="prompts per PPO rollout")
    p.add_argument("--ppo-minibatch", type=int, default=16, help="responses per PPO gradient step")
    p.add_argument("--ppo-updates", type=int, default=3, help="PPO updates, the first untimed")
    p.add_argument("--prompt-len", type=int, default=64, help="prompt tokens (SFT masks them; PPO conditions on them)")
    p.add_argument("--peak-tflops", type=float, default=0.0, help="peak dense bf16 TFLOP/s (0 = from the GPU name)")
    p.add_argument("--fp32", action="store_true", help="no bf16 autocast (the default on the CPU)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    args.shape = TINY if args.tiny else FULL
    if args.tiny:
        args.steps, args.warmup, args.sft_batch, args.rm_prompts = 2, 1, 4, 2
        args.ppo_batch, args.ppo_minibatch, args.ppo_updates, args.prompt_len = 4, 2, 2, 16
    if args.prompt_len >= args.shape.seq:
        p.error(f"--prompt-len must be shorter than the sequence ({args.shape.seq} tokens)")
    if args.ppo_batch % args.ppo_minibatch:
        p.error("--ppo-batch must be a multiple of --ppo-minibatch")
    return args


# ------------------------------------------------------------------------------------------------- set-up
def llama_config(s: Shape):
    from transformers import LlamaConfig
    return LlamaConfig(vocab_size=s.vocab, hidden_size=s.hidden, intermediate_size=s.intermediate,
                       num_hidden_layers=s.layers, num_attention_heads=s.heads, num_key_value_heads=s.heads,
                       max_position_embeddings=s.seq, tie_word_embeddings=True, eos_token_id=EOS, pad_token_id=PAD,
                       bos_token_id=None, num_labels=1)


def causal_lm(s: Shape, seed: int):
    from transformers import LlamaForCausalLM
    torch.manual_seed(seed)
    model = LlamaForCausalLM(llama_config(s))
    model.generation_config.pad_token_id = PAD
    return model


def sequence_classifier(s: Shape, seed: int):
    from transformers import LlamaForSequenceClassification
    torch.manual_seed(seed)
    return LlamaForSequenceClassification(llama_config(s))


def random_ids(n: int, length: int, vocab: int, gen: torch.Generator) -> list[list[int]]:
    return torch.randint(FIRST, vocab, (n, length), generator=gen, device="cpu").tolist()


def body_params(model) -> int:
    """Parameters every token goes through: all but the (tied) token embedding."""
    emb = model.get_input_embeddings().weight.numel()
    return sum(p.numel() for p in model.parameters()) - emb


class Timer:
    """Wall time with the GPU's queue drained at both ends."""

    def __init__(self, device):
        self.cuda = device.type == "cuda"

    def now(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter()


def reset_memory(device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_memory_gib(device) -> float:
    return torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")


# ------------------------------------------------------------------------------------------------- SFT
def bench_sft(args, device, autocast) -> dict:
    s, P, gen = args.shape, args.prompt_len, torch.Generator(device="cpu").manual_seed(args.seed)
    model = causal_lm(s, args.seed).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.0)
    n_body, n_head = body_params(model), s.vocab * s.hidden
    timer, times, tokens, flops = Timer(device), [], [], []
    reset_memory(device)
    for _step in range(args.warmup + args.steps):
        rows = random_ids(args.sft_batch, s.seq, s.vocab, gen)
        batch = [sft.Example(r[:P], r[P:], "synthetic") for r in rows]
        t = timer.now()
        b = sft.collate(batch, PAD, mask_prompt=True)
        with autocast():
            loss, _ = sft.batch_loss(model, b)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        times.append(timer.now() - t)
        n_tok, n_resp = args.sft_batch * s.seq, int(b["loss_mask"][:, 1:].sum())
        tokens.append(n_tok)
        flops.append(6 * n_body * n_tok + 6 * n_head * n_resp)
    w = args.warmup
    sec = sum(times[w:])
    return {"tokens/s": sum(tokens[w:]) / sec, "samples/s": args.sft_batch * args.steps / sec,
            "flop/s": sum(flops[w:]) / sec, "peak_gib": peak_memory_gib(device), "s/step": sec / args.steps,
            "params": sum(p.numel() for p in model.parameters()),
            "what": f"batch {args.sft_batch} × {s.seq} tokens (prompt {P} masked)"}


# ------------------------------------------------------------------------------------------------- reward model
def bench_rm(args, device, autocast) -> dict:
    s, K, gen = args.shape, args.rm_k, torch.Generator(device="cpu").manual_seed(args.seed + 1)
    model = sequence_classifier(s, args.seed).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.0)
    n_body = body_params(model)
    timer, times, tokens, pairs = Timer(device), [], [], []
    reset_memory(device)
    for _step in range(args.warmup + args.steps):
        ids, comps = [], []
        for _ in range(args.rm_prompts):
            prompt = random_ids(1, args.prompt_len, s.vocab, gen)[0]
            ids += [prompt + r for r in random_ids(K, s.seq - args.prompt_len, s.vocab, gen)]
            ranking = torch.randperm(K, generator=gen, device="cpu").tolist()
            comps.append(Comparison(record={}, responses=[""] * K, kinds=[], ranking=ranking, scores=[0.0] * K,
                                    gold=[], second=[], source="synthetic"))
        t = timer.now()
        with autocast():
            rewards = reward_model.rewards_of(model, ids, PAD).float()
        loss, _ = reward.batch_loss(rewards, comps, "pairwise")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        times.append(timer.now() - t)
        tokens.append(len(ids) * s.seq)
        pairs.append(args.rm_prompts * math.comb(K, 2))
    w = args.warmup
    sec = sum(times[w:])
    n_tok = sum(tokens[w:])
    return {"tokens/s": n_tok / sec, "samples/s": sum(pairs[w:]) / sec, "flop/s": 6 * n_body * n_tok / sec,
            "peak_gib": peak_memory_gib(device), "s/step": sec / args.steps,
            "params": sum(p.numel() for p in model.parameters()),
            "what": f"{args.rm_prompts} prompts × K = {K} responses × {s.seq} tokens, "
                    f"{args.rm_prompts * math.comb(K, 2)} pairs per step (samples = pairs)"}


# ------------------------------------------------------------------------------------------------- PPO
def make_memory(policy, ref, critic, rm, prompts, prompt_attn, cfg, beta: float, timings: dict,
                timer) -> rollout.Memory:
    """rollout.make_memory's phases 1–5 on token ids (the reward model reads the ids; no decode / re-tokenize)."""
    t = timer.now()
    sc = cfg.sampling
    with torch.no_grad():
        policy.eval()
        out = policy.generate(input_ids=prompts, attention_mask=prompt_attn, do_sample=sc.temperature > 0,
                              temperature=sc.temperature or None, top_k=sc.top_k or None,
                              top_p=sc.top_p if sc.top_p < 1 else None, max_new_tokens=sc.max_new_tokens,
                              eos_token_id=EOS, pad_token_id=PAD, use_cache=True)      # as generation.sample
        actions = out[:, prompts.shape[1]:]
        mask, ended = rollout.response_mask(actions, EOS)
        actions = torch.where(mask.bool(), actions, PAD)
        timings["generate"] = timer.now() - t
        t = timer.now()
        sequences, attn, prompt_lens = rollout.pack(prompts, prompt_attn, actions, mask, PAD)
        scores = reward_model.score_batch(rm, {"input_ids": sequences, "attention_mask": attn}).float()
        scores = torch.where(ended, scores, torch.full_like(scores, cfg.no_eos_penalty))
        timings["score"] = timer.now() - t
        t = timer.now()
        T = actions.shape[1]
        critic.eval()
        logp = logprobs_from_logits(rollout.response_logits(policy, sequences, attn, prompt_lens, T, sc.temperature)
                                    .float(), actions)
        ref_logp = logprobs_from_logits(rollout.response_logits(ref, sequences, attn, prompt_lens, T, sc.temperature)
                                        .float(), actions)
        values = critic(sequences, attn, prompt_lens, T).float()
        timings["forward"] = timer.now() - t
        rewards = kl_penalized_rewards(scores, logp, ref_logp, mask, beta=beta)
        adv, returns = gae(rewards, values, mask, gamma=cfg.gamma, lam=cfg.lam)
        adv = whiten(adv, mask)
    B = len(actions)
    return rollout.Memory(sequences=sequences, attention_mask=attn, prompt_lens=prompt_lens, actions=actions,
                          mask=mask, logp=logp, ref_logp=ref_logp, values=values, scores=scores, rewards=rewards,
                          adv=adv, returns=returns, ended=ended, records=[{}] * B, texts=[""] * B)


def bench_ppo(args, device, autocast) -> dict:
    s, P, gen = args.shape, args.prompt_len, torch.Generator(device="cpu").manual_seed(args.seed + 2)
    T = s.seq - P
    cfg = ppo.PPOConfig(batch_size=args.ppo_batch, minibatch_size=args.ppo_minibatch, ppo_epochs=1,
                        sampling=SamplingConfig(max_new_tokens=T), out="", evaluate=False)
    policy = causal_lm(s, args.seed)
    policy.generation_config.suppress_tokens = [EOS, PAD]          # responses of exactly T tokens: fixed shapes
    ref = causal_lm(s, args.seed).eval().requires_grad_(False)
    rm = sequence_classifier(s, args.seed + 1).eval().requires_grad_(False)
    critic = rollout.Critic.from_reward_model(rm, {"gain": 1.0, "bias": 0.0})
    params = list(policy.parameters()) + list(critic.parameters())
    policy_ids = {id(p) for p in policy.parameters()}
    critic_only = [p for p in params if id(p) not in policy_ids]
    opt = torch.optim.Adam(params, lr=cfg.lr, eps=1e-5)
    n_body, n_head, B = body_params(policy), s.vocab * s.hidden, args.ppo_batch
    L = s.seq
    # model FLOPs of one update: generation (prefill + T decode steps), four no-grad forwards, one training pass
    gen_flops = 2 * n_body * B * (P + T) + 2 * n_head * B * T
    fwd_flops = 2 * (2 * (n_body * B * L + n_head * B * T)) + 2 * (2 * n_body * B * L)    # policy, ref; critic, RM
    upd_flops = 6 * (n_body * B * L + n_head * B * T) + 6 * n_body * B * L                # policy + critic
    timer, rows = Timer(device), []
    reset_memory(device)
    for _update in range(args.ppo_updates):
        prompts = torch.tensor(random_ids(B, P, s.vocab, gen))
        prompt_attn = torch.ones_like(prompts)
        timings = {}
        t0 = timer.now()
        with autocast():
            mem = make_memory(policy, ref, critic, rm, prompts, prompt_attn, cfg, cfg.beta, timings, timer)
            t = timer.now()
            policy.train(), critic.train()
            for start in range(0, B, cfg.minibatch_size):
                mb = mem[torch.randperm(B)[start:start + cfg.minibatch_size]]
                loss, _ = ppo.ppo_step(policy, critic, mb, cfg)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(list(policy.parameters()), cfg.max_grad_norm)
                torch.nn.utils.clip_grad_norm_(critic_only, cfg.max_grad_norm)
                opt.step()
        timings["update"] = timer.now() - t
        timings["total"] = timer.now() - t0
        rows.append(timings)
        if int(mem.mask.sum()) != B * T:
            raise RuntimeError("a response ended early although EOS is suppressed; shapes are not fixed")
    timed = rows[1:] or rows
    sec = sum(r["total"] for r in timed) / len(timed)
    phases = {k: sum(r[k] for r in timed) / len(timed) for k in ("generate", "score", "forward", "update")}
    return {"tokens/s": B * L / sec, "samples/s": B / sec, "flop/s": (gen_flops + fwd_flops + upd_flops) / sec,
            "peak_gib": peak_memory_gib(device), "s/step": sec, "phases": phases,
            "gen_tokens/s": B * T / phases["generate"],
            "params": sum(p.numel() for p in policy.parameters()),
            "what": f"batch {B} prompts of {P} tokens, responses of exactly {T} tokens, minibatch "
                    f"{cfg.minibatch_size}, 1 epoch; 4 models (policy, reference, reward model, critic)"}


# ------------------------------------------------------------------------------------------------- report
def peak_flops(args, device) -> tuple[float | None, str]:
    if args.peak_tflops:
        return args.peak_tflops * 1e12, f"{args.peak_tflops:g} TFLOP/s (given)"
    if device.type != "cuda":
        return None, "n/a on the CPU"
    name = torch.cuda.get_device_name(device).upper()
    for key, tflops in PEAK_BF16_TFLOPS:
        if key in name:
            return tflops * 1e12, f"{tflops:g} TFLOP/s dense bf16 ({key})"
    return None, f"unknown for {name}: pass --peak-tflops"


def main(argv=None):
    args = parse_args(argv)
    common.quiet(with_datasets=False)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("benchmarks/gpu.py: no CUDA device is available (torch.cuda.is_available() is False). It measures "
                 "bf16 training on one NVIDIA GPU; to check its code path on this machine run "
                 "`python benchmarks/gpu.py --device cpu --tiny`.")
    use_bf16 = device.type == "cuda" and not args.fp32
    torch.set_default_device(device)               # rlhf_lib's helpers create index tensors on the default device
    torch.backends.cuda.matmul.allow_tf32 = True

    def autocast():
        return torch.autocast(device.type, dtype=torch.bfloat16) if use_bf16 else nullcontext()

    peak, peak_note = peak_flops(args, device)
    t_start = time.perf_counter()
    results, failed = {}, []
    for name, fn in (("SFT", bench_sft), ("reward model", bench_rm), ("PPO", bench_ppo)):
        print(f"{name} …", flush=True)
        t = time.perf_counter()
        try:
            results[name] = fn(args, device, autocast)
        except Exception:                          # report the other stages all the same
            traceback.print_exc()
            failed.append(name)
            continue
        print(f"  done in {time.perf_counter() - t:.1f} s", flush=True)
    s = args.shape
    n_params = sum(p.numel() for p in causal_lm(s, 0).parameters())
    print()
    print(f"### rlhf_lib on {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}: "
          f"{n_params / 1e6:.1f}M-parameter LLaMA, {'bf16 autocast' if use_bf16 else 'fp32'}")
    print()
    rows = []
    for name, r in results.items():
        mfu = f"{100 * r['flop/s'] / peak:.1f} %" if peak else "n/a"
        mem = f"{r['peak_gib']:.2f}" if device.type == "cuda" else "n/a"
        rows.append([name, f"{r['tokens/s']:,.0f}", f"{r['samples/s']:,.1f}", f"{r['s/step']:.3f}", mem,
                     f"{r['flop/s'] / 1e12:.3g}", mfu, r["what"]])
    print(common.table(["stage", "tokens/s", "samples/s", "s per step (PPO: update)", "peak memory GiB",
                        "model TFLOP/s", "MFU", "shape"], rows))
    if "PPO" in results:
        ph, total = results["PPO"]["phases"], results["PPO"]["s/step"]
        print()
        print("PPO update by phase: " + ", ".join(f"{k} {v:.2f} s ({100 * v / total:.0f} %)" for k, v in ph.items())
              + f"; generation {results['PPO']['gen_tokens/s']:,.0f} new tokens/s.")
    print()
    print(f"- model: LlamaConfig hidden {s.hidden}, {s.layers} layers, {s.heads} heads, intermediate "
          f"{s.intermediate}, vocabulary {s.vocab} (tied), sequences of {s.seq} tokens; random init, random tokens")
    print("- samples: SFT demonstrations, RM ranked pairs, PPO prompt-response episodes. tokens/s counts every "
          "token of prompt ⊕ response the models read (PPO: per update, all phases)")
    print(f"- MFU: model FLOPs (6·N per trained token, 2·N per forward token, N = body + LM head where it runs, "
          f"attention left out) ÷ peak {peak_note}")
    for line in common.machine_lines():
        print(line)
    print(f"- total wall time {time.perf_counter() - t_start:.0f} s")
    print(f"- command: `{common.command_line()}`")
    if failed:
        sys.exit(f"failed: {', '.join(failed)} (traceback above)")


if __name__ == "__main__":
    main()
