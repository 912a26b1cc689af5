"""Stage `report`: reports/metrics.json (a DVC metric) and the tables behind the DVC plots."""

from pathlib import Path

import polars as pl
from synthsmith.orchestration import read_table, run_stage, write_json
from prefect import flow

from synthsmith import schemas
from synthsmith.stages.report import metrics, plot_tables

STAGES = ("seeds", "extract_features", "evolve_features", "generate_tasks", "generate_tests",
          "generate_solutions", "execute", "verify", "export")
LLM_STAGES = ("extract_features", "evolve_features", "generate_tasks", "generate_tests", "generate_solutions")


@flow(name="report")
def report_flow() -> None:
    funnel = pl.concat([read_table(f"data/{stage}/funnel.parquet", schemas.FUNNEL) for stage in STAGES])
    tasks = read_table("data/generate_tasks/tasks.parquet", schemas.TASKS)
    verdicts = read_table("data/verify/verdicts.parquet", schemas.VERDICTS)
    growth = read_table("data/evolve_features/growth.parquet", schemas.FEATURE_GROWTH)
    agreement = read_table("data/verify/agreement.parquet", schemas.AGREEMENT)
    runs = read_table("data/execute/executions.parquet", schemas.EXECUTIONS)
    llm_usage = pl.concat([read_table(f"data/{stage}/llm_usage.parquet", schemas.LLM_USAGE) for stage in LLM_STAGES])
    write_json("reports/metrics.json", metrics(funnel, tasks, verdicts, growth, agreement, runs, llm_usage))
    Path("reports/plots").mkdir(parents=True, exist_ok=True)
    for name, table in plot_tables(funnel, tasks, verdicts, growth, agreement).items():
        table.write_csv(f"reports/plots/{name}.csv")


if __name__ == "__main__":
    run_stage(report_flow)
