"""The library's shape (rlhf_lib/README.md): imports only point down, no import circle, no private name crosses a
module, every file has one job and stays short, and every stage is declared once, in the registry."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parents[1] / "rlhf_lib"
MAX_LINES = 400
FLOORS = (                                  # bottom first; a module may import its own floor and the ones below
    ("config", "losses", "rl", "data", "checksums", "machine", "sql_guard"),
    ("knowledge", "world", "korean", "phrasing", "movie_phrasing", "slips", "tasks", "responses", "web", "labelers",
     "catalog", "app_tasks", "app_data", "build_data"),
    ("models", "tokenizer", "stages", "training", "generation", "reward_model", "serving", "lora", "memory"),
    ("comparisons", "rollout", "ppo_diagnostics", "evaluation", "probes", "chatllama_bugs", "paraphrases",
     "frontier", "group_rollout", "apps"),
    ("pretrain", "sft", "reward", "ppo", "dpo", "grpo", "rloo", "app_sft", "sql_rl", "app_eval", "self_instruct",
     "alpaca", "compute_optimal"),
    ("pipeline",),
    ("cli", "cli_help", "cli_checks", "distributed", "deepspeed_config", "plots", "ppo_plots", "reward_views",
     "widgets", "scaling", "lesson", "try_prompt", "__main__", "__init__", "method_views",
     "group_plots", "app_views", "variation_views", "launcher",
     "scaling_views"),
)
FLOOR = {m: i for i, floor in enumerate(FLOORS) for m in floor}
MODULES = sorted(p.stem for p in LIB.glob("*.py"))


def imports(module: str) -> list[tuple[str, list[str], bool]]:
    """(imported rlhf_lib module, names taken from it, at run time) for every import in `module`, at any depth;
    imports under `if TYPE_CHECKING:` are not run."""
    tree = ast.parse((LIB / f"{module}.py").read_text(encoding="utf-8"))
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and getattr(node.test, "id", None) == "TYPE_CHECKING" for n in ast.walk(node)}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            names = [a.name for a in node.names]
            if node.module:
                out.append((node.module.split(".")[0], names, id(node) not in typing_only))
            else:                                                # from . import stages, config
                out += [(n, [], id(node) not in typing_only) for n in names]
    return out


def test_every_module_has_a_floor():
    assert sorted(FLOOR) == MODULES, "add new modules to FLOORS (and to rlhf_lib/README.md)"


@pytest.mark.parametrize("module", MODULES)
def test_imports_point_down_and_no_private_name_crosses(module):
    for source, names, _ in imports(module):
        assert FLOOR[source] <= FLOOR[module], f"rlhf_lib/{module}.py imports .{source}, a floor above it"
        private = [n for n in names if n.startswith("_")]
        assert not private, f"rlhf_lib/{module}.py imports private {private} from .{source}"
    tree = ast.parse((LIB / f"{module}.py").read_text(encoding="utf-8"))
    aliases = {a.asname or a.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 1
               and not node.module for a in node.names}
    crossing = [f"{n.value.id}.{n.attr}" for n in ast.walk(tree) if isinstance(n, ast.Attribute)
                and isinstance(n.value, ast.Name) and n.value.id in aliases
                and n.attr.startswith("_") and not n.attr.startswith("__")]
    assert not crossing, f"rlhf_lib/{module}.py reaches into private names {crossing}"


def test_no_import_circle():
    graph = {m: {s for s, _, run in imports(m) if run and s != m} for m in MODULES}
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph[m]):
            assert state.get(n) != 1, "import circle: " + " → ".join(path[path.index(n):] + [n])
            if not state.get(n):
                visit(n, path + [n])
        state[m] = 2

    for m in MODULES:
        if not state.get(m):
            visit(m, [m])


@pytest.mark.parametrize("module", MODULES)
def test_files_stay_short(module):
    n = len((LIB / f"{module}.py").read_text(encoding="utf-8").splitlines())
    assert n <= MAX_LINES, f"rlhf_lib/{module}.py has {n} lines (> {MAX_LINES}): split it by job"


def test_the_stage_order_is_declared_once():
    """Only the registry spells out the stages; the command line and DeepSpeed read it."""
    for module in ("cli", "distributed", "stages", "deepspeed_config"):
        text = (LIB / f"{module}.py").read_text(encoding="utf-8")
        assert '"sft", "rm", "ppo"' not in text and "'sft', 'rm', 'ppo'" not in text, module
