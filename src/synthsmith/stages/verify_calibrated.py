"""The "calibrated" verification method: strict's behaviour clusters, decided by an estimated
probability that the leading cluster is wrong instead of a fixed lead.

Candidates are clustered and the golden cluster chosen exactly as in strict
(stages/verify_strict.py, steps 1-3): the largest eligible cluster of candidates that agree on
every test. A task is discarded as strict does when there is nothing to decide from (no_tests,
no_candidates, no_passing_candidate, too_few_labelled_tests, degenerate_outputs), when no two
candidates agree (weak_consensus) or when another cluster is at least as large as the golden one
(contested_consensus). Otherwise the evidence becomes a probability that the golden cluster is a
group of wrong programs that happen to agree, a logistic model of these features:
  - golden_size, runner_up_size: the golden cluster's and the next largest cluster's members;
  - rest_share: the candidates in neither of the two, as a share of all candidates;
  - lost_tests: the tests where the golden output does not have more votes than any other
    output (a per-input vote among all clean runs); a correct cluster rarely loses one, while a
    wrong pair is usually outvoted by the other candidates on the input where it is wrong;
  - runner_up_gap: the tests on which the runner-up behaves differently from the golden cluster;
  - missed_tests: the tests the golden cluster did not run cleanly although another candidate did;
  - few_values: whether the golden outputs take at most 2 distinct values (True/False, YES/NO),
    where unrelated wrong programs agree most easily.
The task is kept when the probability is at most `threshold` (params: verify.threshold; lower
keeps fewer tasks, more surely), else discarded as low_confidence. The golden solution, labels
and golden tests are strict's. All of these discards but the final ones (no_tests, no_candidates,
too_few_labelled_tests) can change with more candidates (`UNDECIDED_REASONS`).

The coefficients are fitted, not derived: `COEFFICIENTS` says how. The probability is only as
well calibrated as the fitting data is like yours; the threshold is a knob on the
precision/keep trade-off (benchmarks/verify_quality.py prints the curve).

Implementation: on top of strict's vectorised clusters, one join of the clean runs with the
golden cluster's outputs and one count of votes per (test, output); 10M runs in a few seconds.
"""

from __future__ import annotations

import math

import polars as pl

from synthsmith.contract.values import (
    CONTESTED_CONSENSUS,
    DEGENERATE_OUTPUTS,
    LOW_CONFIDENCE,
    NO_CANDIDATES,
    NO_PASSING_CANDIDATE,
    NO_TESTS,
    TOO_FEW_LABELLED_TESTS,
    WEAK_CONSENSUS,
)
from synthsmith.stages.verify_strict import (
    MIN_SUPPORT,
    Evidence,
    _decode,
    _task_of,
    consensus_evidence,
    consensus_verdicts,
)
from synthsmith.stages.votes import TASK

# Discards that more candidates can turn into a keep (stage more_candidates asks for them).
UNDECIDED_REASONS: tuple[str, ...] = (WEAK_CONSENSUS, CONTESTED_CONSENSUS, NO_PASSING_CANDIDATE, DEGENERATE_OUTPUTS,
                                      LOW_CONFIDENCE)

FEATURES = ("golden_size", "runner_up_size", "rest_share", "lost_tests", "runner_up_gap", "missed_tests",
            "few_values")
# Logistic regression of "the golden cluster is wrong" on FEATURES, fitted by
# `python benchmarks/verify_quality.py --fit --seed 0` (HumanEval mutants, natural mix, n = 4, 8, 16,
# 8 tasks per problem and n; the tasks that reach the model; L2 penalty 1e-2 on the slopes).
COEFFICIENTS: dict[str, float] = {
    "intercept": 0.0, "golden_size": -1.0, "runner_up_size": 1.0, "rest_share": 0.0, "lost_tests": 1.0,
    "runner_up_gap": 0.0, "missed_tests": 1.0, "few_values": 1.0,
}
DEFAULT_THRESHOLD = 0.01


