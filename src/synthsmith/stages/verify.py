"""Verification (METHOD.md section 7): label the tests' expected outputs from the candidates'
runs, and keep a task only when its golden solution can be trusted.

`verify` is the entry point; `METHODS` names the algorithms it can run: "strict" (the
default; stages/verify_strict.py: keep a task only when a dominant group of candidates agrees
on every test), "calibrated" (stages/verify_calibrated.py: keep it when the estimated chance
that the leading group is wrong is at most a threshold) and "paper" (the paper's Algorithm 1,
`dual_verify`).

Each verdict's outcome is kept, discarded, or undecided: a task that could still get more
candidates (`more_possible`) and that its method turned down for thin evidence (the method's
`UNDECIDED_REASONS`) is undecided, so stage more_candidates asks for more; any other is final.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import polars as pl

from synthsmith.contract import tables
from synthsmith.contract.values import DISCARDED, KEPT, UNDECIDED, VerifyMethod
from synthsmith.stages import verify_calibrated, verify_paper, verify_strict
from synthsmith.stages.votes import SOL, TASK, TEST, check_unique

Method = Callable[..., tuple[pl.DataFrame, pl.DataFrame]]

# A method gets conformed RUNS and TESTS (tests checked unique, weights >= 0 or null), seed and
# float_tol, plus its own keyword options, and must raise `votes.duplicate_error` on duplicate
# (task, solution, test) runs itself. Keyed by the value set `verify.method` is checked against.
METHODS: dict[VerifyMethod, Method] = {"strict": verify_strict.strict_verify,
                                       "calibrated": verify_calibrated.calibrated_verify,
                                       "paper": verify_paper.dual_verify}
# Per method, the discard reasons more candidates can change (the evidence was too thin to decide).
UNDECIDED_REASONS: dict[VerifyMethod, tuple[str, ...]] = {
    "strict": verify_strict.UNDECIDED_REASONS, "calibrated": verify_calibrated.UNDECIDED_REASONS,
    "paper": verify_paper.UNDECIDED_REASONS}


def verify(runs: pl.DataFrame, tests: pl.DataFrame, seed: int = 0, method: VerifyMethod = "strict",
           float_tol: float = 1e-6, threshold: float | None = None,
           more_possible: Iterable[str] | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(VERDICTS, AGREEMENT), one row each per task in `tests` or `runs`, sorted by task_id.

    `float_tol` is the relative/absolute tolerance for float tokens (`compare.outputs_match`);
    `threshold` is calibrated's (None: its default); `more_possible` the task_ids that can still
    get more candidates (module docstring; None: none, every verdict is final).

    Runs of a test_id absent from `tests` are ignored. Raises ValueError on an unknown
    method, duplicate (task, solution, test) runs or (task, test) tests, negative weights.
    """
    if method not in METHODS:
        raise ValueError(f"unknown verify method {method!r}; known: {sorted(METHODS)}")
    if threshold is not None and method != "calibrated":
        raise ValueError(f"a threshold is for the calibrated method, not {method!r}")
    runs = tables.conform(runs, tables.RUNS)
    tests = tables.conform(tests, tables.VERIFY_TESTS)
    check_unique(tests, [TASK, TEST], "tests")  # each method checks the runs (see METHODS)
    if (tests["weight"] < 0).any():
        raise ValueError("tests: weight must be >= 0 (or null, to use the input-size weight)")
    options = {} if threshold is None else {"threshold": threshold}
    verdicts, agreement = METHODS[method](runs, tests, seed, float_tol, **options)
    more = pl.Series(list(more_possible) if more_possible is not None else [], dtype=pl.String)
    candidates = runs.group_by(TASK).agg(candidates=pl.col(SOL).n_unique())
    verdicts = (
        verdicts.drop("candidates", strict=False).join(candidates, on=TASK, how="left")
        .with_columns(
            pl.col("candidates").fill_null(0),
            outcome=pl.when("kept").then(pl.lit(KEPT))
            .when(pl.col(TASK).is_in(more.implode()) & pl.col("reason").is_in(UNDECIDED_REASONS[method]))
            .then(pl.lit(UNDECIDED)).otherwise(pl.lit(DISCARDED)))
        .sort(TASK)
    )
    return tables.conform(verdicts, tables.VERDICTS), tables.conform(agreement, tables.AGREEMENT)
