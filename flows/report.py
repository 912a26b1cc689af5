"""Stage `report`: reports/metrics.json (a DVC metric), the tables behind the DVC plots with their
images (SVG), and the offline page template `dvc plots show/diff` use (stages/charts.py)."""

from pathlib import Path

import polars as pl
from prefect import flow, get_run_logger

from synthsmith.contract import metrics as metrics_contract
from synthsmith.contract import tables
from synthsmith.contract.funnel import STAGE_UNITS, first_zero
from synthsmith.contract.params import load_params
from synthsmith.runtime.io import read_table, write_json
from synthsmith.runtime.stage import run_stage
from synthsmith.stages.charts import PAGE_PATH, page, svg
from synthsmith.stages.feature_tree import sampleable_leaves
from synthsmith.stages.report import metrics, plot_tables, task_set_metrics

LLM_STAGES = ("extract_features", "evolve_features", "generate_tasks", "generate_tests", "generate_solutions",
              "verify_rounds")


@flow(name="report")
def report_flow(params_path: str = "params.yaml") -> None:
    diversity = load_params(params_path).generate_tasks.diversity  # dvc.yaml: report reads only this key
    funnel = pl.concat([read_table(f"data/{stage}/funnel.parquet", tables.FUNNEL) for stage in STAGE_UNITS])
    tasks = read_table("data/generate_tasks/tasks.parquet", tables.TASKS)
    verdicts = read_table("data/verify_rounds/verdicts.parquet", tables.VERDICTS)
    growth = read_table("data/evolve_features/growth.parquet", tables.FEATURE_GROWTH)
    agreement = read_table("data/verify_rounds/agreement.parquet", tables.AGREEMENT)
    runs = pl.concat([read_table(f"data/{stage}/executions.parquet", tables.EXECUTIONS)
                      for stage in ("execute", "verify_rounds")])
    rounds = read_table("data/verify_rounds/rounds.parquet", tables.ROUNDS)
    llm_usage = pl.concat([read_table(f"data/{stage}/llm_usage.parquet", tables.LLM_USAGE) for stage in LLM_STAGES])
    task_set = task_set_metrics(
        tasks, verdicts, read_table("data/generate_tasks/dropped.parquet", tables.DROPPED_TASKS),
        read_table("data/generate_tasks/task_features.parquet", tables.TASK_FEATURES),
        sampleable_leaves(read_table("data/evolve_features/pool.parquet", tables.FEATURE_POOL)), diversity)
    report = metrics_contract.checked(metrics(funnel, tasks, verdicts, growth, agreement, runs, llm_usage, task_set,
                                                rounds))
    plots = plot_tables(funnel, tasks, verdicts, growth, agreement)  # all computed before anything is written
    charts = {name: svg(name, table) for name, table in plots.items()}
    write_json("reports/metrics.json", metrics_contract.as_json(report))
    Path("reports/plots").mkdir(parents=True, exist_ok=True)
    for name, table in plots.items():
        table.write_csv(f"reports/plots/{name}.csv")
        Path(f"reports/plots/{name}.svg").write_text(charts[name])
    PAGE_PATH.write_text(page())
    if unpriced := report.llm.unpriced_models if report.llm else {}:
        get_run_logger().warning("no price for model(s) %s: their %d calls count as $0 (set llm.models.<model>."
                                 "input_usd_per_mtok and output_usd_per_mtok)", ", ".join(unpriced),
                                 sum(unpriced.values()))
    for number, step in (report.rounds or {}).items():
        get_run_logger().info("verification round %s: %d tasks with %d samples per model: %d kept, %d discarded, "
                              "%d undecided; %d requests, $%.4f", number, step.tasks, step.samples_per_model,
                              step.kept, step.discarded, step.undecided, step.requests, step.cost_usd)
    if stopped := first_zero(funnel):  # the run completed, with an empty export: say where and why, once
        get_run_logger().warning("the funnel reached zero at %s", stopped)


if __name__ == "__main__":
    run_stage(report_flow)
