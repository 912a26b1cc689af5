"""Sandbox throughput, measured side by side in one run: the whole `synthsmith sandbox run`
command as a user runs it, a naive executor, a bare fork loop with no isolation (the practical
ceiling), our steady state (workers already started), start-up, and a realistic mix.

    python benchmarks/sandbox_throughput.py      (from the project root, in the project's venv)

Trivial workload: 1,000 stdio jobs, 20 distinct programs x 50 inputs, as the pipeline produces
them (candidate code x test inputs), on 2 workers; every path's outputs are checked.
  command:  `synthsmith sandbox run JOBS OUT --workers 2` in a new process, timed from start to
            exit: interpreter, imports, workers' start-up, the jobs, the Parquet written.
  start-up: the sandbox's own, in a fresh process: the first run_jobs call on 1 job (pool,
            workers with their namespaces and mounts, the job). Beside it, the same command on
            1 job, and that command's imports alone (Python, typer, polars): its floor.
  steady:   run_jobs in this process with its workers already started (the execute stage's
            second and later shards).
  naive:    one fresh `python -c CODE` per job via subprocess.run, from 2 threads (as the X-Coder
            repo's executor does): a full interpreter start per job, no isolation.
  fork loop: 2 lean processes (`python -S`), each looping over its share: fork, point stdin/stdout
            at files (on /dev/shm), exec() the precompiled code, wait. No isolation, no limits, no
            supervision.
Command, steady and fork loop take turns over 5 rounds: each rate printed is the median of its
rounds, each ratio the median of the ratios within a round (runs seconds apart, under the same
load). Naive runs once (it is slow).
Realistic mix: 400 jobs, 16 programs x 25 inputs: real work (sorting, a DP), wrong answers,
exceptions, a crash (SIGABRT) and infinite loops at a 0.5 s limit; ours against naive on it.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import polars as pl

from synthsmith.contract.tables import SANDBOX_JOBS
from synthsmith.sandbox.runner import probe_isolation, run_jobs

WORKERS = 2
COMMAND = Path(sys.executable).with_name("synthsmith")


def job(job_id: str, code: str, data: str, time_limit_s: float = 2.0) -> dict:
    return {"job_id": job_id, "code": code, "mode": "stdio", "entry": None, "input": data,
            "time_limit_s": time_limit_s, "memory_mb": 256}


def trivial_jobs(programs: int = 20, inputs: int = 50) -> pl.DataFrame:
    rows = [job(f"{p}-{i}", f"a, b = map(int, input().split())\nprint(a * {p + 1} + b)", f"{i} {p}\n")
            for p in range(programs) for i in range(inputs)]
    return pl.DataFrame(rows, schema=SANDBOX_JOBS.columns)


def trivial_expected(jobs: pl.DataFrame) -> list[str]:
    pairs = [tuple(map(int, job_id.split("-"))) for job_id in jobs["job_id"]]
    return [f"{i * (p + 1) + p}\n" for p, i in pairs]


MIX = {  # program -> how many of the 16 use it; each gets 25 inputs n = 0..24
    "n = int(input())\nprint(sum(sorted(range(n * 2000, 0, -1))[:n + 1]))": 6,  # real work
    "n = int(input())\nf = [0, 1]\nfor _ in range(n * 500):\n    f.append((f[-1] + f[-2]) % 1000003)\nprint(f[-1])": 5,
    "n = int(input())\nprint(n + 1 if n % 5 else n)": 2,  # a wrong answer, still "ok" to the sandbox
    "n = int(input())\nif n % 4 == 3:\n    raise ValueError(n)\nprint(n)": 1,  # runtime errors
    "import os\nn = int(input())\nif n % 8 == 1:\n    os.abort()\nprint(n)": 1,  # a crash (SIGABRT)
    "n = int(input())\nwhile n % 12 == 5:\n    pass\nprint(n)": 1,  # 2 of 25 inputs never finish
}
MIX_LIMIT_S = 0.5


def mix_jobs() -> pl.DataFrame:
    rows, p = [], 0
    for code, copies in MIX.items():
        for _ in range(copies):
            # a distinct program each time (a comment), as distinct candidates are
            rows += [job(f"m{p}-{n}", f"# candidate {p}\n{code}", f"{n}\n", MIX_LIMIT_S) for n in range(25)]
            p += 1
    return pl.DataFrame(rows, schema=SANDBOX_JOBS.columns)


def ours(jobs: pl.DataFrame) -> list[str | None]:
    return run_jobs(jobs, workers=WORKERS)["output"].to_list()


def command(jobs: pl.DataFrame) -> list[str | None]:
    """The whole command in a new process, as a user runs it."""
    with tempfile.TemporaryDirectory() as tmp:
        jobs.write_parquet(Path(tmp, "jobs.parquet"))
        subprocess.run([str(COMMAND), "sandbox", "run", Path(tmp, "jobs.parquet"), Path(tmp, "out.parquet"),
                        "--workers", str(WORKERS)], check=True, capture_output=True)
        return pl.read_parquet(Path(tmp, "out.parquet"))["output"].to_list()


def naive(jobs: pl.DataFrame) -> list[str | None]:
    def one(job: dict) -> str | None:
        try:
            done = subprocess.run([sys.executable, "-c", job["code"]], input=job["input"], capture_output=True,
                                  text=True, timeout=job["time_limit_s"])
        except subprocess.TimeoutExpired:
            return ""
        return done.stdout

    with ThreadPoolExecutor(WORKERS) as pool:
        return list(pool.map(one, jobs.to_dicts()))


# argv: JOBS_JSON ([[code, input], ...]) OUT_JSON DIR. Correct for the trivial workload, nothing more.
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


# The loop's files on a tmpfs, as ours are (on a disk, inode allocation alone can halve its rate).
FAST_TMP = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None


def fork_loop(jobs: pl.DataFrame) -> list[str]:
    rows = jobs.select("code", "input").rows()
    share = -(-len(rows) // WORKERS)
    with tempfile.TemporaryDirectory(dir=FAST_TMP) as tmp:
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


FIRST_CALL = """
import sys, time
import polars as pl
from synthsmith.sandbox.runner import run_jobs
jobs = pl.read_parquet(sys.argv[1])
start = time.perf_counter()
assert run_jobs(jobs, workers=int(sys.argv[2]))["status"].to_list() == ["ok"]
print(time.perf_counter() - start)
"""
IMPORTS = "import synthsmith.cli, typer._adapters, polars, synthsmith.contract.tables"


def first_call(jobs: pl.DataFrame) -> float:
    """Seconds of the first run_jobs call in a fresh process."""
    with tempfile.TemporaryDirectory() as tmp:
        jobs.write_parquet(Path(tmp, "jobs.parquet"))
        done = subprocess.run([sys.executable, "-c", FIRST_CALL, Path(tmp, "jobs.parquet"), str(WORKERS)],
                              check=True, capture_output=True, text=True)
    return float(done.stdout)


def imports_alone(jobs: pl.DataFrame) -> None:
    subprocess.run([sys.executable, "-c", IMPORTS], check=True)


def timed(run, jobs: pl.DataFrame, expected: list[str] | None = None, repeat: int = 3) -> float:
    """Median wall seconds of `repeat` runs; each run's outputs are checked against `expected`."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        outputs = run(jobs)
        times.append(time.perf_counter() - start)
        if expected is not None:
            assert outputs == expected, run.__name__
    return statistics.median(times)


