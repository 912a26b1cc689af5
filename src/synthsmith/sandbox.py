"""The sandbox runner: one Python process per batch of jobs that share code, mode, entry and
limits (the pipeline's candidate x test inputs), forking a fresh child per job; the single-job
path (one fresh Python subprocess per job) remains as the fallback and under `batch=False`.

Interface (which the later fork-server sandbox must keep): `run_jobs(jobs, workers)` takes a
SANDBOX_JOBS frame and returns a SANDBOX_RESULTS frame with exactly one row per job, in input
order, whatever happens to the job or to the runner. The execute flow only calls `run_jobs`,
so a replacement that keeps this contract touches nothing else.

Status: ok | syntax_error | runtime_error | timeout | memory_limit | output_limit | killed.
This isolates by resource limits, a scrubbed environment and a throw-away working directory;
it is not a security boundary (the child runs as our user).
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import polars as pl

from synthsmith import sandbox_harness
from synthsmith.schemas import SANDBOX_JOBS, SANDBOX_RESULTS, conform

HARNESS = Path(sandbox_harness.__file__)
STDERR_CHARS = 2_000
# Built from scratch, nothing copied from the parent: no API keys or proxies reach the child.
CHILD_ENV = {
    "PATH": "/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "PYTHONHASHSEED": "0",  # same set/dict iteration order on every run: outputs are comparable
    "PYTHONIOENCODING": "utf-8",
    "PYTHONINTMAXSTRDIGITS": "0",  # big-integer answers must print (3.11 caps int->str at 4300 digits)
    "MALLOC_ARENA_MAX": "1",  # each thread's malloc arena reserves 64 MB of address space against RLIMIT_AS
}
# -S: no site, so the parent venv's site-packages and .pth files stay out; the stdlib is still on
# sys.path. -P: the harness's directory (our package) is not prepended to sys.path. Not -I/-E:
# those would ignore the PYTHON* variables above, and the environment is entirely ours anyway.
PYTHON = [sys.executable, "-S", "-P"]


def run_jobs(jobs: pl.DataFrame, workers: int = 2, batch: bool = True) -> pl.DataFrame:
    """Run every job; one result row per job, in input order.

    With `batch` (the default), jobs sharing (code, mode, entry, time_limit_s, memory_mb) run in
    one harness process that compiles the code once and forks a child per input (see
    `sandbox_harness`); a job the batch leaves without a status line reruns alone on the
    single-job path, which `batch=False` forces for every job."""
    rows = conform(jobs, SANDBOX_JOBS).to_dicts()
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        if not batch:
            results = list(pool.map(_run_safely, rows))  # map yields in input order
        else:
            results: list[dict | None] = [None] * len(rows)
            groups: dict[tuple, list[int]] = {}
            for i, job in enumerate(rows):
                early = _precheck_safely(job)
                if early is not None:
                    results[i] = early
                else:
                    key = (job["code"], job["mode"], job["entry"], job["time_limit_s"], job["memory_mb"])
                    groups.setdefault(key, []).append(i)
            batches = _split(list(groups.values()), max(1, workers))
            batch_results = pool.map(lambda indices: _run_batch_safely([rows[i] for i in indices]), batches)
            for indices, done in zip(batches, batch_results):
                for i, result in zip(indices, done):
                    results[i] = result
    return conform(pl.DataFrame(results, schema=SANDBOX_RESULTS.columns), SANDBOX_RESULTS)


def _run_safely(job: dict) -> dict:
    try:
        return _run(job)
    except Exception:  # a runner failure is this job's result, never a lost row
        return _result(job, "killed", stderr=traceback.format_exc()[-STDERR_CHARS:])


def _result(job: dict, status: str, output: str | None = None, stderr: str = "",
            exit_code: int | None = None, wall_ms: float | None = None, cpu_ms: float | None = None) -> dict:
    return {"job_id": job["job_id"], "status": status, "output": output, "stderr": stderr,
            "exit_code": exit_code, "wall_ms": wall_ms, "cpu_ms": cpu_ms}


MAX_BATCH = 64  # jobs per harness process: bounds one batch's temp files and its share of a worker


def _split(groups: list[list[int]], workers: int) -> list[list[int]]:
    """Cut groups into batches of at most MAX_BATCH, and fine enough that `workers` threads all get work."""
    total = sum(map(len, groups))
    size = max(1, min(MAX_BATCH, math.ceil(total / workers)))
    return [group[start:start + size] for group in groups for start in range(0, len(group), size)]


def _precheck(job: dict) -> dict | None:
    """The checks that need no process: a runner error raises, a syntax error is the result."""
    if job["mode"] not in ("stdio", "function"):  # the harness would otherwise treat it as function mode
        raise ValueError(f"unknown mode {job['mode']!r}")
    try:  # in the parent: a program that does not compile needs no process
        compile(job["code"], "solution.py", "exec")
    except (SyntaxError, ValueError) as exc:  # ValueError: source with NUL bytes
        return _result(job, "syntax_error", stderr="".join(traceback.format_exception_only(exc))[-STDERR_CHARS:])
    # int()/float(): a null limit must fail here (a runner error), not in the child (a "runtime_error")
    int(job["memory_mb"]), float(job["time_limit_s"])
    return None


def _precheck_safely(job: dict) -> dict | None:
    try:
        return _precheck(job)
    except Exception:
        return _result(job, "killed", stderr=traceback.format_exc()[-STDERR_CHARS:])


def _limits(job: dict) -> tuple[int, float]:
    """(RLIMIT_CPU seconds, wall limit seconds).
    The verdict is on CPU time (over time_limit_s is a timeout), which load does not inflate.
    The wall limit only ends programs that sleep or block: half the limit again plus start-up
    slack, so a busy machine (workers >= cores) does not kill a correct solution. RLIMIT_CPU is
    the backstop should our watcher not get to run."""
    return math.ceil(job["time_limit_s"]) + 1, job["time_limit_s"] * 1.5 + 0.25


def _run_batch_safely(jobs: list[dict]) -> list[dict]:
    """One result per job, in order; whatever the batch did not report reruns on the single-job path."""
    try:
        reported = _run_batch(jobs)
    except Exception:  # a batch runner failure costs speed, never a row
        reported = {}
    return [reported[i] if i in reported else _run_safely(job) for i, job in enumerate(jobs)]


def _run_batch(jobs: list[dict]) -> dict[int, dict]:
    """Run jobs sharing code/mode/entry/limits in one harness; results of the jobs it reported on."""
    first = jobs[0]
    cpu_s, wall_s = _limits(first)
    reported: dict[int, dict] = {}
    with tempfile.TemporaryDirectory(prefix="synthsmith-batch-") as tmp:
        root = Path(tmp)
        code_path = root / "solution.py"
        code_path.write_text(first["code"], encoding="utf-8")
        for i, job in enumerate(jobs):
            (root / f"{i}.in").write_text(job["input"] or "", encoding="utf-8")
        argv = [*PYTHON, str(HARNESS), "batch", first["mode"], str(code_path), first["entry"] or "",
                str(int(first["memory_mb"])), str(cpu_s), repr(float(first["time_limit_s"])), repr(wall_s),
                str(root), str(len(jobs))]
        with open(root / "harness.err", "wb") as harness_err:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=harness_err, cwd=root, env=CHILD_ENV, start_new_session=True)
            try:  # the harness enforces every limit itself; this only bounds a wedged harness
                proc.wait(timeout=len(jobs) * (wall_s + 1) + 10)
            except subprocess.TimeoutExpired:
                _kill_group(proc.pid)
                proc.wait()
        statuses: dict[int, dict] = {}
        status_path = root / "status"
        if status_path.exists():
            for line in status_path.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    status = json.loads(line)
                    index = int(status["index"])
                    if 0 <= index < len(jobs):
                        statuses[index] = status
                except (ValueError, KeyError, TypeError):
                    continue  # a torn or foreign line: that job reruns
        for index, status in statuses.items():
            try:
                reported[index] = _verdict(
                    jobs[index], int(status["exit_code"]), float(status["cpu_s"]), bool(status["killed_by_us"]),
                    float(status["wall_s"]) * 1000, root / f"{index}.out", root / f"{index}.err")
            except (OSError, ValueError, KeyError, TypeError):
                continue
    return reported


def _run(job: dict) -> dict:
    """The single-job path: one fresh interpreter for this job (the batch fallback)."""
    early = _precheck(job)
    if early is not None:
        return early
    cpu_s, wall_s = _limits(job)
    with tempfile.TemporaryDirectory(prefix="synthsmith-job-") as tmp:
        root = Path(tmp)
        work = root / "work"  # the child's cwd; the I/O files sit beside it so its own files never clobber them
        work.mkdir()
        code_path, stdin_path, stdout_path, stderr_path = (
            root / name for name in ("solution.py", "stdin", "stdout", "stderr"))
        code_path.write_text(job["code"], encoding="utf-8")
        stdin_path.write_text(job["input"] or "", encoding="utf-8")  # a file, so no pipe can deadlock
        with open(stdin_path, "rb") as stdin, open(stdout_path, "wb") as stdout, open(stderr_path, "wb") as stderr:
            argv = [*PYTHON, str(HARNESS), job["mode"], str(code_path), job["entry"] or "",
                    str(int(job["memory_mb"])), str(cpu_s)]
            start = time.monotonic()
            proc = subprocess.Popen(argv, stdin=stdin, stdout=stdout, stderr=stderr, cwd=work,
                                    env=CHILD_ENV, start_new_session=True)
            exit_code, cpu_used, timed_out = _wait(proc, start, wall_s, job["time_limit_s"])
            wall_ms = (time.monotonic() - start) * 1000
        return _verdict(job, exit_code, cpu_used, timed_out, wall_ms, stdout_path, stderr_path)


def _verdict(job: dict, exit_code: int, cpu_used: float, timed_out: bool, wall_ms: float,
             stdout_path: Path, stderr_path: Path) -> dict:
    cpu_s, _ = _limits(job)
    output_bytes = stdout_path.stat().st_size if stdout_path.exists() else 0
    output = _read(stdout_path, sandbox_harness.OUTPUT_CAP_BYTES) if stdout_path.exists() else ""
    errors = _tail(stderr_path) if stderr_path.exists() else ""
    cpu_ms = cpu_used * 1000
    if output_bytes > sandbox_harness.OUTPUT_CAP_BYTES:
        status = "output_limit"
    elif timed_out or exit_code == -signal.SIGXCPU or (exit_code == -signal.SIGKILL and cpu_used >= cpu_s) \
            or cpu_used > job["time_limit_s"]:
        status = "timeout"  # our wall kill, RLIMIT_CPU's SIGXCPU or hard-limit SIGKILL, or over the limit
    elif exit_code == sandbox_harness.MEMORY_EXIT:
        status = "memory_limit"
    elif exit_code < 0:
        status = "killed"  # any other signal, SIGSEGV included (e.g. a C stack overflow)
    elif exit_code > 0 or (job["mode"] == "function" and not output):
        status = "runtime_error"  # function mode with no result: it exited before returning
    else:
        status = "ok"
    return _result(job, status, output, errors, exit_code, wall_ms, cpu_ms)


def _wait(proc: subprocess.Popen, start: float, wall_s: float, cpu_limit_s: float) -> tuple[int, float, bool]:
    """The harness's supervisor, for the single-job process: kill its group once it passes the CPU
    limit (the verdict is a timeout then anyway) or the wall limit, sweep it, reap it with its
    rusage. Returns (exit code, CPU seconds, killed by us)."""
    exit_code, cpu_used, fired = sandbox_harness.watch(proc.pid, start, wall_s, cpu_limit_s)
    proc.returncode = exit_code  # reaped already: Popen must not try again
    return exit_code, cpu_used, fired


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _read(path: Path, limit: int) -> str:
    with open(path, "rb") as f:
        return f.read(limit).decode("utf-8", errors="replace")


def _tail(path: Path) -> str:
    # The end of stderr is what explains the failure (the traceback), so keep the tail.
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - 4 * STDERR_CHARS))  # <= 4 bytes per UTF-8 char
        return f.read().decode("utf-8", errors="replace")[-STDERR_CHARS:]
