"""Try your own prompt (lessons 01, 02, 04, 05): base, SFT and PPO answer it side by side, with the gold score and
the reward model's.

    box = TryPrompt()           # last line of a cell: a text box, an Answer button and the table of answers
    answers("When did the Titanic sink?")      # the same rows, without the widget

Each policy samples one answer with the evaluation's settings (temperature 0.7, 64 new tokens, seed 0: the same prompt
gives the same answers), the base model on the bare prompt as GPT-3 was, the others through the chat template. A stage
that is not trained yet is named with the lesson that trains it.

The gold labeler judges a response against a *task* of the world (its facts, the asked format), so a prompt gets a
gold score only when it is one of the world's requests: any prompt of the data files, a core prompt with a user's
greeting or thanks around it, or one a few letters away from one (same numbers). Other prompts get an answer and the
reward model's score, and the reason there is no gold score: the reward model scores anything, the gold labeler
does not guess.
"""
from __future__ import annotations

import difflib
import functools
import html
import re

from . import stages
from .build_data import task_from_record
from .data import PROMPT, read_jsonl
from .generation import GenerationConfig, generate
from .labelers import judge
from .tasks import WRAP, WRAP_HELDOUT, core_tasks
from .world import SEED_PROMPTS, Task

POLICIES = (("base", "base (lesson 00)"), ("sft", "SFT (lesson 02)"), ("ppo", "PPO (lesson 04)"))
TRAINED_IN = {"base": "lesson 00", "sft": "lesson 02", "rm": "lesson 03", "ppo": "lesson 04", "ppo_ptx": "lesson 04"}
MAX_PROMPT_CHARS = 400                 # the models' context is 256 tokens: prompt and answer must fit
NEAR = 0.9                             # difflib ratio above which a typed prompt is taken for a world's prompt


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


@functools.cache
def _known() -> dict[str, Task]:
    """Every prompt the world knows (core prompts, then the data files' wrapped ones), normalised → its task."""
    known: dict[str, Task] = {}
    for t in core_tasks():
        known.setdefault(_norm(t.prompt), t)
    for name in ("eval_prompts.jsonl", "rl_prompts.jsonl"):
        for rec in read_jsonl(stages.DATA_DIR / name, PROMPT):
            known.setdefault(_norm(rec["prompt"]), task_from_record(rec))
    return known


def _unwrapped(text: str) -> list[str]:
    """The prompt without each user greeting or thanks the world's users put around a request."""
    out = []
    for pre, post in {w for table in (WRAP, WRAP_HELDOUT) for lang in table.values() for w in lang}:
        pre, post = _norm(pre), _norm(post)
        if (pre or post) and text.startswith(pre) and text.endswith(post):
            out.append(_norm(text[len(pre):len(text) - len(post)]))
    return out


def world_task(prompt: str) -> tuple[Task | None, str]:
    """(the world's task behind `prompt`, how it was found) or (None, why there is none)."""
    text, known = _norm(prompt), _known()
    for candidate in (text, *_unwrapped(text)):
        if candidate in known:
            task = known[candidate]
            return task, f"the gold labeler judges it as the world's {task.category.replace('_', ' ')} request"
    numbers = re.findall(r"\d+", text)
    same_numbers = [p for p in known if re.findall(r"\d+", p) == numbers]
    near = difflib.get_close_matches(text, same_numbers, n=1, cutoff=NEAR)
    if near:
        return known[near[0]], f"the gold labeler judges it as the world's prompt “{known[near[0]].prompt}”"
    return None, ("no gold score: the gold labeler judges only the world's requests (its events, people, animals, "
                  "movies and stories); start from one of the examples and change a few words")


@functools.cache
def _policy(stage: str, mtime: float):
    """(model, tokenizer, prompt format) of a trained stage, loaded once per version of its files."""
    model, tok, info = stages.load_model(stage)
    return model, tok, info["prompt_format"]


@functools.cache
def _reward_model(mtime: float):
    from .reward_model import load_reward_model
    return load_reward_model(stages.stage_dir("rm"))


def _mtime(stage: str) -> float:
    return (stages.stage_dir(stage) / "stage.json").stat().st_mtime


EVAL_SAMPLING = GenerationConfig()         # the evaluation's settings (frozen, so one shared instance is safe)


