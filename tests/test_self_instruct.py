"""Self-instruct (lesson 10): the ROUGE-L filter, the output checks, the translation, the stage it writes, and the
student's loader. The teacher is scripted here; lesson 10 runs the real one."""
from __future__ import annotations

import random

import pytest

from rlhf_lib import alpaca, self_instruct, stages
from rlhf_lib.data import DataError
from rlhf_lib.generation import Sample
from rlhf_lib.world import Task


def lcs_f1(a: list[str], b: list[str]) -> float:
    """ROUGE-L F1 from its definition: an independent longest-common-subsequence table."""
    if not a or not b:
        return 0.0
    t = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            t[i + 1][j + 1] = t[i][j] + 1 if x == y else max(t[i][j + 1], t[i + 1][j])
    lcs = t[-1][-1]
    if lcs == 0:
        return 0.0
    p, r = lcs / len(b), lcs / len(a)
    return 2 * p * r / (p + r)


def test_rouge_l_matches_the_definition_and_reads_hangul():
    rng = random.Random(0)
    words = ["the", "moon", "달", "착륙", "a", "child", "아이에게", "explain"]
    scorer = self_instruct.rouge_scorer()
    for _ in range(200):
        a = [rng.choice(words) for _ in range(rng.randint(1, 9))]
        b = [rng.choice(words) for _ in range(rng.randint(1, 9))]
        assert self_instruct.rouge_l(" ".join(a), " ".join(b), scorer) == pytest.approx(lcs_f1(a, b))
    assert self_instruct.rouge_l("달 착륙을 아이에게 설명해 줘", "달 착륙을 아이에게 설명해 줘") == 1.0
    assert self_instruct.rouge_l("달 착륙", "moon landing") == 0.0


def test_the_filter_keeps_an_instruction_only_if_it_is_new_in_its_family():
    seeds = {"factual": ["When did Yuri Gagarin fly to space?"]}
    cands = [("factual", "When did Yuri Gagarin fly to space?"),            # a seed: dropped
             ("factual", "Where does the panda live?"),                     # new: kept
             ("factual", "Where does the panda live, please?"),             # near the one just kept: dropped
             ("story", "Where does the panda live?")]                       # another family: kept
    keep, best = self_instruct.novel(cands, seeds, 0.7)
    assert keep == [False, True, False, True]
    assert best[0] == 1.0 and best[1] < 0.7 <= best[2] and best[3] == 0.0
    keep_all, _ = self_instruct.novel(cands, seeds, 1.01)                  # threshold above 1 keeps duplicates too
    assert keep_all == [True] * 4


def test_the_bounded_filter_gives_what_comparing_every_pair_gives():
    cands = [(t.category, t.prompt) for t in self_instruct.propose(160, seed=1)]
    seeds = {"factual": ["Where does the panda live?"], "story": ["Write a short story about the moon and the stars"]}
    keep, best = self_instruct.novel(cands, seeds, 0.7)
    scorer, pool, ref_keep, ref_best = self_instruct.rouge_scorer(), {f: list(v) for f, v in seeds.items()}, [], []
    for family, text in cands:                                   # the plain filter: every pair through rouge_score
        top = max((self_instruct.rouge_l(text, k, scorer) for k in pool.get(family, [])), default=0.0)
        ref_keep.append(top < 0.7)
        ref_best.append(round(top, 4))
        if top < 0.7:
            pool.setdefault(family, []).append(text)
    assert keep == ref_keep and best == ref_best and 0 < sum(keep) < len(keep)


def _task(lang="en", category="factual", prompt="Where does the panda live?"):
    return Task(id="t", category=category, lang=lang, instruction=prompt, meta={"animal": "panda", "ask": "home"})


@pytest.mark.parametrize("output, ended, task, why", [
    ("Pandas live in the bamboo forests of China.", True, _task(), None),
    ("Pandas live in the bamboo forests of", False, _task(), "cut at the length limit"),
    ("   ", True, _task(), "empty"),
    ("the panda the panda the panda the panda the panda the panda", True, _task(), "repeats itself"),
    ("Where does the panda live?", True, _task(), "echoes the instruction"),
    ("Pandas live in China.", True, _task("ko", prompt="판다는 어디에 살아?"), "wrong language"),
    ("판다는 중국에 살아요.", True, _task("ko", prompt="판다는 어디에 살아?"), None),
    ("search", True, _task("ko", "intent", "이 문장은 어느 범주야?"), None),     # labels are English in both
])
def test_invalid_outputs_are_named(output, ended, task, why):
    assert self_instruct.invalid(task, output, ended, 0.2, self_instruct.rouge_scorer()) == why


