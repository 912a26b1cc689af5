"""Stage `generate_tasks`: sample feature subtrees, plan (stage 1), write hint-free tasks (stage 2)."""

from __future__ import annotations

import json
import random
import re
from collections import Counter

import polars as pl

from synthsmith.contract import tables
from synthsmith.contract.params import GenerateTasksParams
from synthsmith.contract.values import LEETCODE, PLAN, STATEMENT_STYLES, WRITE
from synthsmith.llm.answers import Rejected, count_tokens, json_object, parse_answers
from synthsmith.llm.prompts import render, style_guide
from synthsmith.llm.requests import make_request
from synthsmith.stages.feature_tree import sampleable_leaves

# Every subtree mixes an algorithm and a data structure with other categories; the language
# category is left out because every task is solved in Python anyway.
ANCHORS = ("algorithm", "data_structures")
PLAN_KEYS = ("feature_roles_tree", "selected_features_tree", "integration_strategy")
PLAN_SHAPE = '{"feature_roles_tree": {...}, "selected_features_tree": {...}, "integration_strategy": "..."}'
SIGNATURE = re.compile(r"class\s+Solution\b.*?def\s+(\w+)\s*\(\s*self", re.DOTALL)


def sample_subtrees(pool: pl.DataFrame, params: GenerateTasksParams) -> pl.DataFrame:
    """One row per task: task_id, style, subtree_json. Task i depends only on (seed, i), so
    lowering num_tasks keeps a prefix, and style draws use their own stream. An empty tree gives
    no rows: a plan needs features to combine."""
    leaves = sorted(sampleable_leaves(pool))
    by_category: dict[str, list[str]] = {}
    for path in leaves:
        by_category.setdefault(path.split("/")[0], []).append(path)
    styles = [s for s in STATEMENT_STYLES if s in params.style_mix]
    rows = []
    for i in range(params.num_tasks if leaves else 0):
        rng = random.Random(f"{params.seed}:subtree:{i}")
        chosen = {rng.choice(by_category[c]) for c in ANCHORS if by_category.get(c)}
        rest = [p for p in leaves if p not in chosen]
        chosen.update(rng.sample(rest, min(len(rest), params.leaves_per_subtree - len(chosen))))
        style = random.Random(f"{params.seed}:style:{i}").choices(
            styles, weights=[params.style_mix[s] for s in styles])[0]
        rows.append({"task_id": f"task-{i:05d}", "style": style, "subtree_json": json.dumps(_nest(chosen))})
    return pl.DataFrame(rows, schema={"task_id": pl.String, "style": pl.String, "subtree_json": pl.String})


def feature_paths(plans: pl.DataFrame) -> pl.DataFrame:
    """(task_id, path): each plan's selected features as pool paths."""
    rows = [{"task_id": task_id, "path": path}
            for task_id, plan in zip(plans["task_id"], plans["plan_json"], strict=True)
            for path in _paths(json.loads(plan)["selected_features_tree"])]
    return pl.DataFrame(rows, schema={"task_id": pl.String, "path": pl.String}).unique(maintain_order=True)


def task_features(subtrees: pl.DataFrame, plans: pl.DataFrame) -> pl.DataFrame:
    """TASK_FEATURES: for every sampled task, written or not, the paths of its sampled subtree and
    of its plan's selected features (none when its plan was rejected), sorted, each flagged."""
    selected: dict[str, set[str]] = {}
    for task_id, path in feature_paths(plans).iter_rows():
        selected.setdefault(task_id, set()).add(path)
    rows = []
    for task_id, subtree in zip(subtrees["task_id"], subtrees["subtree_json"], strict=True):
        sampled, chosen = set(_paths(json.loads(subtree))), selected.get(task_id, set())
        rows += [{"task_id": task_id, "path": path, "sampled": path in sampled, "selected": path in chosen}
                 for path in sorted(sampled | chosen)]
    return tables.conform(pl.DataFrame(rows, schema=tables.TASK_FEATURES.columns), tables.TASK_FEATURES)


def _paths(tree: dict[str, dict[str, list[str]]]) -> list[str]:
    """The pool paths of a nested tree (the inverse of `_nest`)."""
    return [f"{category}/{subcategory}" if leaf == subcategory else f"{category}/{subcategory}/{leaf}"
            for category, groups in tree.items() for subcategory, leaves in groups.items() for leaf in leaves]


def _nest(paths: set[str]) -> dict[str, dict[str, list[str]]]:
    tree: dict[str, dict[str, list[str]]] = {}
    for path in sorted(paths):
        category, subcategory, *rest = path.split("/")
        tree.setdefault(category, {}).setdefault(subcategory, []).append("/".join(rest) or subcategory)
    return tree


def plan_requests(subtrees: pl.DataFrame, params: GenerateTasksParams) -> pl.DataFrame:
    return pl.DataFrame([make_request(params.planner_model, render("plan_task", subtree=json.loads(s)),
                                      temperature=params.temperature, max_tokens=params.max_tokens)
                         for s in subtrees["subtree_json"]], schema=tables.LLM_REQUESTS.columns)


