"""The sandbox: runs untrusted programs (candidate solutions, test generators) in isolated workers.

Interface: `run_jobs(jobs, workers)` takes a SANDBOX_JOBS frame and returns a SANDBOX_RESULTS
frame with exactly one row per job, in input order, whatever happens to the job or to a worker.
The execute flow and `synthsmith sandbox run` only call `run_jobs`.

Workers are long-lived processes (`harness`) that pay for isolation once (`isolation`:
namespaces, read-only host, their own tmpfs, a uid for their jobs) and are kept for the whole
process: every `run_jobs` call reuses them (`workers` threads each take one) and they stop at
exit (`close_pools`). Batches go to a worker over its pipe and results come back the same way,
one report per batch: jobs sharing (code, mode, entry, limits) are compiled once and forked per
input. A job the batch does not report on (its worker died) reruns alone; if that fails too,
its row says `killed` and why.

Status: ok | syntax_error | runtime_error | timeout | memory_limit | output_limit | killed.
"""

from __future__ import annotations

import atexit
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
from typing import TYPE_CHECKING

from synthsmith.sandbox import harness

if TYPE_CHECKING:
    import polars as pl

HARNESS = Path(harness.__file__)
CODE_FILES = (HARNESS, HARNESS.with_name("isolation.py"))  # run in workers; cached results depend on them
STDERR_CHARS = harness.STDERR_CHARS
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
    standard library is. Workers stay alive for later calls in this process (`close_pools`)."""
    import polars as pl  # here, not at the top: `prestart` runs before polars is imported

    from synthsmith.contract.tables import SANDBOX_JOBS, SANDBOX_RESULTS, conform

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
    pool = _shared_pool(tuple(packages))
    for indices, reported in zip(batches, pool.run([[rows[i] for i in b] for b in batches], max(1, workers))):
        for position, i in enumerate(indices):
            results[i] = reported.get(position)
    lost = [i for i, result in enumerate(results) if result is None]
    # Alone: a job that broke its worker (which is then replaced) cannot take other jobs with it.
    for i, reported in zip(lost, pool.run([[rows[i]] for i in lost], max(1, workers))):
        results[i] = reported.get(0) or _result(
            rows[i], "killed", stderr=f"the sandbox worker died running this job, twice\n{pool.last_error}")
    return conform(pl.DataFrame(results, schema=SANDBOX_RESULTS.columns), SANDBOX_RESULTS)


def prestart(workers: int, packages: tuple[str, ...] = ()) -> None:
    """Start `workers` workers in the background (a command calls this before its slow imports)."""
    _shared_pool(tuple(packages)).prestart(workers)


def probe_isolation() -> dict[str, str]:
    """What a worker gets on this machine: protection -> 'on: ...' or 'OFF: <reason>'."""
    return _shared_pool(()).isolation()


def close_pools() -> None:
    """Stop this process's idle workers and remove their directories (also done at exit)."""
    with _POOLS_LOCK:
        mine = [key for key in _POOLS if key[0] == os.getpid()]
        pools = [_POOLS.pop(key) for key in mine]
    for pool in pools:
        pool.close()


# One pool per (process, packages): a worker's start-up (interpreter, namespaces) is paid once
# per process, not per call; a forked child starts its own (the parent's workers are not its own).
_POOLS: dict[tuple[int, tuple[str, ...]], "_Pool"] = {}
_POOLS_LOCK = threading.Lock()


def _shared_pool(packages: tuple[str, ...]) -> "_Pool":
    with _POOLS_LOCK:
        key = (os.getpid(), packages)
        if key not in _POOLS:
            _POOLS[key] = _Pool(packages).open()
        return _POOLS[key]


def _forget_parent_pools() -> None:
    global _POOLS_LOCK
    _POOLS_LOCK = threading.Lock()  # another thread of the parent may have held it at the fork


