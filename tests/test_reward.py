"""The RL reward (train/reward.py): -2 no code / no compile, 0 nothing passes, else 5 x passed / total,
on hand-made completions in stdio and function mode, through the real sandbox."""

from __future__ import annotations

import json

import pytest

from synthsmith.contract.params import RewardParams
from synthsmith.sandbox import runner
from synthsmith.train import reward
from synthsmith.train.reward import Outcome, compute_score, extract_code, grpo_reward, score_completions, test_outcomes

STDIO_TRUTH = json.dumps({"io": "stdio", "entry_point": None, "tests": [
    {"input": "1 2\n", "output": "3", "weight": 1},
    {"input": "2 2\n", "output": "4", "weight": 2},
    {"input": "5 7\n", "output": "12", "weight": 1},
    {"input": "0 0\n", "output": "0", "weight": 1}]})
FUNCTION_TRUTH = json.dumps({"io": "function", "entry_point": "Solution.add", "tests": [
    {"input": "[1, 2]\n3\n", "output": "[1, 2, 3]"},
    {"input": "[]\n0\n", "output": "[0]"},
    {"input": "[5]\n-1\n", "output": "[5, -1]"},
    {"input": "[9, 9]\n9\n", "output": "[9, 9, 9]"}]})
PLAIN_FUNCTION_TRUTH = json.dumps({"io": "function", "entry_point": "half", "tests": [
    {"input": "1\n", "output": "0.5"}, {"input": "3\n", "output": "1.5"}]})


def block(code: str, reasoning: str = "Let me think about it.") -> str:
    return f"{reasoning}\n\n```python\n{code}\n```"


STDIO = {  # completion -> reward on STDIO_TRUTH
    "no_code": ("The answer is to add the two numbers.", -2.0),
    "syntax_error": (block("a, b = map(int, input().split()\nprint(a + b)"), -2.0),
    "wrong": (block("print(-1)"), 0.0),
    # a * b: right on 2 2 (4) and 0 0 (0), wrong on 1 2 and 5 7
    "partly_right": (block("a, b = map(int, input().split())\nprint(a * b)"), 2.5),
    "right": (block("a, b = map(int, input().split())\nprint(a + b)"), 5.0),
}
FUNCTION = {  # on FUNCTION_TRUTH, LeetCode style
    "no_code": ("class Solution:\n    def add(self, xs, x):\n        return xs + [x]", -2.0),  # not fenced
    "syntax_error": (block("class Solution:\n    def add(self, xs, x)\n        return xs + [x]"), -2.0),
    "wrong": (block("class Solution:\n    def add(self, xs, x):\n        return []"), 0.0),
    # right on 2 of 4: a runtime error when x < 0, and a wrong answer for an empty list
    "partly_right": (block("class Solution:\n    def add(self, xs, x):\n"
                           "        assert x >= 0\n        return xs + [x] if xs else []"), 2.5),
    "right": (block("class Solution:\n    def add(self, xs, x):\n        return xs + [x]"), 5.0),
}


def test_each_branch_in_stdio_and_function_mode_in_one_batch(monkeypatch):
    calls = []
    real = runner.run_jobs
    monkeypatch.setattr(runner, "run_jobs", lambda jobs, **kw: calls.append(jobs.height) or real(jobs, **kw))
    cases = [(c, STDIO_TRUTH, r) for c, r in STDIO.values()] + [(c, FUNCTION_TRUTH, r) for c, r in FUNCTION.values()]
    scores = score_completions([c for c, _, _ in cases], [t for _, t, _ in cases])
    assert scores == [r for _, _, r in cases]
    assert calls == [3 * 4 * 2]  # ONE sandbox call; only the 3 compiling completions of each mode run


def test_outcomes_count_compiled_passed_and_total():
    completions = [STDIO["no_code"][0], STDIO["partly_right"][0], STDIO["right"][0]]
    outcomes = test_outcomes(completions, [STDIO_TRUTH] * 3, RewardParams(time_limit_s=2, workers=1))
    assert outcomes == [Outcome(False, 0, 4), Outcome(True, 2, 4), Outcome(True, 4, 4)]
    assert [o.solved for o in outcomes] == [False, False, True]
    assert [reward.reward(o) for o in outcomes] == [-2.0, 2.5, 5.0]


def test_compute_score_as_verl_calls_it():
    for completion, expected in (FUNCTION["right"], FUNCTION["syntax_error"]):
        score = compute_score(data_source="synthsmith-demo", solution_str=completion, ground_truth=FUNCTION_TRUTH,
                              extra_info={"task_id": "task-00001", "split": "train", "index": 0})
        assert score == expected and isinstance(score, float)


