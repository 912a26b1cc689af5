"""The paper's Algorithm 1 (METHOD.md section 7, `verify.method: paper`): a per-input plurality
vote labels the tests, a seeded 50/50 split makes golden and validation halves, and a task is
kept when the best candidate on both halves is the same."""

from __future__ import annotations

import math
import random

import polars as pl

from synthsmith.contract.values import (
    GOLDEN_VALIDATION_DISAGREE,
    NO_CANDIDATES,
    NO_PASSING_CANDIDATE,
    NO_TESTS,
    TOO_FEW_LABELLED_TESTS,
)
from synthsmith.stages.compare import outputs_match
from synthsmith.stages.votes import GOLDEN_LIST, MAYBE_FLOAT, SOL, TASK, TEST, check_unique_runs, clean_runs
from synthsmith.stages.weights import size_quartile_weight

# As published, the paper's method decides every task from the candidates it has: no rounds.
UNDECIDED_REASONS: tuple[str, ...] = ()


def size_weights(tests: pl.DataFrame) -> pl.DataFrame:
    """Fill null weights with the size quartile of the input within its task, 1..4.

    weight = 1 + floor(4 * r / n), where n is the task's number of tests and r the number of
    its tests with a strictly shorter input (in characters). Equal lengths share a weight,
    whatever the row order; a task with one test, or all inputs of one length, gets 1s.
    """
    return tests.with_columns(pl.col("weight").fill_null(size_quartile_weight(pl.col("input").str.len_chars())))


def label_tests(clean: pl.DataFrame) -> pl.DataFrame:
    """Per (task, test) with at least one clean run: the plurality vote key among `clean_runs`.

    Columns: task_id, test_id, key_id, expected_output (the winning key's raw output from the
    lowest solution_id), top_count, tied (the top count is shared by two or more keys).
    """
    votes = (
        clean.group_by(TASK, TEST, "key_id")
        .agg(count=pl.len(), expected_output=pl.col("output").sort_by(SOL).first())
    )
    return (
        votes.filter(pl.col("count") == pl.col("count").max().over(TASK, TEST))
        .sort(TASK, TEST, "key_id")
        .group_by(TASK, TEST, maintain_order=True)
        .agg(pl.col("key_id", "expected_output").first(), top_count=pl.col("count").first(),
             tied=pl.len() > 1)
    )


def split_tests(labels: pl.DataFrame, seed: int) -> pl.DataFrame:
    """Mark each labelled test golden or not: per task, sort test_ids, shuffle them with
    random.Random(f"{seed}:{task_id}") and make the first ceil(n/2) golden."""
    grouped = labels.group_by(TASK).agg(pl.col(TEST).unique().sort())
    golden = []
    for task_id, test_ids in zip(grouped[TASK].to_list(), grouped[TEST].to_list()):
        random.Random(f"{seed}:{task_id}").shuffle(test_ids)
        golden.append(test_ids[:math.ceil(len(test_ids) / 2)])
    golden = pl.DataFrame({TASK: grouped[TASK], TEST: golden},
                          schema={TASK: pl.String, TEST: pl.List(pl.String)}).explode(TEST)
    return (
        labels.select(TASK, TEST).unique()
        .join(golden.with_columns(golden=pl.lit(True)), on=[TASK, TEST], how="left")
        .with_columns(pl.col("golden").fill_null(False))
    )


