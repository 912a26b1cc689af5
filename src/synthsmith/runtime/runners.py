"""Where a stage's shard tasks run (params.yaml `runner`): the flow's own thread pool, Dask or Ray.

How, never what: every runner gives the same results (`shards.map_shards` gathers in shard order).
"""

from __future__ import annotations

import logging
import os

from prefect.task_runners import TaskRunner

from synthsmith.contract.params import RunnerParams, UserError
from synthsmith.runtime.server import stage_api_url


def task_runner(runner: RunnerParams) -> TaskRunner | None:
    """The task runner `runner` asks for; None for `local` (the flow's own ThreadPoolTaskRunner).

    With an `address` it connects to that Dask scheduler or Ray cluster, whose workers must reach
    the same Prefect server as the stage (PREFECT_API_URL) and import this project. Without one it
    starts workers on this machine for the length of the flow (`workers` of them), which report
    to the stage's own Prefect server, even a temporary one."""
    if runner.kind == "local":
        return None
    if runner.kind == "ray":
        return _ray_task_runner(runner)
    from prefect_dask import DaskTaskRunner

    logging.getLogger("distributed").setLevel(logging.WARNING)  # Dask's INFO lines would bury the stage's log
    if runner.address:
        if not os.environ.get("PREFECT_API_URL"):
            raise UserError("runner.address: the Dask workers must report to the stage's Prefect server; set "
                            "PREFECT_API_URL (here and on the workers) to a server they all reach")
        return DaskTaskRunner(address=runner.address)
    return DaskTaskRunner(cluster_class=_local_cluster, cluster_kwargs={
        "n_workers": runner.workers, "threads_per_worker": runner.threads_per_worker, "processes": True,
        "dashboard_address": None})


def _ray_task_runner(runner: RunnerParams) -> TaskRunner:
    if runner.address and not os.environ.get("PREFECT_API_URL"):
        raise UserError("runner.address: the Ray workers must report to the stage's Prefect server; set "
                        "PREFECT_API_URL here to a server they all reach (the stage passes it on to them)")
    try:
        from synthsmith.runtime.ray_runner import ray_task_runner
    except ModuleNotFoundError as missing:
        if missing.name not in {"prefect_ray", "ray"}:
            raise
        raise UserError("runner.kind: ray needs prefect-ray, the optional extra `ray`: "
                        "uv pip install -c requirements.lock -e '.[ray]'") from None
    return ray_task_runner(runner)


def _local_cluster(**kwargs):
    """A LocalCluster whose worker processes talk to the Prefect server of this flow run."""
    import dask.config
    from distributed import LocalCluster

    # Set before the workers spawn, so that Dask's INFO lines stay out of the stage's log there too.
    quiet = dask.config.get("distributed.nanny.pre-spawn-environ") | {"DASK_LOGGING__DISTRIBUTED": "warning"}
    with dask.config.set({"distributed.nanny.pre-spawn-environ": quiet}):
        return LocalCluster(**kwargs, env={"PREFECT_API_URL": stage_api_url()})


def with_runner(flow, runner: RunnerParams):
    """`flow` with its shard tasks on `runner`'s task runner (unchanged for `local`)."""
    chosen = task_runner(runner)
    return flow if chosen is None else flow.with_options(task_runner=chosen)
