"""Stage `verify`: label outputs by vote and keep tasks whose golden solution survives; tasks the
rule cannot decide yet are left undecided for stage verify_rounds."""

import polars as pl
from prefect import flow, task

from synthsmith.contract import tables
from synthsmith.contract.funnel import funnel
from synthsmith.contract.params import load_params
from synthsmith.contract.values import DISCARDED, KEPT, UNDECIDED
from synthsmith.runtime.io import read_table, write_tables
from synthsmith.runtime.stage import run_stage
from synthsmith.stages.solvability import drop_unsolved
from synthsmith.stages.verify import verify
from synthsmith.stages.verify_rounds import first_round_open, rule_threshold


@flow(name="verify")
def verify_flow(params_path: str = "params.yaml") -> None:
    params = load_params(params_path)
    settings = params.verify
    runs = read_table("data/execute/executions.parquet", tables.EXECUTIONS)
    tests = read_table("data/generate_tests/tests.parquet", tables.TEST_INPUTS)
    verdicts, agreement = task(verify, name="dual verification")(
        runs, tests.select("task_id", "test_id", "input", "weight"), seed=settings.seed, method=settings.method,
        float_tol=settings.float_tol, threshold=rule_threshold(settings, params.generate_solutions),
        more_possible=first_round_open(settings, params.generate_solutions, tests["task_id"].unique()))
    if settings.strong_model:
        solutions = read_table("data/generate_solutions/solutions.parquet", tables.SOLUTIONS)
        verdicts = drop_unsolved(verdicts, runs, solutions, settings.strong_model, settings.float_tol)
    outcomes = verdicts["outcome"]
    kept, left = int((outcomes == KEPT).sum()), int((outcomes == UNDECIDED).sum())
    dropped = dict(verdicts.filter(pl.col("outcome") == DISCARDED).group_by("reason").len().iter_rows())
    write_tables("data/verify", {"verdicts": verdicts, "agreement": agreement,
                                 "funnel": funnel("verify", verdicts.height, kept + left, dropped,
                                                  kept=kept, undecided=left)})


if __name__ == "__main__":
    run_stage(verify_flow)
