"""What tests/test_dask.py and tests/test_ray.py share: one flow, run on the local runner and on a
scale-out runner, must give identical tables, for a pure shard function and for the sandbox.

A module of its own (not conftest.py): the workers import `seeded_draws` from it by name, and
importing conftest there would reset the workers' Prefect settings."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import polars as pl

from synthsmith.contract.params import RunnerParams
from synthsmith.contract.tables import SANDBOX_JOBS
from synthsmith.runtime.runners import with_runner
from synthsmith.runtime.shards import map_shards
from synthsmith.sandbox.runner import run_jobs


def comparable(results: pl.DataFrame) -> pl.DataFrame:
    """Sandbox results less what differs between any two runs, on any runner: the measured times.
    (Tracebacks name plain "solution.py", not the batch's random temporary path.)"""
    return results.drop("wall_ms", "cpu_ms")


def seeded_draws(shard: pl.DataFrame, seed: int, log: str) -> pl.DataFrame:
    """Pure: row x gets a draw from Random(f"{seed}:{x}"), whichever process runs it. `log` records
    which process ran the shard (module level: a worker imports it by name)."""
    with open(log, "a") as pids:
        pids.write(f"{os.getpid()}\n")
    time.sleep(0.3)  # long enough that both workers get shards
    draws = [random.Random(f"{seed}:{x}").randrange(10**9) for x in shard["x"]]
    return shard.with_columns(draw=pl.Series(draws, dtype=pl.Int64), double=pl.col("x") * 2)


def sandbox_jobs() -> pl.DataFrame:
    add = "a, b = map(int, input().split())\nprint(a + b)"
    specs = [
        {"code": add, "input": "2 3\n"}, {"code": add, "input": "40 2\n"}, {"code": add, "input": "x y\n"},
        {"code": "def solve(a, b):\n    return [a, b, a * b]", "mode": "function", "entry": "solve",
         "input": "6\n7\n"},
        {"code": "print(1 / 0)"},
        {"code": "print('unclosed'"},
        {"code": "while True:\n    pass", "time_limit_s": 0.3},
        {"code": "import os\nprint(os.getuid() != 0, open('/etc/hostname').read() != '')"},
    ]
    defaults = {"mode": "stdio", "entry": None, "input": "", "time_limit_s": 1.0, "memory_mb": 256}
    return pl.DataFrame([{"job_id": f"j{i}", **defaults, **spec} for i, spec in enumerate(specs)],
                        schema=SANDBOX_JOBS.columns)


def runner_gives_the_local_results(runner: RunnerParams, tmp_path: Path) -> list[str]:
    """Runs the flow on the local runner and on `runner`, asserts identical tables; returns the
    process ids that ran `runner`'s four pure shards (none of them this process)."""
    from prefect import flow
    from prefect.settings import PREFECT_TASKS_REFRESH_CACHE, temporary_settings

    log = tmp_path / "pids.txt"
    numbers = pl.DataFrame({"x": list(range(40))})
    jobs = sandbox_jobs()

    @flow(name="scale-out check")
    def stage() -> tuple[pl.DataFrame, pl.DataFrame]:
        pure = map_shards(seeded_draws, numbers, 10, "draws", seed=7, log=str(log))
        sandboxed = map_shards(run_jobs, jobs, 3, "sandbox runs", workers=1)
        return pure, sandboxed

    # Same shards, same cache keys: refresh, so the scale-out run computes instead of reading the cache.
    with temporary_settings(updates={PREFECT_TASKS_REFRESH_CACHE: True}):
        started = time.monotonic()
        local_pure, local_sandboxed = stage()
        local_s = time.monotonic() - started
        local_pids = log.read_text().split()
        log.write_text("")
        started = time.monotonic()
        other_pure, other_sandboxed = with_runner(stage, runner)()
        other_s = time.monotonic() - started
        other_pids = log.read_text().split()

    assert local_pids == [str(os.getpid())] * 4  # in process, one shard after another
    assert len(other_pids) == 4 and str(os.getpid()) not in other_pids
    assert other_pure.equals(local_pure)
    assert local_pure["x"].to_list() == list(range(40))  # shard order kept
    assert comparable(other_sandboxed).equals(comparable(local_sandboxed))
    assert comparable(local_sandboxed)["stderr"].str.contains('File "solution.py"').sum() == 3  # 2 tracebacks, 1 syntax error
    assert local_sandboxed.select("job_id", "status").rows() == [
        ("j0", "ok"), ("j1", "ok"), ("j2", "runtime_error"), ("j3", "ok"), ("j4", "runtime_error"),
        ("j5", "syntax_error"), ("j6", "timeout"), ("j7", "ok")]
    assert local_sandboxed["output"].to_list()[:2] == ["5\n", "42\n"]
    assert local_sandboxed["output"][7] == "True True\n"  # isolated (own uid), so inside a worker too
    print(f"local runner {local_s:.1f} s, {runner.kind} ({runner.workers} workers) {other_s:.1f} s")
    return other_pids