atexit.register(close_pools)
os.register_at_fork(after_in_child=_forget_parent_pools)


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
        self.proc = subprocess.Popen([*PYTHON, str(sandbox_dir / "harness.pyc"), "worker", str(sandbox_dir), home,
                                      str(library or "")],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.errors,
                                     cwd=sandbox_dir, env=CHILD_ENV, start_new_session=True)
        self.pending = b""
        line = self.read_line(WORKER_START_S)
        if line is None:
            self.kill()
            raise SandboxError(f"the sandbox worker did not start:\n{self.error_tail()}")
        self.isolation: dict[str, str] = json.loads(line)

    def run(self, batch: bytes, timeout: float) -> tuple[list[dict], bool]:
        """Send one batch (`harness.encode_batch`): (the results it reported, True once the worker
        said it is done; False if it died, hung or answered out of form)."""
        deadline = time.monotonic() + timeout
        try:
            self.proc.stdin.write(f"{len(batch):0{harness.HEADER_BYTES - 1}d}\n".encode() + batch)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            return [], False
        reported: list[dict] = []
        while (line := self.read_line(deadline - time.monotonic())) is not None:
            if line == "done":
                return reported, True
            if line.startswith("R "):
                try:
                    for _ in range(int(line[2:])):
                        result = harness.decode_report(self.read_line(deadline - time.monotonic()).encode())
                        output = self.read_exactly(result.pop("out_length"), deadline - time.monotonic())
                        errors = self.read_exactly(result.pop("err_length"), deadline - time.monotonic())
                        result["output"] = output.decode("utf-8", errors="replace")
                        result["stderr"] = errors.decode("utf-8", errors="replace")[-STDERR_CHARS:]
                        reported.append(result)
                except (AttributeError, TypeError, ValueError):  # cut short or torn: the rest reruns
                    return reported, False
        return reported, False

    def read_exactly(self, size: int, timeout: float) -> bytes | None:
        deadline = time.monotonic() + timeout
        while len(self.pending) < size:
            if not self._read_more(deadline, size - len(self.pending)):
                return None
        data, self.pending = self.pending[:size], self.pending[size:]
        return data

    def read_line(self, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        searched = 0  # a report can be megabytes: look for the newline only in what is new
        while (end := self.pending.find(b"\n", searched)) < 0:
            searched = len(self.pending)
            if not self._read_more(deadline):
                return None
        line, self.pending = self.pending[:end], self.pending[end + 1:]
        return line.decode("utf-8", errors="replace")

    def _read_more(self, deadline: float, wanted: int = 0) -> bool:
        """Append what the worker wrote to `pending`; False at EOF or once `deadline` passed."""
        fd = self.proc.stdout.fileno()
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            return False
        chunk = os.read(fd, max(1 << 20, wanted))
        self.pending += chunk
        return bool(chunk)

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
        self.errors.close()


class _Pool:
    """Idle workers, each taken by one thread for a call's batches and given back healthy; a
    worker that dies or hangs is replaced. Every batch runs in a fresh fork of its worker, and
    every job in a fresh fork of that, so reuse carries nothing from one job to the next."""

    def __init__(self, packages: tuple[str, ...] = ()) -> None:
        self.packages = packages
        self.library: Path | None = None
        self.last_error = ""
        self.warned = False
        self.idle: list[_Worker] = []
        self.starting = 0  # workers `prestart` is starting
        self.lock = threading.Lock()
        self.ready = threading.Condition(self.lock)

    def open(self) -> "_Pool":
        _remove_orphaned_dirs()
        self.dir = Path(tempfile.mkdtemp(prefix=f"{SANDBOX_DIR_PREFIX}{_owner_tag(os.getpid()) or os.getpid()}-"))
        # Traversable (not listable) by the jobs' uid: they reach lib/ and their own solution.py.
        self.dir.chmod(0o711)
        _compile_worker_code(self.dir)
        if self.packages:
            self.library = _copy_packages(self.packages, self.dir / "lib")
        return self

    def close(self) -> None:
        with self.lock:
            idle, self.idle = self.idle, []
        for worker in idle:
            worker.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "_Pool":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def isolation(self) -> dict[str, str]:
        worker = self._take()
        self._give_back(worker)
        return worker.isolation

    def prestart(self, count: int) -> None:
        with self.lock:
            count -= len(self.idle) + self.starting
            self.starting += max(0, count)
        for _ in range(count):
            threading.Thread(target=self._start_idle, daemon=True).start()

    def _start_idle(self) -> None:
        try:
            worker: _Worker | None = _Worker(self.dir, self.library)
            self._warn(worker.isolation)
        except SandboxError:  # the next `_take` starts one itself and raises with the reason
            worker = None
        with self.lock:
            self.starting -= 1
            if worker is not None:
                self.idle.append(worker)
            self.ready.notify_all()

    def _take(self) -> _Worker:
        with self.lock:
            while True:
                while self.idle:
                    worker = self.idle.pop()
                    if worker.proc.poll() is None:
                        return worker
                    worker.close()  # died while idle (killed from outside): start another
                if not self.starting:
                    break
                self.ready.wait()  # one being started by `prestart`
        worker = _Worker(self.dir, self.library)
        self._warn(worker.isolation)
        return worker

    def _give_back(self, worker: _Worker) -> None:
        with self.lock:
            self.idle.append(worker)
            self.ready.notify_all()

    def run(self, batches: list[list[dict]], size: int) -> list[dict[int, dict]]:
        """Per batch: {position in batch: result} for the jobs it reported on; `size` workers at once."""
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
                        break
                    if worker is None:
                        worker = self._take()
                    done[number], healthy = self._run_batch(worker, batches[number])
                    if not healthy:
                        self.last_error = worker.error_tail()
                        worker.kill()
                        worker = None
                if worker is not None:
                    self._give_back(worker)
            except BaseException as exc:  # re-raised below, after the other threads finish
                failures.append(exc)
                if worker is not None:  # in an unknown state: not reused
                    worker.kill()

        threads = [threading.Thread(target=drain) for _ in range(min(size, len(batches)))]
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
        limits = {"mode": first["mode"], "entry": first["entry"] or "", "memory_mb": int(first["memory_mb"]),
                  "cpu_s": cpu_s, "time_limit_s": float(first["time_limit_s"]), "wall_s": wall_s}
        batch = harness.encode_batch(limits, first["code"], [job["input"] or "" for job in jobs])
        # The worker enforces every limit itself; this only bounds a wedged worker.
        reported, healthy = worker.run(batch, timeout=len(jobs) * (wall_s + 1) + 10)
        return _collect(jobs, reported), healthy


def _compile_worker_code(sandbox_dir: Path) -> None:
    """harness.pyc and isolation.pyc in the pool's directory, for its workers to run. A worker that
    compiled them itself would keep about 2 MB of the compiler's garbage, whose page tables every
    fork copies: a trivial job took ~4% longer. Readable by the workers, not by their jobs."""
    import py_compile

    for source in (HARNESS, HARNESS.with_name("isolation.py")):  # HARNESS read now: tests point it at a copy
        compiled = sandbox_dir / f"{source.stem}.pyc"
        py_compile.compile(str(source), cfile=str(compiled), doraise=True)
        compiled.chmod(0o600)


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


def _collect(jobs: list[dict], reported: list[dict]) -> dict[int, dict]:
    """Verdicts of the jobs the worker reported on; a malformed entry is skipped (the job reruns)."""
    verdicts: dict[int, dict] = {}
    for status in reported:
        try:
            index = int(status["index"])
            if 0 <= index < len(jobs):
                verdicts[index] = _verdict(jobs[index], status)
        except (ValueError, KeyError, TypeError):
            continue
    return verdicts


def _verdict(job: dict, status: dict) -> dict:
    exit_code, cpu_used, timed_out = int(status["exit_code"]), float(status["cpu_s"]), bool(status["killed_by_us"])
    output, errors = status["output"], status["stderr"]
    cpu_s, _ = _limits(job)
    if int(status["output_bytes"]) > harness.OUTPUT_CAP_BYTES:
        verdict = "output_limit"
    elif timed_out or exit_code == -signal.SIGXCPU or (exit_code == -signal.SIGKILL and cpu_used >= cpu_s) \
            or cpu_used > job["time_limit_s"]:
        verdict = "timeout"  # our wall kill, RLIMIT_CPU's SIGXCPU or hard-limit SIGKILL, or over the limit
    elif exit_code == harness.MEMORY_EXIT:
        verdict = "memory_limit"
    elif exit_code < 0:
        verdict = "killed"  # any other signal, SIGSEGV included (e.g. a C stack overflow)
    elif exit_code > 0 or (job["mode"] == "function" and not output):
        verdict = "runtime_error"  # function mode with no result: it exited before returning
    else:
        verdict = "ok"
    return _result(job, verdict, output, errors, exit_code, float(status["wall_s"]) * 1000, cpu_used * 1000)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
