"""Verification (METHOD.md section 7): label the tests' expected outputs from the candidates'
runs, and keep a task only when its golden solution can be trusted.

`verify` is the entry point; `METHODS` names the algorithms it can run: "strict" (the
default; stages/verify_strict.py: keep a task only when a dominant group of candidates agrees
on every test) and "paper" (the paper's Algorithm 1, `dual_verify`).
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

from synthsmith.contract import tables
from synthsmith.contract.values import VerifyMethod
from synthsmith.stages.verify_paper import dual_verify
from synthsmith.stages.verify_strict import strict_verify
from synthsmith.stages.votes import TASK, TEST, check_unique

Method = Callable[[pl.DataFrame, pl.DataFrame, int, float], tuple[pl.DataFrame, pl.DataFrame]]

# A method gets conformed RUNS and TESTS (tests checked unique, weights >= 0 or null) and must
# raise `votes.duplicate_error` on duplicate (task, solution, test) runs itself.
# Keyed by the value set `verify.method` is checked against in params.yaml.
METHODS: dict[VerifyMethod, Method] = {"strict": strict_verify, "paper": dual_verify}


def verify(runs: pl.DataFrame, tests: pl.DataFrame, seed: int = 0, method: VerifyMethod = "strict",
           float_tol: float = 1e-6) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(VERDICTS, AGREEMENT), one row each per task in `tests` or `runs`, sorted by task_id.

    `float_tol` is the relative/absolute tolerance for float tokens (`compare.outputs_match`).

    Runs of a test_id absent from `tests` are ignored. Raises ValueError on an unknown
    method, duplicate (task, solution, test) runs or (task, test) tests, negative weights.
    """
    if method not in METHODS:
        raise ValueError(f"unknown verify method {method!r}; known: {sorted(METHODS)}")
    runs = tables.conform(runs, tables.RUNS)
    tests = tables.conform(tests, tables.VERIFY_TESTS)
    check_unique(tests, [TASK, TEST], "tests")  # each method checks the runs (see METHODS)
    if (tests["weight"] < 0).any():
        raise ValueError("tests: weight must be >= 0 (or null, to use the input-size weight)")
    verdicts, agreement = METHODS[method](runs, tests, seed, float_tol)
    return tables.conform(verdicts, tables.VERDICTS), tables.conform(agreement, tables.AGREEMENT)
