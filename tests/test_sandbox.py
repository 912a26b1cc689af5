"""The sandbox against real child processes: verdicts, batching, the one-row-per-job contract.
Hostile programs (escapes, floods, secrets) are in test_sandbox_isolation.py."""

from __future__ import annotations

import json
import os
import signal
import tempfile
import threading
import time
from pathlib import Path

import polars as pl
import pytest
from conftest import processes_named

from synthsmith.contract.tables import SANDBOX_JOBS, SANDBOX_RESULTS, ContractError
from synthsmith.sandbox import harness, runner
from synthsmith.sandbox.runner import CHILD_ENV, run_jobs


def make_jobs(*specs: dict) -> pl.DataFrame:
    defaults = {"mode": "stdio", "entry": None, "input": "", "time_limit_s": 1.0, "memory_mb": 256}
    rows = [{"job_id": str(i), **defaults, **spec} for i, spec in enumerate(specs)]
    return pl.DataFrame(rows, schema=SANDBOX_JOBS.columns)


def run(*specs: dict) -> list[dict]:
    return run_jobs(make_jobs(*specs)).to_dicts()


def run_one(code: str, **spec) -> dict:
    return run({"code": code, **spec})[0]


def test_stdio_reads_input_and_stdin_buffer():
    by_input, by_buffer = run(
        {"code": "a, b = map(int, input().split())\nprint(a + b)", "input": "2 3\n"},
        {"code": "import sys\nprint(sum(map(int, sys.stdin.buffer.read().split())))", "input": "1 2\n3\n"},
    )
    assert (by_input["status"], by_input["output"], by_input["exit_code"]) == ("ok", "5\n", 0)
    assert (by_buffer["status"], by_buffer["output"]) == ("ok", "6\n")
    assert by_input["wall_ms"] > 0 and by_input["cpu_ms"] > 0


def test_stdlib_importable_but_site_packages_not():
    code = "import json, heapq, collections, typing, bisect, itertools, math, functools\nprint(10 ** 5000 > 0)"
    assert run_one(code)["output"] == "True\n"
    leaked = run_one("import polars")
    assert leaked["status"] == "runtime_error" and "ModuleNotFoundError" in leaked["stderr"]


def test_function_mode_method_and_plain_function():
    method = "class Solution:\n    def pair(self, nums: List[int], word: str):\n        return (sum(nums), word * 2)"
    plain = "def solve(a, b, c):\n    return {'total': a + b + c}"
    by_method, by_function = run(
        {"code": method, "mode": "function", "entry": "Solution.pair", "input": '[1, 2, 3]\n"ab"\n'},
        {"code": plain, "mode": "function", "entry": "solve", "input": "1\n2\n3\n"},
    )
    assert by_method["status"] == "ok" and json.loads(by_method["output"]) == [6, "abab"]
    assert by_function["status"] == "ok" and json.loads(by_function["output"]) == {"total": 6}


def test_function_mode_prints_do_not_corrupt_the_result():
    code = ("import os, sys\n"
            "def solve(x):\n"
            "    print('debug', x)\n"
            "    os.write(1, b'raw\\n')\n"
            "    return [x, None]\n"
            "if __name__ == '__main__':\n"
            "    print('demo block must not run')")
    result = run_one(code, mode="function", entry="solve", input="7\n")
    assert (result["status"], result["output"]) == ("ok", "[7, null]")
    assert "debug 7" in result["stderr"] and "demo block" not in result["stderr"]


def test_function_mode_without_a_return_is_a_runtime_error():
    result = run_one("import os\ndef solve():\n    os._exit(0)", mode="function", entry="solve")
    assert (result["status"], result["exit_code"]) == ("runtime_error", 0)


def test_syntax_error_needs_no_process():
    result = run_one("def broken(:\n    pass")
    assert result["status"] == "syntax_error" and "SyntaxError" in result["stderr"]
    assert result["exit_code"] is None and result["wall_ms"] is None


def test_runtime_error_keeps_output_and_traceback():
    result = run_one("print('partial')\nprint(1 // 0)")
    assert result["status"] == "runtime_error" and result["exit_code"] != 0
    assert result["output"] == "partial\n"
    assert "ZeroDivisionError" in result["stderr"] and "line 2" in result["stderr"]


