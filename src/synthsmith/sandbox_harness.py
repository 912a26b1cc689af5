"""In-child harness: apply the job's limits, then run one untrusted program.

Invoked by `sandbox.run_jobs` as `python -S -P sandbox_harness.py MODE CODE_PATH ENTRY MEMORY_MB CPU_S`.
It must stay stdlib-only and import nothing from synthsmith: the child runs without site-packages.
The parent imports it only for the constants below (no side effects at import).
"""

from __future__ import annotations

import builtins
import os
import resource
import sys

MEMORY_EXIT = 86  # exit code meaning "MemoryError": distinct from Python's 1 (uncaught exception)
OUTPUT_CAP_BYTES = 8 << 20  # stdout/stderr files may reach this size; one byte more means output_limit
RECURSION_LIMIT = 500_000  # depth-1e5 DFS must work even at 2-3 frames a level (3.11 counts lru_cache's C call too)
OPEN_FILES = 64
PROCESSES = 512  # RLIMIT_NPROC counts every process of the uid (and is ignored for root): a fork-bomb brake only


def _apply_limits(memory_mb: int, cpu_s: int) -> None:
    # Set here, after exec, rather than in Popen(preexec_fn=...): preexec_fn is unsafe in a
    # threaded parent, and the runner forks from worker threads. Only this trusted code runs first.
    memory = memory_mb << 20
    _, stack_hard = resource.getrlimit(resource.RLIMIT_STACK)
    stack = memory if stack_hard == resource.RLIM_INFINITY else min(memory, stack_hard)
    resource.setrlimit(resource.RLIMIT_STACK, (stack, stack_hard))  # C frames of deep recursion (lru_cache etc.)
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    # Soft limit sends SIGXCPU (fatal: Python installs no handler); the hard limit's SIGKILL backs it up.
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (OUTPUT_CAP_BYTES + 1, OUTPUT_CAP_BYTES + 1))
    resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILES, OPEN_FILES))
    resource.setrlimit(resource.RLIMIT_NPROC, (PROCESSES, PROCESSES))


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


def _call_function(code, entry: str) -> None:
    import json
    import typing

    args = [json.loads(line) for line in sys.stdin if line.strip()]
    # "solution", not "__main__": an `if __name__ == "__main__":` demo block must not run.
    # LeetCode-style code uses List/Optional without importing them; LeetCode provides them too.
    namespace = {"__name__": "solution", "__builtins__": builtins}
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


def main(argv: list[str]) -> None:
    mode, code_path, entry, memory_mb, cpu_s = argv[1:]
    _apply_limits(int(memory_mb), int(cpu_s))
    sys.setrecursionlimit(RECURSION_LIMIT)
    _flush_on_fast_exit()
    with open(code_path, encoding="utf-8") as source:
        code = compile(source.read(), code_path, "exec")  # real path: tracebacks show source lines
    sys.argv = [code_path]
    try:
        if mode == "stdio":
            exec(code, {"__name__": "__main__", "__builtins__": builtins})
        else:
            _call_function(code, entry)
    except MemoryError:
        sys.__excepthook__(*sys.exc_info())  # no imports: memory is short here
        os._exit(MEMORY_EXIT)  # the patched exit, so what was printed is flushed


if __name__ == "__main__":
    main(sys.argv)
