"""What RLHF costs in memory, and how DeepSpeed's ZeRO divides it (lesson 06).

PPO keeps four models: the actor π_θ and the critic V (trained), the reference π_SFT and the reward model r_φ
(frozen). Training with Adam in mixed precision costs 16 bytes per parameter (Rajbhandari et al., 2020): 16-bit
weights (2) and gradients (2), plus an fp32 copy of the weights and Adam's two moments (4 + 4 + 4 = 12). A frozen
model in 16 bits costs 2. In fp32 (the course on a CPU) a trained model costs 4 + 4 + 8 = 16 and a frozen one 4.
These are *model states* only; activations, the KV cache and buffers come on top.

With N data-parallel GPUs, ZeRO partitions what every GPU would otherwise repeat (Ψ parameters, K = 12):

    stage 0  (2 + 2 + K) Ψ            everything replicated
    stage 1  (2 + 2) Ψ + K Ψ / N      optimizer states partitioned
    stage 2  2 Ψ + (2 + K) Ψ / N      … and gradients
    stage 3  (2 + 2 + K) Ψ / N        … and the weights themselves

DeepSpeed's own estimators (`estimate_zero2_model_states_mem_needs`, `estimate_zero3_model_states_mem_needs`) also
count an fp32 copy of the gradients and the largest layer, gathered whole under ZeRO-3.
"""
from __future__ import annotations

import os

import torch

ROLES = (("actor", "policy", True), ("critic", "reward", True), ("reference", "policy", False),
         ("reward model", "reward", False))
BYTES = {"bf16": {"weights": 2, "gradients": 2, "optimizer": 12, "frozen": 2},      # mixed precision (GPU)
         "fp32": {"weights": 4, "gradients": 4, "optimizer": 8, "frozen": 4}}        # the course on a CPU
STAGES = ("ZeRO-0", "ZeRO-1", "ZeRO-2", "ZeRO-3", "ZeRO-3 + offload")


def llama_7b_config():
    """LLaMA-7B's shape (Touvron et al., 2023): 32 layers, d_model 4096, SwiGLU width 11008, 32k vocabulary."""
    from transformers import LlamaConfig
    return LlamaConfig(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                       num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=2048,
                       tie_word_embeddings=False)


def count_params(config) -> tuple[int, int]:
    """(parameters, parameters of the largest single module) of the causal LM that `config` describes, counted on
    PyTorch's meta device: no memory is allocated, so counting a 7B model is free."""
    from transformers import AutoModelForCausalLM
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    unique = {id(p): p.numel() for p in model.parameters()}                  # tied embeddings count once
    largest = max(sum(p.numel() for p in m.parameters(recurse=False)) for m in model.modules())
    return sum(unique.values()), largest


def rlhf_memory(n_policy: int, n_reward: int, precision: str = "bf16") -> list[dict]:
    """Bytes of model states of PPO's four models, one row each: actor and critic trained with Adam, reference and
    reward model frozen. The critic has the reward model's size (InstructGPT initialises it from the RM)."""
    b = BYTES[precision]
    rows = []
    for role, like, trained in ROLES:
        n = n_policy if like == "policy" else n_reward
        parts = ({k: n * b[k] for k in ("weights", "gradients", "optimizer")} if trained
                 else {"weights": n * b["frozen"], "gradients": 0, "optimizer": 0})
        rows.append({"model": role, "trained": trained, "parameters": n, **parts, "total": sum(parts.values())})
    return rows


def zero_memory(n_policy: int, n_reward: int, largest_layer: int, n_gpus: int) -> list[dict]:
    """Model-state bytes per GPU on `n_gpus` data-parallel GPUs, one row per ZeRO stage (mixed precision):

    - `one model`: the actor alone, by the ZeRO paper's count;
    - `deepspeed`: DeepSpeed's estimator for the actor (stages 2 and 3, and ZeRO-3 with the optimizer states and
      weights offloaded to CPU memory; None where DeepSpeed has none);
    - `rlhf`: PPO's four models (actor and critic trained; reference and reward model frozen in 16 bits, partitioned
      too under ZeRO-3, not offloaded)."""
    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs
    from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

    def paper(n: int, stage: int) -> float:
        return {0: 16 * n, 1: 4 * n + 12 * n / n_gpus, 2: 2 * n + 14 * n / n_gpus, 3: 16 * n / n_gpus}[stage]

    ds = {2: estimate_zero2_model_states_mem_needs(n_policy, n_gpus, cpu_offload=False)[1],
          3: estimate_zero3_model_states_mem_needs(n_policy, largest_layer, n_gpus, cpu_offload=False,
                                                   cpu_offload_params=False)[1],
          4: estimate_zero3_model_states_mem_needs(n_policy, largest_layer, n_gpus, cpu_offload=True,
                                                   cpu_offload_params=True)[1]}
    frozen = 2 * (n_policy + n_reward)
    rows = []
    for stage, name in enumerate(STAGES):
        if stage < 4:
            one, trained = paper(n_policy, stage), paper(n_policy, stage) + paper(n_reward, stage)
            rlhf = trained + (frozen / n_gpus if stage == 3 else frozen)
        else:                                  # offload: on the GPU only the layer being computed, and activations
            one = ds[4]
            rlhf = 2 * ds[4] + frozen / n_gpus
        rows.append({"stage": name, "one model": one, "deepspeed": ds.get(stage), "rlhf": rlhf})
    return rows


