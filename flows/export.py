"""Stage `export`: SFT and RL Parquet files of the verified tasks, split into train and held-out."""

import polars as pl
from prefect import flow

from synthsmith.contract import tables
from synthsmith.contract.funnel import funnel
from synthsmith.contract.params import load_params
from synthsmith.runtime.io import read_table, write_tables
from synthsmith.runtime.stage import run_stage
from synthsmith.stages.export import split_counts, to_rl, to_sft


@flow(name="export")
def export_flow(params_path: str = "params.yaml") -> None:
    settings = load_params(params_path).export
    tasks = read_table("data/generate_tasks/tasks.parquet", tables.TASKS)
    tests = read_table("data/generate_tests/tests.parquet", tables.TEST_INPUTS)
    candidates = pl.concat([read_table(f"data/{stage}/solutions.parquet", tables.SOLUTIONS)
                            for stage in ("generate_solutions", "verify_rounds")])
    verdicts = read_table("data/verify_rounds/verdicts.parquet", tables.VERDICTS)
    sft, rl = to_sft(tasks, candidates, verdicts, settings), to_rl(tasks, tests, verdicts, settings)
    write_tables("data/export", {"sft": sft, "rl": rl,  # funnel: train/heldout count the RL table's tasks
                                 "funnel": funnel("export", int(verdicts["kept"].sum()), sft.height,
                                                  **split_counts(rl))})


if __name__ == "__main__":
    run_stage(export_flow)
