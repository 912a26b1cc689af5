"""The data contract: every table the pipeline reads or writes, its columns and dtypes.

Stages call `conform(df, TABLE)` on what they return; `runtime.io` conforms what a flow writes
(against `STAGE_OUTPUTS`) and what it reads, so a missing column, a wrong dtype or a value
outside a column's value set fails at the boundary with the table's name, not three stages later.
"""

from __future__ import annotations

import polars as pl

from synthsmith.contract import values

Str, Int, Float, Bool = pl.String, pl.Int64, pl.Float64, pl.Boolean
MESSAGE = pl.Struct({"role": Str, "content": Str})


class Table:
    """A table's columns and dtypes; `optional`: columns filled with a default when absent;
    `values`: columns whose non-null values must come from a value set of `contract.values`."""

    def __init__(self, name: str, columns: dict[str, pl.DataType], optional: dict | None = None,
                 values: dict[str, tuple[str, ...]] | None = None):
        self.name = name
        self.columns = columns
        self.optional = optional or {}
        self.values = values or {}

    def empty(self) -> pl.DataFrame:
        return pl.DataFrame(schema=self.columns)


class ContractError(ValueError):
    pass


def conform(df: pl.DataFrame, table: Table) -> pl.DataFrame:
    """Select the table's columns in order, cast to its dtypes; fill absent optional columns."""
    for column, default in table.optional.items():
        if column not in df.columns:
            df = df.with_columns(pl.lit(default, dtype=table.columns[column]).alias(column))
    missing = [c for c in table.columns if c not in df.columns]
    if missing:
        raise ContractError(f"table {table.name}: missing column(s) {missing}; has {df.columns}")
    try:
        conformed = df.select([pl.col(c).cast(t, strict=True) for c, t in table.columns.items()])
    except (pl.exceptions.InvalidOperationError, pl.exceptions.ComputeError) as exc:
        raise ContractError(f"table {table.name}: a column has the wrong type: {exc}") from exc
    for column, allowed in table.values.items():
        unknown = sorted(set(conformed[column].drop_nulls().unique()) - set(allowed))
        if unknown:
            raise ContractError(f"table {table.name}: column {column} holds {unknown}; allowed: {', '.join(allowed)}")
    return conformed


SEEDS = Table("seeds", {
    "seed_id": Str, "title": Str, "statement": Str, "solution": Str,
    "io": Str,  # values.IO_MODES, checked by stages.seeds with the seed named
    "entry_point": Str, "source": Str,
})

# One row per (stage, metric): "in", "out" and "dropped:<reason>" counts feed the report's funnel.
FUNNEL = Table("funnel", {"stage": Str, "metric": Str, "value": Int})

LLM_REQUESTS = Table("llm_requests", {
    "request_id": Str, "model": Str, "messages": pl.List(MESSAGE), "sampling": Str,  # sampling: canonical JSON
})
LLM_RESPONSES = Table("llm_responses", {
    "request_id": Str, "model": Str,
    "content": Str, "error": Str,  # exactly one of content/error is null
    "source": Str,  # where the final answer came from
    "attempts": Int,  # answers obtained: 1 + re-asks after format failures
    "retries": Int,  # transient faults retried on the way
    "format_error": Str,  # the stage's format check on the final answer (null: it passed)
    "prompt_tokens": Int, "completion_tokens": Int, "cost_usd": Float,
}, values={"source": values.RESPONSE_SOURCES})
LLM_USAGE = Table("llm_usage", {  # per stage and model: what the calls cost (replayed calls at live prices)
    "stage": Str, "model": Str, "requests": Int, "live_calls": Int, "retries": Int, "reasks": Int,
    "failed": Int, "prompt_tokens": Int, "completion_tokens": Int, "cost_usd": Float,
    "unpriced_calls": Int,  # requests to a model with no price (params or litellm's map): counted as $0
}, optional={"unpriced_calls": 0})

