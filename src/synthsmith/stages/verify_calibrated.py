"""The "calibrated" verification method: strict's behaviour clusters, decided by an estimated
probability that the leading cluster is wrong instead of by a fixed lead.

Candidates are clustered and the golden cluster chosen exactly as in strict
(stages/verify_strict.py, steps 1-3): the largest eligible group of candidates that agree on every
test. A task is discarded as in strict when there is nothing to decide from (no_tests,
no_candidates, no_passing_candidate, too_few_labelled_tests, degenerate_outputs), when no two
candidates agree (weak_consensus), or when another cluster is at least as large as the golden one
(contested_consensus: a tie is never kept). Otherwise a logistic model turns the evidence into
P(wrong), the probability that the golden cluster is a group of wrong programs that happen to
agree. Its features, with g the golden cluster's size, r the next largest cluster's and c the
candidates:
  - log_golden_size (log g), log_candidates (log c), golden_share (g / c), runner_up_size (r),
    clear_lead (g >= r + 2, strict's rule): a large group is rarely wrong, a small group among
    many candidates often is, and a close runner-up makes it doubtful;
  - dissent: over the tests the golden cluster ran cleanly on, the largest excess of the biggest
    group of other candidates agreeing on another output over the other candidates agreeing with
    the golden output, as a share of the other candidates (how the rest splits: a correct answer
    is rarely outvoted by the others on a test, a wrong group usually is where it is wrong);
  - centrality: the share of the other candidates' outputs that equal the golden one minus the
    share of pairs of other candidates that agree with each other (the others cluster around a
    correct solution: each wrong program is wrong in its own way);
  - missed_tests: tests the golden cluster did not run cleanly although another candidate did;
  - few_values: the golden outputs take at most 2 distinct values (True/False, YES/NO), where
    unrelated wrong programs agree most easily.
The task is kept when P(wrong) <= `threshold` (verify.threshold; lower keeps fewer tasks, more
surely), else discarded as low_confidence. The golden solution, labels and golden tests are
strict's. Every discard but no_tests, no_candidates and too_few_labelled_tests can change with
more candidates (`UNDECIDED_REASONS`); when undecided tasks get more candidates in rounds, use the
lower `ROUNDS_THRESHOLD`.

The coefficients are fitted, not derived (`COEFFICIENTS` says on what): the probability is only as
well calibrated as that data is like yours, so read the threshold as a knob on the precision/keep
trade-off (benchmarks/verify_quality.py --curve prints it).

Implementation: strict's vectorised clusters plus one count of votes per (test, output) joined
with the golden cluster's outputs; 10M runs in a few seconds.
"""

from __future__ import annotations

import math

import polars as pl

from synthsmith.contract.values import (
    CONTESTED_CONSENSUS,
    DEGENERATE_OUTPUTS,
    LOW_CONFIDENCE,
    NO_PASSING_CANDIDATE,
    WEAK_CONSENSUS,
)
from synthsmith.stages.verify_strict import (
    Evidence,
    consensus_evidence,
    consensus_reason,
    consensus_verdicts,
    decode,
    task_of,
)
from synthsmith.stages.votes import TASK

# Discards that more candidates can turn into a keep (stage verify_rounds asks for them).
UNDECIDED_REASONS: tuple[str, ...] = (WEAK_CONSENSUS, CONTESTED_CONSENSUS, NO_PASSING_CANDIDATE, DEGENERATE_OUTPUTS,
                                      LOW_CONFIDENCE)

FEATURES = ("log_golden_size", "log_candidates", "golden_share", "runner_up_size", "clear_lead", "dissent",
            "centrality", "missed_tests", "few_values")
# Logistic regression of "the golden cluster is wrong" on FEATURES (log-odds = intercept + sum of
# coefficient * feature), fitted by `python benchmarks/verify_quality.py --fit --seed 0 --ns 4,8,16,32`:
# HumanEval mutants, natural (distinct) mix, seed 0, 8 tasks per problem and n, the tasks that reach
# the model (n = 4, 8, 16, 32 pooled), L2 penalty 1e-3 per task on the slopes.
COEFFICIENTS: dict[str, float] = {
    "intercept": -0.8462, "log_golden_size": -2.8110, "log_candidates": 1.4220, "golden_share": -1.8226,
    "runner_up_size": 0.2813, "clear_lead": -1.2052, "dissent": 0.6223, "centrality": 0.7347, "missed_tests": 0.9063,
    "few_values": 0.1304,
}
DEFAULT_THRESHOLD = 0.15
# The threshold to use when undecided tasks get more candidates in rounds: every round is one more
# chance for a wrong group to look right, so each look must be surer (benchmarks/verify_quality.py
# --adaptive: 0.15 in rounds falls under 99% golden precision on 2 of 3 seeds, 0.05 does not).
ROUNDS_THRESHOLD = 0.05


