"""Stage `execute`: every candidate on every input of its task, in the sandbox."""

from prefect import flow, get_run_logger

from synthsmith.contract import tables
from synthsmith.contract.funnel import funnel
from synthsmith.contract.params import load_params
from synthsmith.runtime.io import read_table, write_tables
from synthsmith.runtime.shards import map_shards
from synthsmith.runtime.stage import run_stage
from synthsmith.sandbox.runner import probe_isolation, run_jobs
from synthsmith.stages import execute


@flow(name="execute")
def execute_flow(params_path: str = "params.yaml") -> None:
    settings = load_params(params_path).execute
    tasks = read_table("data/generate_tasks/tasks.parquet", tables.TASKS)
    tests = read_table("data/generate_tests/tests.parquet", tables.TEST_INPUTS)
    candidates = read_table("data/generate_solutions/solutions.parquet", tables.SOLUTIONS)
    jobs = execute.build_jobs(candidates, tests, tasks, settings)
    get_run_logger().info("sandbox isolation: %s", probe_isolation())
    results = map_shards(run_jobs, jobs, settings.shard_size, "sandbox runs", workers=settings.workers)
    table = execute.executions(jobs, results, candidates)
    write_tables("data/execute", {"executions": table, "funnel": funnel(
        "execute", jobs.height, table.height, **{f"status:{k}": v for k, v in execute.status_counts(table).items()})})


if __name__ == "__main__":
    run_stage(execute_flow, scale_out=True)
