"""Verification (METHOD.md section 7): label the tests' expected outputs from the candidates'
runs, and keep a task only when its golden solution can be trusted.

`verify` is the entry point; `METHODS` names the algorithms it can run: "strict" (the
default; stages/verify_strict.py: keep a task only when a dominant group of candidates agrees
on every test) and "paper" (the paper's Algorithm 1, `dual_verify`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import polars as pl

from synthsmith import schemas
from synthsmith.compare import _digits, _token_key, outputs_match  # vote_key = ' '.join of token keys

TASK, TEST, SOL = "task_id", "test_id", "solution_id"
GOLDEN_LIST = pl.List(schemas.GOLDEN_TEST)

# Why a task is discarded, checked in this order.
NO_TESTS = "no_tests"  # runs but no row in TESTS
NO_CANDIDATES = "no_candidates"  # tests but no runs at all
NO_PASSING_CANDIDATE = "no_passing_candidate"  # no clean run on any test, or best golden score 0
TOO_FEW_LABELLED_TESTS = "too_few_labelled_tests"  # fewer than 2 inputs survived the vote
GOLDEN_VALIDATION_DISAGREE = "golden_validation_disagree"  # paper: j* and j+ share no candidate
# strict (stages/verify_strict.py), after too_few_labelled_tests:
DEGENERATE_OUTPUTS = "degenerate_outputs"  # every candidate printed one value on all its tests
WEAK_CONSENSUS = "weak_consensus"  # no two candidates agree on every test
CONTESTED_CONSENSUS = "contested_consensus"  # the largest agreeing group does not lead by the margin
REASONS = (NO_TESTS, NO_CANDIDATES, NO_PASSING_CANDIDATE, TOO_FEW_LABELLED_TESTS, GOLDEN_VALIDATION_DISAGREE,
           DEGENERATE_OUTPUTS, WEAK_CONSENSUS, CONTESTED_CONSENSUS)

Method = Callable[[pl.DataFrame, pl.DataFrame, int, float], tuple[pl.DataFrame, pl.DataFrame]]


def verify(runs: pl.DataFrame, tests: pl.DataFrame, seed: int = 0, method: str = "strict",
           float_tol: float = 1e-6) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(VERDICTS, AGREEMENT), one row each per task in `tests` or `runs`, sorted by task_id.

    `float_tol` is the relative/absolute tolerance for float tokens (`compare.outputs_match`).

    Runs of a test_id absent from `tests` are ignored. Raises ValueError on an unknown
    method, duplicate (task, solution, test) runs or (task, test) tests, negative weights.
    """
    if method not in METHODS:
        raise ValueError(f"unknown verify method {method!r}; known: {sorted(METHODS)}")
    runs = schemas.conform(runs, schemas.RUNS)
    tests = schemas.conform(tests, schemas.VERIFY_TESTS)
    _check_unique(tests, [TASK, TEST], "tests")  # each method checks the runs (see METHODS)
    if (tests["weight"] < 0).any():
        raise ValueError("tests: weight must be >= 0 (or null, to use the input-size weight)")
    verdicts, agreement = METHODS[method](runs, tests, seed, float_tol)
    return schemas.conform(verdicts, schemas.VERDICTS), schemas.conform(agreement, schemas.AGREEMENT)


def size_weights(tests: pl.DataFrame) -> pl.DataFrame:
    """Fill null weights with the size quartile of the input within its task, 1..4.

    weight = 1 + floor(4 * r / n), where n is the task's number of tests and r the number of
    its tests with a strictly shorter input (in characters). Equal lengths share a weight,
    whatever the row order; a task with one test, or all inputs of one length, gets 1s.
    """
    from synthsmith.stages.test_inputs import size_quartile_weight  # its imports are slow; paper only

    return tests.with_columns(pl.col("weight").fill_null(size_quartile_weight(pl.col("input").str.len_chars())))


def clean_runs(runs: pl.DataFrame, float_tol: float = 1e-6) -> pl.DataFrame:
    """The runs with status "ok" (a null output read as ""), plus `key_id` (`with_key_ids`)."""
    clean = runs.filter(pl.col("status") == "ok").with_columns(pl.col("output").fill_null(""))
    return with_key_ids(clean, float_tol)