def test_a_plain_function_entry_point_and_float_tolerance():
    close = block("def half(x):\n    return x / 2 + 1e-9")
    far = block("def half(x):\n    return x / 2 + 1e-3")
    assert score_completions([close, far], [PLAIN_FUNCTION_TRUTH] * 2) == [5.0, 0.0]


def test_the_last_python_block_counts():
    draft = block("print('draft')")
    completion = f"{draft}\nOn second thought:\n```python\nprint('final')\n```\nDone."
    assert extract_code(completion) == "print('final')\n"
    assert extract_code("```python\nprint(1)\n") is None  # cut at the length limit: no block
    assert extract_code("```\nprint(1)\n```") is None  # not marked as python
    assert extract_code("```python\n   \n```") is None
    # a later non-python block does not hide the python one
    assert extract_code(block("print(1)") + "\n```text\n1\n```") == "print(1)\n"


def test_batched_scoring_runs_the_sandbox_once_and_repeats_identical_runs_once(monkeypatch):
    calls = []

    def fake_run_jobs(jobs, workers=2, packages=()):
        calls.append(jobs)
        import polars as pl

        from synthsmith.contract.tables import SANDBOX_RESULTS

        outputs = {"1 2\n": "3", "2 2\n": "4", "5 7\n": "35", "0 0\n": "0"}
        return pl.DataFrame([{"job_id": j, "status": "ok", "output": outputs[i], "stderr": "", "exit_code": 0,
                              "wall_ms": 1.0, "cpu_ms": 1.0} for j, i in zip(jobs["job_id"], jobs["input"])],
                            schema=SANDBOX_RESULTS.columns)

    monkeypatch.setattr(runner, "run_jobs", fake_run_jobs)
    group = [STDIO["right"][0]] * 4 + [STDIO["wrong"][0], STDIO["no_code"][0]]  # one GRPO group
    limits = RewardParams(time_limit_s=3.0, memory_mb=256, workers=3)
    assert score_completions(group, [STDIO_TRUTH] * len(group), limits) == [3.75] * 5 + [-2.0]
    assert len(calls) == 1
    jobs = calls[0]
    assert jobs.height == 2 * 4  # 2 distinct compiling programs x 4 tests
    assert set(jobs["time_limit_s"]) == {3.0} and set(jobs["memory_mb"]) == {256} and set(jobs["mode"]) == {"stdio"}


def test_nothing_to_run_starts_no_sandbox(monkeypatch):
    monkeypatch.setattr(runner, "run_jobs", lambda *a, **k: pytest.fail("the sandbox was started"))
    assert score_completions(["no code", STDIO["syntax_error"][0]], [STDIO_TRUTH, FUNCTION_TRUTH]) == [-2.0, -2.0]
    assert score_completions([], []) == []
    empty = json.dumps({"io": "stdio", "entry_point": None, "tests": []})
    assert test_outcomes([STDIO["right"][0]], [empty]) == [Outcome(True, 0, 0)]  # compiles, no test: 0.0
    with pytest.raises(ValueError, match="2 completions but 1"):
        score_completions(["a", "b"], [STDIO_TRUTH])


def test_grpo_reward_takes_trl_keyword_arguments_and_chat_completions(monkeypatch):
    seen = []
    monkeypatch.setattr(reward, "score_completions", lambda c, g, limits=None: seen.append((c, g, limits)) or [1.0] * len(c))
    chat = [[{"role": "assistant", "content": STDIO["right"][0]}],
            [{"role": "assistant", "content": "draft"}, {"role": "user", "content": "again"},
             {"role": "assistant", "content": STDIO["wrong"][0]}]]
    rm = [{"style": "rule", "ground_truth": STDIO_TRUTH}, {"style": "rule", "ground_truth": FUNCTION_TRUTH}]
    # what GRPOTrainer passes: prompts, completions, completion_ids and every other dataset column
    out = reward.grpo_reward(prompts=[[{"role": "user", "content": "p"}]] * 2, completions=chat, completion_ids=[[1], [2]],
                             reward_model=rm, task_id=["a", "b"], extra_info=[{}, {}], trainer_state=None)
    assert out == [1.0, 1.0]
    assert seen == [([STDIO["right"][0], STDIO["wrong"][0]], [STDIO_TRUTH, FUNCTION_TRUTH], None)]
    limited = reward.make_grpo_reward(RewardParams(workers=1))
    assert limited.__name__ == "grpo_reward"
    limited(completions=["x"], reward_model=[rm[0]])
    assert seen[-1] == (["x"], [STDIO_TRUTH], RewardParams(workers=1))
    assert grpo_reward is not None
