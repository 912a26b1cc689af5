"""The sandbox worker: a long-lived, isolated process that runs batches of untrusted jobs.

`python -S -P SANDBOX_DIR/harness.pyc worker SANDBOX_DIR HOME LIBRARY` (the pool compiles this
file and `isolation` into SANDBOX_DIR) enters its namespaces (`isolation`), mounts its own tmpfs
(`scratch` for batch files, `work` for jobs' working directories), writes one JSON line (the
isolation report) to stdout, then reads batches on stdin: a HEADER_BYTES decimal length and that
many bytes (`encode_batch`: limits, code, inputs). For each it answers with a report (`_report`:
per job it can report on, a header line and the bytes of its stdout and stderr) and then "done".
It must stay stdlib-only and import nothing from synthsmith: it runs without site-packages. The
parent imports it only for the constants below.

Process tree per batch, each a fork of the worker, which itself never holds a batch's data (a
later job, forked from it, finds nothing of an earlier one in its memory): a *reaper* (a child
subreaper) reads the batch from the pipe into scratch files, compiles the code once and forks a
*supervisor* (a subreaper too); per input the supervisor makes the job's directory, opens its
stdin, stdout and stderr files and forks it (touching little else, so forking stays cheap),
watches it (CPU poll, wall limit), kills what it left in its group, reaps it and kills its
orphans (even setsid'd ones are re-parented to it). The reaper then writes the report, which
the worker sends to the parent without reading it. If the parent goes away mid-batch, the worker
ends everything at once. Jobs run under another uid, so they cannot signal any of these; where
they can (no uid of their own), a job that kills its supervisor falls to the reaper, which
finishes watching it, writes its status line, sweeps, and forks a new supervisor for the
remaining inputs; one that kills the reaper falls to the worker, which sweeps and forks a
*reporter* for what was done. A job child runs the job right where its supervisor forked it,
then ends like a normal interpreter exit would, without paying for a full interpreter shutdown
(`_finish_job`). A job's cost is mostly the pages it copies on first write, so the job child
does as little as it can, and what all jobs of a batch share is done once, before the forks.
"""

from __future__ import annotations

import atexit  # here, not in each job: importing it there costs every job the import machinery's page faults
import builtins
import os
import resource
import select  # the worker uses it anyway; imported here, the supervisor does not re-import it per job
import sys
import time

MEMORY_EXIT = 86  # exit code meaning "MemoryError": distinct from Python's 1 (uncaught exception)
OUTPUT_CAP_BYTES = 8 << 20  # stdout/stderr files may reach this size; one byte more means output_limit
RECURSION_LIMIT = 500_000  # depth-1e5 DFS must work even at 2-3 frames a level (3.11 counts lru_cache's C call too)
OPEN_FILES = 64
STDERR_CHARS = 2_000  # the tail of a job's stderr that is reported (it holds the traceback)
HEADER_BYTES = 20  # a batch's length, in decimal, newline-terminated
PROCESSES = 64  # RLIMIT_NPROC: processes and threads of the job's uid, which is the job's own (see isolation.py)
_CORES = os.cpu_count() or 1  # read once (glibc reads /sys for it), not per job


def _job_limits(memory_mb: int, cpu_s: int) -> tuple:
    """((resource, (soft, hard)), ...) a job runs under: worked out once per batch, set in each job."""
    memory = memory_mb << 20
    _, stack_hard = resource.getrlimit(resource.RLIMIT_STACK)
    stack = memory if stack_hard == resource.RLIM_INFINITY else min(memory, stack_hard)
    return ((resource.RLIMIT_STACK, (stack, stack_hard)),  # C frames of deep recursion (lru_cache etc.)
            (resource.RLIMIT_AS, (memory, memory)),
            # Soft limit sends SIGXCPU (fatal: Python installs no handler); the hard limit's SIGKILL backs it up.
            (resource.RLIMIT_CPU, (cpu_s, cpu_s + 1)),
            (resource.RLIMIT_FSIZE, (OUTPUT_CAP_BYTES + 1, OUTPUT_CAP_BYTES + 1)),
            (resource.RLIMIT_NOFILE, (OPEN_FILES, OPEN_FILES)),
            (resource.RLIMIT_NPROC, (PROCESSES, PROCESSES)),
            (resource.RLIMIT_CORE, (0, 0)))  # a crashing job writes no core file


