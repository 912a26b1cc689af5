"""Stage `verify`: label outputs by vote and keep tasks whose golden solution survives."""

import polars as pl
from synthsmith.orchestration import read_table, run_stage, write_tables
from prefect import flow, task

from synthsmith import schemas
from synthsmith.funnel import funnel
from synthsmith.params import load_params
from synthsmith.stages.solvability import drop_unsolved
from synthsmith.stages.verify import verify


@flow(name="verify")
def verify_flow(params_path: str = "params.yaml") -> None:
    settings = load_params(params_path).verify
    runs = read_table("data/execute/executions.parquet", schemas.EXECUTIONS)
    tests = read_table("data/generate_tests/tests.parquet", schemas.TEST_INPUTS)
    verdicts, agreement = task(verify, name="dual verification")(
        runs, tests.select("task_id", "test_id", "input", "weight"), seed=settings.seed, method=settings.method,
        float_tol=settings.float_tol)
    if settings.strong_model:
        solutions = read_table("data/generate_solutions/solutions.parquet", schemas.SOLUTIONS)
        verdicts = drop_unsolved(verdicts, runs, solutions, settings.strong_model, settings.float_tol)
    kept = int(verdicts["kept"].sum())
    dropped = dict(verdicts.filter(~pl.col("kept")).group_by("reason").len().iter_rows())
    write_tables("data/verify", {"verdicts": verdicts, "agreement": agreement,
                                 "funnel": funnel("verify", verdicts.height, kept, dropped)})


if __name__ == "__main__":
    run_stage(verify_flow)
