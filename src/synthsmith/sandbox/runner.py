"""The sandbox: runs untrusted programs (candidate solutions, test generators) in isolated workers.

Interface: `run_jobs(jobs, workers)` takes a SANDBOX_JOBS frame and returns a SANDBOX_RESULTS
frame with exactly one row per job, in input order, whatever happens to the job or to a worker.
The execute flow and `synthsmith sandbox run` only call `run_jobs`.

Each of `workers` threads owns one long-lived worker process (`harness`) that pays for
isolation once (`isolation`: namespaces, read-only host, per-job uid and tmpfs) and runs
batches: jobs sharing (code, mode, entry, limits) are compiled once and forked per input.
A job the batch does not report on (its worker died) reruns alone on a fresh worker; if that
fails too, its row says `killed` and why.

Status: ok | syntax_error | runtime_error | timeout | memory_limit | output_limit | killed.
"""

from __future__ import annotations

import json
import logging
import math
import os
import queue
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

import polars as pl

from synthsmith.contract.tables import SANDBOX_JOBS, SANDBOX_RESULTS, conform
from synthsmith.sandbox import harness

HARNESS = Path(harness.__file__)
CODE_FILES = (HARNESS, HARNESS.with_name("isolation.py"))  # run in workers; cached results depend on them
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


log = logging.getLogger(__name__)
WORKER_START_S = 30.0  # a worker's start-up (interpreter, namespaces) is ~50 ms; this only bounds a hang
SANDBOX_DIR_PREFIX = "synthsmith-sandbox-"  # a pool's directory in the temp dir: PREFIX<owner tag>-<random>


class SandboxError(RuntimeError):
    """The sandbox itself cannot run (a worker does not start): not any job's fault."""


def run_jobs(jobs: pl.DataFrame, workers: int = 2, packages: tuple[str, ...] = ()) -> pl.DataFrame:
    """Run every job; one result row per job, in input order. `packages` (import names, e.g.
    "cyaron") are copied read-only beside the jobs and importable by them; nothing else outside the
    standard library is."""
    rows = conform(jobs, SANDBOX_JOBS).to_dicts()
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
    with _Pool(max(1, workers), packages) as pool:
        for indices, reported in zip(batches, pool.run([[rows[i] for i in b] for b in batches])):
            for position, i in enumerate(indices):
                results[i] = reported.get(position)
        lost = [i for i, result in enumerate(results) if result is None]
        # Alone, on a fresh worker: a job that broke its worker cannot take other jobs with it.
        for i, reported in zip(lost, pool.run([[rows[i]] for i in lost])):
            results[i] = reported.get(0) or _result(
                rows[i], "killed", stderr=f"the sandbox worker died running this job, twice\n{pool.last_error}")
    return conform(pl.DataFrame(results, schema=SANDBOX_RESULTS.columns), SANDBOX_RESULTS)


def probe_isolation() -> dict[str, str]:
    """What a worker gets on this machine: protection -> 'on: ...' or 'OFF: <reason>'."""
    with _Pool(1) as pool:
        return pool.isolation()


def _result(job: dict, status: str, output: str | None = None, stderr: str = "",
            exit_code: int | None = None, wall_ms: float | None = None, cpu_ms: float | None = None) -> dict:
    return {"job_id": job["job_id"], "status": status, "output": output, "stderr": stderr,
            "exit_code": exit_code, "wall_ms": wall_ms, "cpu_ms": cpu_ms}


MAX_BATCH = 64  # jobs per batch: bounds one batch's temp files and its share of a worker


def _split(groups: list[list[int]], workers: int) -> list[list[int]]:
    """Cut groups into batches of at most MAX_BATCH, and fine enough (about four per worker) that
    `workers` threads share the work evenly even when one program times out on every input."""
    total = sum(map(len, groups))
    size = max(1, min(MAX_BATCH, math.ceil(total / (4 * workers))))
    return [group[start:start + size] for group in groups for start in range(0, len(group), size)]


def _precheck(job: dict) -> dict | None:
    """The checks that need no process: a runner error raises, a syntax error is the result."""
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
    except Exception:  # a bad row is this job's result, never a lost row
        return _result(job, "killed", stderr=traceback.format_exc()[-STDERR_CHARS:])


def _limits(job: dict) -> tuple[int, float]:
    """(RLIMIT_CPU seconds, wall limit seconds).
    The verdict is on CPU time (over time_limit_s is a timeout), which load does not inflate.
    The wall limit only ends programs that sleep or block: half the limit again plus start-up
    slack, so a busy machine (workers >= cores) does not kill a correct solution. RLIMIT_CPU is
    the backstop should our watcher not get to run."""
    return math.ceil(job["time_limit_s"]) + 1, job["time_limit_s"] * 1.5 + 0.25