def test_proposals_are_training_requests_and_translations_keep_the_facts():
    tasks = self_instruct.propose(64, seed=0)
    assert tasks == self_instruct.propose(64, seed=0) and all(t.lang == "en" for t in tasks)
    assert len({t.category for t in tasks}) == 8
    eval_prompts = {r["prompt"] for r in self_instruct_eval_prompts()}
    assert not eval_prompts & {t.prompt for t in tasks}
    ko = self_instruct.translate(tasks, seed=0)
    assert [t.category for t in ko] == [t.category for t in tasks] and all(t.lang == "ko" for t in ko)
    same = [k.meta == t.meta for k, t in zip(ko, tasks) if t.category in ("factual", "explain_child", "describe")]
    assert same and all(same)


def self_instruct_eval_prompts():
    from rlhf_lib.evaluation import eval_prompts
    return eval_prompts()


def scripted_teacher(tasks, cfg, model, tokenizer, fmt):
    """Korean tasks get a Korean answer, every fifth task an answer cut at the length limit."""
    return [Sample(t.prompt, "답은 이렇습니다." if t.lang == "ko" else "Here is the answer.", i % 5 != 0, 4)
            for i, t in enumerate(tasks)]


def test_the_stage_holds_alpaca_records_and_the_student_reads_them(artifacts, monkeypatch):
    monkeypatch.setattr(stages, "load_model", lambda name: (None, None, {"prompt_format": "chat"}))
    monkeypatch.setattr(self_instruct, "answer", scripted_teacher)
    m = self_instruct.run(self_instruct.SelfInstructConfig(instructions=80))
    assert m["answered"] == m["kept_by_rouge"] + m["translated"] and m["translated"] == m["kept_by_rouge"]
    assert m["dropped"] == {"cut at the length limit": (m["answered"] + 4) // 5}
    assert m["demonstrations"] == m["answered"] - m["dropped"]["cut at the length limit"]
    demos = self_instruct.demonstrations()
    assert len(demos) == m["demonstrations"] and {"instruction", "input", "output"} <= set(demos[0])
    en = alpaca.load_teacher_demos(alpaca.AlpacaConfig())
    both = alpaca.load_teacher_demos(alpaca.AlpacaConfig(langs="en,ko"))
    assert len(en) == m["by_lang"]["en"] and len(both) == m["demonstrations"]
    path, line, messages, output = both[-1]
    assert path.endswith(self_instruct.DATA_FILE) and messages[-1] == {"role": "assistant", "content": output}


def test_a_student_without_its_language_and_a_teacher_with_no_valid_output_are_clear_errors(artifacts, monkeypatch):
    monkeypatch.setattr(stages, "load_model", lambda name: (None, None, {"prompt_format": "chat"}))
    monkeypatch.setattr(self_instruct, "answer", scripted_teacher)
    self_instruct.run(self_instruct.SelfInstructConfig(instructions=32, translate=False))
    with pytest.raises(DataError, match="no demonstration in ko.*translate=true"):
        alpaca.load_teacher_demos(alpaca.AlpacaConfig(langs="ko"))
    monkeypatch.setattr(self_instruct, "answer", lambda tasks, *a: [Sample(t.prompt, "", True, 0) for t in tasks])
    with pytest.raises(ValueError, match="wrote no valid output.*'empty'"):
        self_instruct.run(self_instruct.SelfInstructConfig(instructions=32, out="other"))
    assert not stages.exists("other")


def test_configs_refuse_bad_settings():
    with pytest.raises(ValueError, match="rouge_threshold"):
        self_instruct.SelfInstructConfig(rouge_threshold=1.5)
    with pytest.raises(ValueError, match="teacher"):
        self_instruct.SelfInstructConfig(teacher="../ppo")
    with pytest.raises(ValueError, match="langs"):
        alpaca.AlpacaConfig(langs="fr")
