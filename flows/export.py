"""Stage `export`: SFT and RL Parquet files of the verified tasks."""

from synthsmith.orchestration import read_table, run_stage, write_tables
from prefect import flow

from synthsmith import schemas
from synthsmith.funnel import funnel
from synthsmith.params import load_params
from synthsmith.stages.export import to_rl, to_sft


@flow(name="export")
def export_flow(params_path: str = "params.yaml") -> None:
    settings = load_params(params_path).export
    tasks = read_table("data/generate_tasks/tasks.parquet", schemas.TASKS)
    tests = read_table("data/generate_tests/tests.parquet", schemas.TEST_INPUTS)
    candidates = read_table("data/generate_solutions/solutions.parquet", schemas.SOLUTIONS)
    verdicts = read_table("data/verify/verdicts.parquet", schemas.VERDICTS)
    sft, rl = to_sft(tasks, candidates, verdicts, settings), to_rl(tasks, tests, verdicts, settings)
    write_tables("data/export", {"sft": sft, "rl": rl,
                                 "funnel": funnel("export", int(verdicts["kept"].sum()), sft.height)})


if __name__ == "__main__":
    run_stage(export_flow)