def human(n_bytes: float | None) -> str:
    """1.23 GB, 45.6 MB … (decimal units, as GPU memory is sold)."""
    if n_bytes is None:
        return "—"
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.3g} {unit}"
    return f"{n_bytes:.0f} B"


def plot_rlhf_memory(results: dict[str, list[dict]]):
    """Stacked bars per model (weights, gradients, optimizer states), one panel per `results` entry."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(results), figsize=(4.6 * len(results), 3.4))
    for ax, (name, rows) in zip(list(getattr(axes, "flat", [axes])), results.items()):
        scale, unit = (1e9, "GB") if max(r["total"] for r in rows) > 1e9 else (1e6, "MB")
        bottom = [0.0] * len(rows)
        for part, color in (("weights", "tab:blue"), ("gradients", "tab:orange"), ("optimizer", "tab:green")):
            vals = [r[part] / scale for r in rows]
            ax.bar([r["model"] for r in rows], vals, bottom=bottom, label=part, color=color)
            bottom = [b + v for b, v in zip(bottom, vals)]
        total = sum(r["total"] for r in rows)
        ax.set(ylabel=unit, title=f"{name}: {human(total)} of model states")
        ax.tick_params(axis="x", labelsize=8)
        ax.grid(axis="y", alpha=0.3)
    axes_list = list(getattr(axes, "flat", [axes]))
    axes_list[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_zero_memory(results: dict[str, list[dict]], gpu_bytes: float = 80e9):
    """Bars per ZeRO stage: one trained model (paper count, DeepSpeed's estimate as a black mark) and PPO's four
    models, per GPU; a dashed line at one GPU's memory. One panel per `results` entry (log scale)."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter
    fig, axes = plt.subplots(1, len(results), figsize=(5.2 * len(results), 3.6))
    for ax, (name, rows) in zip(list(getattr(axes, "flat", [axes])), results.items()):
        xs = range(len(rows))
        ax.bar([x - 0.2 for x in xs], [r["one model"] for r in rows], 0.4, label="actor alone")
        ax.bar([x + 0.2 for x in xs], [r["rlhf"] for r in rows], 0.4, label="PPO's four models")
        marks = [(x - 0.2, r["deepspeed"]) for x, r in zip(xs, rows) if r["deepspeed"] is not None]
        ax.plot(*zip(*marks), "k_", markersize=18, mew=2, label="DeepSpeed's estimate (actor)")
        for x, r in zip(xs, rows):
            ax.text(x + 0.2, r["rlhf"] * 1.15, human(r["rlhf"]), ha="center", fontsize=7)
        if gpu_bytes and max(r["rlhf"] for r in rows) > gpu_bytes / 10:
            ax.axhline(gpu_bytes, color="grey", ls="--", lw=1, label=f"one {human(gpu_bytes)} GPU")
        ax.set_yscale("log")
        ax.set_ylim(top=max(r["rlhf"] for r in rows) * 12)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: human(v)))
        ax.set_xticks(list(xs), [r["stage"].replace(" + ", "\n+ ") for r in rows], fontsize=8)
        ax.set(ylabel="model states per GPU", title=name)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7, loc="upper right", ncol=2)
    fig.tight_layout()
    return fig


def plot_two_runs(one: dict, many: dict, labels: tuple[str, str], key: str = "heldout_loss"):
    """`history[key]` against the step for two runs (e.g. one process and two), on one axis."""
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    ax.plot(one["step"], one[key], "o-", lw=3, alpha=0.4, label=labels[0])
    ax.plot(many["step"], many[key], "x--", color="k", label=labels[1])
    ax.set(xlabel="optimizer step", ylabel=key.replace("_", " "), title="the same training, one or two processes")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig
