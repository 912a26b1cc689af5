"""The solvability filter: a kept task that no candidate of the strong model solves is dropped.

"Solves" = a clean run matching the expected output (`compare.outputs_match`) on every golden
test. A task the strongest model configured cannot solve even once in its samples is more likely
mislabelled or beyond what the data should teach than a hard gem; the count is reported.
"""

from __future__ import annotations

import polars as pl

from synthsmith.contract import tables
from synthsmith.contract.values import DISCARDED, OK, UNSOLVED_BY_STRONG_MODEL
from synthsmith.stages.compare import outputs_match


def drop_unsolved(verdicts: pl.DataFrame, runs: pl.DataFrame, solutions: pl.DataFrame, strong_model: str,
                  float_tol: float = 1e-6) -> pl.DataFrame:
    """VERDICTS with kept tasks that no `strong_model` candidate solves turned into discards."""
    golden = (verdicts.filter("kept").select("task_id", "golden_tests").explode("golden_tests")
              .unnest("golden_tests"))
    strong = solutions.filter(pl.col("model") == strong_model).select("task_id", "solution_id")
    judged = (strong.join(golden, on="task_id")
              .join(runs.select("solution_id", "test_id", "status", "output"), on=["solution_id", "test_id"],
                    how="left"))
    judged = judged.with_columns(passed=pl.Series(
        [status == OK and outputs_match(want, got or "", float_tol)
         for status, want, got in judged.select("status", "expected_output", "output").iter_rows()],
        dtype=pl.Boolean))
    solved = judged.group_by("task_id", "solution_id").agg(pl.col("passed").all()).filter("passed")
    unsolved = pl.col("kept") & ~pl.col("task_id").is_in(solved["task_id"].implode())
    empty = pl.lit([], dtype=pl.List(tables.GOLDEN_TEST))
    return tables.conform(verdicts.with_columns(
        reason=pl.when(unsolved).then(pl.lit(UNSOLVED_BY_STRONG_MODEL)).otherwise("reason"),
        golden_solution_id=pl.when(unsolved).then(None).otherwise("golden_solution_id"),
        golden_tests=pl.when(unsolved).then(empty).otherwise("golden_tests"),
        kept=pl.when(unsolved).then(False).otherwise("kept"),
        outcome=pl.when(unsolved).then(pl.lit(DISCARDED)).otherwise("outcome")), tables.VERDICTS)