def _flush_on_fast_exit() -> None:
    # `print(...); os._exit(0)` is a common fast-exit idiom; stdout to a file is block-buffered,
    # so without this the printed answer would be lost.
    real_exit = os._exit

    def _exit(code: int) -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # a closed or over-limit stream must not block the exit
                pass
        real_exit(code)

    os._exit = _exit


def _call_function(code, entry: str, namespace: dict) -> None:
    import json
    import typing

    args = [json.loads(line) for line in sys.stdin if line.strip()]
    # LeetCode-style code uses List/Optional without importing them; LeetCode provides them too.
    namespace.update((name, getattr(typing, name)) for name in typing.__all__)
    # Point fd 1 at stderr while user code runs, so prints (even os.write(1, ...)) cannot mix
    # with the result, which is written to the saved real stdout afterwards.
    sys.stdout.flush()
    result_fd = os.dup(1)
    os.dup2(2, 1)
    exec(code, namespace)
    owner, _, name = entry.rpartition(".")
    function = getattr(namespace[owner](), name) if owner else namespace[name]
    result = json.dumps(function(*args))
    sys.stdout.flush()
    with os.fdopen(result_fd, "w", encoding="utf-8") as out:
        out.write(result)


def _execute(mode: str, code, entry: str, namespace: dict) -> None:
    try:
        if mode == "stdio":
            exec(code, namespace)
        else:
            _call_function(code, entry, namespace)
    except MemoryError:
        sys.__excepthook__(*sys.exc_info())  # no imports: memory is short here
        os._exit(MEMORY_EXIT)  # the patched exit, so what was printed is flushed


# ---- batch mode -------------------------------------------------------------------------------

_REAL_EXIT = os._exit
_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


_libc_prctl = None  # made once, in the worker: a CDLL per call would build ctypes classes in every batch's processes


def _prctl(option: int, value: int) -> None:
    global _libc_prctl
    try:
        if _libc_prctl is None:
            import ctypes
            _libc_prctl = ctypes.CDLL(None, use_errno=True).prctl
        _libc_prctl(option, value, 0, 0, 0)
    except Exception:  # no prctl: killpg still sweeps the job's own process group
        pass


def _become_subreaper() -> None:
    """Orphaned descendants are re-parented to us (not to init), so we can kill and reap them."""
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def _children() -> list[int]:
    pid = os.getpid()
    try:
        with open(f"/proc/{pid}/task/{pid}/children", "rb") as f:
            return [int(p) for p in f.read().split()]
    except OSError:  # no CONFIG_PROC_CHILDREN: scan /proc for our children
        kids = []
        for name in os.listdir("/proc"):
            if name.isdigit():
                try:
                    with open(f"/proc/{name}/stat", "rb") as f:
                        if int(f.read().rsplit(b")", 1)[1].split()[1]) == pid:
                            kids.append(int(name))
                except (OSError, IndexError, ValueError):
                    pass
        return kids


def _sweep() -> None:
    """Kill and reap every child of ours; their orphans come to us, so repeat."""
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return  # no child at all, the usual case: one system call, no /proc read
    while True:
        kids = _children()
        if not kids:
            return
        for kid in kids:
            _signal(os.kill, kid)
        for kid in kids:
            try:
                os.waitpid(kid, 0)
            except ChildProcessError:
                pass


