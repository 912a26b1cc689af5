"""Stage `generate_tests`: inputs from each configured generator, validated (each kept input with the
validator's verdict), deduplicated and weighted."""

from collections import Counter

import polars as pl
from prefect import flow

from synthsmith.contract import tables
from synthsmith.contract.funnel import funnel
from synthsmith.contract.params import GenerateTestsParams, load_params
from synthsmith.contract.values import PROMPT, TOOL
from synthsmith.llm.gateway import answer_requests, shard_settings, usage
from synthsmith.runtime.io import read_table, write_tables
from synthsmith.runtime.shards import map_shards
from synthsmith.runtime.stage import run_stage
from synthsmith.sandbox.runner import run_jobs
from synthsmith.stages import generate_tests, tool_inputs


@flow(name="generate_tests")
def generate_tests_flow(params_path: str = "params.yaml") -> None:
    params = load_params(params_path)
    settings = params.generate_tests
    tasks = read_table("data/generate_tasks/tasks.parquet", tables.TASKS)
    ask = _asker(params.llm, settings)
    found, dropped, answers = [], Counter(), []
    if PROMPT in settings.generators:
        replies = ask(generate_tests.prompt_requests(tasks, settings), "prompt test inputs",
                      "synthsmith.stages.generate_tests:check_test_cases",
                      "synthsmith.stages.answer_schemas:TEST_CASES")
        inputs, lost = generate_tests.parse_prompt_inputs(tasks, replies)
        found.append(inputs.with_columns(generator=pl.lit(PROMPT)))
        answers.append(replies)
        dropped += lost
    if TOOL in settings.generators:
        replies = ask(tool_inputs.program_requests(tasks, settings, "tool_generator"), "tool generators",
                      "synthsmith.stages.tool_inputs:check_program")
        generators, lost = tool_inputs.parse_programs(tasks, replies, "generator")
        runs = _sandbox(tool_inputs.generator_jobs(generators, settings), settings, "generator runs")
        inputs, lost_running = tool_inputs.collect_inputs(runs, tasks, settings)
        found.append(inputs.with_columns(generator=pl.lit(TOOL)))
        answers.append(replies)
        dropped += lost + lost_running
    inputs = pl.concat(found)
    if settings.validate_inputs:
        replies = ask(tool_inputs.program_requests(tasks, settings, "input_validator"), "input validators",
                      "synthsmith.stages.tool_inputs:check_program")
        validators, lost = tool_inputs.parse_programs(tasks, replies, "validator")
        runs = _sandbox(tool_inputs.validation_jobs(validators, inputs), settings, "input validation")
        inputs, lost_validating = tool_inputs.apply_validation(inputs, runs)
        answers.append(replies)
        dropped += lost + lost_validating
    else:
        inputs = generate_tests.unvalidated(inputs)
    tests, duplicates = generate_tests.weigh_all(inputs, settings.weighting)
    without_tests = tasks.filter(~pl.col("task_id").is_in(tests["task_id"].implode()))
    by_generator = {f"tests_{g}": n for g, n in tests.group_by("generator").len().sort("generator").iter_rows()}
    write_tables("data/generate_tests", {"tests": tests,
                                         "llm_usage": usage("generate_tests", pl.concat(answers), params.llm),
                                         "funnel": funnel(
        "generate_tests", tasks.height, tasks.height - without_tests.height,
        {"task_without_tests": without_tests.height}, rejected=dropped + Counter(duplicate_input=duplicates),
        tests=tests.height, **by_generator)})


def _asker(llm, settings: GenerateTestsParams):
    def ask(requests: pl.DataFrame, what: str, validator: str, schema: str | None = None) -> pl.DataFrame:
        return map_shards(answer_requests, requests, settings.shard_size, what,
                          **shard_settings(llm, what=what, reask=settings.reask, validator=validator, schema=schema))
    return ask


def _sandbox(jobs: pl.DataFrame, settings: GenerateTestsParams, what: str) -> pl.DataFrame:
    return map_shards(run_jobs, jobs, max(1, jobs.height), what, workers=settings.tool.workers,
                      packages=list(tool_inputs.PACKAGES))


if __name__ == "__main__":
    run_stage(generate_tests_flow, scale_out=True)
