"""The RL reward (METHOD.md §8, the paper's GRPO): run a completion's code on the task's golden tests.

    -2.0  no ```python code block, or the code does not compile
     0.0  no test passes
     5 * passed / total  otherwise

The code is the last fenced python block of the completion (a completion may reason first, and
may quote code on the way); an unterminated block (a completion cut at its length limit) is no
block. `ground_truth` is what the export's `reward_model.ground_truth` holds: the JSON of
{"tests": [{"input", "output", ...}], "io": "stdio" | "function", "entry_point": str | null}.
A test passes when its run's status is "ok" and `outputs_match(expected, output, float_tol)`.

Entry points, all on the same sandbox (`synthsmith.sandbox.runner.run_jobs`):
- `compute_score(data_source, solution_str, ground_truth, extra_info=None)`: verl's custom reward
  function (`custom_reward_function.path=<this file>`, `custom_reward_function.name=compute_score`);
- `score_completions(completions, ground_truths, limits)`: a whole batch as ONE sandbox call;
- `test_outcomes(completions, ground_truths, limits)`: (compiled, passed, total) per completion,
  for evaluation (a sample solves a problem when compiled and passed == total > 0);
- `grpo_reward(completions, reward_model, **kwargs)`: TRL GRPOTrainer's reward function (TRL passes
  the dataset's extra columns, `reward_model` among them, as keyword arguments);
  `make_grpo_reward(limits)` builds one with other sandbox limits.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, NamedTuple

from synthsmith.contract.params import RewardParams
from synthsmith.contract.values import FUNCTION, OK, STDIO

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

NO_CODE_REWARD = -2.0  # no code block, or it does not compile
MAX_REWARD = 5.0  # all tests pass
FLOAT_TOL = 1e-6  # verify's default; a ground truth may carry its own "float_tol"

# ```python (or ```python3, ```py) and a line break, up to the next ``` (an unclosed block is no block).
_BLOCK = re.compile(r"```(?:python3?|py)[ \t]*\r?\n(.*?)```", re.DOTALL)


class Outcome(NamedTuple):
    compiled: bool  # a code block exists and compiles
    passed: int
    total: int

    @property
    def solved(self) -> bool:
        return self.compiled and self.passed == self.total > 0


def extract_code(completion: str) -> str | None:
    """The last fenced python block's code, or None when there is none (or it is blank)."""
    blocks = _BLOCK.findall(completion or "")
    return blocks[-1] if blocks and blocks[-1].strip() else None


def compiles(code: str) -> bool:
    try:
        compile(code, "solution.py", "exec")
    except (SyntaxError, ValueError, OverflowError, RecursionError, MemoryError):
        return False  # ValueError: NUL bytes; the others: pathological nesting or literals
    return True


def parse_ground_truth(ground_truth: str | dict) -> dict:
    """The JSON string of reward_model.ground_truth (a dict is taken as already parsed)."""
    truth = json.loads(ground_truth) if isinstance(ground_truth, (str, bytes)) else dict(ground_truth)
    entry = truth.get("entry_point")
    truth.setdefault("io", FUNCTION if entry else STDIO)
    truth.setdefault("tests", [])
    return truth


def reward(outcome: Outcome) -> float:
    """The method's reward from one completion's outcome."""
    if not outcome.compiled:
        return NO_CODE_REWARD
    if outcome.passed == 0:
        return 0.0
    return MAX_REWARD * outcome.passed / outcome.total


def test_outcomes(completions: Sequence[str], ground_truths: Sequence[str | dict],
                  limits: RewardParams | None = None) -> list[Outcome]:
    """(compiled, passed, total) per completion; every test of every compiling completion runs in
    one `run_jobs` call. Identical (code, test) pairs (a GRPO group often repeats a completion)
    run once."""
    if len(completions) != len(ground_truths):
        raise ValueError(f"{len(completions)} completions but {len(ground_truths)} ground truths")
    limits = limits or RewardParams()
    truths = [parse_ground_truth(truth) for truth in ground_truths]
    codes = [extract_code(completion) for completion in completions]
    compiled = [code is not None and compiles(code) for code in codes]
    jobs: dict[tuple, str] = {}  # (code, mode, entry, input) -> job_id
    for code, ok, truth in zip(codes, compiled, truths, strict=True):
        if ok:
            for test in truth["tests"]:
                key = (code, truth["io"], truth.get("entry_point"), test["input"])
                jobs.setdefault(key, str(len(jobs)))
    results = _run(jobs, limits)
    outcomes = []
    for code, ok, truth in zip(codes, compiled, truths, strict=True):
        tests = truth["tests"]
        if not ok:
            outcomes.append(Outcome(False, 0, len(tests)))
            continue
        tol = float(truth.get("float_tol", FLOAT_TOL))
        passed = sum(_passes(results[jobs[(code, truth["io"], truth.get("entry_point"), test["input"])]],
                             test["output"], tol) for test in tests)
        outcomes.append(Outcome(True, passed, len(tests)))
    return outcomes


test_outcomes.__test__ = False  # a name pytest would collect from a test module importing it


def score_completions(completions: Sequence[str], ground_truths: Sequence[str | dict],
                      limits: RewardParams | None = None) -> list[float]:
    """The reward of each completion; one sandbox call for the whole batch."""
    return [reward(outcome) for outcome in test_outcomes(completions, ground_truths, limits)]


def compute_score(data_source: str, solution_str: str, ground_truth: str,
                  extra_info: dict | None = None) -> float:
    """verl's custom reward function: one completion (verl calls it with keyword arguments)."""
    return score_completions([solution_str], [ground_truth])[0]


def completion_text(completion: str | list[dict]) -> str:
    """A TRL completion: a string, or chat messages (the last assistant message's content)."""
    if isinstance(completion, str):
        return completion
    contents = [m.get("content") or "" for m in completion if m.get("role", "assistant") == "assistant"]
    return contents[-1] if contents else ""


def make_grpo_reward(limits: RewardParams | None = None) -> Callable[..., list[float]]:
    """A TRL reward function running the tests with `limits` (named `grpo_reward` in TRL's logs)."""
    def grpo_reward(completions: list, reward_model: list[dict], **kwargs) -> list[float]:
        return score_completions([completion_text(c) for c in completions],
                                 [rm["ground_truth"] for rm in reward_model], limits)
    return grpo_reward


grpo_reward = make_grpo_reward()


def _run(jobs: dict[tuple, str], limits: RewardParams) -> dict[str, dict]:
    """job_id -> its SANDBOX_RESULTS row; nothing to run, no sandbox."""
    if not jobs:
        return {}
    import polars as pl

    from synthsmith.sandbox import runner

    frame = pl.DataFrame([{"job_id": job_id, "code": code, "mode": mode, "entry": entry, "input": stdin,
                           "time_limit_s": float(limits.time_limit_s), "memory_mb": int(limits.memory_mb)}
                          for (code, mode, entry, stdin), job_id in jobs.items()])
    results = runner.run_jobs(frame, workers=limits.workers)
    return {row["job_id"]: row for row in results.iter_rows(named=True)}


def _passes(result: dict, expected: str, float_tol: float) -> bool:
    from synthsmith.stages.compare import outputs_match

    return result["status"] == OK and result["output"] is not None and outputs_match(expected, result["output"], float_tol)
