"""What every stage flow shares: Prefect defaults, cached shard tasks, Parquet I/O, clean failure.

Shard tasks are cached on content we hash ourselves (input shard + the code that runs + params),
not on Prefect's default policy, which includes the run id and never hits across runs; so a
stage killed halfway resumes from its finished shards.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import shutil
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

PROJECT_ROOT = Path.cwd()
if "PREFECT_API_URL" not in os.environ and "PREFECT_HOME" not in os.environ:
    # The project's own server (`synthsmith serve --start-server`), if one runs: no temporary server per stage.
    from synthsmith.local_server import project_server_url

    if _api_url := project_server_url(PROJECT_ROOT / ".synthsmith" / "prefect-home"):
        os.environ["PREFECT_API_URL"] = _api_url
for _name, _value in {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_LOCAL_STORAGE_PATH": str(PROJECT_ROOT / ".synthsmith" / "prefect-results"),
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",  # 20 s default is too short on 2 cores
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
}.items():
    os.environ.setdefault(_name, _value)

import polars as pl  # noqa: E402
from prefect import get_run_logger, task  # noqa: E402
from prefect.context import FlowRunContext  # noqa: E402
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner  # noqa: E402

from synthsmith import schemas  # noqa: E402
from synthsmith.params import RunnerParams, UserError, load_params  # noqa: E402


def frame_hash(frame: pl.DataFrame) -> str:
    return hashlib.sha256(frame.write_ndjson().encode()).hexdigest()


def code_hash(fn: Callable) -> str:
    """fn's module source, plus the files it declares in CODE_FILES (code it runs but does not import)."""
    module = sys.modules[fn.__module__]
    digest = hashlib.sha256(inspect.getsource(module).encode())
    for path in getattr(module, "CODE_FILES", ()):
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()


def _shard_key(context, parameters: dict) -> str:
    fn, shard, settings = parameters["fn"], parameters["shard"], parameters["settings"]
    parts = [fn.__module__, fn.__qualname__, code_hash(fn), frame_hash(shard), json.dumps(settings, sort_keys=True)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


@task(name="shard", persist_result=True, cache_key_fn=_shard_key, task_run_name="{label}")
def _run_shard(fn: Callable, shard: pl.DataFrame, settings: dict, label: str) -> pl.DataFrame:
    return fn(shard, **settings)


def map_shards(fn: Callable[..., pl.DataFrame], frame: pl.DataFrame, shard_size: int, label: str,
               **settings) -> pl.DataFrame:
    """fn(shard, **settings) over row shards, each a cached Prefect task; results concatenated in order.

    `settings` must be JSON-serialisable: it is part of the cache key. `fn` must be a module-level
    function: on a Dask runner it is pickled by reference and imported in the worker process.

    Every shard is submitted to the flow's task runner and the results are gathered in shard order,
    so the output does not depend on the runner. On a Dask runner all shards are in flight at
    once (the scheduler hands them to free worker threads). On the local thread-pool runner
    they run one after another, as before: a shard already uses the whole machine (`workers`
    sandbox processes) or the endpoint's whole `concurrency`, and two at once would double
    those limits.
    """
    logger = get_run_logger()
    shards = [frame.slice(start, shard_size) for start in range(0, frame.height, shard_size)] or [frame]
    in_flight = 1 if _runs_in_process() else len(shards)
    pending, results = [], []

    def gather(future) -> None:
        results.append(future.result())
        logger.info("%s: shard %d/%d done (%d rows)", label, len(results), len(shards), shards[len(results) - 1].height)

    for number, shard in enumerate(shards, 1):
        pending.append(_run_shard.submit(fn, shard, settings, label=f"{label} {number}/{len(shards)}"))
        if len(pending) == in_flight:
            gather(pending.pop(0))
    for future in pending:
        gather(future)
    return pl.concat(results, how="vertical_relaxed") if results else frame.clear()


def _runs_in_process() -> bool:
    context = FlowRunContext.get()
    return context is None or isinstance(context.task_runner, ThreadPoolTaskRunner)


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
        from synthsmith.ray_runner import ray_task_runner
    except ModuleNotFoundError as missing:
        if missing.name not in {"prefect_ray", "ray"}:
            raise
        raise UserError("runner.kind: ray needs prefect-ray, the optional extra `ray`: "
                        "uv pip install -c requirements.lock -e '.[ray]'") from None
    return ray_task_runner(runner)


def stage_api_url() -> str:
    """The Prefect API of the running flow, even a temporary server's: workers started for the flow
    must report there, or each would start a temporary server of its own."""
    from prefect.client.orchestration import get_client

    return str(get_client(sync_client=True).api_url)  # in a flow run, and as its task runner starts: the engine's


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


def read_table(path: str | Path, table: schemas.Table) -> pl.DataFrame:
    return schemas.conform(pl.read_parquet(path), table)


def write_tables(directory: str | Path, tables: dict[str, pl.DataFrame]) -> None:
    """Write every table of a stage into a fresh directory, then swap it in: never half-written."""
    directory = Path(directory)
    staging = directory.with_name(f".{directory.name}.{uuid.uuid4().hex[:8]}.tmp")
    staging.mkdir(parents=True)
    try:
        for name, frame in tables.items():
            frame.write_parquet(staging / f"{name}.parquet")
        if directory.exists():
            shutil.rmtree(directory)
        staging.rename(directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_json(path: str | Path, value: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")
    temporary.replace(path)


class _UserErrorsInOneLine(logging.Filter):
    """Prefect logs a failing flow's traceback; for a user's mistake the message alone is the point."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], UserError):
            record.exc_info, record.exc_text = None, None
        return True


def run_stage(flow: Callable[[], object], scale_out: bool = False) -> None:
    """Entry point of `python -m flows.<stage>`: user mistakes become one line and exit code 2.

    params.yaml is validated before the flow starts, so a bad knob fails fast and cleanly.
    `scale_out`: the flow's shard tasks run on the task runner of params.yaml's `runner` section."""
    one_line = _UserErrorsInOneLine()
    for handler in logging.getLogger().handlers + logging.getLogger("prefect").handlers:
        handler.addFilter(one_line)
    try:
        params = load_params("params.yaml")
        if scale_out:
            flow = with_runner(flow, params.runner)
        if parent := os.environ.get("SYNTHSMITH_PARENT_FLOW_RUN_ID"):  # started by a `synthsmith serve` run
            from synthsmith.serve import run_under_parent

            run_under_parent(flow, parent)
        else:
            flow()
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
