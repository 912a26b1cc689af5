"""Stage `generate_tests`: inputs from each configured generator, deduplicated and weighted."""

from collections import Counter

import polars as pl
from synthsmith.orchestration import map_shards, read_table, run_stage, write_tables
from prefect import flow

from synthsmith import schemas
from synthsmith.funnel import funnel
from synthsmith.llm.gateway import answer_requests, shard_settings, usage
from synthsmith.params import load_params
from synthsmith.stages import test_inputs


@flow(name="generate_tests")
def generate_tests_flow(params_path: str = "params.yaml") -> None:
    params = load_params(params_path)
    settings = params.generate_tests
    tasks = read_table("data/generate_tasks/tasks.parquet", schemas.TASKS)
    tables, dropped, all_answers = [], Counter(), []
    for generator in settings.generators:
        requests_for, parse = test_inputs.GENERATORS[generator]
        answers = map_shards(answer_requests, requests_for(tasks, settings), settings.shard_size,
                             f"{generator} test inputs", **shard_settings(
                                 params.llm, what=f"{generator} test inputs", reask=settings.reask,
                                 validator="synthsmith.stages.test_inputs:check_test_cases"))
        all_answers.append(answers)
        inputs, generator_dropped = parse(tasks, answers)
        tests, duplicates = test_inputs.weigh(inputs, generator, settings.weighting)
        tables.append(tests)
        dropped += generator_dropped + Counter(duplicate_input=duplicates)
    tests = pl.concat(tables)
    without_tests = tasks.filter(~pl.col("task_id").is_in(tests["task_id"].implode()))
    write_tables("data/generate_tests", {"tests": tests, "llm_usage": usage("generate_tests", pl.concat(all_answers)),
                                         "funnel": funnel(
        "generate_tests", tasks.height, tasks.height - without_tests.height, dropped + Counter(
            task_without_tests=without_tests.height), tests=tests.height)})


if __name__ == "__main__":
    run_stage(generate_tests_flow)
