"""Stage `generate_solutions`: m candidates per task from the configured models."""

from synthsmith.orchestration import map_shards, read_table, run_stage, write_tables
from prefect import flow

from synthsmith import schemas
from synthsmith.funnel import funnel
from synthsmith.llm.gateway import answer_requests, shard_settings, usage
from synthsmith.params import load_params
from synthsmith.stages import solutions


@flow(name="generate_solutions")
def generate_solutions_flow(params_path: str = "params.yaml") -> None:
    params = load_params(params_path)
    settings = params.generate_solutions
    tasks = read_table("data/generate_tasks/tasks.parquet", schemas.TASKS)
    asked = solutions.solution_requests(tasks, settings)
    answers = map_shards(answer_requests, asked, settings.shard_size, "candidate solutions",
                         **shard_settings(params.llm, what="candidate solutions", reask=settings.reask,
                                          validator="synthsmith.stages.solutions:check_solution"))
    kept, rejected = solutions.parse_solutions(asked, answers, settings)
    write_tables("data/generate_solutions", {"solutions": kept, "llm_usage": usage("generate_solutions", answers),
                                             "funnel": funnel(
        "generate_solutions", asked.height, kept.height, rejected)})


if __name__ == "__main__":
    run_stage(generate_solutions_flow, scale_out=True)