FEATURE_ANSWERS = Table("feature_answers", {"seed_id": Str, "status": Str, "features_json": Str})
FEATURE_POOL = Table("feature_pool", {
    "category": Str, "subcategory": Str, "leaf": Str, "path": Str, "count": Int,
    "origin": Str,
    "round": Int,
}, values={"origin": values.FEATURE_ORIGINS})
FEATURE_GROWTH = Table("feature_growth", {
    "category": Str, "leaves_before": Int, "leaves_after": Int, "subcategories_before": Int,
    "subcategories_after": Int,
})

TASKS = Table("tasks", {
    "task_id": Str, "style": Str, "title": Str, "statement": Str, "entry_point": Str,
    "features": pl.List(Str), "integration_strategy": Str, "tokens": Int,
}, values={"style": values.STATEMENT_STYLES})

# validation: what the input validator said of the input (values.INPUT_VALIDATIONS; null in tables
# written before it was kept: not recorded).
TEST_INPUTS = Table("test_inputs", {
    "task_id": Str, "test_id": Str, "input": Str, "description": Str,
    "generator": Str,
    "size_weight": Int, "semantic_weight": Int, "weight": Int,
    "validation": Str,
}, optional={"validation": None}, values={"generator": values.TEST_GENERATORS,
                                          "validation": values.INPUT_VALIDATIONS})

SOLUTIONS = Table("solutions", {
    "task_id": Str, "solution_id": Str, "model": Str, "sample": Int, "reasoning": Str, "code": Str,
})

# The sandbox's job and result tables (one result row per job, always).
SANDBOX_JOBS = Table("sandbox_jobs", {
    "job_id": Str, "code": Str, "mode": Str, "entry": Str, "input": Str,
    "time_limit_s": Float, "memory_mb": Int,
}, values={"mode": values.IO_MODES})
SANDBOX_RESULTS = Table("sandbox_results", {
    "job_id": Str, "status": Str, "output": Str, "stderr": Str, "exit_code": Int,
    "wall_ms": Float, "cpu_ms": Float,
}, values={"status": values.SANDBOX_STATUSES})

# What `verify` reads: RUNS (one row per candidate x test) and TESTS. RUNS may come from outside the
# pipeline (`synthsmith verify --runs`): any status other than "ok" is an unclean run.
RUNS = Table("runs", {
    "task_id": Str, "solution_id": Str, "test_id": Str, "status": Str, "output": Str,
})
VERIFY_TESTS = Table("verify_tests", {"task_id": Str, "test_id": Str, "input": Str, "weight": Int},
                     optional={"weight": None})
EXECUTIONS = Table("executions", {
    "task_id": Str, "solution_id": Str, "test_id": Str, "status": Str, "output": Str,
    "stderr": Str, "exit_code": Int, "wall_ms": Float,
}, values={"status": values.SANDBOX_STATUSES})

GOLDEN_TEST = pl.Struct({"test_id": Str, "expected_output": Str})
# outcome: kept (kept is true), undecided (more candidates may decide it) or discarded; reason: why
# not kept (null when kept). candidates: how many the task had when this verdict was given.
VERDICTS = Table("verdicts", {
    "task_id": Str, "kept": Bool, "golden_solution_id": Str,
    "golden_tests": pl.List(GOLDEN_TEST), "reason": Str, "outcome": Str, "candidates": Int,
}, values={"outcome": values.VERDICT_OUTCOMES})
# Per task: how strongly candidates agreed on the labels (for the report's agreement histogram).
AGREEMENT = Table("agreement", {
    "task_id": Str, "labelled_tests": Int, "tied_tests": Int, "mean_top_share": Float,
})
# verify_rounds: per round (0 = the first candidates), the tasks it took and what it cost; kept,
# discarded, undecided: how those tasks ended that round. samples_per_model: each model's samples
# a task had after the round.
ROUNDS = Table("rounds", {
    "round": Int, "samples_per_model": Int, "tasks": Int, "requests": Int, "candidates": Int, "runs": Int,
    "kept": Int, "discarded": Int, "undecided": Int, "prompt_tokens": Int, "completion_tokens": Int,
    "cost_usd": Float,
})