def parse_plans(subtrees: pl.DataFrame, responses: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Keep tasks whose plan has the three keys and selects at least two features; the others as
    DROPPED_TASKS rows (step plan, reason "plan_<why>")."""
    rows = []
    parsed, dropped = _parse_each(subtrees, responses, _valid_plan, PLAN, "plan_")
    for task, plan in parsed:
        features = sorted({leaf for groups in plan["selected_features_tree"].values() for leaves in groups.values()
                           for leaf in leaves})
        rows.append(task | {"plan_json": json.dumps(plan), "features": features,
                            "integration_strategy": plan["integration_strategy"]})
    return pl.DataFrame(rows, schema=subtrees.schema | {"plan_json": pl.String, "features": pl.List(pl.String),
                                                        "integration_strategy": pl.String}), dropped


def _parse_each(rows: pl.DataFrame, responses: pl.DataFrame, parse, step: str,
                prefix: str = "") -> tuple[list[tuple[dict, object]], pl.DataFrame]:
    """`parse_answers`, with each row it skips listed as a DROPPED_TASKS row: its reason (prefix +
    the rejection's, as the funnel counts it) and, for a statement, its title if it has one."""
    dropped: dict[str, dict] = {}

    def recording(row: dict, content: str) -> object:
        try:
            return parse(row, content)
        except Rejected as rejected:
            dropped[row["task_id"]] = {"reason": prefix + rejected.reason,
                                       "title": _title(content) if step == WRITE else None}
            raise

    counted: Counter = Counter()
    parsed = list(parse_answers(rows, responses, recording, counted, prefix))
    for task_id, error in zip(rows["task_id"], responses["error"], strict=True):
        if error is not None:  # parse_answers rejects a failed call without asking `parse`
            dropped[task_id] = {"reason": prefix + "llm_error", "title": None}
    if Counter(d["reason"] for d in dropped.values()) != counted:
        raise RuntimeError(f"listed drops {dropped} do not match the counted ones {dict(counted)}")
    frame = pl.DataFrame([{"task_id": task_id, "step": step, **d} for task_id in rows["task_id"]
                          if (d := dropped.get(task_id))], schema=tables.DROPPED_TASKS.columns)
    return parsed, tables.conform(frame, tables.DROPPED_TASKS)


def _title(statement: str | None) -> str | None:
    """The first "# " line of a statement, without the mark."""
    return next((line[2:].strip() for line in (statement or "").strip().splitlines() if line.startswith("# ")),
                None)


def check_plan(content: str) -> dict:
    """Stage 1's format check, which the gateway re-asks on."""
    return _valid_plan({}, content)


def _valid_plan(_: dict, content: str) -> dict:
    plan = json_object(content, PLAN_SHAPE)
    missing = [key for key in PLAN_KEYS if key not in plan]
    if missing:
        raise Rejected("missing_keys", f"the JSON object must have the three keys {', '.join(PLAN_KEYS)}; "
                                       f"it lacks {', '.join(missing)}")
    selected = plan["selected_features_tree"]
    if not isinstance(selected, dict) or not all(
            isinstance(groups, dict) and all(isinstance(leaves, list) and all(isinstance(leaf, str) for leaf in leaves)
                                             for leaves in groups.values()) for groups in selected.values()):
        raise Rejected("schema_invalid", 'selected_features_tree must map each category to {sub-category: [leaf, '
                                         '...]}, with the chosen leaves as lists of strings, like {"algorithm": '
                                         '{"searching": ["binary search"]}}')
    chosen = sum(len(v) for groups in selected.values() for v in groups.values())
    if chosen < 2:
        raise Rejected("too_few_selected", f"selected_features_tree must keep at least two leaf features; "
                                           f"it kept {chosen}")
    if not isinstance(plan["integration_strategy"], str) or not plan["integration_strategy"].strip():
        raise Rejected("schema_invalid", "integration_strategy must be a non-empty string: a paragraph on how the "
                                         "chosen features work together")
    return plan


def writing_requests(plans: pl.DataFrame, params: GenerateTasksParams) -> pl.DataFrame:
    return pl.DataFrame([make_request(params.writer_model, render(
        "write_task", plan={k: v for k, v in json.loads(p["plan_json"]).items() if k != "feature_roles_tree"},
        style=p["style"], style_guide=style_guide(p["style"])), temperature=params.temperature,
        max_tokens=params.max_tokens) for p in plans.iter_rows(named=True)], schema=tables.LLM_REQUESTS.columns)


def parse_tasks(plans: pl.DataFrame, responses: pl.DataFrame,
                params: GenerateTasksParams) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Statements with a title, a signature for LeetCode style, no named technique, >= min_tokens;
    the others as DROPPED_TASKS rows (step write)."""
    parsed, dropped = _parse_each(plans, responses, lambda plan, content: _task(plan, content, params), WRITE)
    rows = [task for _, task in parsed]
    tasks = pl.DataFrame(rows, schema=tables.TASKS.columns)
    return tables.conform(tasks, tables.TASKS), dropped


def _task(plan: dict, content: str, params: GenerateTasksParams) -> dict:
    if not content or not content.strip():
        raise Rejected("empty_answer", "the answer must be the problem statement; it was empty")
    statement = content.strip()
    title = _title(statement)
    if title is None:
        raise Rejected("no_title", 'the statement must have a title line starting with "# "; it had none')
    entry_point = None
    if plan["style"] == LEETCODE:
        signature = SIGNATURE.search(statement)
        if signature is None:
            raise Rejected("missing_signature", "a LeetCode-style statement must include starter code with "
                                                "`class Solution:` and a method `def name(self, ...)`; it had none")
        entry_point = f"Solution.{signature.group(1)}"
    lowered = statement.lower()
    named = [f.split("/")[-1] for f in plan["features"] if " " in f and f.split("/")[-1] in lowered]
    if named:
        raise Rejected("names_its_technique", f"the statement must not name the techniques its solution needs; "
                                              f"it names {', '.join(named)}")
    tokens = count_tokens(statement)
    if tokens < params.min_tokens:
        raise Rejected("too_short", f"the statement must be at least {params.min_tokens} tokens long; "
                                    f"it had {tokens}")
    return {"task_id": plan["task_id"], "style": plan["style"], "title": title, "statement": statement,
            "entry_point": entry_point, "features": plan["features"],
            "integration_strategy": plan["integration_strategy"], "tokens": tokens}
