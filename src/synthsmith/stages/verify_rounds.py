"""Stage `verify_rounds`: more candidates, in rounds, for the tasks `verify` left undecided.

A task whose method turned it down for thin evidence (stages/verify.py, `UNDECIDED_REASONS`) gets
`verify_rounds.samples_per_model` more candidates from every model, which run on its tests, and is
verified again on all its candidates; until it is decided or has `verify.max_candidates`. A task
decided earlier is not touched again. The new samples continue each model's sample index (sent as
the request's seed), so earlier candidates are reused, never asked again.

Each round's table row says how many tasks it took, what they cost and how they ended (ROUNDS);
round 0 is the first candidates, from stages generate_solutions, execute and verify.
"""

from __future__ import annotations

import polars as pl

from synthsmith.contract import tables
from synthsmith.contract.params import GenerateSolutionsParams, VerifyParams
from synthsmith.contract.values import DISCARDED, KEPT, UNDECIDED
from synthsmith.stages.verify_calibrated import ROUNDS_THRESHOLD


def samples_cap(rules: VerifyParams, solving: GenerateSolutionsParams) -> int:
    """Samples per model a task may get in all: `max_candidates` shared by the models (rounded
    down), never fewer than the first round's."""
    if rules.max_candidates is None:
        return solving.samples_per_model
    return max(solving.samples_per_model, rules.max_candidates // len(solving.models))


def rule_threshold(rules: VerifyParams, solving: GenerateSolutionsParams) -> float | None:
    """`verify.threshold`; when null and calibrated verification runs in rounds, its ROUNDS_THRESHOLD:
    each round is one more chance for a group of wrong programs to pass, so every look must be
    surer (benchmarks/verify_quality.py --adaptive); null otherwise (the method's default)."""
    rounds = samples_cap(rules, solving) > solving.samples_per_model
    return ROUNDS_THRESHOLD if rules.threshold is None and rules.method == "calibrated" and rounds else rules.threshold


def first_round_open(rules: VerifyParams, solving: GenerateSolutionsParams, tasks: pl.Series) -> pl.Series:
    """The task_ids `verify` may call undecided: all of them when rounds can follow."""
    return tasks if samples_cap(rules, solving) > solving.samples_per_model else tasks.clear()


def next_samples(asked: int, per_round: int, cap: int) -> range:
    return range(asked, min(asked + per_round, cap))


def undecided(verdicts: pl.DataFrame) -> pl.Series:
    return verdicts.filter(pl.col("outcome") == UNDECIDED)["task_id"]


def replace_rows(old: pl.DataFrame, new: pl.DataFrame, table: tables.Table) -> pl.DataFrame:
    """`old` with its rows for the task_ids in `new` replaced by `new`'s, sorted by task_id."""
    kept = old.filter(~pl.col("task_id").is_in(new["task_id"].implode()))
    return tables.conform(pl.concat([kept, tables.conform(new, table)]).sort("task_id"), table)


def round_row(number: int, samples: int, tasks: int, llm_usage: pl.DataFrame, candidates: int, runs: int,
              verdicts: pl.DataFrame) -> dict:
    """One ROUNDS row: `verdicts` are the verdicts of this round's tasks after it."""
    outcomes = verdicts["outcome"]
    return {"round": number, "samples_per_model": samples, "tasks": tasks,
            "requests": int(llm_usage["requests"].sum()), "candidates": candidates, "runs": runs,
            "kept": int((outcomes == KEPT).sum()), "discarded": int((outcomes == DISCARDED).sum()),
            "undecided": int((outcomes == UNDECIDED).sum()),
            "prompt_tokens": int(llm_usage["prompt_tokens"].sum()),
            "completion_tokens": int(llm_usage["completion_tokens"].sum()),
            "cost_usd": float(llm_usage["cost_usd"].sum())}