@pytest.mark.slow
def test_busy_loop_and_sleep_loop_time_out():
    limit = 0.5
    names = [f"to{os.getpid() % 10**8}{kind}" for kind in "bs"]  # <= 15 bytes, unique to this run
    rename = "import ctypes\nctypes.CDLL(None).prctl(15, {!r}, 0, 0, 0)\nprint('started', flush=True)\n"
    busy, sleepy = run(
        {"code": rename.format(names[0].encode()) + "while True:\n    pass", "time_limit_s": limit},
        {"code": rename.format(names[1].encode()) + "import time\nwhile True:\n    time.sleep(0.05)",
         "time_limit_s": limit},
    )
    assert (busy["status"], busy["output"]) == (sleepy["status"], sleepy["output"]) == ("timeout", "started\n")
    # Killed by the watcher's SIGKILL (not RLIMIT_CPU's SIGXCPU, which comes later), and reaped.
    assert busy["exit_code"] == sleepy["exit_code"] == -signal.SIGKILL
    assert sleepy["cpu_ms"] < 500 and sleepy["wall_ms"] >= limit * 1000  # caught by the wall clock, not by CPU
    assert [processes_named(name) for name in names] == [[], []]  # nothing of either job lives on


def test_big_allocation_is_memory_limit():
    big, growing = run(
        {"code": "print('before')\nx = bytearray(1 << 30)", "memory_mb": 128},
        {"code": "a = []\nwhile True:\n    a.append([0] * 10000)", "memory_mb": 128},
    )
    assert (big["status"], big["output"]) == ("memory_limit", "before\n")
    assert growing["status"] == "memory_limit"


def test_output_flood_is_output_limit():
    result = run_one("while True:\n    print('x' * 1000)")
    assert result["status"] == "output_limit"
    assert len(result["output"]) == harness.OUTPUT_CAP_BYTES


