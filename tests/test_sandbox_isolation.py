"""Hostile programs against the sandbox: each tries one escape and must fail, visibly to the test.

Every test first checks that the hostile code really ran (it prints what it saw), so none can
pass because the program crashed early. Where this OS refuses a protection the sandbox reports
it as OFF and the test that needs it is skipped with that report as the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import polars as pl
import pytest

from synthsmith.contract.tables import SANDBOX_JOBS
from synthsmith.sandbox.isolation import JOB_UID_BASE
from synthsmith.sandbox.runner import probe_isolation, run_jobs

ISOLATION = probe_isolation()
PROJECT = Path(__file__).resolve().parent.parent


def needs(*protections: str):
    off = {name: ISOLATION.get(name, "OFF: not reported") for name in protections
           if not ISOLATION.get(name, "").startswith("on")}
    return pytest.mark.skipif(bool(off), reason=f"isolation off on this machine: {off}")


def run(*specs: dict) -> list[dict]:
    defaults = {"mode": "stdio", "entry": None, "input": "", "time_limit_s": 1.0, "memory_mb": 256}
    rows = [{"job_id": str(i), **defaults, **spec} for i, spec in enumerate(specs)]
    return run_jobs(pl.DataFrame(rows, schema=SANDBOX_JOBS.columns)).to_dicts()


def run_one(code: str, **spec) -> dict:
    return run({"code": textwrap.dedent(code), **spec})[0]


def job_processes() -> list[int]:
    """Host pids running under a sandbox job uid."""
    found = []
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            uid_line = next(line for line in open(f"/proc/{name}/status") if line.startswith("Uid:"))
        except (OSError, StopIteration):
            continue
        if int(uid_line.split()[1]) >= JOB_UID_BASE:
            found.append(int(name))
    return found


def test_isolation_report_names_every_protection_and_why_one_is_off():
    assert set(ISOLATION) == {"network", "user", "processes", "filesystem", "secrets"}
    for name, state in ISOLATION.items():
        assert state.startswith("on: ") or state.startswith("OFF: "), (name, state)


def test_a_refused_unshare_is_reported_not_hidden(monkeypatch):
    from synthsmith.sandbox import isolation as sandbox_isolation

    class Refusing:
        def unshare(self, flags):
            import ctypes
            ctypes.set_errno(1)  # EPERM, as in a container without CAP_SYS_ADMIN
            return -1

    monkeypatch.setattr(sandbox_isolation, "_libc", Refusing())
    isolation = sandbox_isolation.Isolation()
    assert isolation.enter("/tmp") is False
    isolation.as_init("/tmp", homes=[], libraries=[])
    assert isolation.report["network"] == "OFF: unshare: Operation not permitted (as root)"
    assert isolation.report["secrets"].startswith("OFF: ")
    assert not isolation.mounts


@needs("network")
def test_no_network_not_even_loopback():
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.5)
    port = server.getsockname()[1]
    result = run_one(f"""
        import errno, socket
        print(sorted(name for _, name in socket.if_nameindex()))
        try:
            socket.create_connection(("127.0.0.1", {port}), timeout=1)
            print("connected")
        except OSError as exc:
            print(errno.errorcode[exc.errno])
    """)
    assert result["status"] == "ok", result
    assert result["output"].split("\n")[:2] == ["['lo']", "ENETUNREACH"]
    with pytest.raises(TimeoutError):
        server.accept()  # nothing reached the host's loopback
    server.close()


@needs("processes", "secrets")
def test_no_secret_in_environment_proc_or_home():
    secret = f"sk-test-{time.time_ns()}"
    home = Path(tempfile.mkdtemp(prefix="home-"))  # under /tmp, traversable: only hiding can protect it
    home.chmod(0o755)
    (home / ".netrc").write_text(f"machine api password {secret}\n")
    job = textwrap.dedent(f"""
        import ctypes, os
        ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE: our own environ readable, so the scan can work
        seen, readable = [k for k, v in os.environ.items() if {secret!r} in v], 0
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                environ = open(f"/proc/{{pid}}/environ", "rb").read()
            except OSError:
                continue
            readable += b"PYTHONHASHSEED=" in environ
            if {secret!r}.encode() in environ:
                seen.append(pid)
        print(readable > 0, seen, os.listdir({str(home)!r}))
        print(sorted(os.environ))
    """)
    # The secret must sit in the initial environment of the process that runs the sandbox, so
    # that /proc/<that pid>/environ holds it: a fresh interpreter, not monkeypatch.
    runner = ("import json, sys, polars as pl\nfrom synthsmith.sandbox.runner import run_jobs\n"
              "from synthsmith.contract.tables import SANDBOX_JOBS\n"
              "jobs = pl.DataFrame([dict(job_id='0', code=sys.argv[1], mode='stdio', entry=None, input='',"
              " time_limit_s=1.0, memory_mb=256)], schema=SANDBOX_JOBS.columns)\n"
              "print(json.dumps(run_jobs(jobs).to_dicts()[0]))")
    env = os.environ | {"OPENAI_API_KEY": secret, "HOME": str(home)}
    done = subprocess.run([sys.executable, "-c", runner, job], env=env, capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["status"] == "ok", result
    first, names = result["output"].splitlines()
    assert first == "True [] []"  # the /proc scan reads environments, finds no secret; the home looks empty
    assert "OPENAI_API_KEY" not in names and "HOME" not in names
    shutil.rmtree(home)


@pytest.mark.slow
def test_signal_catching_sleeper_still_times_out():
    result = run_one("""
        import signal, time
        for sig in (signal.SIGALRM, signal.SIGXCPU, signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)
        print("sleeping", flush=True)
        time.sleep(30)
    """, time_limit_s=0.5)
    assert (result["status"], result["output"]) == ("timeout", "sleeping\n")
    # Ended by the watcher's SIGKILL at the wall limit (the signals it ignores change nothing), not
    # by finishing its sleep, and not before the limit.
    assert result["exit_code"] == -signal.SIGKILL and result["wall_ms"] >= 500


def test_busy_loop_ignoring_sigxcpu_times_out():
    result = run_one("""
        import signal
        signal.signal(signal.SIGXCPU, signal.SIG_IGN)
        print("spinning", flush=True)
        while True:
            pass
    """, time_limit_s=0.3)
    assert (result["status"], result["output"]) == ("timeout", "spinning\n")


@needs("user")
@pytest.mark.slow
def test_fork_bomb_is_contained_and_leaves_nothing():
    bomb = textwrap.dedent("""
        import os
        print("bombing", flush=True)
        while True:
            try:
                os.fork()
            except OSError:
                pass
    """)
    bombed, after = run({"code": bomb, "time_limit_s": 0.5}, {"code": "print('fine')"})
    assert (bombed["status"], bombed["output"].splitlines()[0]) == ("timeout", "bombing")
    assert (after["status"], after["output"]) == ("ok", "fine\n")
    assert job_processes() == []


def test_file_size_disk_and_open_file_limits():
    big_file = run_one("""
        print("writing", flush=True)
        with open("big", "wb") as f:
            f.write(b"x" * (20 << 20))
    """)
    many_files = run_one("""
        print("writing", flush=True)
        for i in range(40):
            with open(f"part{i}", "wb") as f:
                f.write(b"x" * (4 << 20))
    """)
    open_files = run_one("""
        print("opening", flush=True)
        handles = [open(f"f{i}", "w") for i in range(1000)]
    """)
    assert (big_file["status"], big_file["output"]) == ("runtime_error", "writing\n")
    assert "File too large" in big_file["stderr"]
    assert many_files["status"] == "runtime_error" and "No space left on device" in many_files["stderr"]
    assert open_files["status"] == "runtime_error" and "Too many open files" in open_files["stderr"]


def test_kill_everything_reachable_reaches_only_the_jobs_own_processes():
    code = textwrap.dedent("""
        import os, time
        k = int(input())
        if k == 1:
            child = os.fork()
            if child == 0:
                time.sleep(10)
                os._exit(0)
            os.kill(-1, 9)  # every process it may signal, except itself
            print(k, os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]))
        else:
            print(k)
    """)
    results = run(*({"code": code, "input": f"{k}\n"} for k in range(4)))
    assert [r["status"] for r in results] == ["ok"] * 4
    assert [r["output"] for r in results] == ["0\n", "1 -9\n", "2\n", "3\n"]


@needs("filesystem", "user")
def test_project_home_and_host_temp_are_not_writable(tmp_path):
    targets = [PROJECT / "escaped.txt", Path("/root/escaped.txt"), Path("/tmp/escaped.txt"),
               Path("/var/tmp/escaped.txt"), PROJECT / "data" / "escaped.txt"]
    result = run_one(f"""
        import errno
        for path in {[str(t) for t in targets]!r}:
            try:
                open(path, "w").write("x")
                print("wrote", path)
            except OSError as exc:
                print(errno.errorcode[exc.errno])
        open("mine.txt", "w").write("the working directory is writable")
        print(open("mine.txt").read())
    """)
    assert result["status"] == "ok", result
    lines = result["output"].splitlines()
    assert all(line in ("EROFS", "EACCES", "ENOENT") for line in lines[:-1]), lines
    assert lines[-1] == "the working directory is writable"
    assert not any(t.exists() for t in targets)


@needs("filesystem")
def test_shared_memory_is_private_and_wiped_between_jobs():
    marker = f"synthsmith-shm-{time.time_ns()}"
    code = (f"import os\nprint(sorted(os.listdir('/dev/shm')))\n"
            f"open('/dev/shm/{marker}', 'w').write('left behind')\n")
    first, second = run({"code": code, "input": "1\n"}, {"code": code, "input": "2\n"})
    assert (first["status"], first["output"]) == ("ok", "[]\n")
    assert (second["status"], second["output"]) == ("ok", "[]\n")
    assert not os.path.exists(f"/dev/shm/{marker}")


@needs("user")
def test_a_job_cannot_read_other_jobs_files():
    code = textwrap.dedent("""
        import errno, os
        batch = os.path.dirname(os.readlink("/proc/self/fd/0"))  # where its own input file is
        for attempt in (lambda: os.listdir(".."), lambda: os.listdir(batch),
                        lambda: open(os.path.join(batch, "0.in")).read()):
            try:
                print("read", attempt())
            except OSError as exc:
                print(errno.errorcode[exc.errno])
    """)
    result = run({"code": code, "input": "secret input of job 0\n"}, {"code": code, "input": "1\n"})[1]
    assert (result["status"], result["output"]) == ("ok", "EACCES\nEACCES\nEACCES\n")


def test_a_job_holds_only_its_own_three_files():
    # The supervisor opens a job's files and holds its pipe to the reaper and the status file: an
    # fd of these left open in the job would let it forge its own verdict.
    code = textwrap.dedent("""
        import os
        listed = sorted(int(name) for name in os.listdir("/proc/self/fd"))  # the listing's own fd is gone after
        still_open = []
        for fd in listed[3:]:
            try:
                os.fstat(fd)
                still_open.append(os.readlink(f"/proc/self/fd/{fd}"))
            except OSError:
                pass
        print(listed[:3], [os.readlink(f"/proc/self/fd/{fd}").rsplit(".", 1)[-1] for fd in (0, 1, 2)], still_open)
    """)
    for result in run(*({"code": code, "input": f"{k}\n"} for k in range(3))):
        assert (result["status"], result["output"]) == ("ok", "[0, 1, 2] ['in', 'out', 'err'] []\n"), result


def test_a_job_cannot_gain_rights_through_exec():
    status = run_one("print(open('/proc/self/status').read())")["output"]
    assert "NoNewPrivs:\t1" in status  # setuid binaries and file capabilities do nothing for it
    assert "CapEff:\t0000000000000000" in status


def test_closing_stdout_keeps_what_was_printed():
    closed_fd = run_one("import os, sys\nprint('42')\nsys.stdout.flush()\nos.close(1)\nos.close(2)")
    closed_file = run_one("import sys\nprint('7')\nsys.stdout.close()")
    assert (closed_fd["status"], closed_fd["output"]) == ("ok", "42\n")
    assert (closed_file["status"], closed_file["output"]) == ("ok", "7\n")


def test_killing_its_parent_then_exiting_early_keeps_the_verdict():
    result = run_one("""
        import os
        print("answer", flush=True)
        try:
            os.kill(os.getppid(), 9)
        except PermissionError:
            pass
        os._exit(0)
    """)
    assert (result["status"], result["output"]) == ("ok", "answer\n")
