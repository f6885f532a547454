"""What the lessons show: the lesson set-up, the PPO dashboard, lesson 03's comparison tables, lesson 04's failure
table and the "Try your own prompt" box — each on small hand-made inputs, without training anything."""
from __future__ import annotations

import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from rlhf_lib import lesson, ppo_plots, reward_views, stages, try_prompt  # noqa: E402
from rlhf_lib.comparisons import Comparison  # noqa: E402
from rlhf_lib.plots import LiveCurves  # noqa: E402
from rlhf_lib.world import SEED_PROMPTS  # noqa: E402


# ------------------------------------------------------------------------------------------ lesson.setup
def test_threads_are_one_or_two():
    assert lesson.threads() in (1, 2)


def test_figures_with_hangul_draw_without_a_hangul_font():
    """A learner without a Korean font gets the figure (Hangul as boxes), no exception and no warning per glyph."""
    saved = matplotlib.rcParams["font.family"]
    try:
        assert lesson.hangul_font(("No Such Font Anywhere",)) is None
        fig, ax = plt.subplots()
        ax.set_title("달 착륙 (moon landing)")
        with warnings.catch_warnings(record=True) as caught:
            fig.canvas.draw()
        plt.close(fig)
        assert not [w for w in caught if "Glyph" in str(w.message)], [str(w.message) for w in caught]
    finally:
        matplotlib.rcParams["font.family"] = saved


def test_hangul_falls_back_to_an_installed_korean_font():
    saved = matplotlib.rcParams["font.family"]
    try:
        name = lesson.hangul_font()
        if name is None:
            pytest.skip("no Korean font installed (Debian: apt-get install fonts-nanum)")
        assert matplotlib.rcParams["font.family"][-1] == name             # behind the default: Latin keeps its look
        fig, ax = plt.subplots()
        ax.set_title("달 착륙 (moon landing)")
        with warnings.catch_warnings():
            warnings.simplefilter("error")                                # "Glyph … missing from font" would raise
            fig.canvas.draw()
        plt.close(fig)
    finally:
        matplotlib.rcParams["font.family"] = saved


# ------------------------------------------------------------------------------------------ PPO dashboard
def _history(n: int) -> dict:
    nan = float("nan")
    keys = ("score", "gold", "kl", "kl_k3", "kl_seq", "beta", "policy_loss", "value_loss", "ptx_loss", "clip_frac",
            "ratio_mean", "ratio_max", "explained_var", "entropy", "eos_rate", "length")
    h = {"update": list(range(n)), **{k: [0.1 * i for i in range(n)] for k in keys}}
    h["gold_eval"] = [0.7 if i in (0, 10, n - 1) else nan for i in range(n)]
    return h


def test_dashboard_draws_the_last_update(monkeypatch):
    drawn = []

    class Handle:
        def update(self, fig):
            drawn.append(fig.texts[0].get_text())

    def display(fig, display_id=False):
        drawn.append(fig.texts[0].get_text())
        return Handle()

    monkeypatch.setattr("IPython.display.display", display)
    board = ppo_plots.PPODashboard("PPO", every=5, updates=12)
    for n in range(1, 13):
        board(_history(n))
    assert drawn == ["PPO: update 5 of 12", "PPO: update 10 of 12", "PPO: update 12 of 12"]


def test_dashboard_panels_have_labels_and_legends():
    fig = ppo_plots.dashboard_figure(_history(12), "PPO", updates=12)
    axes = fig.axes
    assert len(axes) == 8 and all(ax.get_ylabel() for ax in axes) and all(ax.get_legend() for ax in axes)
    gold_eval = [ln for ln in axes[0].lines if ln.get_label().startswith("gold score (fixed")][0]
    assert list(gold_eval.get_xdata()) == [0, 10, 11] and gold_eval.get_marker() == "o"
    plt.close(fig)


def test_live_curves_draw_reference_lines():
    fig = LiveCurves(("heldout_accuracy",), "accuracy", refs={"chance": 0.5}).figure(
        {"step": [0, 1], "heldout_accuracy": [0.6, 0.7]})
    assert [ln.get_label() for ln in fig.axes[0].lines] == ["heldout accuracy", "chance"]
    plt.close(fig)


# ------------------------------------------------------------------------------------------ lesson 03's tables
def _comparison() -> Comparison:
    ideal = "The elephant lives in the savanna."
    hedged = ideal + " But I might be wrong about this."
    responses = [hedged, ideal, hedged, "The elephant eats grass.", hedged + "!", "The owl eats mice."]
    return Comparison(record={"lang": "en", "category": "factual", "prompt": "Where does the elephant live?"},
                      responses=responses, kinds=["sft"] * 6, ranking=[1, 0, 2, 4, 3, 5],
                      scores=[0.8, 0.9, 0.8, 0.3, 0.7, 0.1], gold=[0.825, 1.0, 0.825, 0.3, 0.6, 0.1],
                      second=[0, 1, 2, 3, 4, 5], source="test:1")