def dual_verify(runs: pl.DataFrame, tests: pl.DataFrame, seed: int,
                float_tol: float = 1e-6) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The paper's Algorithm 1 on conformed RUNS and weighted TESTS.

    j* = the candidates with the top golden score (sum of weights of golden tests passed);
    j+ = the candidates with the most validation tests passed (same denominator within a
    task, so this is top accuracy). Kept iff j* and j+ intersect and the top golden score
    is > 0; the golden solution is the one in the intersection with the highest total score
    = golden score + validation tests passed, then the lowest solution_id. The vote groups
    outputs by vote key; "passed" means a clean run whose output matches the label's expected
    output by `outputs_match` (the tolerance itself, not the key's rounding buckets).
    """
    check_unique_runs(runs)
    tests = size_weights(tests)
    clean = clean_runs(runs.join(tests.select(TASK, TEST), on=[TASK, TEST], how="semi"), float_tol)
    votes = label_tests(clean)
    labels = votes.filter(~pl.col("tied")).select(TASK, TEST, pl.col("key_id").alias("label"), "expected_output")
    labels = labels.join(split_tests(labels, seed), on=[TASK, TEST]).join(tests, on=[TASK, TEST])
    scores = _scores(runs, clean, labels, float_tol)
    golden = _golden_solutions(scores)
    tasks = _task_stats(runs, tests, votes, scores)
    golden_tests = (
        labels.filter("golden").sort(TASK, TEST)
        .group_by(TASK, maintain_order=True)
        .agg(golden_tests=pl.struct(TEST, "expected_output"))
    )
    verdicts = (
        tasks.join(golden, on=TASK, how="left")
        .with_columns(reason=_reason())
        .with_columns(kept=pl.col("reason").is_null(),
                      golden_solution_id=pl.when(pl.col("reason").is_null()).then(pl.col(SOL)))
        .join(golden_tests, on=TASK, how="left")
        .with_columns(golden_tests=pl.when("kept").then(pl.col("golden_tests"))
                      .otherwise(pl.lit([], dtype=GOLDEN_LIST)))
    )
    return verdicts, tasks


def _scores(runs: pl.DataFrame, clean: pl.DataFrame, labels: pl.DataFrame, float_tol: float) -> pl.DataFrame:
    """Per (task, candidate): golden score, validation passes, total. Every candidate with a
    run appears, with zeros if it passed nothing."""
    judged = clean.join(labels, on=[TASK, TEST])
    # Equal keys without a float token match exactly; only pairs that may hold a float token go
    # to `outputs_match`, each distinct (expected, actual) pair once.
    maybe_float = (pl.col("expected_output").str.contains(MAYBE_FLOAT)
                   | pl.col("output").str.contains(MAYBE_FLOAT))
    judged = judged.with_columns(maybe_float=maybe_float)
    pairs = judged.filter("maybe_float").select("expected_output", "output").unique()
    pairs = pairs.with_columns(matches=pl.Series(
        [outputs_match(want, got, float_tol) for want, got in pairs.iter_rows()], dtype=pl.Boolean))
    passed = (
        judged.join(pairs, on=["expected_output", "output"], how="left", nulls_equal=True)
        .filter(pl.when("maybe_float").then("matches").otherwise(pl.col("key_id") == pl.col("label")))
        .group_by(TASK, SOL)
        .agg(golden_score=pl.col("weight").filter("golden").sum(),
             val_passes=(~pl.col("golden")).sum().cast(pl.Int64))
    )
    return (
        runs.select(TASK, SOL).unique()
        .join(passed, on=[TASK, SOL], how="left")
        .with_columns(pl.col("golden_score", "val_passes").fill_null(0))
        .with_columns(total=pl.col("golden_score") + pl.col("val_passes"))
    )


def _golden_solutions(scores: pl.DataFrame) -> pl.DataFrame:
    """Per task whose j* and j+ intersect: that intersection's best candidate."""
    return (
        scores.filter(_is_top("golden_score") & _is_top("val_passes"))
        .sort([TASK, "total", SOL], descending=[False, True, False])
        .group_by(TASK, maintain_order=True)
        .agg(pl.col(SOL).first())
    )


def _is_top(column: str) -> pl.Expr:
    return pl.col(column) == pl.col(column).max().over(TASK)


def _task_stats(runs: pl.DataFrame, tests: pl.DataFrame, votes: pl.DataFrame,
                scores: pl.DataFrame) -> pl.DataFrame:
    """Per task: AGREEMENT's columns plus what `_reason` needs."""
    candidates = runs.group_by(TASK).agg(candidates=pl.col(SOL).n_unique().cast(pl.Int64))
    n_tests = tests.group_by(TASK).agg(tests=pl.len().cast(pl.Int64))
    agreement = votes.group_by(TASK).agg(
        voted_tests=pl.len().cast(pl.Int64),
        labelled_tests=(~pl.col("tied")).sum().cast(pl.Int64),
        tied_tests=pl.col("tied").sum().cast(pl.Int64),
        top_counts=pl.col("top_count"),
    )
    best = scores.group_by(TASK).agg(best_golden_score=pl.col("golden_score").max())
    return (
        pl.concat([tests.select(TASK), runs.select(TASK)]).unique().sort(TASK)
        .join(n_tests, on=TASK, how="left")
        .join(candidates, on=TASK, how="left")
        .join(agreement, on=TASK, how="left")
        .join(best, on=TASK, how="left")
        .with_columns(pl.col("tests", "candidates", "voted_tests", "labelled_tests", "tied_tests")
                      .fill_null(0),
                      mean_top_share=pl.col("top_counts").list.mean() / pl.col("candidates"))
        .drop("top_counts")
    )


def _reason() -> pl.Expr:
    return (
        pl.when(pl.col("tests") == 0).then(pl.lit(NO_TESTS))
        .when(pl.col("candidates") == 0).then(pl.lit(NO_CANDIDATES))
        .when(pl.col("voted_tests") == 0).then(pl.lit(NO_PASSING_CANDIDATE))
        .when(pl.col("labelled_tests") < 2).then(pl.lit(TOO_FEW_LABELLED_TESTS))
        .when(pl.col("best_golden_score") == 0).then(pl.lit(NO_PASSING_CANDIDATE))
        .when(pl.col(SOL).is_null()).then(pl.lit(GOLDEN_VALIDATION_DISAGREE))
    )
