"""glibc's allocator with and without `memory.keep_freed_memory()`: seconds per training step, system time, peak memory.

Each run is a fresh Python (glibc's settings are per process) that trains the course's base model (or a same-shaped
random one) on random token ids at pretraining's shape, batch 32 × 128 tokens, AdamW: 3 warm-up steps, then
`--steps` timed ones. The two kinds of run alternate round by round, so a change in the machine's load hits both.

    python benchmarks/memory.py                  # 3 rounds of 15 steps each (≈ 2 min on 2 cores)
    python benchmarks/memory.py --rounds 5 --threads 1
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.common import causal_lm_dir, command_line, machine_lines, spread, table  # noqa: E402
from rlhf_lib.memory import ENV  # noqa: E402

# One run: prints a JSON line with its seconds per step, system CPU seconds and peak resident memory.
RUN = textwrap.dedent("""
    import json, resource, sys, time
    folder, steps, threads, keep = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "keep"
    if keep:
        from rlhf_lib.memory import keep_freed_memory
        assert keep_freed_memory()
    import torch
    from rlhf_lib.models import load_causal_lm
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = load_causal_lm(folder)[0]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids = torch.randint(0, model.config.vocab_size, (32, 128))
    def step():
        model(input_ids=ids, labels=ids).loss.backward()
        opt.step()
        opt.zero_grad()
    for _ in range(3):
        step()
    sys0, t = resource.getrusage(resource.RUSAGE_SELF).ru_stime, time.perf_counter()
    for _ in range(steps):
        step()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"s_per_step": (time.perf_counter() - t) / steps, "sys_s": usage.ru_stime - sys0,
                      "peak_mib": usage.ru_maxrss / 1024}))
""")


def one_run(folder: Path, steps: int, threads: int, keep: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ENV}        # glibc's defaults unless `keep`
    env["OMP_WAIT_POLICY"] = "PASSIVE"
    out = subprocess.run([sys.executable, "-c", RUN, str(folder), str(steps), str(threads),
                          "keep" if keep else "default"], capture_output=True, text=True, env=env, check=True,
                         cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=15, help="timed steps per run (after 3 warm-up steps)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    folder, origin = causal_lm_dir("base")
    runs = {"glibc defaults": [], "keep_freed_memory()": []}
    for r in range(args.rounds):
        for name in runs:
            runs[name].append(one_run(folder, args.steps, args.threads, keep=name != "glibc defaults"))
            print(f"  round {r + 1}/{args.rounds}: {name} {runs[name][-1]['s_per_step']:.3f} s/step", flush=True)
    rows = [[name, spread([x["s_per_step"] for x in rs]), spread([x["sys_s"] for x in rs]),
             spread([x["peak_mib"] for x in rs], digits=4)] for name, rs in runs.items()]
    print(f"\nmodel: {origin}; batch 32 × 128 tokens, AdamW, {args.steps} timed steps a run, {args.rounds} rounds\n")
    print(table(["allocator", "s per step", f"system CPU s over {args.steps} steps", "peak RSS MiB"], rows))
    print("\n".join(["", *machine_lines(), f"- command: {command_line()}"]))


if __name__ == "__main__":
    main()
