"""Scale-out: the same flow on the local runner and on Dask (a LocalCluster of 2 worker processes)
gives identical results, for a pure shard function and for the sandbox running inside a worker."""

from __future__ import annotations

import os
import random
import time

import polars as pl
import pytest

from synthsmith.orchestration import map_shards, with_runner
from synthsmith.params import RunnerParams
from synthsmith.sandbox import run_jobs
from synthsmith.schemas import SANDBOX_JOBS

pytest.importorskip("prefect_dask")



def comparable(results: pl.DataFrame) -> pl.DataFrame:
    """Sandbox results less what differs between any two runs, on any runner: the measured times.
    (Tracebacks name plain "solution.py", not the batch's random temporary path.)"""
    return results.drop("wall_ms", "cpu_ms")


def seeded_draws(shard: pl.DataFrame, seed: int, log: str) -> pl.DataFrame:
    """Pure: row x gets a draw from Random(f"{seed}:{x}"), whichever process runs it. `log` records
    which process ran the shard (module level: a Dask worker imports it by name)."""
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


def test_dask_runner_gives_the_local_results(prefect_server, tmp_path):
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

    # Same shards, same cache keys: refresh, so the Dask run computes instead of reading the cache.
    with temporary_settings(updates={PREFECT_TASKS_REFRESH_CACHE: True}):
        started = time.monotonic()
        local_pure, local_sandboxed = stage()
        local_s = time.monotonic() - started
        local_pids = log.read_text().split()
        log.write_text("")
        runner = RunnerParams(kind="dask", workers=2, threads_per_worker=1)
        started = time.monotonic()
        dask_pure, dask_sandboxed = with_runner(stage, runner)()
        dask_s = time.monotonic() - started
        dask_pids = log.read_text().split()

    assert local_pids == [str(os.getpid())] * 4  # in process, one shard after another
    assert len(dask_pids) == 4 and str(os.getpid()) not in dask_pids
    assert len(set(dask_pids)) == 2, dask_pids  # both worker processes ran shards
    assert dask_pure.equals(local_pure)
    assert local_pure["x"].to_list() == list(range(40))  # shard order kept
    assert comparable(dask_sandboxed).equals(comparable(local_sandboxed))
    assert comparable(local_sandboxed)["stderr"].str.contains('File "solution.py"').sum() == 3  # 2 tracebacks, 1 syntax error
    assert local_sandboxed.select("job_id", "status").rows() == [
        ("j0", "ok"), ("j1", "ok"), ("j2", "runtime_error"), ("j3", "ok"), ("j4", "runtime_error"),
        ("j5", "syntax_error"), ("j6", "timeout"), ("j7", "ok")]
    assert local_sandboxed["output"].to_list()[:2] == ["5\n", "42\n"]
    assert local_sandboxed["output"][7] == "True True\n"  # isolated (own uid) inside a Dask worker too
    print(f"local runner {local_s:.1f} s, dask LocalCluster(2 x 1) {dask_s:.1f} s")


def test_runner_params_default_to_local_and_choose_the_task_runner():
    from prefect_dask import DaskTaskRunner

    from synthsmith.orchestration import task_runner

    assert RunnerParams().kind == "local" and task_runner(RunnerParams()) is None
    local_cluster = task_runner(RunnerParams(kind="dask", workers=3, threads_per_worker=2))
    assert isinstance(local_cluster, DaskTaskRunner) and local_cluster.address is None
    assert local_cluster.cluster_kwargs["n_workers"] == 3 and local_cluster.cluster_kwargs["threads_per_worker"] == 2


def test_remote_scheduler_needs_a_shared_prefect_server(monkeypatch):
    from synthsmith.orchestration import task_runner
    from synthsmith.params import UserError

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with pytest.raises(UserError, match="PREFECT_API_URL"):
        task_runner(RunnerParams(kind="dask", address="tcp://10.0.0.5:8786"))
    monkeypatch.setenv("PREFECT_API_URL", "http://10.0.0.1:4200/api")
    assert task_runner(RunnerParams(kind="dask", address="tcp://10.0.0.5:8786")).address == "tcp://10.0.0.5:8786"
