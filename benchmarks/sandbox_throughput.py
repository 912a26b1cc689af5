"""Sandbox throughput: ours (isolated workers, batched) against a naive executor and against a bare
fork loop with no isolation at all (the practical ceiling), measured side by side in one run.

    python benchmarks/sandbox_throughput.py      (from the project root, in the project's venv)

Workload: 400 trivial stdio jobs, 8 distinct programs x 50 inputs, as the pipeline produces them
(candidate code x test inputs), on 2 workers; every path's outputs are checked.
  ours:    run_jobs(jobs, workers=2): namespaces, per-job uid and tmpfs, limits, a fork per input
           from a worker that compiled the program once.
  naive:   one fresh `python -c CODE` per job via subprocess.run, from 2 threads (as the X-Coder
           repo's executor does): a full interpreter start per job, no isolation.
  ceiling: 2 lean processes (`python -S`), each looping over its share: fork, point stdin/stdout at
           files, exec() the precompiled code, wait. No isolation, no limits, no supervision.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import polars as pl

from synthsmith.contract.tables import SANDBOX_JOBS
from synthsmith.sandbox.runner import probe_isolation, run_jobs

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


def expected(jobs: pl.DataFrame) -> list[str]:
    return [f"{int(j.split('-')[1]) * (int(j.split('-')[0]) + 1) + int(j.split('-')[0])}\n"
            for j in jobs["job_id"]]


def ours(jobs: pl.DataFrame) -> list[str]:
    results = run_jobs(jobs, workers=WORKERS)
    assert results["status"].to_list() == ["ok"] * jobs.height, results["status"].value_counts()
    return results["output"].to_list()


def naive(jobs: pl.DataFrame) -> list[str]:
    def one(job: dict) -> str:
        done = subprocess.run([sys.executable, "-c", job["code"]], input=job["input"], capture_output=True,
                              text=True, timeout=job["time_limit_s"])
        assert done.returncode == 0, done.stderr
        return done.stdout

    with ThreadPoolExecutor(WORKERS) as pool:
        return list(pool.map(one, jobs.to_dicts()))


# argv: JOBS_JSON ([[code, input], ...]) OUT_JSON DIR. Correct for this workload, nothing more.
FORK_LOOP = """
import json, os, sys
jobs_path, out_path, directory = sys.argv[1:]
with open(jobs_path) as f:
    jobs = json.load(f)
compiled, outputs = {}, []
for n, (code, data) in enumerate(jobs):
    program = compiled.get(code) or compiled.setdefault(code, compile(code, "solution.py", "exec"))
    stdin, stdout = os.path.join(directory, f"{n}.in"), os.path.join(directory, f"{n}.out")
    with open(stdin, "w") as f:
        f.write(data)
    pid = os.fork()
    if pid == 0:
        os.dup2(os.open(stdin, os.O_RDONLY), 0)
        os.dup2(os.open(stdout, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 1)
        exec(program, {"__name__": "__main__"})
        sys.stdout.flush()
        os._exit(0)
    os.waitpid(pid, 0)
    with open(stdout) as f:
        outputs.append(f.read())
with open(out_path, "w") as f:
    json.dump(outputs, f)
"""


def ceiling(jobs: pl.DataFrame) -> list[str]:
    rows = jobs.select("code", "input").rows()
    share = -(-len(rows) // WORKERS)
    with tempfile.TemporaryDirectory() as tmp:
        loops = []
        for w in range(WORKERS):
            directory = Path(tmp, str(w))
            directory.mkdir()
            (directory / "jobs.json").write_text(json.dumps(rows[w * share:(w + 1) * share]))
            loops.append(subprocess.Popen([sys.executable, "-S", "-c", FORK_LOOP, str(directory / "jobs.json"),
                                           str(directory / "out.json"), str(directory)]))
        outputs = []
        for w, loop in enumerate(loops):
            assert loop.wait() == 0
            outputs += json.loads(Path(tmp, str(w), "out.json").read_text())
    return outputs


def measure(run, jobs: pl.DataFrame) -> float:
    start = time.perf_counter()
    outputs = run(jobs)
    elapsed = time.perf_counter() - start
    assert outputs == expected(jobs), run.__name__
    return jobs.height / elapsed


def main() -> None:
    jobs = make_jobs()
    runners = (ours, naive, ceiling)
    for run in runners:  # warm the page cache and imports
        run(jobs.head(4))
    rates = {run.__name__: measure(run, jobs) for run in runners}
    isolation = probe_isolation()
    print(f"{jobs.height} jobs ({PROGRAMS} programs x {INPUTS} inputs), {WORKERS} workers, {os.cpu_count()} cores")
    print("isolation (ours): " + ", ".join(f"{name} {state}" if state.startswith("OFF") else f"{name} on"
                                          for name, state in isolation.items()))
    for name, rate in rates.items():
        print(f"{name + ':':9}{rate:8.1f} runs/s")
    print(f"ours/naive:   {rates['ours'] / rates['naive']:6.2f}x")
    print(f"ours/ceiling: {rates['ours'] / rates['ceiling']:6.2f}x")


if __name__ == "__main__":
    main()