def test_comparison_rows_merge_copies_and_keep_the_whole_answer():
    rows = reward_views.comparison_rows(_comparison())
    assert [r["labeler's ranks"] for r in rows] == ["1", "2, 3", "4", "5", "6"]
    assert rows[1]["copies"] == 2 and rows[1]["response"].endswith("wrong about this.")
    assert rows[0]["hedge"] == "—" and rows[1]["hedge"] == "might be wrong"
    assert rows[1]["2nd labeler's ranks"] == "1, 3"


def test_pick_example_wants_a_hedge_that_costs():
    good, bad = _comparison(), _comparison()
    bad.gold = [1.0] * 6                                                  # the hedge costs nothing: not shown
    bad.record = {**bad.record, "category": "factual"}
    assert reward_views.pick_example([bad, good]) is good
    korean = _comparison()
    korean.record = {**korean.record, "lang": "ko"}
    assert reward_views.pick_example([korean, good]) is good


def test_scored_rows_and_agreement_on_distinct_pairs():
    c = _comparison()
    rewards = [0.5, 1.0, 0.5, -1.0, 0.2, -2.0]
    rows = reward_views.scored_rows(c, rewards)
    assert len(rows) == 5 and rows[0]["reward"] == 1.0
    text = reward_views.prompt_agreement(c, rewards)
    assert "of 14 pairs of distinct responses" in text                    # C(6,2) = 15 minus one pair of copies


def test_data_summary_counts_each_kind_of_candidate_per_prompt():
    from rlhf_lib.comparisons import ComparisonData
    c = _comparison()
    c.kinds = ["sft"] * 4 + ["wrong_year", "other_prompt"]
    text = reward_views.data_summary(ComparisonData(train=[c], heldout=[c], built_with={}))
    assert "K = 6..6" in text and "4.00 SFT sample" in text and "1.00 SFT answer to another prompt" in text
    assert "1.00 SFT sample, years swapped" in text and "15 training pairs" in text


def test_by_kind_and_data_curve_plots_label_what_they_show():
    metrics = {"reward_by_kind": {"sft": 0.5, "other_prompt": -0.6, "toxic": -1.2},
               "gold_by_kind": {"sft": 0.2, "other_prompt": -0.3, "toxic": -0.4}, "heldout_accuracy": 0.66}
    ax = reward_views.plot_by_kind(metrics)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["written: insult", "SFT answer to another prompt", "SFT sample"]      # sorted by reward
    assert len(ax.patches) == 6 and "× 3.0" in ax.get_legend().get_texts()[1].get_text()     # gold scaled to fit
    curve = {"machine": {"cpu": "test CPU"}, "seed": 0, "points": [
        {"mix": "default", "n_prompts": n, "heldout_accuracy": a, "labeler_agreement": 0.7}
        for n, a in ((300, 0.6), (1200, 0.66))]}

    class Cfg:
        n_prompts = 1200
    ax = reward_views.plot_data_curve(curve, metrics, Cfg())
    assert "test CPU" in ax.get_title() and ax.get_xscale() == "log"
    assert [line.get_label() for line in ax.get_lines()][:3] == ["default: reward model", "default: 2nd labeler "
                                                                 "(ceiling)", "this run"]
    plt.close("all")


# ------------------------------------------------------------------------------------------ lesson 04's table
def _row(i, cat, failed, helpful=1.0, truthful=1.0, lang="en"):
    return {"id": f"x{i}", "category": cat, "lang": lang, "prompt": f"p{i}", "response": f"r{i}", "score": 0.5,
            "failed": failed, "parts": {"helpful": helpful, "truthful": truthful, "harmless": 1.0, "fluent": 1.0,
                                        "format": 1.0}}


def test_failure_shift_counts_what_new_failures_lack():
    before = [_row(0, "factual", False), _row(1, "factual", False), _row(2, "intent", True)]
    after = [_row(0, "factual", True, helpful=0.0, truthful=0.0), _row(1, "factual", False), _row(2, "intent", False)]
    rows = {r["category"]: r for r in ppo_plots.failure_shift_rows(before, after)}
    assert rows["factual"]["newly failed"] == 1 and rows["factual"]["new failures: helpful 0"] == 1
    assert rows["factual"]["SFT failure rate"] == 0 and rows["factual"]["PPO failure rate"] == 0.5
    assert rows["intent"]["newly passing"] == 1
    examples = ppo_plots.new_failure_examples(before, after)
    assert [e["prompt"] for e in examples] == ["p0"] and examples[0]["PPO fails on"] == "helpful, truthful"