def calibrated_verify(runs: pl.DataFrame, tests: pl.DataFrame, seed: int, float_tol: float = 1e-6,
                      threshold: float = DEFAULT_THRESHOLD,
                      coefficients: dict[str, float] | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Calibrated verification (module docstring) on conformed RUNS and TESTS (weights unused)."""
    if not 0 <= threshold <= 1:
        raise ValueError(f"threshold must be a probability in [0, 1], not {threshold}")
    evidence = consensus_evidence(runs, tests, float_tol)
    tasks = _assess(evidence, coefficients or COEFFICIENTS)
    tasks = tasks.with_columns(reason=pl.coalesce(
        "gate", pl.when(pl.col("score") > logit(threshold)).then(pl.lit(LOW_CONFIDENCE))))
    return consensus_verdicts(evidence, tasks, seed)


def assess(runs: pl.DataFrame, tests: pl.DataFrame, float_tol: float = 1e-6,
           coefficients: dict[str, float] | None = None) -> pl.DataFrame:
    """Per task (conformed RUNS and TESTS): task_id, golden_solution_id (the golden cluster's
    lowest candidate, kept or not), gate (the discard reason before the model, null when the
    model decides), FEATURES, score (the log-odds) and p_wrong. For benchmarks and fitting."""
    evidence = consensus_evidence(runs, tests, float_tol)
    task_names, _, sol_names = evidence.names
    return _assess(evidence, coefficients or COEFFICIENTS).select(
        task_id=decode(task_names, "t"),
        golden_solution_id=pl.when(pl.col("golden_ts").is_not_null()).then(
            decode(sol_names, pl.col("golden_ts") % (1 << 32))),
        gate="gate", **{f: f for f in FEATURES}, score="score",
        p_wrong=1 / (1 + (-pl.col("score")).exp()),
    ).sort(TASK)


def logit(p: float) -> float:
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
    # strict's reasons with a lead of one instead of MARGIN: the model judges any lead
    return tasks.with_columns(gate=consensus_reason(margin=1), score=score_expr(coefficients))


def _features(evidence: Evidence) -> pl.DataFrame:
    """FEATURES but runner_up_size (in evidence.tasks) per task with a golden cluster."""
    tasks = evidence.tasks.filter(pl.col("golden_ts").is_not_null()).select(
        "t", "golden_ts", "golden_size", "runner_up_size", "candidates", "voted_tests")
    clean = evidence.clean.select("ts", "tx", "key_id")
    golden = clean.join(tasks.select(ts="golden_ts"), on="ts", how="semi").select("tx", golden_key="key_id")
    per_golden = golden.group_by(t=task_of("tx")).agg(
        golden_clean=pl.len(), golden_values=pl.col("golden_key").n_unique())
    # Per test the golden cluster ran cleanly on, over the m(x) candidates outside it that ran
    # cleanly there: a(x) agree with it, the largest group on one other output has b(x), and
    # same(x) of the m(x) * (m(x) - 1) / 2 pairs among them agree with each other.
    g = pl.col("golden_size").cast(pl.Int64)
    agree = pl.col("golden_votes") - g
    outside = pl.col("total") - g
    votes = (
        clean.group_by("tx", "key_id").agg(votes=pl.len())
        .join(golden, on="tx", how="inner")
        .with_columns(is_golden=pl.col("key_id") == pl.col("golden_key"), v=pl.col("votes").cast(pl.Int64))
        .group_by("tx").agg(
            golden_votes=pl.col("v").filter("is_golden").sum(),
            other_votes=pl.col("v").filter(~pl.col("is_golden")).max().fill_null(0),
            total=pl.col("v").sum(),
            other_pairs=(pl.col("v") * (pl.col("v") - 1) // 2).filter(~pl.col("is_golden")).sum())
        .with_columns(t=task_of("tx"))
        .join(tasks.select("t", "golden_size"), on="t")
        .group_by("t").agg(
            agreeing=agree.sum(), outside=outside.sum(), max_dissent=(pl.col("other_votes") - agree).max(),
            same_pairs=(pl.col("other_pairs") + agree * (agree - 1) // 2).sum(),
            all_pairs=(outside * (outside - 1) // 2).sum())
    )
    others = pl.col("candidates").cast(pl.Int64) - g
    return (
        tasks.join(per_golden, on="t", how="left")
        .join(votes, on="t", how="left")
        .select(
            "t",
            log_golden_size=pl.col("golden_size").cast(pl.Float64).log(),
            log_candidates=pl.col("candidates").cast(pl.Float64).log(),
            golden_share=pl.col("golden_size") / pl.col("candidates"),
            clear_lead=(pl.col("golden_size") >= pl.col("runner_up_size") + 2).cast(pl.Int64),
            dissent=pl.when(others > 0).then(pl.col("max_dissent") / others).otherwise(0.0),
            centrality=pl.when(pl.col("outside") > 0).then(pl.col("agreeing") / pl.col("outside")).otherwise(1.0)
            - pl.when(pl.col("all_pairs") > 0).then(pl.col("same_pairs") / pl.col("all_pairs")).otherwise(1.0),
            missed_tests=pl.col("voted_tests") - pl.col("golden_clean"),
            few_values=(pl.col("golden_values") <= 2).cast(pl.Int64),
        )
    )
