"""Lesson 09's figures and tables: the applications measured per policy (`app_eval`)."""
from __future__ import annotations

import matplotlib.pyplot as plt

LABELS = {"base": "base", "sft": "SFT", "ppo": "PPO", "app_sft": "PPO + app SFT", "sql_rl": "+ SQL GRPO"}
BARS = (("intent_accuracy", "intent"), ("rewrite_accuracy", "rewrite"), ("retrieval_hit_rewritten", "retrieval"),
        ("exec_first", "SQL @1"), ("exec_last", "SQL after repairs"), ("success", "end-to-end"))


def _value(r: dict, key: str) -> float:
    if key == "exec_first":
        return r["exec_accuracy"][0]
    if key == "exec_last":
        return r["exec_accuracy"][-1]
    return r[key]


def policy_rows(m: dict) -> list[dict]:
    """One row per measured policy: every headline number of `app_eval.measure`."""
    rows = []
    for name, r in m["policies"].items():
        rows.append({"policy": LABELS.get(name, name), "intent": r["intent_accuracy"],
                     "rewrite": r["rewrite_accuracy"], "hit raw": r["retrieval_hit_raw"],
                     "hit rewritten": r["retrieval_hit_rewritten"],
                     **{f"SQL @{k + 1}": a for k, a in enumerate(r["exec_accuracy"])},
                     "SQL, RL questions": r["exec_accuracy_rl_prompts"],
                     "success": r["success"], "seconds": r["seconds"]})
    return rows


def print_rows(rows: list[dict]) -> None:
    """The rows as an aligned text table."""
    keys = list(rows[0])
    width = {k: max(len(k), *(len(f"{r[k]:.3f}" if isinstance(r[k], float) else str(r[k])) for r in rows))
             for k in keys}
    print("  ".join(k.ljust(width[k]) for k in keys))
    for r in rows:
        print("  ".join((f"{r[k]:.3f}" if isinstance(r[k], float) else str(r[k])).ljust(width[k]) for k in keys))


def sql_failures(r: dict) -> dict:
    """How one policy's held-out SQL went wrong: first attempts that raised an error or returned nothing (the repair
    loop sees them) against those that ran and returned the wrong rows (it cannot), and the repairs that worked."""
    tried = r["samples"]["sql"]
    n = len(tried)
    right = r["exec_accuracy"]
    flagged = sum(bool(s["errors"][0]) for s in tried)
    return {"questions": n, "right at attempt 1": round(right[0] * n), "failed visibly (error, no rows)": flagged,
            "ran with wrong rows": n - round(right[0] * n) - flagged,
            "fixed by the repairs": round((right[-1] - right[0]) * n)}


def plot_policies(m: dict, ax=None):
    """Grouped bars: each headline number (x) for each policy (colour)."""
    names = list(m["policies"])
    ax = ax or plt.subplots(figsize=(10, 3.6))[1]
    w = 0.8 / len(names)
    for j, name in enumerate(names):
        r = m["policies"][name]
        ax.bar([i + j * w for i in range(len(BARS))], [_value(r, k) for k, _ in BARS], w,
               label=LABELS.get(name, name))
    ax.set_xticks([i + 0.4 - w / 2 for i in range(len(BARS))], [lab for _, lab in BARS])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("share of held-out cases")
    ax.legend(fontsize=8, ncol=len(names))
    ax.set_title("The applications, per policy (held-out dialogues and SQL questions)")
    return ax


def plot_repairs(m: dict, ax=None):
    """Execution accuracy after attempt 1, 2, … (each repair round sends SQLite's error back to the model)."""
    ax = ax or plt.subplots(figsize=(4.5, 3.4))[1]
    for name, r in m["policies"].items():
        acc = r["exec_accuracy"]
        ax.plot(range(1, len(acc) + 1), acc, marker="o", label=LABELS.get(name, name))
    ax.set_xlabel("attempt (1 = before any repair)")
    ax.set_ylabel("execution accuracy")
    ax.set_xticks(range(1, len(next(iter(m["policies"].values()))["exec_accuracy"]) + 1))
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=8)
    ax.set_title("Text-to-SQL with error feedback")
    return ax


def plot_retrieval(m: dict, ax=None):
    """Retrieval hit rate on the turns that depend on the history, with the raw turn and with the rewrite."""
    names = list(m["policies"])
    ax = ax or plt.subplots(figsize=(4.5, 3.4))[1]
    raw = [m["policies"][n]["retrieval_hit_raw"] for n in names]
    new = [m["policies"][n]["retrieval_hit_rewritten"] for n in names]
    xs = range(len(names))
    ax.bar([x - 0.2 for x in xs], raw, 0.4, label="raw turn")
    ax.bar([x + 0.2 for x in xs], new, 0.4, label="rewritten query")
    ax.set_xticks(list(xs), [LABELS.get(n, n) for n in names], rotation=20, fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("first film retrieved is the right one")
    ax.legend(fontsize=8)
    ax.set_title("Rewrite, then retrieve")
    return ax
