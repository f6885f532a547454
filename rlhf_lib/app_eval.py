"""Measuring the applications per policy (lesson 09) → `artifacts/apps/metrics.json`.

For each policy stage (base, SFT, PPO, the app-tuned policy, the SQL-RL policy) on the held-out data of
`data/apps/`, with greedy decoding through `serving.LocalChat` (the same answers the HTTP server gives):

* **intent accuracy** of the router on the held-out dialogues' last turns;
* **rewrite accuracy** (the self-contained query equals the gold one) on the turns that depend on a history, and
  the **retrieval hit rate** of the retriever's first film with the raw turn and with the model's rewrite on those
  of them that are about one film ("the above", "that one"; not "older than that", which names a genre and a year);
* **execution accuracy** of text-to-SQL on the held-out questions at attempt 1 and after each repair round (as
  DIN-SQL and Self-Debugging report it): the share whose rows equal the reference query's;
* **end-to-end success** of `apps.interact` on every dialogue, judged by the gold check (`apps.judge`);
* execution accuracy on 64 of the questions RL from execution feedback trains on (`sql_rl`), beside the held-out.

    metrics = run(AppsEvalConfig())
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from . import stages
from .app_data import DB_FILE, apps_dir, read_dialogues, read_sql_prompts
from .app_tasks import INTENT_OF, same_result
from .apps import App, interact, judge, retrieval_hit, same_text, sql_with_repairs
from .catalog import connect, films
from .config import fixed, knob, validate
from .serving import LocalChat

POLICIES = ("base", "sft", "ppo", "app_sft", "sql_rl")


@dataclass(frozen=True, kw_only=True)
class AppsEvalConfig:
    """Which policies answer the held-out app data, and how."""
    policies: str = fixed("base,sft,ppo,app_sft,sql_rl", help="comma-separated policy stages to measure")
    rounds: int = knob(2, lo=0, hi=5, help="repair rounds after the first SQL attempt (DIN-SQL: one)")
    batch_size: int = fixed(64, help="conversations per batch of greedy generation")
    max_tokens: int = fixed(56, help="reply length limit in tokens (the longest reference query is shorter)")
    out: str = fixed("apps", help="folder under artifacts/ for metrics.json")

    def __post_init__(self):
        validate(self)
        if not [s for s in self.policies.split(",") if s.strip()]:
            raise ValueError("AppsEvalConfig.policies is empty; name at least one policy stage, e.g. 'app_sft'")


def held_out():
    """(held-out SQL prompts, held-out dialogues), validated."""
    d = apps_dir(stages.DATA_DIR)
    return ([r for _, r in read_sql_prompts(d / "eval_sql.jsonl")],
            [r for _, r in read_dialogues(d / "eval_dialogues.jsonl")])


def rl_questions(n: int = 64) -> list[dict]:
    """The first n SQL prompts of RL from execution feedback (`data/apps/rl_prompts.jsonl`), validated."""
    return [r for _, r in read_sql_prompts(apps_dir(stages.DATA_DIR) / "rl_prompts.jsonl")][:n]


def open_app(rounds: int = 2) -> App:
    """The catalog and a read-only connection to its database."""
    return App(catalog=films(), conn=connect(apps_dir(stages.DATA_DIR) / DB_FILE), rounds=rounds)


def exec_accuracy(app: App, records: list[dict], replies) -> list[float]:
    """Execution accuracy after attempt 1, 2, …, rounds + 1 (a query that ran with rows is final)."""
    out = []
    for k in range(app.rounds + 1):
        ok = [same_result(app.conn, r.sql[min(k, len(r.sql) - 1)], rec["meta"]["sql"])
              for rec, r in zip(records, replies)]
        out.append(round(sum(ok) / len(ok), 4))
    return out


def measure(chat, app: App, sql_records: list[dict], dialogues: list[dict], rl_records: list[dict] = ()) -> dict:
    """Every number of the module docstring for one backend `chat`, and the replies; with `rl_records` also the
    execution accuracy on questions RL from execution feedback trains on (did it learn what it was rewarded for?)."""
    t0 = time.perf_counter()
    sql = sql_with_repairs(chat, app, [r["question"] for r in sql_records], [r["lang"] for r in sql_records])
    on_rl = sql_with_repairs(chat, app, [r["question"] for r in rl_records], [r["lang"] for r in rl_records])
    replies = interact(chat, app, dialogues)
    seconds = time.perf_counter() - t0
    verdicts = [judge(app, d, r) for d, r in zip(dialogues, replies)]
    dependent = [i for i, d in enumerate(dialogues) if d["history"]]
    about_a_film = [i for i in dependent if dialogues[i]["kind"] != "older"]     # "older" names a genre and a year
    kinds = list(INTENT_OF)

    def share(values) -> float:
        values = list(values)
        return round(sum(values) / len(values), 4) if values else float("nan")

    by_kind = {k: {"success": share(v["success"] for d, v in zip(dialogues, verdicts) if d["kind"] == k),
                   "intent": share(v["intent"] for d, v in zip(dialogues, verdicts) if d["kind"] == k)}
               for k in kinds}
    return {
        "intent_accuracy": share(v["intent"] for v in verdicts),
        "rewrite_accuracy": share(same_text(replies[i].query, dialogues[i]["rewrite"]) for i in dependent),
        "retrieval_hit_raw": share(retrieval_hit(app, dialogues[i]["turn"], dialogues[i]["title"])
                                   for i in about_a_film),
        "retrieval_hit_rewritten": share(retrieval_hit(app, replies[i].query, dialogues[i]["title"])
                                         for i in about_a_film),
        "exec_accuracy": exec_accuracy(app, sql_records, sql),
        "sql_error_rate_first": share(bool(r.errors[0]) for r in sql),
        "exec_accuracy_rl_prompts": share(same_result(app.conn, r.sql[0], rec["meta"]["sql"])
                                          for rec, r in zip(rl_records, on_rl)),
        "success": share(v["success"] for v in verdicts),
        "success_by_kind": {k: v["success"] for k, v in by_kind.items()},
        "intent_by_kind": {k: v["intent"] for k, v in by_kind.items()},
        "by_lang": {lang: {"success": share(v["success"] for d, v in zip(dialogues, verdicts) if d["lang"] == lang),
                           "exec_accuracy_first": share(
                               same_result(app.conn, r.sql[0], rec["meta"]["sql"])
                               for rec, r in zip(sql_records, sql) if rec["lang"] == lang)}
                    for lang in ("en", "ko")},
        "seconds": round(seconds, 1),
        "samples": {"sql": [{"question": rec["question"], "reference": rec["meta"]["sql"], "tried": r.sql,
                             "errors": r.errors} for rec, r in zip(sql_records, sql)],
                    "dialogues": [{"id": d["id"], "kind": d["kind"], "lang": d["lang"], "turn": d["turn"],
                                   "intent": r.intent, "query": r.query, "text": r.text, "checks": v}
                                  for d, r, v in zip(dialogues, replies, verdicts)]},
    }


def run(cfg: AppsEvalConfig, on_policy=None, extra: dict | None = None) -> dict:
    """Measure every policy in `cfg.policies`; write artifacts/<cfg.out>/metrics.json (other policies measured
    before are kept; those measured now are replaced), with `extra` (e.g. the server's requests per second) added.
    `on_policy(name, result)` is called after each policy."""
    sql_records, dialogues = held_out()
    rl_records = rl_questions()
    app = open_app(cfg.rounds)
    path = stages.ARTIFACTS / cfg.out / "metrics.json"
    out = stages.load_json(path) if path.is_file() else {}
    out.setdefault("policies", {})
    try:
        for name in [s.strip() for s in cfg.policies.split(",") if s.strip()]:
            chat = LocalChat(stages.existing(name), max_tokens=cfg.max_tokens, batch_size=cfg.batch_size)
            result = measure(chat, app, sql_records, dialogues, rl_records)
            out["policies"][name] = result
            if on_policy is not None:
                on_policy(name, result)
    finally:
        app.conn.close()
    out.update({"rounds": cfg.rounds, "n_sql": len(sql_records), "n_dialogues": len(dialogues), **(extra or {})})
    path.parent.mkdir(parents=True, exist_ok=True)
    stages.write_json(path, out)
    return out


def summary(m: dict) -> str:
    return "; ".join(f"{name}: intent {r['intent_accuracy']:.2f}, SQL {r['exec_accuracy'][0]:.2f} → "
                     f"{r['exec_accuracy'][-1]:.2f}, success {r['success']:.2f}" for name, r in m["policies"].items())
