"""A stage-like flow for tests/test_failures_server.py, run as `python -m failures_flow` through
`run_stage`: three one-row shards; the first is quick, the others sleep FAILURES_DELAY_S (read
here, not passed in: settings are part of the shard cache key), so a test can kill the Prefect
server after the first finished. Every shard that runs appends its row to FAILURES_LOG."""

import os
import time

import polars as pl
from prefect import flow

from synthsmith.runtime.shards import map_shards
from synthsmith.runtime.stage import run_stage


def slow_copy(shard: pl.DataFrame, log: str) -> pl.DataFrame:
    with open(log, "a") as calls:
        calls.write(f"{shard['x'][0]}\n")
    if shard["x"][0] > 0:
        time.sleep(float(os.environ.get("FAILURES_DELAY_S", "0")))
    return shard


@flow(name="failures_flow")
def failures_flow() -> None:
    map_shards(slow_copy, pl.DataFrame({"x": [0, 1, 2]}), 1, "slow", log=os.environ["FAILURES_LOG"])


if __name__ == "__main__":
    run_stage(failures_flow)