def calibrated_verify(runs: pl.DataFrame, tests: pl.DataFrame, seed: int, float_tol: float = 1e-6,
                      threshold: float = DEFAULT_THRESHOLD,
                      coefficients: dict[str, float] | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Calibrated verification (module docstring) on conformed RUNS and TESTS (weights unused)."""
    if not 0 <= threshold <= 1:
        raise ValueError(f"threshold must be a probability in [0, 1], not {threshold}")
    evidence = consensus_evidence(runs, tests, float_tol)
    tasks = _assess(evidence, coefficients or COEFFICIENTS)
    tasks = tasks.with_columns(reason=pl.coalesce(
        "gate", pl.when(pl.col("score") > _logit(threshold)).then(pl.lit(LOW_CONFIDENCE))))
    return consensus_verdicts(evidence, tasks, seed)


def assess(runs: pl.DataFrame, tests: pl.DataFrame, float_tol: float = 1e-6,
           coefficients: dict[str, float] | None = None) -> pl.DataFrame:
    """Per task (conformed RUNS and TESTS): task_id, golden_solution_id (the golden cluster's
    lowest candidate, kept or not), gate (the discard reason before the model, null when the
    model decides), FEATURES, score (the log-odds) and p_wrong. For benchmarks and fitting."""
    evidence = consensus_evidence(runs, tests, float_tol)
    task_names, _, sol_names = evidence.names
    return _assess(evidence, coefficients or COEFFICIENTS).select(
        task_id=_decode(task_names, "t"),
        golden_solution_id=pl.when(pl.col("golden_ts").is_not_null()).then(
            _decode(sol_names, pl.col("golden_ts") % (1 << 32))),
        gate="gate", **{f: f for f in FEATURES}, score="score",
        p_wrong=1 / (1 + (-pl.col("score")).exp()),
    ).sort(TASK)


def _logit(p: float) -> float:
    """The score threshold of a probability (the comparison is on scores: no exp per task)."""
    if p <= 0:
        return -math.inf
    if p >= 1:
        return math.inf
    return math.log(p / (1 - p))


def score_expr(coefficients: dict[str, float]) -> pl.Expr:
    """The log-odds, summed left to right in FEATURES order (plain-Python references do the same)."""
    score = pl.lit(float(coefficients["intercept"]))
    for f in FEATURES:
        score = score + float(coefficients[f]) * pl.col(f).cast(pl.Float64)
    return score


def _assess(evidence: Evidence, coefficients: dict[str, float]) -> pl.DataFrame:
    """evidence.tasks plus gate, FEATURES and score."""
    tasks = evidence.tasks.join(_features(evidence), on="t", how="left")
    return tasks.with_columns(gate=_gate(), score=score_expr(coefficients))


def _gate() -> pl.Expr:
    """strict's reasons, with a lead of one instead of MARGIN (the model judges the rest)."""
    return (
        pl.when(pl.col("tests") == 0).then(pl.lit(NO_TESTS))
        .when(pl.col("candidates") == 0).then(pl.lit(NO_CANDIDATES))
        .when(pl.col("voted_tests") == 0).then(pl.lit(NO_PASSING_CANDIDATE))
        .when(~pl.col("any_two_tests")).then(pl.lit(TOO_FEW_LABELLED_TESTS))
        .when(~pl.col("any_eligible")).then(pl.lit(DEGENERATE_OUTPUTS))
        .when(pl.col("golden_size") < MIN_SUPPORT).then(pl.lit(WEAK_CONSENSUS))
        .when(pl.col("golden_size") <= pl.col("runner_up_size")).then(pl.lit(CONTESTED_CONSENSUS))
    )


def _features(evidence: Evidence) -> pl.DataFrame:
    """FEATURES (but golden_size, runner_up_size: in evidence.tasks) per task with a golden cluster."""
    tasks = evidence.tasks.filter(pl.col("golden_ts").is_not_null()).select(
        "t", "golden_ts", "golden_size", "runner_up_size", "candidates", "voted_tests")
    clean = evidence.clean.select("ts", "tx", "key_id")
    golden = clean.join(tasks.select(ts="golden_ts"), on="ts", how="semi").select("tx", golden_key="key_id")
    per_golden = golden.group_by(t=_task_of("tx")).agg(
        golden_clean=pl.len(), golden_values=pl.col("golden_key").n_unique())
    # Per (test, output): its votes; per test, the golden output's votes and the best other's.
    votes = (
        clean.group_by("tx", "key_id").agg(votes=pl.len())
        .join(golden, on="tx", how="inner")
        .group_by("tx").agg(
            golden_votes=pl.col("votes").filter(pl.col("key_id") == pl.col("golden_key")).sum(),
            other_votes=pl.col("votes").filter(pl.col("key_id") != pl.col("golden_key")).max().fill_null(0))
        .group_by(t=_task_of("tx")).agg(lost_tests=(pl.col("golden_votes") <= pl.col("other_votes")).sum())
    )
    # The runner-up cluster's lowest candidate and its distance to the golden one: the tests where
    # exactly one of them ran cleanly, or both did with different outputs.
    runner_up = (
        evidence.clusters.join(tasks.select("t", "golden_ts"), on="t")
        .filter(pl.col("first") != pl.col("golden_ts"))
        .sort(["t", "size", "first"], descending=[False, True, False])
        .unique("t", keep="first").select("t", runner_ts="first")
    )
    runner = (
        clean.join(runner_up.select(ts="runner_ts"), on="ts", how="semi").select("tx", "key_id")
        .join(golden, on="tx", how="full", coalesce=True)
        .group_by(t=_task_of("tx")).agg(
            runner_up_gap=(pl.col("key_id").is_null() | pl.col("golden_key").is_null()
                           | (pl.col("key_id") != pl.col("golden_key"))).sum())
    )
    # missing the runner-up: runner_up_gap counts every test the golden ran cleanly on
    return (
        tasks.join(per_golden, on="t", how="left")
        .join(votes, on="t", how="left")
        .join(runner_up, on="t", how="left")
        .join(runner.filter(pl.col("t").is_in(runner_up["t"].implode())), on="t", how="left")
        .select(
            "t",
            rest_share=(pl.col("candidates") - pl.col("golden_size") - pl.col("runner_up_size"))
            / pl.col("candidates"),
            lost_tests=pl.col("lost_tests").fill_null(0),
            runner_up_gap=pl.when(pl.col("runner_ts").is_null()).then(pl.col("golden_clean"))
            .otherwise(pl.col("runner_up_gap").fill_null(0)),
            missed_tests=pl.col("voted_tests") - pl.col("golden_clean"),
            few_values=(pl.col("golden_values") <= 2).cast(pl.Int64),
        )
    )