def _signal(send, target: int) -> None:
    try:
        send(target, 9)  # SIGKILL
    except (ProcessLookupError, PermissionError):
        pass


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live (or zombie) process, from /proc; 0 if unreadable."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def watch(pid: int, start: float, wall_s: float, cpu_limit_s: float) -> tuple[int, float, bool]:
    """Supervise our child job PID (the supervisor's, or the reaper's once its supervisor died):
    kill its group once it passes the CPU limit or the wall limit; after exit kill the group
    (descendants), reap with wait4. (exit code, CPU s, killed by us)."""
    try:
        pidfd = os.pidfd_open(pid)  # becomes readable when the child exits: no polling latency
    except (AttributeError, OSError):
        pidfd = None
    # A job's threads earn at most one CPU second per core per second: no /proc read before then.
    cpu_possible = start + cpu_limit_s / _CORES
    pause, fired = 0.001, False  # waiting comes first, so a quick job finds us blocked in one call
    try:
        while True:
            if pidfd is not None:
                select.select([pidfd], [], [], pause)
            else:
                time.sleep(pause)
            # WNOWAIT leaves the child a zombie, so its pid (= its group id) cannot be reused while we signal it.
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                break
            now = time.monotonic()
            if not fired and (now > start + wall_s or (now > cpu_possible and cpu_seconds(pid) > cpu_limit_s)):
                fired = True
                _signal(os.killpg, pid)
            pause = min(pause * 2, 0.02)  # quick programs are noticed at once, long ones cheaply
    finally:
        if pidfd is not None:
            os.close(pidfd)
    _signal(os.killpg, pid)  # sweep descendants the program left running in its group
    _, status, usage = os.wait4(pid, 0)
    return os.waitstatus_to_exitcode(status), usage.ru_utime + usage.ru_stime, fired


def _status_line(fd: int, index: int, exit_code: int, cpu: float, fired: bool, wall: float) -> None:
    line = f"{index} {exit_code} {cpu!r} {int(fired)} {wall!r}\n"
    os.write(fd, line.encode())  # O_APPEND, unbuffered: on disk as soon as the job is done


def _load_isolation():
    """`isolation` from its compiled file beside ours (the pool compiles both), without putting our
    package on the jobs' sys.path (nor importlib's machinery in the worker's memory, which every
    job's fork copies)."""
    import marshal
    import types

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "isolation.pyc")
    module = types.ModuleType("sandbox_isolation")
    with open(path, "rb") as compiled:
        exec(marshal.loads(compiled.read()[16:]), module.__dict__)  # the code after the pyc header
    return module


def _serve(sandbox_dir: str, home: str, library: str) -> None:
    """The worker loop; every process it forks ends inside it, with os._exit."""
    host_pid = os.getpid()
    isolation = _load_isolation().Isolation()
    commands, replies = os.dup(0), os.dup(1)  # the parent's pipes; jobs get files on 0-2 instead
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    if isolation.enter(sandbox_dir):
        init = os.fork()  # the first child is PID 1 of the new PID namespace
        if init:
            os.close(commands)  # only init holds the pipes: its death is EOF for the parent
            os.close(replies)
            _, status = os.waitpid(init, 0)
            _REAL_EXIT(os.waitstatus_to_exitcode(status) & 0xFF)
        _prctl(_PR_SET_PDEATHSIG, 9)  # the parent killing the worker takes the whole namespace down
    isolation.as_init(sandbox_dir, homes=["/root", home], libraries=[p for p in sys.path if os.path.isdir(p)])
    scratch, work = isolation.make_dirs(sandbox_dir, host_pid)
    isolation.forbid_new_privileges()
    if library:
        sys.path.append(library)  # after the stdlib: a copied package cannot shadow it
    _become_subreaper()  # without a PID namespace, orphans of a killed reaper still come to us
    _in_child(lambda: _write_isolation_report(replies, isolation.report))
    number = 0
    while (size := _read_header(commands)) is not None:
        root = os.path.join(scratch, str(number))
        report = f"{root}.report"  # beside the batch's directory, which is removed before it is sent
        number += 1
        os.mkdir(root, 0o711)  # jobs reach their own solution.py (tracebacks show its lines), list nothing
        loaded_r, loaded_w = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        reaper = os.fork()
        if reaper == 0:
            os.close(replies)
            os.close(loaded_r)
            _end_after(lambda: _reap(commands, size, loaded_w, root, work, report, isolation))
        os.close(loaded_w)
        loaded = os.read(loaded_r, 1)  # one byte once the reaper read the batch; EOF if it failed
        os.close(loaded_r)
        if loaded != b"1":
            _signal(os.kill, reaper)
            _sweep()
            _REAL_EXIT(1)  # the batch was not read whole: the command stream is out of step
        if not _wait_reaper(reaper, commands):
            _signal(os.kill, reaper)
            _sweep()  # the supervisor dies with the reaper (PDEATHSIG); the jobs come to us
            _REAL_EXIT(0)  # in a PID namespace the kernel also kills whatever is left in it
        _sweep()  # what a killed reaper left behind
        if not os.path.exists(report):  # the reaper was killed (or failed) before its report
            _in_child(lambda: _report(root, work, report))
        _send_report(report, replies)
        _write_all(replies, b"\ndone\n")  # after a newline: a torn report line stays a line of its own
    _REAL_EXIT(0)


