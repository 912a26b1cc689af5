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
for _name, _value in {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_LOCAL_STORAGE_PATH": str(PROJECT_ROOT / ".synthsmith" / "prefect-results"),
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",  # 20 s default is too short on 2 cores
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
}.items():
    os.environ.setdefault(_name, _value)

import polars as pl  # noqa: E402
from prefect import get_run_logger, task  # noqa: E402

from synthsmith import schemas  # noqa: E402
from synthsmith.params import UserError, load_params  # noqa: E402


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

    `settings` must be JSON-serialisable: it is part of the cache key.
    """
    logger = get_run_logger()
    shards = [frame.slice(start, shard_size) for start in range(0, frame.height, shard_size)] or [frame]
    results = []
    for number, shard in enumerate(shards, 1):
        results.append(_run_shard(fn, shard, settings, label=f"{label} {number}/{len(shards)}"))
        logger.info("%s: shard %d/%d done (%d rows)", label, number, len(shards), shard.height)
    return pl.concat(results, how="vertical_relaxed") if results else frame.clear()


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


def run_stage(flow: Callable[[], object]) -> None:
    """Entry point of `python -m flows.<stage>`: user mistakes become one line and exit code 2.

    params.yaml is validated before the flow starts, so a bad knob fails fast and cleanly."""
    one_line = _UserErrorsInOneLine()
    for handler in logging.getLogger().handlers + logging.getLogger("prefect").handlers:
        handler.addFilter(one_line)
    try:
        load_params("params.yaml")
        flow()
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
