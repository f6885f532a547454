"""Lesson 10's views of the compute-optimal sweep (`compute_optimal`, `benchmarks/llama_scaling.json`): held-out loss
against model size at each compute budget, the table of points, and a live point beside its recorded twin."""
from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib.pyplot as plt

from .compute_optimal import chinchilla_n_opt
from .stages import ROOT

RECORD = ROOT / "benchmarks" / "llama_scaling.json"


def load_record(path: str | Path = RECORD) -> dict:
    """The recorded sweep (`python benchmarks/llama_scaling.py` writes it)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `python benchmarks/llama_scaling.py` (about 11 min)")
    return json.loads(path.read_text(encoding="utf-8"))


def budget_label(budget: float) -> str:
    """0.125 -> 'C₀/8'; 0.3 -> '0.3 C₀'."""
    inv = 1 / budget
    return f"C₀/{round(inv)}" if abs(inv - round(inv)) < 1e-9 and inv > 1 else f"{budget:g} C₀"


def same_point(a: dict, b: dict) -> bool:
    return (a["hidden_size"], a["num_layers"]) == (b["hidden_size"], b["num_layers"]) and \
        math.isclose(a["budget"], b["budget"])


def plot_loss_vs_n(record: dict, live: dict | None = None, ax=None):
    """Held-out loss against N (log axis), one line per compute budget, its best size circled; Chinchilla's
    N_opt for each budget (20 tokens per parameter) dotted; lesson 00's base model (at C₀) as a black square and
    `live` (a `train_point` result) as a large star."""
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 4.4))
    budgets = sorted({p["budget"] for p in record["points"]})
    for i, budget in enumerate(budgets):
        pts = sorted((p for p in record["points"] if math.isclose(p["budget"], budget)), key=lambda p: p["n_params"])
        color = f"C{i}"
        ax.plot([p["n_params"] for p in pts], [p["heldout_loss"] for p in pts], "o-", color=color,
                label=f"C = {budget_label(budget)} ({pts[0]['flops']:.2g} FLOPs)")
        best = min(pts, key=lambda p: p["heldout_loss"])
        ax.plot([best["n_params"]], [best["heldout_loss"]], "o", ms=13, mfc="none", mec=color, mew=1.5)
        ax.axvline(chinchilla_n_opt(best["flops"]), color=color, ls=":", lw=1)
    base = record.get("lesson00", {})
    if base.get("heldout_loss") is not None:
        ax.plot([base["n_params"]], [base["heldout_loss"]], "s", color="k", ms=8,
                label=f"lesson 00's base (C₀ = {base['flops']:.2g} FLOPs, batch 32)")
    if live is not None:
        ax.plot([live["n_params"]], [live["heldout_loss"]], "*", ms=16, color="k", mfc="gold", zorder=5,
                label=f"this run ({budget_label(live['budget'])})")
    ax.set_xscale("log")
    ax.set(xlabel="parameters N (log scale)", ylabel="held-out loss (nats/token)",
           title=f"fixed compute C ≈ 6ND (recorded on {record['machine']['cpu']}, seed {record['seed']})")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, title="circled: best size at each C\ndotted: Chinchilla's N_opt (20 tokens/param)",
              title_fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    return ax


def sweep_rows(record: dict) -> list[dict]:
    """One row per recorded point (for `plots.html_table`): budget, shape, N, D, tokens per parameter, held-out
    loss, gold after the short SFT (where measured) and seconds."""
    rows = []
    for p in sorted(record["points"], key=lambda p: (p["budget"], p["n_params"])):
        rows.append({"C": budget_label(p["budget"]), "d × L": f"{p['hidden_size']} × {p['num_layers']}",
                     "N (M)": round(p["n_params"] / 1e6, 3), "D (M tokens)": round(p["tokens"] / 1e6, 3),
                     "D / N": float(f"{p['tokens'] / p['n_params']:.2g}"), "steps": p["steps"],
                     "held-out loss": round(p["heldout_loss"], 3),
                     "gold after SFT": round(p["gold_mean"], 3) if "gold_mean" in p else "",
                     "seconds": round(p["wall_s"] + p.get("sft_eval_wall_s", 0), 1)})
    return rows


def compare_live(live: dict, record: dict) -> list[dict]:
    """The live point beside the recorded one of the same size and budget (rows for `plots.html_table`)."""
    twin = next((p for p in record["points"] if same_point(p, live)), None)
    if twin is None:
        raise ValueError(f"the record has no point d={live['hidden_size']} L={live['num_layers']} at "
                         f"{budget_label(live['budget'])}; pick one of its sizes and budgets")
    return [{"": name, "N": p["n_params"], "D": p["tokens"], "held-out loss": f"{p['heldout_loss']:.6f}",
             "tokens/s": p["tokens_per_s"], "seconds": p["wall_s"]} for name, p in (("recorded", twin),
                                                                                    ("this run", live))] + \
        [{"": "difference", "N": live["n_params"] - twin["n_params"], "D": live["tokens"] - twin["tokens"],
          "held-out loss": f"{live['heldout_loss'] - twin['heldout_loss']:+.2e}", "tokens/s": "", "seconds": ""}]