# export. split: "train" or "heldout" (seeded, per task; held-out tasks are never trained on).
SFT = Table("sft", {"task_id": Str, "messages": pl.List(MESSAGE), "style": Str, "source": Str, "split": Str},
            values={"style": values.STATEMENT_STYLES, "split": values.SPLITS})
# RL: verl's RL dataset schema (data_source, prompt, ability, reward_model, extra_info), which TRL's
# GRPOTrainer reads too, plus top-level task_id and style (diff and evaluation use them).
# reward_model.ground_truth is the JSON of {"tests": [{"input", "output", "weight"}], "io": "stdio" |
# "function", "entry_point": str | null}: what `train.reward.compute_score` reads.
RL_REWARD_MODEL = pl.Struct({"style": Str, "ground_truth": Str})
RL_EXTRA_INFO = pl.Struct({"task_id": Str, "split": Str, "index": Int})
RL = Table("rl", {
    "data_source": Str, "prompt": pl.List(MESSAGE), "ability": Str, "reward_model": RL_REWARD_MODEL,
    "extra_info": RL_EXTRA_INFO, "task_id": Str, "style": Str,
}, values={"style": values.STATEMENT_STYLES})

# Every task generate_tasks dropped, and where (step, values.TASK_DROP_STEPS): its plan or its statement
# was rejected (reason: the funnel's drop reason, "plan_<why>" for a plan; title: the rejected
# statement's, if it had one), or hygiene dropped it as a near-duplicate of an earlier task or as
# contaminated by a benchmark item (against: "tasks" or the benchmark, "humaneval" or a file path;
# matched: the earlier task_id or the benchmark item's id; score: Jaccard or n-gram overlap; all three
# null for the other steps). Tables written before `step` listed hygiene drops only.
DROPPED_TASKS = Table("dropped_tasks", {
    "task_id": Str, "title": Str, "reason": Str, "against": Str, "matched": Str, "score": Float, "step": Str,
}, optional={"step": values.HYGIENE}, values={"step": values.TASK_DROP_STEPS})
# Per sampled task (written or dropped), the feature-pool paths (category/subcategory/leaf...) of the
# subtree sampled for it (sampled) and of its plan's selected features (selected; a plan may select
# a path outside its subtree). Tables written before these flags held the selected paths of the
# written tasks only (sampled: null, not recorded).
TASK_FEATURES = Table("task_features", {"task_id": Str, "path": Str, "sampled": Bool, "selected": Bool},
                      optional={"sampled": None, "selected": True})

# What each stage writes: data/<stage>/<file>.parquet for every file of its entry. `runtime.io`
# conforms each written frame to its table and refuses a file not declared here.
STAGE_OUTPUTS: dict[str, dict[str, Table]] = {
    "seeds": {"seeds": SEEDS, "funnel": FUNNEL},
    "extract_features": {"answers": FEATURE_ANSWERS, "pool": FEATURE_POOL, "llm_usage": LLM_USAGE, "funnel": FUNNEL},
    "evolve_features": {"pool": FEATURE_POOL, "growth": FEATURE_GROWTH, "llm_usage": LLM_USAGE, "funnel": FUNNEL},
    "generate_tasks": {"tasks": TASKS, "dropped": DROPPED_TASKS, "task_features": TASK_FEATURES,
                       "llm_usage": LLM_USAGE, "funnel": FUNNEL},
    "generate_tests": {"tests": TEST_INPUTS, "llm_usage": LLM_USAGE, "funnel": FUNNEL},
    "generate_solutions": {"solutions": SOLUTIONS, "llm_usage": LLM_USAGE, "funnel": FUNNEL},
    "execute": {"executions": EXECUTIONS, "funnel": FUNNEL},
    "verify": {"verdicts": VERDICTS, "agreement": AGREEMENT, "funnel": FUNNEL},
    # the new candidates and runs only; verdicts and agreement for every task, final
    "verify_rounds": {"solutions": SOLUTIONS, "executions": EXECUTIONS, "verdicts": VERDICTS, "agreement": AGREEMENT,
                      "rounds": ROUNDS, "llm_usage": LLM_USAGE, "funnel": FUNNEL},
    "export": {"sft": SFT, "rl": RL, "funnel": FUNNEL},
}