def answers(prompt: str, policies=POLICIES, *, gen: GenerationConfig = EVAL_SAMPLING, seed: int = 0) -> dict:
    """One answer per trained policy, its gold score (when the prompt is the world's) and the reward model's score
    (once lesson 03 has trained it): {"prompt", "task", "note", "rows": [{"policy", "answer", "gold", "rm", ...}]}."""
    prompt = prompt.strip()
    if not prompt:
        raise ValueError("type a prompt first")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise ValueError(f"the prompt has {len(prompt)} characters; keep it under {MAX_PROMPT_CHARS} (the models "
                         "read 256 tokens, prompt and answer together)")
    task, note = world_task(prompt)
    rows = []
    for stage, label in policies:
        if not stages.exists(stage):
            missing = f"not trained yet: {TRAINED_IN.get(stage, stage)}"
            rows.append({"policy": label, "answer": None, "missing": missing})
            continue
        model, tok, fmt = _policy(stage, _mtime(stage))
        sample = generate(model, tok, [prompt], gen, fmt=fmt, seed=seed)[0]
        j = judge(task, sample.response) if task else None
        rows.append({"policy": label, "answer": sample.response, "ended": sample.ended,
                     "gold": None if j is None else round(j.score, 3),
                     "failed": None if j is None else [p for p, v in j.parts.items() if v < 0.5]})
    done = [r for r in rows if r["answer"] is not None]
    if stages.exists("rm") and done:
        from .reward_model import score_texts
        rm, rm_tok, norm = _reward_model(_mtime("rm"))
        for r, s in zip(done, score_texts(rm, rm_tok, [prompt] * len(done), [r["answer"] for r in done], norm)):
            r["rm"] = round(s, 2)
    return {"prompt": prompt, "task": task, "note": note, "rm_note": None if stages.exists("rm") else
            f"no reward-model score: the reward model is not trained yet ({TRAINED_IN['rm']})", "rows": rows}


def answers_html(result: dict) -> str:
    """The answers side by side: one column per policy; the answer, then the gold and reward-model scores."""
    esc = html.escape
    cells, scores = [], []
    for r in result["rows"]:
        if r["answer"] is None:
            cells.append(f"<i>{esc(r['missing'])}</i>")
            scores.append("")
            continue
        text = esc(r["answer"] or "(empty answer)").replace("\n", "<br>")
        cells.append(text + ("" if r["ended"] else " <i>[cut at the length limit]</i>"))
        gold = "—" if r["gold"] is None else f"<b>{r['gold']:.3f}</b>" + (
            f" (fails: {esc(', '.join(r['failed']))})" if r["failed"] else "")
        rm = f"<b>{r['rm']:+.2f}</b>" if "rm" in r else "—"
        scores.append(f"gold score {gold}<br>reward model {rm}")
    td = f"style='text-align:left; vertical-align:top; padding:4px 8px; line-height:1.4; width:{100 // len(cells)}%'"
    head = "".join(f"<th {td}>{esc(r['policy'])}</th>" for r in result["rows"])
    row = lambda xs: "<tr>" + "".join(f"<td {td}>{x}</td>" for x in xs) + "</tr>"   # noqa: E731
    notes = [n for n in (result["note"], result["rm_note"]) if n]
    return (f"<table data-prompt='{esc(result['prompt'], quote=True)}' style='width:100%; table-layout:fixed'>"
            f"<tr>{head}</tr>{row(cells)}{row(scores)}</table>"
            f"<div style='font-size:90%'>{esc('; '.join(notes))}</div>")


class TryPrompt:
    """A text box with the world's example prompts: press Answer (or Enter) to see every policy's answer side by
    side. It shows `prompt`'s answers from the start; it never trains anything."""

    def __init__(self, prompt: str = SEED_PROMPTS[1], policies=POLICIES, examples=SEED_PROMPTS[:6]):
        import ipywidgets as w
        self.policies = policies
        self.text = w.Combobox(value=prompt, options=list(examples), placeholder="type a prompt, or pick an example",
                               ensure_option=False, continuous_update=False,
                               layout=w.Layout(width="44em"), description="prompt", style={"description_width": "4em"})
        self.button = w.Button(description="Answer", button_style="primary", icon="play")
        self.out = w.HTML()
        self.button.on_click(lambda _: self.answer())
        self.text.observe(lambda change: self.answer(), names="value")      # Enter, or an example picked
        self.widget = w.VBox([w.HBox([self.text, self.button]), self.out])
        self.answer()

    def answer(self, prompt: str | None = None) -> dict | None:
        prompt = self.text.value if prompt is None else prompt
        self.out.value = "<i>answering …</i>"
        try:
            result = answers(prompt, self.policies)
        except ValueError as e:
            self.out.value = f"<b>{html.escape(str(e))}</b>"
            return None
        self.out.value = answers_html(result)
        return result

    def _ipython_display_(self):
        from IPython.display import display
        display(self.widget)
