"""Sandbox throughput: batched harness (one interpreter per program, a fork per input) against the
single-job path (one interpreter per job), in one run.

    python benchmarks/sandbox_throughput.py      (from the project root, in the project's venv)

Workload: 400 trivial stdio jobs, 8 distinct programs x 50 inputs, as the pipeline produces them
(candidate code x test inputs), on 2 workers.
"""

from __future__ import annotations

import time

import polars as pl

from synthsmith.sandbox import run_jobs
from synthsmith.schemas import SANDBOX_JOBS

PROGRAMS = 8
INPUTS = 50
WORKERS = 2


def make_jobs() -> pl.DataFrame:
    rows = []
    for p in range(PROGRAMS):
        code = f"a, b = map(int, input().split())\nprint(a * {p + 1} + b)"
        for i in range(INPUTS):
            rows.append({"job_id": f"{p}-{i}", "code": code, "mode": "stdio", "entry": None,
                         "input": f"{i} {p}\n", "time_limit_s": 2.0, "memory_mb": 256})
    return pl.DataFrame(rows, schema=SANDBOX_JOBS.columns)


def measure(jobs: pl.DataFrame, batch: bool) -> float:
    start = time.perf_counter()
    results = run_jobs(jobs, workers=WORKERS, batch=batch)
    elapsed = time.perf_counter() - start
    expected = [f"{int(j.split('-')[1]) * (int(j.split('-')[0]) + 1) + int(j.split('-')[0])}\n"
                for j in jobs["job_id"]]
    assert results["status"].to_list() == ["ok"] * jobs.height, results["status"].value_counts()
    assert results["output"].to_list() == expected
    return jobs.height / elapsed


def main() -> None:
    jobs = make_jobs()
    run_jobs(jobs.head(4), workers=WORKERS)  # warm the page cache and imports
    batched = measure(jobs, batch=True)
    single = measure(jobs, batch=False)
    print(f"{jobs.height} jobs ({PROGRAMS} programs x {INPUTS} inputs), {WORKERS} workers")
    print(f"batched:    {batched:8.1f} runs/s")
    print(f"single-job: {single:8.1f} runs/s")
    print(f"ratio:      {batched / single:8.1f}x")


if __name__ == "__main__":
    main()
