"""What a shard task costs on each runner: 40 no-op one-row shards through `map_shards`, in process
and on this machine's Dask LocalCluster (2 workers x 1 thread) and Ray instance (2 CPUs).

    python benchmarks/shard_overhead.py      (from the project root, in the project's venv)

Timed: the `map_shards` call inside the flow (task run records, result persistence, shipping the
shard and its result); the whole flow, with the runner's start-up (and for the first, the
temporary Prefect server's), is printed apart. Prefect and its results live in a
temporary directory, on a temporary server, as for a stage run with no project server. Ray is
skipped when prefect-ray is not installed.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
import time

os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="shard-overhead-prefect-")
os.environ["PREFECT_LOCAL_STORAGE_PATH"] = tempfile.mkdtemp(prefix="shard-overhead-results-")
os.environ["PREFECT_TASKS_REFRESH_CACHE"] = "true"  # every run computes its shards, none is a cache hit
os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"  # 40 shard lines per runner would hide the table

import polars as pl  # noqa: E402
from prefect import flow  # noqa: E402

from synthsmith.contract.params import RunnerParams  # noqa: E402
from synthsmith.runtime.runners import with_runner  # noqa: E402
from synthsmith.runtime.shards import map_shards  # noqa: E402

SHARDS = 40
RUNNERS = {
    "in process": RunnerParams(),
    "dask LocalCluster(2 x 1)": RunnerParams(kind="dask", workers=2, threads_per_worker=1),
    "ray (2 CPUs)": RunnerParams(kind="ray", workers=2),
}


def no_op(shard: pl.DataFrame) -> pl.DataFrame:
    return shard


@flow(name="shard overhead")
def shards() -> float:
    started = time.monotonic()
    result = map_shards(no_op, pl.DataFrame({"x": list(range(SHARDS))}), 1, "no-op")
    assert result["x"].to_list() == list(range(SHARDS))
    return time.monotonic() - started


def main() -> None:
    for name, runner in RUNNERS.items():
        if runner.kind == "ray" and importlib.util.find_spec("prefect_ray") is None:
            print(f"{name}: skipped, prefect-ray is not installed")
            continue
        started = time.monotonic()
        sharded_s = with_runner(shards, runner)()
        total_s = time.monotonic() - started
        per_shard_s = sharded_s * (1 if runner.kind == "local" else runner.workers) / SHARDS
        print(f"{name}: {SHARDS} shards in {sharded_s:.1f} s ({per_shard_s:.2f} s of worker time per shard); "
              f"the flow, with start-up, {total_s:.1f} s")


if __name__ == "__main__":
    main()