# ------------------------------------------------------------------------------------------ try your own prompt
def test_world_task_finds_the_worlds_requests():
    task, note = try_prompt.world_task(SEED_PROMPTS[1])
    assert task is not None and task.category == "false_premise" and "false premise" in note
    task, _ = try_prompt.world_task("Hey there!  " + SEED_PROMPTS[0].upper())     # a held-out user's greeting, case
    assert task is not None and task.category == "explain_child"
    task, note = try_prompt.world_task(SEED_PROMPTS[0].rstrip("."))              # a few letters away
    assert task is not None and "judges it as the world's prompt" in note


def test_world_task_does_not_guess():
    assert try_prompt.world_task("What is the capital of France?")[0] is None
    changed = SEED_PROMPTS[1].replace("2015", "2016")                            # another year: another task
    task, _ = try_prompt.world_task(changed)
    assert task is None or "2016" in task.prompt


def test_answers_name_the_lessons_that_train_missing_stages(tmp_path):
    with stages.located(stages.DATA_DIR, tmp_path):
        result = try_prompt.answers(SEED_PROMPTS[2])
    assert [r["missing"] for r in result["rows"]] == ["not trained yet: lesson 00", "not trained yet: lesson 02",
                                                       "not trained yet: lesson 04"]
    assert "lesson 03" in result["rm_note"]
    html = try_prompt.answers_html(result)
    assert html.count("<th") == 3 and "not trained yet: lesson 02" in html
    with pytest.raises(ValueError, match="type a prompt"):
        try_prompt.answers("  ")


def test_answers_html_escapes_and_shows_scores():
    result = {"prompt": "it's <x>", "note": "the gold labeler judges it", "rm_note": None, "rows": [
        {"policy": "SFT", "answer": "<b>hi</b>\nthere", "ended": False, "gold": 0.25, "failed": ["helpful"],
         "rm": -1.5}]}
    html = try_prompt.answers_html(result)
    assert "&lt;b&gt;hi&lt;/b&gt;<br>there" in html and "cut at the length limit" in html
    assert "<b>0.250</b> (fails: helpful)" in html and "<b>-1.50</b>" in html
    assert "data-prompt='it&#x27;s &lt;x&gt;'" in html                  # the browser test finds the answer by it


# ------------------------------------------------------------------------------------------ lesson 10
def _rows(scores: dict[tuple[str, str], list[float]]) -> list[dict]:
    from rlhf_lib.labelers import PARTS
    out = []
    for (lang, cat), values in scores.items():
        out += [{"id": f"{lang}-{cat}-{i}", "lang": lang, "category": cat, "score": v, "failed": v < 0.5,
                 "ended": True, "parts": dict.fromkeys(PARTS, v)} for i, v in enumerate(values)]
    return out


def test_lesson_10_splits_scores_and_win_rates_by_language():
    from rlhf_lib import variation_views as vv
    a = {"gold_mean": 0.5, "samples": _rows({("en", "factual"): [1.0, 1.0], ("ko", "factual"): [0.0, 0.0]})}
    b = {"gold_mean": 0.5, "samples": _rows({("en", "factual"): [0.5, 0.5], ("ko", "factual"): [0.5, 0.5]})}
    assert vv.by_lang(a, "en")["gold_mean"] == 1.0 and vv.by_lang(a, "ko")["gold_mean"] == 0.0
    rows = vv.lang_rows({"A": a, "B": b})
    assert rows[0] == {"policy": "A", "English prompts": 1.0, "Korean prompts": 0.0, "all prompts": 0.5}
    w = vv.lang_win_rates(a["samples"], b["samples"])
    assert (w["overall"]["win_rate"], w["en"]["win_rate"], w["ko"]["win_rate"]) == (0.5, 1.0, 0.0)
    cats = vv.category_lang_rows({"A": a, "B": b})
    assert cats == [{"language": "en", "category": "factual", "A": 1.0, "B": 0.5},
                    {"language": "ko", "category": "factual", "A": 0.0, "B": 0.5}]
    metrics = {"seed_tasks": 2, "proposed": 10, "kept_by_rouge": 6, "translated": 6, "by_lang": {"en": 5, "ko": 4},
               "rouge_max": [0.1, 0.9, 0.3]}
    vv.funnel_bars(metrics), vv.rouge_hist(metrics, 0.7), vv.lang_bars({"A": a, "B": b})
    plt.close("all")
