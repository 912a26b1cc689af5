"""Stage `execute`: every kept candidate on every input of its task, through the sandbox interface."""

from __future__ import annotations

import polars as pl

from synthsmith.contract import tables
from synthsmith.contract.params import ExecuteParams
from synthsmith.contract.values import FUNCTION, STDIO


def build_jobs(solutions: pl.DataFrame, tests: pl.DataFrame, tasks: pl.DataFrame,
               params: ExecuteParams) -> pl.DataFrame:
    """SANDBOX_JOBS rows; job_id = "<solution_id>|<test_id>"; function mode for LeetCode-style tasks."""
    jobs = (solutions.select("task_id", "solution_id", "code")
            .join(tests.select("task_id", "test_id", "input"), on="task_id")
            .join(tasks.select("task_id", "entry_point"), on="task_id")
            .sort("solution_id", "test_id")
            .select(job_id=pl.format("{}|{}", "solution_id", "test_id"), code="code",
                    mode=pl.when(pl.col("entry_point").is_null()).then(pl.lit(STDIO)).otherwise(pl.lit(FUNCTION)),
                    entry="entry_point", input="input", time_limit_s=pl.lit(params.time_limit_s),
                    memory_mb=pl.lit(params.memory_mb)))
    return tables.conform(jobs, tables.SANDBOX_JOBS)


def executions(jobs: pl.DataFrame, results: pl.DataFrame, solutions: pl.DataFrame) -> pl.DataFrame:
    """Sandbox results back onto (task, solution, test)."""
    table = (results.join(jobs.select("job_id"), on="job_id", how="right")
             .with_columns(pl.col("job_id").str.split_exact("|", 1).struct.rename_fields(["solution_id", "test_id"])
                           .alias("ids")).unnest("ids")
             .join(solutions.select("solution_id", "task_id"), on="solution_id"))
    if table["status"].null_count():
        raise RuntimeError("the sandbox lost a job: every job must come back with a result row")
    return tables.conform(table, tables.EXECUTIONS)


def status_counts(table: pl.DataFrame) -> dict[str, int]:
    return dict(table.group_by("status").len().sort("status").iter_rows())
