"""Stage `generate_tasks`: sample subtrees, plan (stage 1), formulate (stage 2), filter, then hygiene
(decontaminate against benchmarks, drop near-duplicates). Every dropped task, with the step that dropped
it, is in `dropped.parquet`; every sampled subtree and the plan's selection from it in `task_features.parquet`."""

from collections import Counter

import polars as pl
from prefect import flow, task

from synthsmith.contract import tables
from synthsmith.contract.funnel import funnel
from synthsmith.contract.params import load_params
from synthsmith.llm.gateway import answer_requests, shard_settings, usage
from synthsmith.runtime.io import read_table, write_tables
from synthsmith.runtime.shards import map_shards
from synthsmith.runtime.stage import run_stage
from synthsmith.stages import generate_tasks, hygiene


@flow(name="generate_tasks")
def generate_tasks_flow(params_path: str = "params.yaml") -> None:
    params = load_params(params_path)
    settings = params.generate_tasks
    pool = read_table("data/evolve_features/pool.parquet", tables.FEATURE_POOL)
    subtrees = generate_tasks.sample_subtrees(pool, settings)
    plan_answers = map_shards(answer_requests, generate_tasks.plan_requests(subtrees, settings), settings.shard_size,
                              "task plans", **shard_settings(params.llm, what="task plans", reask=settings.reask,
                                                             validator="synthsmith.stages.generate_tasks:check_plan",
                                                             schema="synthsmith.stages.answer_schemas:PLAN"))
    plans, dropped_planning = generate_tasks.parse_plans(subtrees, plan_answers)
    statements = map_shards(answer_requests, generate_tasks.writing_requests(plans, settings), settings.shard_size,
                            "task statements", **shard_settings(params.llm, what="task statements"))
    written, dropped_writing = generate_tasks.parse_tasks(plans, statements, settings)
    benchmarks = hygiene.load_benchmarks(settings.decontaminate.benchmarks)
    kept, dropped_hygiene = task(hygiene.clean, name="task hygiene")(
        written, benchmarks, settings.dedup, settings.decontaminate)
    # every sampled subtree is a kept task or one row here, so the funnel lists what it counts
    dropped = pl.concat([dropped_planning, dropped_writing, dropped_hygiene])
    write_tables("data/generate_tasks", {
        "tasks": kept, "dropped": dropped,
        "task_features": generate_tasks.task_features(subtrees, plans),
        "llm_usage": usage("generate_tasks", pl.concat([plan_answers, statements]), params.llm),
        "funnel": funnel("generate_tasks", subtrees.height, kept.height, Counter(dropped["reason"].to_list()))})


if __name__ == "__main__":
    run_stage(generate_tasks_flow, scale_out=True)