def _reap(commands: int, size: int, loaded: int, root: str, work: str, report: str, isolation) -> None:
    """Reaper, a fork of the worker per batch: reads the batch into ROOT (so the worker never holds
    its data), says so on LOADED, runs it and writes REPORT. On an error the worker reports what
    was done."""
    _load(commands, size, root)
    os.close(commands)
    os.write(loaded, b"1")
    os.close(loaded)
    _run_batch(root, work, isolation)
    _report(root, work, report)


def _send_report(report: str, replies: int) -> None:
    """The report file to the parent, by sendfile: its bytes (jobs' outputs) never enter the
    worker's memory. No file (the reporter failed too): nothing is reported, the parent reruns."""
    try:
        fd = os.open(report, os.O_RDONLY)
    except OSError:
        _write_all(replies, b"R 0\n")
        return
    try:
        size, sent = os.fstat(fd).st_size, 0
        while sent < size:
            sent += os.sendfile(replies, fd, sent, size - sent)
    finally:
        os.close(fd)
        os.unlink(report)


def _write_isolation_report(replies: int, report: dict[str, str]) -> None:
    import json  # in a fork: the worker's memory, which every job's fork copies, stays without it

    _write_all(replies, (json.dumps(report) + "\n").encode())


def _wait_reaper(reaper: int, commands: int) -> bool:
    """Wait for the batch's reaper: True once it exited, False if the parent went away meanwhile
    (EOF on the command pipe: a killed run must not leave its jobs running to their limits)."""
    try:
        exited = os.pidfd_open(reaper)
    except (AttributeError, OSError):  # no pidfd: wait without watching the parent
        os.waitpid(reaper, 0)
        return True
    try:
        if exited not in select.select([exited, commands], [], [])[0]:
            return False  # the parent sends nothing before "done": readable means it is gone
        os.waitpid(reaper, 0)
        return True
    finally:
        os.close(exited)


def _in_child(step) -> int:
    """Run `step` in a fork of this process and return its exit code: what it reads stays there."""
    pid = os.fork()
    if pid == 0:
        _end_after(step)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def _end_after(step) -> None:
    """In a fork: run `step`, then leave with exit 0, or 1 and the traceback on stderr (also for
    what a supervisor or job child forked inside `step` raised before its own exit)."""
    try:
        step()
    except BaseException:
        import traceback
        traceback.print_exc()
        sys.stderr.flush()
        _REAL_EXIT(1)
    _REAL_EXIT(0)


