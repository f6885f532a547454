"""RL from execution feedback (lesson 09): GRPO on text-to-SQL, rewarded by running the query.

The reward needs no reward model and no labeler: the model's query is executed on the catalog's database (read-only,
under `sql_guard`) and compared with the reference query's result set,

    r(x, y) = 1  if rows(SQL(y)) = rows(SQL*(x))   (as a multiset; as a list when the reference orders them)
              0  otherwise (a wrong result, an error, no SELECT at all)

— the check of execution accuracy, used as a reward. The loop is lesson 08's GRPO (`grpo.run_groups`): G queries
per question, Â_i = (r_i − mean r) / (std r + ε) within the group, the clipped ratio and the k3 KL to the starting
policy. Only the prompts (`data/apps/rl_prompts.jsonl`), the reward and the monitored score (execution accuracy of
sampled queries on the held-out questions) are lesson 09's.

    metrics = run(SQLRLConfig())           # writes artifacts/sql_rl/
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import AutoConfig, AutoTokenizer

from . import stages
from .app_data import DB_FILE, apps_dir, read_sql_prompts
from .app_tasks import same_result
from .apps import first_sql
from .catalog import connect
from .config import fixed, knob, nested, validate
from .data import DataError
from .generation import SamplingConfig
from .grpo import GRPOConfig, check_group_config, run_groups
from .training import LOCAL, Parallel


@dataclass(frozen=True, kw_only=True)
class SQLRLConfig(GRPOConfig):
    """GRPO on the SQL questions with the execution reward; the fields not listed here are GRPOConfig's."""
    updates: int = knob(16, lo=1, hi=2000, help="GRPO iterations on the SQL questions")
    batch_size: int = knob(8, lo=1, hi=1024, help="questions per update (8 × G = 8: 64 queries, as GRPOConfig)")
    group_size: int = knob(8, lo=2, hi=64, help="G: queries sampled per question (more groups with both right "
                                                "and wrong queries than G = 4)")
    lr: float = knob(5e-5, lo=1e-7, hi=1e-2, log=True, help="Adam learning rate (1e-4 lowered held-out accuracy, "
                                                             "3e-4 collapsed: KL 10 nats)")
    reward_kind: str = fixed("execution", help="the reward: 1 when the query's rows equal the reference's")
    sampling: SamplingConfig = nested(SamplingConfig(temperature=1.0, max_new_tokens=64),
                                      help="how the policy samples its queries (at 0.7, 60 % of the groups were all "
                                           "right or all wrong; at 1.0, 23 %)")
    no_eos_penalty: float = knob(0.0, lo=-20.0, hi=0.0, step=0.5, help="score of a query that never ended")
    gold_every: int = fixed(4, help="updates between execution accuracies on held-out questions (0 = never)")
    gold_batch: int = fixed(64, help="held-out SQL questions in the monitored batch")
    evaluate: bool = fixed(False, help="lesson 09 measures the stage itself (apps_eval); no world evaluation")
    init: str = fixed("app_sft", help="stage the policy and the reference start from (the app-tuned policy)")
    reward: str = fixed("", help="no reward model: the reward is the query's result")
    out: str = fixed("sql_rl", help="stage written ('' = do not save)")

    def __post_init__(self):
        validate(self)
        check_group_config(self, ("init", "out"))


def execution_reward(conn):
    """`reward_fn(records, texts) -> (B,)`: 1.0 where the query in the text returns the reference's rows."""
    def reward(records: list[dict], texts: list[str]) -> torch.Tensor:
        return torch.tensor([float(exec_match(conn, r, t)) for r, t in zip(records, texts)])
    return reward


def exec_match(conn, record: dict, text: str) -> bool:
    return same_result(conn, first_sql(text), record["meta"]["sql"])


def checked_sql_prompts(cfg: SQLRLConfig, file: str) -> list[dict]:
    """The SQL prompts of `data/apps/<file>`, validated, each fitting the policy's context with its response."""
    path = apps_dir(stages.DATA_DIR) / file
    rows = read_sql_prompts(path)
    init = stages.existing(cfg.init)
    tok = AutoTokenizer.from_pretrained(init, trust_remote_code=False)
    context = AutoConfig.from_pretrained(init, trust_remote_code=False).max_position_embeddings
    for line, r in rows:
        text = tok.apply_chat_template(r["prompt"], tokenize=False, add_generation_prompt=True)
        n = len(tok(text, add_special_tokens=False)["input_ids"])
        if n + cfg.sampling.max_new_tokens > context:
            raise DataError(path, line, "prompt", f"{n} tokens + sampling.max_new_tokens = "
                            f"{cfg.sampling.max_new_tokens} exceed the context of {context}; shorten the prompt")
    return [r for _, r in rows]


def run(cfg: SQLRLConfig, on_log=None, *, par: Parallel = LOCAL) -> dict:
    """GRPO from stage `cfg.init` on the SQL questions with the execution reward; save stage `cfg.out`."""
    prompts = checked_sql_prompts(cfg, "rl_prompts.jsonl")
    held = checked_sql_prompts(cfg, "eval_sql.jsonl")[:cfg.gold_batch]
    if len(prompts) < cfg.batch_size:
        raise ValueError(f"SQLRLConfig.batch_size = {cfg.batch_size}: only {len(prompts)} SQL prompts; lower it")
    conn = connect(apps_dir(stages.DATA_DIR) / DB_FILE)
    try:
        gold = (lambda recs, texts: [float(exec_match(conn, r, t)) for r, t in zip(recs, texts)], held)
        return run_groups(cfg, "SQL GRPO", on_log, execution_reward(conn), par=par, prompts=prompts,
                          gold=gold if cfg.gold_every else (None, None))
    finally:
        conn.close()


def summary(m: dict) -> str:
    """One line: the reward (execution accuracy of the sampled queries), the held-out line, KL, time."""
    held = [g for g in m["history"]["gold_eval"] if g == g]
    return (f"{m['updates']} updates, execution reward of the sampled queries {m['initial_score']:.2f} → "
            f"{m['final_score']:.2f}" + (f", held-out (sampled) {held[0]:.3f} → {held[-1]:.3f}" if held else "")
            + f", KL {m['final_kl_seq']:.2f} nats, {m['zero_adv_frac']:.0%} zero-advantage groups, "
            f"{m['s_per_update']:.2f} s/update, {m['wall_s']} s")
