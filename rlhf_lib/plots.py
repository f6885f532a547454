"""Plots and tables for the lessons (all lessons). Matplotlib figures are shown as PNG.

`LiveCurves` is the `on_log` callback every trainer accepts: it redraws the loss curves in place while training runs
in JupyterLab, and leaves one final figure in the notebook.
"""
from __future__ import annotations

import html

import matplotlib.pyplot as plt

from .world import CATEGORIES


class LiveCurves:
    """Redraw `history[key]` against `history['step']` for each key, in place, at every call; `refs` are labelled
    horizontal lines, e.g. {"chance": 0.5}."""

    def __init__(self, keys: tuple[str, ...], title: str, ylabel: str = "loss", logy: bool = False,
                 refs: dict[str, float] | None = None):
        self.keys, self.title, self.ylabel, self.logy, self.refs = keys, title, ylabel, logy, dict(refs or {})
        self.handle = None

    def figure(self, history: dict):
        fig, ax = plt.subplots(figsize=(6.5, 3.4))
        for k in self.keys:
            pts = [(s, v) for s, v in zip(history["step"], history[k]) if v == v]   # skip NaN placeholders
            if pts:
                ax.plot(*zip(*pts), marker=".", label=k.replace("_", " "))
        for label, y in self.refs.items():
            ax.axhline(y, color="grey", ls=":", lw=1.2, label=label)
        ax.set(xlabel="optimizer step", ylabel=self.ylabel, title=self.title)
        if self.logy:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        return fig

    def __call__(self, history: dict) -> None:
        self.handle = redraw(self.handle, self.figure(history))


def redraw(handle, fig):
    """Show `fig` in the notebook, in place of the figure `handle` showed (a new output when None); returns the
    handle. The figure is closed, so only the displayed image remains."""
    from IPython.display import display
    if handle is None:
        handle = display(fig, display_id=True)
    else:
        handle.update(fig)
    plt.close(fig)
    return handle


class UpdateDashboard:
    """`on_log` callback of an RL loop: redraws `self.figure(history)` in place every `every` updates and at the last
    one (give `updates`, the run's number of updates, so the final figure shows the end of training). Subclasses
    define `figure`."""

    def __init__(self, title: str, every: int = 1, updates: int | None = None):
        self.title, self.every, self.updates, self.handle = title, every, updates, None

    def figure(self, h: dict):
        raise NotImplementedError("a dashboard subclass draws its own figure")

    def __call__(self, h: dict) -> None:
        done = len(h["update"])
        if done % self.every and done != self.updates:
            return
        self.handle = redraw(self.handle, self.figure(h))


def category_bars(results: dict[str, dict], metric: str = "gold_mean", title: str | None = None, ax=None):
    """Grouped bars: one group per category, one bar per policy (`results[name]` is an eval summary)."""
    names = list(results)
    cats = [c for c in CATEGORIES if all(c in results[n]["per_category"] for n in names)]
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 3.4))
    width = 0.8 / len(names)
    for i, n in enumerate(names):
        vals = [results[n]["per_category"][c][metric] for c in cats]
        ax.bar([j + i * width for j in range(len(cats))], vals, width, label=f"{n} ({results[n][metric]:.2f} overall)")
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(cats))], [c.replace("_", "\n") for c in cats], fontsize=8)
    ax.set(ylabel=metric.replace("_", " "), ylim=(0, 1.05), title=title or metric.replace("_", " "))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def html_table(rows: list[dict], columns: list[str] | None = None, max_chars: int = 160):
    """A small HTML table (keeps line breaks, shortens long cells) for samples and metrics."""
    from IPython.display import HTML
    columns = columns or list(rows[0])

    def cell(v):
        if isinstance(v, float):
            v = f"{v:.3f}"
        s = str(v)
        s = s if len(s) <= max_chars else s[:max_chars] + " …"
        return html.escape(s).replace("\n", "<br>")
    head = "".join(f"<th style='text-align:left'>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td style='text-align:left'>{cell(r.get(c, ''))}</td>" for c in columns) + "</tr>"
                   for r in rows)
    return HTML(f"<table><tr>{head}</tr>{body}</table>")
