"""Stage `generate_solutions`: m candidates per task from the configured models."""

from prefect import flow

from synthsmith.contract import tables
from synthsmith.contract.funnel import funnel
from synthsmith.contract.params import load_params
from synthsmith.llm.gateway import answer_requests, shard_settings, usage
from synthsmith.runtime.io import read_table, write_tables
from synthsmith.runtime.shards import map_shards
from synthsmith.runtime.stage import run_stage
from synthsmith.stages import generate_solutions


@flow(name="generate_solutions")
def generate_solutions_flow(params_path: str = "params.yaml") -> None:
    params = load_params(params_path)
    settings = params.generate_solutions
    tasks = read_table("data/generate_tasks/tasks.parquet", tables.TASKS)
    asked = generate_solutions.solution_requests(tasks, settings)
    answers = map_shards(answer_requests, asked, settings.shard_size, "candidate solutions",
                         **shard_settings(params.llm, what="candidate solutions", reask=settings.reask,
                                          validator="synthsmith.stages.generate_solutions:check_solution"))
    kept, rejected = generate_solutions.parse_solutions(asked, answers, settings)
    write_tables("data/generate_solutions", {"solutions": kept,
                                             "llm_usage": usage("generate_solutions", answers, params.llm),
                                             "funnel": funnel(
        "generate_solutions", asked.height, kept.height, rejected)})


if __name__ == "__main__":
    run_stage(generate_solutions_flow, scale_out=True)