def test_parent_environment_does_not_leak(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    code = "import os, sys, json\nprint(json.dumps([sorted(os.environ), sys.flags.hash_randomization]))"
    names, randomized = json.loads(run_one(code)["output"])
    assert "OPENAI_API_KEY" not in names and set(names) <= set(CHILD_ENV)
    assert randomized == 0


def test_cwd_is_a_temporary_directory_that_is_removed():
    result = run_one("import os\nopen('scratch.txt', 'w').write('x')\nprint(os.getcwd())")
    cwd = result["output"].strip()
    assert result["status"] == "ok" and cwd.startswith(tempfile.gettempdir())
    assert not os.path.exists(cwd)


def test_deep_recursion_works():
    plain = "def depth(n):\n    return 0 if n == 0 else depth(n - 1) + 1\nprint(depth(100000))"
    cached = ("import functools\n@functools.lru_cache(None)\n"
              "def depth(n):\n    return 0 if n == 0 else depth(n - 1) + 1\nprint(depth(100000))")
    for result in run({"code": plain}, {"code": cached}):
        assert (result["status"], result["output"]) == ("ok", "100000\n")


def test_os_exit_after_print_keeps_output():
    result = run_one("import os\nprint('answer')\nos._exit(0)")
    assert (result["status"], result["output"]) == ("ok", "answer\n")


def test_mixed_batch_has_one_row_per_job_in_input_order():
    programs = [
        ("print(input())", "ok"),
        ("def f(:", "syntax_error"),
        ("raise ValueError", "runtime_error"),
        ("while True: pass", "timeout"),
        ("x = bytearray(1 << 30)", "memory_limit"),
        ("import os, signal\nos.kill(os.getpid(), signal.SIGTERM)", "killed"),
        ("print(input()[::-1])", "ok"),
        ("import sys\nsys.exit(3)", "runtime_error"),
        ("print(len(input()))", "ok"),
        ("print(input().upper())", "ok"),
    ]
    jobs = make_jobs(*({"code": code, "input": "abc\n", "time_limit_s": 0.3, "memory_mb": 128}
                       for code, _ in programs))
    results = run_jobs(jobs, workers=2)
    assert results["job_id"].to_list() == jobs["job_id"].to_list()
    assert results["status"].to_list() == [status for _, status in programs]
    assert results["output"][6] == "cba\n"


def test_runner_failure_still_yields_a_row():
    results = run({"code": "print(1)", "memory_mb": None}, {"code": "print(1)", "time_limit_s": None})
    assert [r["status"] for r in results] == ["killed"] * 2
    assert "TypeError" in results[0]["stderr"]


def test_a_job_of_an_unknown_mode_is_refused_at_the_boundary():
    with pytest.raises(ContractError, match="column mode holds \\['stdin'\\]; allowed: stdio, function"):
        run({"code": "print(1)", "mode": "stdin"})


def test_empty_jobs_give_empty_results():
    results = run_jobs(SANDBOX_JOBS.empty())
    assert results.height == 0 and results.schema == SANDBOX_RESULTS.empty().schema


def test_finishing_over_the_cpu_limit_is_a_timeout_not_ok():
    # ~0.4 s of CPU, then a normal exit: within the wall slack, but over a 0.2 s limit.
    slow, quick = run({"code": "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.4:\n"
                               "    pass\nprint('done')", "time_limit_s": 0.2},
                      {"code": "print('done')", "time_limit_s": 0.2})
    assert slow["status"] == "timeout" and slow["cpu_ms"] > 200
    assert quick["status"] == "ok" and quick["output"] == "done\n"


# ---- batches: one harness process per (code, mode, entry, limits), one forked child per input ----

def test_batch_of_one_code_over_twenty_inputs_keeps_order():
    jobs = make_jobs(*({"code": "n = int(input())\nprint(n * n)", "input": f"{n}\n"} for n in range(20)))
    results = run_jobs(jobs, workers=2)
    assert results["job_id"].to_list() == jobs["job_id"].to_list()
    assert results["status"].to_list() == ["ok"] * 20
    assert results["output"].to_list() == [f"{n * n}\n" for n in range(20)]


def test_batch_jobs_get_fresh_working_directories():
    code = "import os\nprint(sorted(os.listdir('.')))\nopen('left.txt', 'w').write(input())"
    results = run(*({"code": code, "input": f"{i}\n"} for i in range(4)))
    assert [r["status"] for r in results] == ["ok"] * 4
    assert [r["output"] for r in results] == ["[]\n"] * 4


def test_job_killing_its_supervisor_loses_no_row():
    # Jobs run under their own uid, so the kill fails; where they cannot (no uid of their own), the
    # reaper takes over the job whose supervisor it killed. Either way every row comes back.
    code = ("import os\nk = int(input())\n"
            "if k == 3:\n    try:\n        os.kill(os.getppid(), 9)\n    except PermissionError:\n        pass\n"
            "print(k * 10)")
    results = run_jobs(make_jobs(*({"code": code, "input": f"{k}\n"} for k in range(8))), workers=1).to_dicts()
    assert [r["job_id"] for r in results] == [str(k) for k in range(8)]
    assert [r["status"] for r in results] == ["ok"] * 8
    assert [r["output"] for r in results] == [f"{k * 10}\n" for k in range(8)]


def test_job_trying_to_kill_its_supervisor_and_then_failing_gets_its_own_verdict():
    code = ("import os\nk = int(input())\n"
            "if k == 1:\n    try:\n        os.kill(os.getppid(), 9)\n    except PermissionError:\n        pass\n"
            "    raise ValueError(k)\n"
            "print(k)")
    results = run(*({"code": code, "input": f"{k}\n"} for k in range(4)))
    assert [r["status"] for r in results] == ["ok", "runtime_error", "ok", "ok"]
    assert "ValueError" in results[1]["stderr"] and results[3]["output"] == "3\n"


@pytest.fixture
def jobs_sharing_the_workers_uid(tmp_path, monkeypatch):
    """The sandbox as it runs where jobs get no uid of their own (not root, no user namespaces):
    a copy of the harness whose jobs keep the worker's uid, so they can kill its processes."""
    for name in ("harness.py", "isolation.py"):
        (tmp_path / name).write_text(runner.HARNESS.with_name(name).read_text())
    isolation = tmp_path / "isolation.py"
    own_uid = "self.job_uid = JOB_UID_BASE + os.getpid()"
    assert isolation.read_text().count(own_uid) == 1
    isolation.write_text(isolation.read_text().replace(own_uid, "pass"))
    runner.close_pools()
    monkeypatch.setattr(runner, "HARNESS", tmp_path / "harness.py")
    yield
    runner.close_pools()


KILLER = ("import os\nk = int(input())\nkilled = False\n"
          "if k == 3:\n"
          "    target = os.getppid()  # the supervisor\n"
          "    if TARGET == 'reaper':\n"
          "        target = int(open(f'/proc/{target}/stat').read().rsplit(')', 1)[1].split()[1])\n"
          "    os.kill(target, 9)\n"
          "    killed = True\n"
          "print(k * 10, killed)")


def test_a_job_that_kills_its_supervisor_is_watched_to_its_end_by_the_reaper(jobs_sharing_the_workers_uid):
    code = KILLER.replace("TARGET", "'supervisor'")
    results = run_jobs(make_jobs(*({"code": code, "input": f"{k}\n"} for k in range(8))), workers=1).to_dicts()
    assert [r["status"] for r in results] == ["ok"] * 8
    assert [r["output"] for r in results] == [f"{k * 10} {k == 3}\n" for k in range(8)]


def test_a_job_that_kills_its_reaper_loses_no_other_row(jobs_sharing_the_workers_uid):
    # The supervisor dies with the reaper; the worker sweeps, reports what was done, and the
    # rest reruns alone, where the killer kills its reaper again and is reported killed.
    code = KILLER.replace("TARGET", "'reaper'")
    results = run_jobs(make_jobs(*({"code": code, "input": f"{k}\n"} for k in range(8))), workers=1).to_dicts()
    assert [r["job_id"] for r in results] == [str(k) for k in range(8)]
    assert [r["status"] for r in results] == ["ok"] * 3 + ["killed"] + ["ok"] * 4
    assert [r["output"] for r in results if r["status"] == "ok"] == [f"{k * 10} False\n" for k in range(8) if k != 3]
    assert "died running this job, twice" in results[3]["stderr"]


def processes_with_argument(marker: str) -> list[int]:
    """Host pids whose command line contains `marker` (pids inside the sandbox are namespaced)."""
    found = []
    for name in os.listdir("/proc"):
        try:
            if name.isdigit() and marker.encode() in open(f"/proc/{name}/cmdline", "rb").read():
                found.append(int(name))
        except OSError:
            pass
    return found


def test_setsid_double_forked_grandchild_is_killed():
    marker = f"61.{os.getpid()}{time.time_ns() % 10**6}"  # a sleep no other process runs
    code = ("import os, time\n"
            "pid = os.fork()\n"
            "if pid == 0:\n"
            "    os.setsid()\n"
            "    if os.fork() == 0:\n"
            f"        os.execv('/bin/sleep', ['sleep', '{marker}'])\n"
            "    os._exit(0)\n"
            "os.waitpid(pid, 0)\n"
            "time.sleep(0.2)\n"
            "alive = [p for p in os.listdir('/proc') if p.isdigit() and open(f'/proc/{p}/comm').read() == 'sleep\\n']\n"
            "print(len(alive))\n")
    results = run(*({"code": code, "input": f"{i}\n"} for i in range(3)))
    assert [(r["status"], r["output"]) for r in results] == [("ok", "1\n")] * 3, results  # it ran
    assert processes_with_argument(marker) == []


def test_timeout_in_a_batch_does_not_affect_later_jobs():
    code = "k = int(input())\nif k == 2:\n    while True:\n        pass\nprint(k)"
    results = run(*({"code": code, "input": f"{k}\n", "time_limit_s": 0.3} for k in range(5)))
    assert [r["status"] for r in results] == ["ok", "ok", "timeout", "ok", "ok"]
    assert [r["output"] for r in results if r["status"] == "ok"] == ["0\n", "1\n", "3\n", "4\n"]


def test_function_mode_batch():
    code = "class Solution:\n    def add(self, a: int, b: int) -> int:\n        print('noise')\n        return a + b"
    results = run(*({"code": code, "mode": "function", "entry": "Solution.add", "input": f"{i}\n{i * 2}\n"}
                    for i in range(10)))
    assert [r["status"] for r in results] == ["ok"] * 10
    assert [json.loads(r["output"]) for r in results] == [3 * i for i in range(10)]
    assert all("noise" in r["stderr"] for r in results)


def test_jobs_leave_no_files_and_cannot_look_beside_their_directory():
    code = ("import os\nopen('left.txt', 'w').write(input())\n"
            "try:\n    print(os.listdir('..'))\nexcept PermissionError:\n    print('no listing')")
    results = run(*({"code": code, "input": f"{i}\n"} for i in range(3)))
    assert [r["output"] for r in results] == ["no listing\n"] * 3
    # Batch files live in each worker's own tmpfs and are removed: on the host, only mount points
    # and the workers' own compiled code.
    pool = runner._shared_pool(())
    files = [str(path.relative_to(pool.dir)) for path in pool.dir.rglob("*") if not path.is_dir()]
    assert sorted(files) == ["harness.pyc", "isolation.pyc"]


# Needle halves: the whole marker is never in the later job's own memory, only the earlier job's.
MARKER_HEAD, MARKER_TAIL = "zqv-earlier-", "job-7f3a9c"
SCAN_OWN_MEMORY = f"""
import ctypes, os
head, tail, found = {MARKER_HEAD!r}.encode(), {MARKER_TAIL[::-1]!r}[::-1].encode(), 0
with open('/proc/self/maps') as maps:
    regions = [line.split() for line in maps]
for fields in regions:
    start, end = (int(x, 16) for x in fields[0].split('-'))
    if fields[1][0] != 'r' or (len(fields) > 5 and fields[5].startswith('[v')):  # [vvar], [vsyscall]: not memory
        continue
    chunk = ctypes.string_at(start, end - start)
    at = chunk.find(head)
    while at >= 0:
        found += chunk[at + len(head):at + len(head) + len(tail)] == tail
        at = chunk.find(head, at + 1)
print(found, sorted(os.listdir('.')), sorted(os.listdir('/dev/shm')))
"""


def test_workers_are_reused_across_calls_and_a_later_job_finds_nothing_of_an_earlier_one():
    marker = MARKER_HEAD + MARKER_TAIL
    earlier = ("import os\ndata = input()\nopen('left.txt', 'w').write(data)\n"
               "open('/dev/shm/left', 'w').write(data)\nprint(data * 1000)")
    first = run_jobs(make_jobs(*({"code": earlier, "input": f"{marker}\n"} for _ in range(4))), workers=2)
    assert first["status"].to_list() == ["ok"] * 4 and marker in first["output"][0]
    pool = runner._shared_pool(())
    workers = {worker.proc.pid for worker in pool.idle}
    later = run_jobs(make_jobs(*({"code": SCAN_OWN_MEMORY, "input": f"{k}\n"} for k in range(4))), workers=2)
    assert {worker.proc.pid for worker in pool.idle} == workers  # the same processes served both calls
    assert later["output"].to_list() == ["0 [] []\n"] * 4, later["stderr"].to_list()


def test_jobs_a_batch_does_not_report_rerun_alone(monkeypatch):
    real = runner._collect

    def lose_odd_rows(jobs, root):
        reported = real(jobs, root)
        return reported if len(jobs) == 1 else {i: r for i, r in reported.items() if i % 2 == 0}

    monkeypatch.setattr(runner, "_collect", lose_odd_rows)
    code = "k = int(input())\nif k == 3:\n    while True:\n        pass\nprint(k)"
    results = run(*({"code": code, "input": f"{k}\n", "time_limit_s": 0.3} for k in range(6)))
    assert [r["status"] for r in results] == ["ok", "ok", "ok", "timeout", "ok", "ok"]
    assert [r["output"] for r in results if r["status"] == "ok"] == ["0\n", "1\n", "2\n", "4\n", "5\n"]


def test_a_job_no_worker_can_report_is_killed_with_the_reason(monkeypatch):
    monkeypatch.setattr(runner, "_collect", lambda jobs, root: {})
    results = run({"code": "print(1)"}, {"code": "def f(:"})
    assert [r["status"] for r in results] == ["killed", "syntax_error"]
    assert "worker died" in results[0]["stderr"]


@pytest.mark.slow
def test_a_worker_killed_mid_batch_loses_no_row(monkeypatch):
    # SIGKILL one worker while its job sleeps: the job reruns alone and still succeeds.
    calls: list[list[list[str]]] = []  # job ids of each batch, per pool.run call
    real_pool_run = runner._Pool.run

    def recording_pool_run(pool, batches, size):
        calls.append([[job["job_id"] for job in batch] for batch in batches])
        return real_pool_run(pool, batches, size)

    name = f"mid{os.getpid() % 10**8}"  # the job names itself (/proc/PID/comm) so we can find it
    killed: list[int] = []  # the worker killed

    def kill_a_worker() -> None:
        workers = {worker.proc.pid for worker in runner._shared_pool(()).idle}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for pid in processes_named(name):
                ancestors, current = [], pid
                while current > 1:  # up the host's process tree to the worker that runs the job
                    current = int(Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()[1])
                    ancestors.append(current)
                worker = next((a for a in ancestors if a in workers), None)
                if worker is not None:
                    os.kill(worker, 9)
                    killed.append(worker)
                    return
            time.sleep(0.01)

    run_jobs(make_jobs({"code": "print(1)"}, {"code": "print(2)"}), workers=2)  # two workers started
    monkeypatch.setattr(runner._Pool, "run", recording_pool_run)
    killer = threading.Thread(target=kill_a_worker, daemon=True)
    killer.start()
    code = ("import ctypes, sys, time\nk = input()\nif k == '2':\n"
            f"    ctypes.CDLL(None).prctl(15, {name.encode()!r}, 0, 0, 0)\n"
            "time.sleep(1.0)\nprint(k)")
    results = run(*({"code": code, "input": f"{k}\n", "time_limit_s": 2.0} for k in range(4)))
    killer.join(timeout=60)
    assert killed, "the job was not seen running, so no worker was killed"
    assert len(calls) == 2, calls  # the batches, then the reruns of what they lost
    assert all(len(batch) == 1 for batch in calls[1]) and ["2"] in calls[1], calls  # job 2 went round again
    assert [(r["status"], r["output"]) for r in results] == [("ok", f"{k}\n") for k in range(4)]