ROUNDS = 5  # command, steady and fork loop run in turn, once per round


def interleaved(runs: dict, jobs: pl.DataFrame, expected: list[str]) -> dict[str, list[float]]:
    """Runs/s of each path per round. The paths take turns, so a ratio taken within a round
    compares runs seconds apart: load that comes and goes on a shared machine moves both."""
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(ROUNDS):
        for name, run in runs.items():
            rates[name].append(jobs.height / timed(run, jobs, expected, repeat=1))
    return rates


def main() -> None:
    jobs = trivial_jobs()
    want = trivial_expected(jobs)
    for run in (ours, naive, fork_loop, command):  # warm the page cache, imports and our workers
        run(jobs.head(4))
    isolation = probe_isolation()
    rounds = interleaved({"command": command, "steady": ours, "fork loop": fork_loop}, jobs, want)
    rates = {name: statistics.median(values) for name, values in rounds.items()}
    rates["naive"] = jobs.height / timed(naive, jobs, want, repeat=1)

    def ratio(a: str, b: str) -> str:
        per_round = sorted(x / y for x, y in zip(rounds[a], rounds[b]))
        return f"{statistics.median(per_round):6.2f}x (rounds: {', '.join(f'{r:.2f}' for r in per_round)})"

    start_up = statistics.median(first_call(jobs.head(1)) for _ in range(5))
    command_one = timed(command, jobs.head(1), want[:1], repeat=5)
    floor = timed(imports_alone, jobs, repeat=5)
    mix = mix_jobs()
    mix_rates = {"ours": mix.height / timed(ours, mix), "naive": mix.height / timed(naive, mix, repeat=1)}
    statuses = run_jobs(mix, workers=WORKERS)["status"].value_counts().sort("status").iter_rows()

    print(f"{jobs.height} trivial jobs (20 programs x 50 inputs), {WORKERS} workers, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}")
    print("isolation (ours): " + ", ".join(f"{name} {state}" if state.startswith("OFF") else f"{name} on"
                                          for name, state in isolation.items()))
    for name, rate in rates.items():
        spread = f"  (rounds: {min(rounds[name]):.0f}-{max(rounds[name]):.0f})" if name in rounds else ""
        print(f"  {name + ':':11}{rate:8.1f} runs/s{spread}")
    print(f"  start-up:  {start_up:8.3f} s (the sandbox's: first run_jobs call in a fresh process, 1 job)")
    print(f"  command on 1 job: {command_one:.3f} s, of which its imports alone: {floor:.3f} s")
    print(f"  command/naive:      {rates['command'] / rates['naive']:6.2f}x")
    print(f"  steady/fork loop:   {ratio('steady', 'fork loop')}")
    print(f"  command/fork loop:  {ratio('command', 'fork loop')}")
    print(f"realistic mix: {mix.height} jobs ({', '.join(f'{status} {n}' for status, n in statuses)}; "
          f"{MIX_LIMIT_S} s limit)")
    print(f"  ours:  {mix_rates['ours']:8.1f} runs/s   naive: {mix_rates['naive']:8.1f} runs/s   "
          f"ours/naive: {mix_rates['ours'] / mix_rates['naive']:.2f}x")


if __name__ == "__main__":
    main()