# Python's str.split() separators among ASCII characters.
_ASCII_SPACE = "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f "
# A stripped output is its own vote key unless it may hold a float token (a '.', a digit before
# an 'e'/'E', a non-ASCII character: other digits or spaces) or whitespace other than single spaces.
_MAYBE_FLOAT = r"[^\x00-\x7F]|\.|[0-9][eE]"
_INNER_SPACE = [*_ASCII_SPACE[:-1], "  "]


def with_key_ids(frame: pl.DataFrame, float_tol: float = 1e-6) -> pl.DataFrame:
    """`frame` (with a non-null `output` column) plus `key_id`, the UInt64 hash of the output's
    `vote_key`.

    Equal keys get equal ids; two distinct keys share one with probability 2^-64, and ids are
    only ever compared within one task. Most outputs are their own key once stripped, which
    polars computes; the others are keyed once per distinct output, by polars when only their
    whitespace needs normalising, else by `compare`'s token keys in Python."""
    stripped = frame.select(pl.col("output").str.strip_chars(_ASCII_SPACE))["output"]
    # A superset of "not its own key" that is cheap to test ("e"/"E" for a digit before one).
    hard = (stripped.str.contains_any([".", "e", "E", *_INNER_SPACE])
            | (stripped.str.len_bytes() != stripped.str.len_chars()))
    frame = frame.with_columns(key_id=stripped.hash())
    if not hard.any():
        return frame
    rows = hard.arg_true()
    distinct = frame["output"].gather(rows).unique().to_frame("output")
    floaty = distinct.filter(pl.col("output").str.contains(_MAYBE_FLOAT))["output"]
    digits = _digits(float_tol)
    keys = pl.concat([
        distinct.filter(~pl.col("output").str.contains(_MAYBE_FLOAT)).select(
            "output", key=pl.col("output").str.replace_all(f"[{_ASCII_SPACE}]+", " ").str.strip_chars(" ")),
        pl.DataFrame({"output": floaty, "key": [" ".join([_token_key(t, digits) for t in o.split()])
                                                for o in floaty]}, schema={"output": pl.String, "key": pl.String}),
    ]).select("output", key_id=pl.col("key").hash())
    found = frame["output"].gather(rows).to_frame("output").with_columns(row=rows).join(keys, on="output")
    return frame.with_columns(frame["key_id"].scatter(found["row"], found["key_id"]))


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


def _strict(runs: pl.DataFrame, tests: pl.DataFrame, seed: int,
            float_tol: float = 1e-6) -> tuple[pl.DataFrame, pl.DataFrame]:
    from synthsmith.stages.verify_strict import strict_verify  # it imports this module

    return strict_verify(runs, tests, seed, float_tol)


# A method gets conformed RUNS and TESTS (tests checked unique, weights >= 0 or null) and must
# raise `duplicate_error` on duplicate (task, solution, test) runs itself.
METHODS: dict[str, Method] = {"strict": _strict, "paper": dual_verify}


def check_unique_runs(runs: pl.DataFrame) -> None:
    _check_unique(runs, [TASK, SOL, TEST], "runs")


def duplicate_error(columns: list[str], name: str) -> ValueError:
    return ValueError(f"{name}: more than one row per ({', '.join(columns)})")


def _check_unique(df: pl.DataFrame, columns: list[str], name: str) -> None:
    # Combined column hashes all distinct proves it at once; otherwise check exactly.
    combined = pl.lit(0, dtype=pl.UInt64)
    for k, column in enumerate(columns):
        combined = combined * 0x9E3779B97F4A7C15 + pl.col(column).hash(seed=k)
    if df.select(combined.n_unique()).item() == df.height:
        return
    if df.select(columns).is_duplicated().any():
        raise duplicate_error(columns, name)


def _scores(runs: pl.DataFrame, clean: pl.DataFrame, labels: pl.DataFrame, float_tol: float) -> pl.DataFrame:
    """Per (task, candidate): golden score, validation passes, total. Every candidate with a
    run appears, with zeros if it passed nothing."""
    judged = clean.join(labels, on=[TASK, TEST])
    # Equal keys without a float token match exactly; only pairs that may hold a float token go
    # to `outputs_match`, each distinct (expected, actual) pair once.
    maybe_float = (pl.col("expected_output").str.contains(_MAYBE_FLOAT)
                   | pl.col("output").str.contains(_MAYBE_FLOAT))
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
