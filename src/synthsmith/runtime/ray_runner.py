"""runner.kind: ray: prefect-ray's RayTaskRunner, its workers reporting to the stage's Prefect server.

Imported only when a stage runs on Ray: prefect-ray is an optional dependency.
"""

from __future__ import annotations

import logging

from prefect_ray import RayTaskRunner

from synthsmith.contract.params import RunnerParams
from synthsmith.runtime.server import stage_api_url

QUIET = {"logging_level": logging.WARNING}  # Ray's INFO lines would bury the stage's log


class StageRayTaskRunner(RayTaskRunner):
    """Hands every Ray worker the stage's PREFECT_API_URL (job runtime_env), so that its task runs
    are recorded on the stage's server: a temporary server's URL is known only once the flow runs,
    which is when the runner starts Ray."""

    def __enter__(self) -> StageRayTaskRunner:
        self.init_kwargs["runtime_env"] = {"env_vars": {"PREFECT_API_URL": stage_api_url()}}
        return super().__enter__()


def ray_task_runner(runner: RunnerParams) -> StageRayTaskRunner:
    """`runner.address` set: that cluster. Null: a Ray instance on this machine of `workers` CPUs
    (a shard takes one), without dashboard, for the length of the flow."""
    if runner.address == "auto":
        # prefect-ray drops "auto", and a bare ray.init() starts a local instance when it finds no cluster.
        return StageRayTaskRunner("auto", init_kwargs=QUIET | {"address": "auto"})
    if runner.address:
        return StageRayTaskRunner(runner.address, init_kwargs=QUIET)
    # "local": a new instance, even where RAY_ADDRESS or a `ray start` on this machine would be found.
    return StageRayTaskRunner(init_kwargs=QUIET | {
        "address": "local", "num_cpus": runner.workers, "include_dashboard": False})
