"""Cached shard tasks: a stage maps a function over row shards, each shard one Prefect task.

Shard tasks are cached on content we hash ourselves (input shard + the code that runs + params),
not on Prefect's default policy, which includes the run id and never hits across runs; so a
stage killed halfway resumes from its finished shards.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

import polars as pl
from prefect import get_run_logger, task
from prefect.context import FlowRunContext
from prefect.task_runners import ThreadPoolTaskRunner

from synthsmith.runtime.code import closure_digest, function_specs


def frame_hash(frame: pl.DataFrame) -> str:
    return hashlib.sha256(frame.write_ndjson().encode()).hexdigest()


def _shard_key(context, parameters: dict) -> str:
    """Input shard + every project file the shard can run (fn's import closure and the validators
    its settings name as "module:function", see `code`) + the settings."""
    fn, shard, settings = parameters["fn"], parameters["shard"], parameters["settings"]
    code = closure_digest([fn.__module__, *function_specs(settings)])
    parts = [fn.__module__, fn.__qualname__, code, frame_hash(shard), json.dumps(settings, sort_keys=True)]
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
