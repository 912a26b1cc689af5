"""A run killed with SIGKILL leaves its sandbox directory behind: the next pool removes it, and
never the directory of a live process (a concurrent stage)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from conftest import processes_named

from synthsmith.sandbox import runner


def _leftover(tag: str) -> Path:
    """A pool directory as a killed owner leaves it: a job's file owned by another uid, mode 0o711."""
    path = Path(tempfile.mkdtemp(prefix=f"{runner.SANDBOX_DIR_PREFIX}{tag}-"))
    (path / "batch-x").mkdir()
    (path / "batch-x" / "0.out").write_text("left over")
    if os.geteuid() == 0:  # as a job's uid would own it
        os.chown(path / "batch-x" / "0.out", 65534, 65534)
    path.chmod(0o711)
    return path


def _dead_owner_tag() -> str:
    """The tag of a process that has exited (its pid may be reused later: the start time differs)."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    tag = runner._owner_tag(child.pid)
    child.kill()
    child.wait()
    assert tag and runner._owner_tag(child.pid) is None
    return tag


def test_a_pool_removes_dirs_of_dead_owners_and_keeps_those_of_live_ones():
    live_process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead = _leftover(_dead_owner_tag())
        reused_pid = _leftover(f"{live_process.pid}.1")  # the live pid, but another start time: a reused pid
        live = _leftover(runner._owner_tag(live_process.pid))
        foreign = Path(tempfile.mkdtemp(prefix=runner.SANDBOX_DIR_PREFIX))  # a name we did not write
        with runner._Pool() as pool:
            assert pool.dir.name.startswith(f"{runner.SANDBOX_DIR_PREFIX}{runner._owner_tag(os.getpid())}-")
            assert not dead.exists() and not reused_pid.exists()
            assert live.exists() and foreign.exists() and pool.dir.exists()
        assert not pool.dir.exists()
    finally:
        live_process.kill()
        live_process.wait()
        for path in (live, foreign):
            subprocess.run(["rm", "-rf", str(path)], check=True)


def test_a_run_killed_mid_batch_stops_its_jobs_and_leaves_a_dir_the_next_run_removes(tmp_path):
    """The real thing: SIGKILL a process while its pool runs a job; the job does not live on to
    its limits, and the next pool cleans up."""
    name = f"kr{os.getpid() % 10**8}"  # the job names itself (/proc/PID/comm) so we can find it
    job = f"import ctypes, time\nctypes.CDLL(None).prctl(15, {name.encode()!r}, 0, 0, 0)\ntime.sleep(60)"
    script = tmp_path / "run.py"
    script.write_text(
        "import polars as pl\n"
        "from synthsmith.sandbox.runner import run_jobs\n"
        f"run_jobs(pl.DataFrame([{{'job_id': 'j', 'code': {job!r},\n"
        "    'mode': 'stdio', 'entry': None, 'input': '', 'time_limit_s': 60.0, 'memory_mb': 256}]))\n")
    killed = subprocess.Popen([sys.executable, str(script)])
    try:
        left = _wait_for_pool_dir(killed.pid)
        deadline = time.monotonic() + 60
        while not processes_named(name) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert processes_named(name), "the job never started"
    finally:
        killed.kill()
        killed.wait()
    deadline = time.monotonic() + 30  # far below the job's 60 s sleep and 90 s wall limit
    while processes_named(name) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_named(name) == []
    assert left.exists()
    with runner._Pool():
        assert not left.exists()


def _wait_for_pool_dir(pid: int, timeout_s: float = 60) -> Path:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        tag = runner._owner_tag(pid)
        found = [path for path in Path(tempfile.gettempdir()).glob(f"{runner.SANDBOX_DIR_PREFIX}{tag}-*")
                 if any(path.glob("worker-*"))]
        if found:
            return found[0]
        time.sleep(0.1)
    raise AssertionError(f"process {pid} made no sandbox batch directory within {timeout_s} s")