def _read_exactly(fd: int, size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _read_header(fd: int) -> int | None:
    header = _read_exactly(fd, HEADER_BYTES)
    return None if header is None else int(header)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


LIMITS = ("mode", "entry", "memory_mb", "cpu_s", "time_limit_s", "wall_s")


def encode_batch(limits: dict, code: str, inputs: list[str]) -> bytes:
    """A batch as the worker reads it: LIMITS tab-separated, the byte lengths of the code and of
    each input, then those bytes. No JSON: the reaper, a fresh fork per batch, imports nothing to read it."""
    parts = [code.encode(), *(text.encode() for text in inputs)]
    head = "\t".join(str(limits[name]) for name in LIMITS) + "\n" + " ".join(str(len(p)) for p in parts) + "\n"
    return head.encode() + b"".join(parts)


def _load(commands: int, size: int, root: str) -> None:
    """The batch from the pipe into ROOT: solution.py, <i>.in, limits."""
    data = _read_exactly(commands, size)
    if data is None:
        raise EOFError("the batch ended early")
    limits, lengths, body = data.split(b"\n", 2)
    offset, parts = 0, []
    for length in map(int, lengths.split()):
        parts.append(body[offset:offset + length])
        offset += length
    _write_file(os.path.join(root, "solution.py"), parts[0], 0o644)
    for index, part in enumerate(parts[1:]):
        _write_file(os.path.join(root, f"{index}.in"), part)
    _write_file(os.path.join(root, "limits"), limits + b"\t%d" % (len(parts) - 1))


def _read_limits(root: str) -> dict[str, str]:
    with open(os.path.join(root, "limits"), encoding="utf-8") as f:
        return dict(zip((*LIMITS, "count"), f.read().split("\t")))


def _write_file(path: str, data: bytes, mode: int = 0o600, exclusive: bool = True) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC), mode)
    try:
        _write_all(fd, data)
    finally:
        os.close(fd)


def decode_report(header: bytes) -> dict:
    """One job's result header from `_report`: its fields, and the byte lengths that follow."""
    index, exit_code, cpu_s, killed, wall_s, output_bytes, out_length, err_length = header.split()
    return {"index": int(index), "exit_code": int(exit_code), "cpu_s": float(cpu_s), "killed_by_us": killed == b"1",
            "wall_s": float(wall_s), "output_bytes": int(output_bytes),
            "out_length": int(out_length), "err_length": int(err_length)}


def _report(root: str, work: str, report: str) -> None:
    """Writes REPORT: "R <n>", then per job with a status line in ROOT/status a header line
    (`decode_report`) and the bytes of its stdout head and stderr tail; a torn or foreign status
    line is skipped (the parent reruns what is not reported). The file appears whole or not at
    all. Then ROOT is removed, and what jobs whose supervisor and reaper were killed left in WORK."""
    count = int(_read_limits(root)["count"])
    results = {}
    try:
        with open(os.path.join(root, "status"), "rb") as f:
            lines = f.read().splitlines()
    except OSError:
        lines = []
    for line in lines:
        try:
            index, exit_code, cpu_s, killed, wall_s = line.split()
            if 0 <= int(index) < count:
                results[int(index)] = (int(exit_code), float(cpu_s), int(killed), float(wall_s))
        except ValueError:
            continue
    chunks = [b"R %d\n" % len(results)]
    for index, (exit_code, cpu_s, killed, wall_s) in results.items():
        output, output_bytes = _head(os.path.join(root, f"{index}.out"))
        # The batch's scratch path would make identical runs differ: tracebacks name plain "solution.py".
        errors = _tail(os.path.join(root, f"{index}.err")).replace(f"{root}/".encode(), b"")
        chunks.append(f"{index} {exit_code} {cpu_s!r} {killed} {wall_s!r} {output_bytes} {len(output)} {len(errors)}\n"
                      .encode())
        chunks += [output, errors]
    part = f"{report}.part"
    _write_file(part, b"".join(chunks), exclusive=False)  # a killed reaper may have left one
    os.rename(part, report)
    _remove_tree(root)
    for entry in os.scandir(work):
        _remove_tree(entry.path)


def _remove_tree(path: str) -> None:
    """A batch directory is flat: no shutil (imported fresh in every reaper) unless it is not."""
    try:
        for entry in os.scandir(path):
            os.unlink(entry.path)
        os.rmdir(path)
    except OSError:
        import shutil
        shutil.rmtree(path, ignore_errors=True)