class _Worker:
    """One isolated worker process, reused for many batches."""

    def __init__(self, sandbox_dir: Path, library: Path | None = None) -> None:
        self.errors = tempfile.TemporaryFile()
        home = os.path.expanduser("~")  # hidden from jobs, with /root
        self.proc = subprocess.Popen([*PYTHON, str(HARNESS), "worker", str(sandbox_dir), home, str(library or "")],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.errors,
                                     cwd=sandbox_dir, env=CHILD_ENV, start_new_session=True)
        self.pending = b""
        line = self.read_line(WORKER_START_S)
        if line is None:
            self.kill()
            raise SandboxError(f"the sandbox worker did not start:\n{self.error_tail()}")
        self.isolation: dict[str, str] = json.loads(line)

    def run(self, command: list, timeout: float) -> bool:
        """Send one batch; True once the worker reports it done, False if it died or hung."""
        try:
            self.proc.stdin.write(json.dumps(command).encode() + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            return False
        return self.read_line(timeout) == "done"

    def read_line(self, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return None
            self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        return line.decode()

    def error_tail(self) -> str:
        self.errors.seek(0, os.SEEK_END)
        self.errors.seek(max(0, self.errors.tell() - STDERR_CHARS))
        return self.errors.read().decode("utf-8", errors="replace")

    def close(self) -> None:
        try:
            self.proc.stdin.close()  # EOF: the worker ends its loop
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            self.kill()
        self.errors.close()

    def kill(self) -> None:
        _kill_group(self.proc.pid)  # the worker's namespace init dies with it (PDEATHSIG)
        self.proc.wait()


class _Pool:
    """`size` threads, each driving one worker; a worker that dies or hangs is replaced."""

    def __init__(self, size: int, packages: tuple[str, ...] = ()) -> None:
        self.size = size
        self.packages = packages
        self.library: Path | None = None
        self.last_error = ""
        self.warned = False

    def __enter__(self) -> "_Pool":
        _remove_orphaned_dirs()
        self.dir = Path(tempfile.mkdtemp(prefix=f"{SANDBOX_DIR_PREFIX}{_owner_tag(os.getpid()) or os.getpid()}-"))
        if self.packages:  # traversable (not listable) by the jobs' uid, so they reach lib/
            self.dir.chmod(0o711)
            self.library = _copy_packages(self.packages, self.dir / "lib")
        return self

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def isolation(self) -> dict[str, str]:
        worker = _Worker(self.dir, self.library)
        worker.close()
        return worker.isolation

    def run(self, batches: list[list[dict]]) -> list[dict[int, dict]]:
        """Per batch: {position in batch: result} for the jobs it reported on."""
        done: list[dict[int, dict]] = [{} for _ in batches]
        todo: queue.SimpleQueue[int] = queue.SimpleQueue()
        for number in range(len(batches)):
            todo.put(number)
        failures: list[BaseException] = []

        def drain() -> None:
            worker = None
            try:
                while True:
                    try:
                        number = todo.get_nowait()
                    except queue.Empty:
                        return
                    if worker is None:
                        worker = _Worker(self.dir, self.library)
                        self._warn(worker.isolation)
                    done[number], healthy = self._run_batch(worker, batches[number])
                    if not healthy:
                        self.last_error = worker.error_tail()
                        worker.kill()
                        worker = None
            except BaseException as exc:  # re-raised below, after the other threads finish
                failures.append(exc)
            finally:
                if worker is not None:
                    worker.close()

        threads = [threading.Thread(target=drain) for _ in range(min(self.size, len(batches)))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if failures:
            raise failures[0]
        return done

    def _warn(self, isolation: dict[str, str]) -> None:
        off = {name: state for name, state in isolation.items() if not state.startswith("on")}
        if off and not self.warned:
            self.warned = True
            log.warning("sandbox isolation is incomplete on this machine: %s", off)

    def _run_batch(self, worker: _Worker, jobs: list[dict]) -> tuple[dict[int, dict], bool]:
        """Run jobs sharing code/mode/entry/limits on one worker: (results it reported, worker healthy)."""
        first = jobs[0]
        cpu_s, wall_s = _limits(first)
        root = Path(tempfile.mkdtemp(prefix="batch-", dir=self.dir))
        try:
            _write_private(root / "solution.py", first["code"])
            for i, job in enumerate(jobs):
                _write_private(root / f"{i}.in", job["input"] or "")
            command = [first["mode"], str(root / "solution.py"), first["entry"] or "", int(first["memory_mb"]),
                       cpu_s, float(first["time_limit_s"]), wall_s, str(root), len(jobs)]
            # The worker enforces every limit itself; this only bounds a wedged worker.
            healthy = worker.run(command, timeout=len(jobs) * (wall_s + 1) + 10)
            return _collect(jobs, root), healthy
        finally:
            shutil.rmtree(root, ignore_errors=True)


def _owner_tag(pid: int) -> str | None:
    """The pid and start time ("<pid>.<ticks since boot>", from /proc/<pid>/stat) of a live
    process, None once it is gone: the start time tells a reused pid from the pool's owner."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return f"{pid}.{stat.rsplit(')', 1)[1].split()[19]}"  # field 22; the name before ')' may hold spaces


def _remove_orphaned_dirs() -> None:
    """A run killed with SIGKILL leaves its pool's directory (batch files, copied packages) in the
    temp dir: remove those whose owner is gone. A directory is named after its owner
    (`_owner_tag`); one of a live process (a concurrent stage) is kept, so is any name we did not
    write."""
    for path in Path(tempfile.gettempdir()).glob(f"{SANDBOX_DIR_PREFIX}*-*"):
        tag = path.name[len(SANDBOX_DIR_PREFIX):].rsplit("-", 1)[0]
        pid, dot, start = tag.partition(".")
        if pid.isdigit() and dot and start.isdigit() and _owner_tag(int(pid)) != tag:
            shutil.rmtree(path, ignore_errors=True)


def _copy_packages(names: tuple[str, ...], library: Path) -> Path:
    """Copies, not links: the jobs may not see the venv (it can sit under a hidden home)."""
    from importlib.machinery import PathFinder

    library.mkdir(mode=0o755)
    for name in names:
        # The installed files, whatever this process imported: an imported colorful (CYaRon's,
        # Ray's) replaces itself in sys.modules by an object without __spec__.
        spec = PathFinder.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise SandboxError(f"package {name!r} is not installed, so sandbox jobs cannot import it")
        shutil.copytree(next(iter(spec.submodule_search_locations)), library / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    for path in [library, *library.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return library


def _write_private(path: Path, text: str) -> None:
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8") as f:
        f.write(text)


def _collect(jobs: list[dict], root: Path) -> dict[int, dict]:
    """Verdicts of the jobs with a status line in ROOT/status; a torn or foreign line is skipped."""
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
                continue
    reported: dict[int, dict] = {}
    for index, status in statuses.items():
        try:
            reported[index] = _verdict(
                jobs[index], int(status["exit_code"]), float(status["cpu_s"]), bool(status["killed_by_us"]),
                float(status["wall_s"]) * 1000, root / f"{index}.out", root / f"{index}.err")
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return reported


def _verdict(job: dict, exit_code: int, cpu_used: float, timed_out: bool, wall_ms: float,
             stdout_path: Path, stderr_path: Path) -> dict:
    cpu_s, _ = _limits(job)
    output_bytes = stdout_path.stat().st_size if stdout_path.exists() else 0
    output = _read(stdout_path, harness.OUTPUT_CAP_BYTES) if stdout_path.exists() else ""
    # The batch's temp path would make identical runs differ: tracebacks name plain "solution.py".
    errors = (_tail(stderr_path) if stderr_path.exists() else "").replace(f"{stderr_path.parent}/", "")
    cpu_ms = cpu_used * 1000
    if output_bytes > harness.OUTPUT_CAP_BYTES:
        status = "output_limit"
    elif timed_out or exit_code == -signal.SIGXCPU or (exit_code == -signal.SIGKILL and cpu_used >= cpu_s) \
            or cpu_used > job["time_limit_s"]:
        status = "timeout"  # our wall kill, RLIMIT_CPU's SIGXCPU or hard-limit SIGKILL, or over the limit
    elif exit_code == harness.MEMORY_EXIT:
        status = "memory_limit"
    elif exit_code < 0:
        status = "killed"  # any other signal, SIGSEGV included (e.g. a C stack overflow)
    elif exit_code > 0 or (job["mode"] == "function" and not output):
        status = "runtime_error"  # function mode with no result: it exited before returning
    else:
        status = "ok"
    return _result(job, status, output, errors, exit_code, wall_ms, cpu_ms)


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