def _head(path: str) -> tuple[bytes, int]:
    """(the first OUTPUT_CAP_BYTES of the file; its size in bytes); (b"", 0) if absent."""
    try:
        with open(path, "rb") as f:
            return f.read(OUTPUT_CAP_BYTES), os.fstat(f.fileno()).st_size
    except OSError:
        return b"", 0


def _tail(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - 4 * STDERR_CHARS))  # <= 4 bytes per UTF-8 char
            return f.read()
    except OSError:
        return b""


def _run_batch(root: str, work_root: str, isolation) -> None:
    """Runs the batch the reaper read into ROOT; jobs' working directories go in WORK_ROOT.
    Every process of the batch's tree ends with os._exit."""
    limits = _read_limits(root)
    code_path = os.path.join(root, "solution.py")
    # Jobs' directories are named after the batch too, so no two jobs of a worker share one.
    work_prefix = os.path.join(work_root, f"{os.path.basename(root)}-")
    job = (limits["mode"], code_path, limits["entry"], int(limits["memory_mb"]), int(limits["cpu_s"]),
           float(limits["time_limit_s"]), float(limits["wall_s"]), root, work_prefix)
    count = int(limits["count"])
    with open(code_path, encoding="utf-8") as source:
        text = source.read()
    code = compile(text, code_path, "exec")  # once for the whole batch
    status_fd = os.open(os.path.join(root, "status"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    _become_subreaper()
    index, total = 0, int(count)
    while index < total:
        read_end, write_end = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        supervisor = os.fork()
        if supervisor == 0:
            os.close(read_end)
            _supervise(job, code, index, total, status_fd, write_end, isolation)
            _REAL_EXIT(0)
        os.close(write_end)
        data = b""
        while chunk := os.read(read_end, 65536):  # EOF once the supervisor is gone
            data += chunk
        os.close(read_end)
        os.waitpid(supervisor, 0)
        started, done = None, index - 1
        for line in data.decode().splitlines():
            kind, *fields = line.split()
            if kind == "S" and len(fields) == 3:
                started = (int(fields[0]), int(fields[1]), float(fields[2]))
            elif kind == "D" and fields:
                done = int(fields[0])
        if started is not None and started[0] > done:
            # The supervisor died mid-job (killed by the job): the job is our child now; finish watching it.
            job_index, pid, start = started
            try:
                exit_code, cpu, fired = watch(pid, start, job[6], job[5])
                _status_line(status_fd, job_index, exit_code, cpu, fired, time.monotonic() - start)
            except ChildProcessError:  # already reaped by the supervisor: its line is written or the job reruns
                pass
            isolation.remove_workdir(_workdir(job, job_index))
            done = job_index
        _sweep()
        if done < index:
            break  # no progress: leave the rest to the parent's single-job fallback
        index = done + 1


def _supervise(job, code, first: int, total: int, status_fd: int, pipe_fd: int, isolation) -> None:
    """Supervisor (a subreaper): runs inputs FIRST.. of the batch, one at a time. Per input it
    makes the job's working directory, opens its stdin, stdout and stderr files, forks it, watches
    it (CPU poll, wall limit), kills what it left in its group, reaps it, sweeps its orphans and
    writes its status line. Between forks it touches little, so forking stays cheap."""
    wall_s, time_limit_s = job[6], job[5]
    reaper = os.getppid()
    _prctl(_PR_SET_PDEATHSIG, 9)  # a job that kills the reaper ends its supervisor too: no batch runs on unseen
    _become_subreaper()  # the job's orphans, even setsid'd ones, come to us
    # What every job of the batch needs the same is done here, once: the jobs inherit it.
    sys.setrecursionlimit(RECURSION_LIMIT)
    _flush_on_fast_exit()  # this process itself leaves by _REAL_EXIT
    mode, code_path, entry, memory_mb, cpu_s, _, _, root, _ = job
    sys.argv = [code_path]
    limits = _job_limits(memory_mb, cpu_s)
    if mode != "stdio":
        import json  # noqa: F401  what _call_function imports, so no job runs the import machinery
        import typing  # noqa: F401
    write = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    for index in range(first, total):
        if os.getppid() != reaper:
            return  # the reaper is gone (its parent already took what was reported)
        work = _workdir(job, index)
        isolation.make_workdir(work)  # fresh and empty; removed after the job, so no job sees another's files
        # The job's stdio and working directory are set up here, before the fork: in the job child
        # the same steps would cost their pages copied again. Our own fds 0-1 are unused.
        for fd, suffix, flags in ((0, "in", os.O_RDONLY), (1, "out", write)):
            opened = os.open(f"{root}/{index}.{suffix}", flags, 0o600)
            os.dup2(opened, fd)
            os.close(opened)
        stderr = os.open(f"{root}/{index}.err", write, 0o600)  # fd 2 stays ours: our tracebacks go to the worker's
        os.chdir(work)
        start = time.monotonic()
        pid = os.fork()
        if pid == 0:
            _enter_job(stderr, limits, isolation)
            _finish_job(mode, code, entry)
        os.close(stderr)
        os.write(pipe_fd, b"S %d %d %r\n" % (index, pid, start))
        exit_code, cpu, fired = watch(pid, start, wall_s, time_limit_s)
        _sweep()
        _status_line(status_fd, index, exit_code, cpu, fired, time.monotonic() - start)
        os.write(pipe_fd, b"D %d\n" % index)
        isolation.remove_workdir(work)


def _workdir(job, index: int) -> str:
    """Job INDEX's working directory."""
    return f"{job[8]}{index}"


def _enter_job(stderr: int, limits: tuple, isolation) -> None:
    """In the job child, whose stdin, stdout and working directory the supervisor set: own session,
    its stderr file on fd 2, only fds 0-2 open, LIMITS (`_job_limits`), then the job's own uid
    without capabilities. Every step here is paid by every job, in copied pages too."""
    os.setsid()
    os.dup2(stderr, 2)
    os.closerange(3, 1 << 16)  # the supervisor's pipe and status file stay out of reach
    setrlimit = resource.setrlimit
    for which, values in limits:
        setrlimit(which, values)
    isolation.drop_privileges()


def _finish_job(mode: str, code, entry: str) -> None:
    """Run the job, then do what a normal interpreter exit does for it and leave with os._exit:
    the full finalization of the forked interpreter would cost several times the job itself.
    Kept: SystemExit codes and messages, the excepthook traceback (exit 1), waiting for non-daemon
    threads, atexit handlers, deallocating the program's globals (so an unflushed file object of
    its own is flushed), flushing stdout/stderr (exit 120 if that fails, as CPython)."""
    # A function-mode job runs as "solution", not "__main__": an `if __name__ == "__main__":`
    # demo block must not run.
    namespace = {"__name__": "__main__" if mode == "stdio" else "solution", "__builtins__": builtins}
    exit_code = 0
    try:
        _execute(mode, code, entry, namespace)
    except SystemExit as exc:
        exit_code = _system_exit_code(exc)
    except KeyboardInterrupt:
        sys.excepthook(*sys.exc_info())
        import signal
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)  # CPython exits by SIGINT here
    except BaseException:
        sys.excepthook(*sys.exc_info())
        exit_code = 1
    try:
        if "threading" in sys.modules:
            sys.modules["threading"]._shutdown()
        atexit._run_exitfuncs()
        namespace.clear()
    except SystemExit as exc:
        exit_code = _system_exit_code(exc)
    except BaseException:
        sys.excepthook(*sys.exc_info())
    for stream in (sys.stdout, sys.stderr):
        try:
            if not stream.closed:  # a program may close its stdout; CPython then skips it too
                stream.flush()
        except Exception:
            if stream is sys.stdout:
                exit_code = exit_code or 120
    _REAL_EXIT(exit_code)


def _system_exit_code(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    try:
        sys.stderr.write(f"{code}\n")
    except Exception:
        pass
    return 1


if __name__ == "__main__":
    _serve(*sys.argv[2:5])
