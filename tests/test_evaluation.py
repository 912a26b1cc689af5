"""The evaluate stage: the pass@k estimator, the intervals, HumanEval's own checks in our sandbox,
generation through an OpenAI-compatible server (the stub on loopback) and locally with transformers
(a tiny random Llama with the base checkpoint's tokenizer), and the stage's outputs."""

from __future__ import annotations

import csv
import json
import logging
import math
import re
import shutil
from pathlib import Path

import polars as pl
import pytest

from synthsmith.contract.params import EndpointParams, EvaluateParams, UserError
from synthsmith.train import evaluation
from synthsmith.train.evaluation import (
    extract_code,
    heldout_correct,
    heldout_tasks,
    pass_at_k,
    summarize,
    wilson_interval,
)
from tools.stub_server import FAULT_400, StubServer

ROOT = Path(__file__).resolve().parents[1]
LOG = logging.getLogger("test_evaluation")


# ---- the estimator and the intervals -----------------------------------------------------------

@pytest.mark.parametrize(("n", "c", "k", "expected"), [
    (2, 1, 1, 0.5),
    (2, 0, 1, 0.0), (5, 0, 3, 0.0),           # nothing correct: 0
    (2, 2, 1, 1.0), (5, 5, 5, 1.0),           # everything correct: 1
    (5, 4, 2, 1.0), (3, 1, 3, 1.0),           # k > n - c: every draw of k holds a correct one
    (5, 2, 2, 1 - 3 / 10),                    # 1 - C(3,2)/C(5,2)
    (10, 3, 1, 0.3),                          # pass@1 = c/n
    (10, 3, 5, 1 - math.comb(7, 5) / math.comb(10, 5)),
])
def test_pass_at_k_matches_hand_computed_values(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(("n", "c", "k"), [(2, 3, 1), (2, -1, 1), (2, 1, 3), (2, 1, 0)])
def test_pass_at_k_rejects_impossible_counts(n, c, k):
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


def test_wilson_interval_bounds():
    z2 = 1.959963984540054 ** 2
    assert wilson_interval(0.0, 4, 0.95) == pytest.approx((0.0, z2 / (4 + z2)))  # 0 of 4: not [0, 0]
    assert wilson_interval(1.0, 4, 0.95) == pytest.approx((4 / (4 + z2), 1.0))
    assert wilson_interval(0.5, 100, 0.95) == pytest.approx((0.4038, 0.5962), abs=1e-4)  # textbook value
    for p in (0.0, 0.1, 0.25, 0.5, 0.9, 1.0):
        low, high = wilson_interval(p, 8, 0.95)
        assert 0.0 <= low <= p <= high <= 1.0
        wider = wilson_interval(p, 8, 0.99)
        assert wider[0] <= low and wider[1] >= high  # more confidence, a wider interval
        assert high - low > wilson_interval(p, 80, 0.95)[1] - wilson_interval(p, 80, 0.95)[0]  # more problems, narrower
    with pytest.raises(ValueError):
        wilson_interval(0.5, 0, 0.95)


def test_summarize_figures_per_benchmark():
    figures = summarize([1, 0, 2], samples=2, confidence=0.95)
    assert figures["problems"] == 3 and figures["k"] == 2 and figures["samples"] == 6
    assert figures["pass@1"] == pytest.approx(0.5)       # (0.5 + 0 + 1) / 3
    assert figures["avg@k"] == pytest.approx(0.5)        # the same number when n = k
    assert figures["pass@k"] == pytest.approx(2 / 3)     # (1 + 0 + 1) / 3
    for name in ("pass@1", "pass@k", "avg@k"):
        assert (figures[f"{name}_ci_low"], figures[f"{name}_ci_high"]) == pytest.approx(
            wilson_interval(figures[name], 3, 0.95), abs=1e-6)
    assert all(not isinstance(value, (list, dict)) for value in figures.values())  # flat: dvc exp show columns
    empty = summarize([], samples=2, confidence=0.95)
    assert empty["problems"] == 0 and empty["pass@1"] is None and empty["pass@1_ci_low"] is None


def test_extract_code_takes_the_last_block_or_a_cut_off_one():
    assert extract_code("think\n```python\nx = 1\n```\nthen\n```python\ny = 2\n```") == "y = 2\n"
    assert extract_code("```py\nz = 3\n```") == "z = 3\n"
    assert extract_code("reasoning\n```python\ndef f():\n    return") == "def f():\n    return"
    assert extract_code("def f():\n    return 1\n") == "def f():\n    return 1\n"
    assert extract_code("") == ""


# ---- held-out tasks ----------------------------------------------------------------------------

def _rl_table(splits: list[str]) -> pl.DataFrame:
    rows = []
    for index, split in enumerate(splits):
        truth = {"tests": [{"input": f"{index}\n", "output": f"{index + 1}\n"}], "io": "stdio", "entry_point": None}
        rows.append({"data_source": "synthsmith",
                     "prompt": [{"role": "user", "content": f"Add one to n. Task {index}."}], "ability": "code",
                     "reward_model": {"style": "rule", "ground_truth": json.dumps(truth)},
                     "extra_info": {"task_id": f"task-{index:05d}", "split": split, "index": index},
                     "task_id": f"task-{index:05d}", "style": "codeforces"})
    return pl.DataFrame(rows)


def test_heldout_tasks_are_the_heldout_split_in_file_order():
    table = _rl_table(["train", "heldout", "train", "heldout", "heldout"])
    tasks = heldout_tasks(table, None)
    assert [t["task_id"] for t in tasks] == ["task-00001", "task-00003", "task-00004"]
    assert tasks[0]["messages"][0]["content"] == "Add one to n. Task 1."
    assert json.loads(tasks[0]["ground_truth"])["tests"][0] == {"input": "1\n", "output": "2\n"}
    assert [t["task_id"] for t in heldout_tasks(table, 2)] == ["task-00001", "task-00003"]
    with pytest.raises(UserError, match="reward_model"):
        heldout_tasks(pl.DataFrame({"task_id": ["t"], "prompt": [[{"role": "user", "content": "x"}]]}), None)


def test_heldout_solved_needs_compiled_and_every_test_passed():
    outcomes = {"all": (True, 3, 3), "some": (True, 2, 3), "none": (False, 0, 3), "empty": (True, 0, 0)}

    def stand_in(completions, ground_truths, limits):  # synthsmith.train.reward.test_outcomes' contract
        return [outcomes[text] for text in completions]

    counts = heldout_correct([["all", "some"], ["none", "empty"], ["all", "all"]], ["t1", "t2", "t3"],
                             stand_in, limits=None)
    assert counts == [1, 0, 2]


# ---- HumanEval in our sandbox ------------------------------------------------------------------

def _canonical(problem: dict) -> str:
    return f"Here it is.\n```python\n{problem['prompt']}{problem['canonical_solution']}```\n"


@pytest.mark.slow  # a sandbox pool
def test_humaneval_checks_pass_canonical_and_fail_wrong_solutions():
    from synthsmith.sandbox.runner import run_jobs

    problems = evaluation.humaneval_problems(2)
    assert [p["task_id"] for p in problems] == ["HumanEval/0", "HumanEval/1"]
    wrong = [f"```python\ndef {p['entry_point']}(*args):\n    return None\n```" for p in problems]
    completions = [[_canonical(p), wrong_one, "no code at all"] for p, wrong_one in zip(problems, wrong)]
    jobs = evaluation.humaneval_jobs(problems, completions, time_limit_s=3.0, memory_mb=512)
    assert jobs.height == 6 and set(jobs["mode"]) == {"stdio"}
    assert jobs["code"][0].endswith(f"\ncheck({problems[0]['entry_point']})")
    results = run_jobs(jobs, workers=2)
    assert results["status"].to_list()[0::3] == ["ok", "ok"]   # canonical: passes its own check
    assert "ok" not in results["status"].to_list()[1::3]        # wrong: fails it
    assert "ok" not in results["status"].to_list()[2::3]        # no code: the prompt's stub fails it
    assert evaluation.humaneval_correct(results, 3) == [1, 1]


# ---- the endpoint path: an OpenAI-compatible server on loopback --------------------------------

def _stub_responder(problems: list[dict]):
    """Canonical HumanEval solutions for sample 0, a wrong one for every other sample; for held-out
    tasks a stdio program adding one (right) for seed 0."""
    def respond(model: str, messages: list[dict], sampling: dict) -> str:
        content = messages[-1]["content"]
        good = sampling.get("seed") == 0
        for problem in problems:
            if problem["prompt"] in content:
                return _canonical(problem) if good else "```python\nraise SystemExit(1)\n```"
        return "```python\nprint(int(input()) + 1)\n```" if good else "```python\nprint(0)\n```"
    return respond


def test_endpoint_generation_goes_through_the_llm_layer():
    settings = EvaluateParams(samples=3, temperature=0.7, max_new_tokens=64, seed=0)
    conversations = [[{"role": "user", "content": f"question {i}"}] for i in range(2)]

    def respond(model, messages, sampling):
        return f"{model}|{messages[-1]['content']}|{sampling['seed']}"

    with StubServer(respond) as server:
        out = evaluation.generate_endpoint("sft-served", conversations, settings,
                                           EndpointParams(api_base=server.api_base))
        bodies = list(server.requests)
    assert out == [[f"sft-served|question {i}|{s}" for s in range(3)] for i in range(2)]
    assert len(bodies) == 6
    assert {b["model"] for b in bodies} == {"sft-served"}
    assert {(b["temperature"], b["max_tokens"]) for b in bodies} == {(0.7, 64)}
    assert sorted(b["seed"] for b in bodies) == [0, 0, 1, 1, 2, 2]

    with StubServer(respond, faults=lambda number, body: FAULT_400) as server, \
            pytest.raises(UserError, match="requests to sft-served failed"):
        evaluation.generate_endpoint("sft-served", conversations, settings, EndpointParams(api_base=server.api_base))


@pytest.mark.slow  # sandbox runs
def test_stage_through_the_endpoint_scores_and_writes_outputs(tmp_path, monkeypatch):
    import flows.evaluate as stage
    from synthsmith.train.reward import test_outcomes as real_outcomes

    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "export").mkdir(parents=True)
    _rl_table(["heldout", "train", "heldout"]).write_parquet(tmp_path / "data/export/rl.parquet")
    problems = evaluation.humaneval_problems(2)
    with StubServer(_stub_responder(problems)) as server:
        settings = EvaluateParams(models=["base", "rl"], humaneval_limit=2, samples=2, temperature=0.8,
                                  endpoint=EndpointParams(api_base=server.api_base),
                                  served_models={"base": "base-served", "rl": "rl-served"})
        metrics = stage.evaluate(settings, real_outcomes, LOG)
        assert len(server.requests) == 2 * (2 + 2) * 2  # models x (held-out + HumanEval) x k
    for benchmark in ("heldout", "humaneval"):
        for model in ("base", "rl"):
            figures = metrics[benchmark][model]
            assert figures["problems"] == 2 and figures["k"] == 2
            assert figures["pass@1"] == pytest.approx(0.5) and figures["avg@k"] == pytest.approx(0.5)
            assert figures["pass@k"] == pytest.approx(1.0)
    assert metrics["settings"]["generation"] == "endpoint"
    assert json.loads((tmp_path / "reports/evaluate.json").read_text()) == metrics
    with open(tmp_path / "reports/plots/evaluation.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["model_benchmark"] for row in rows] == ["base / heldout", "rl / heldout",
                                                         "base / humaneval", "rl / humaneval"]
    assert set(rows[0]) == {"model_benchmark", "pass_at_1", "ci_low", "ci_high", "problems"}
    assert float(rows[0]["pass_at_1"]) == 0.5 and rows[0]["problems"] == "2"
    assert float(rows[0]["ci_low"]) < 0.5 < float(rows[0]["ci_high"])
    assert not list((tmp_path / "reports").rglob(".*tmp"))  # no temporary files left behind

    with pytest.raises(UserError, match="served_models"):
        stage.evaluate(EvaluateParams(models=["sft"], endpoint=EndpointParams(api_base="http://127.0.0.1:9/v1")),
                       real_outcomes, LOG)


# ---- local generation: a tiny random Llama with SmolLM2's tokenizer (conftest's tiny_base) ----------------


@pytest.mark.slow  # loads a model and generates
def test_local_generation_is_batched_and_seeded(tiny_base):
    conversations = [[{"role": "user", "content": "Write a function."}],
                     [{"role": "user", "content": "A much longer prompt " * 20}],
                     [{"role": "user", "content": "Short."}]]
    settings = EvaluateParams(samples=2, temperature=0.8, max_new_tokens=8, batch_size=2, seed=3, device="cpu")
    first = evaluation.generate_local(str(tiny_base), conversations, settings)
    assert len(first) == 3 and all(len(samples) == 2 for samples in first)
    assert first == evaluation.generate_local(str(tiny_base), conversations, settings)  # same seed
    other = evaluation.generate_local(str(tiny_base), conversations, settings.model_copy(update={"seed": 4}))
    assert other != first
    greedy = evaluation.generate_local(str(tiny_base), conversations,
                                       settings.model_copy(update={"temperature": 0.0}))
    assert all(samples[0] == samples[1] for samples in greedy)


@pytest.mark.slow  # loads models, generates, runs the sandbox
def test_stage_locally_twice_with_the_same_seed_gives_the_same_numbers(tiny_base, tmp_path, monkeypatch):
    import flows.evaluate as stage

    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "export").mkdir(parents=True)
    _rl_table(["heldout", "heldout", "train"]).write_parquet(tmp_path / "data/export/rl.parquet")
    for directory in ("base_model", "train_sft"):
        shutil.copytree(tiny_base, tmp_path / "data" / directory)
    calls = []

    def stand_in(completions, ground_truths, limits):
        calls.append(len(completions))
        return [(bool(re.search(r"```python", text)), 0, 1) for text in completions]

    settings = EvaluateParams(models=["base", "sft"], humaneval_limit=2, samples=2, max_new_tokens=8,
                              batch_size=4, seed=0, device="cpu")
    first = stage.evaluate(settings, stand_in, LOG)
    first_csv = (tmp_path / "reports/plots/evaluation.csv").read_text()
    second = stage.evaluate(settings, stand_in, LOG)
    assert first == second
    assert (tmp_path / "reports/plots/evaluation.csv").read_text() == first_csv
    assert calls == [2 * 2 * 2] * 2  # one scoring call per run: models x held-out tasks x k
    for benchmark in ("heldout", "humaneval"):
        for model in ("base", "sft"):
            assert first[benchmark][model]["problems"] == 2
            assert first[benchmark][model]["pass@1"] == 0.0  # a random model solves nothing
            assert first[benchmark][model]["pass@1_ci_high"] > 0  # but the interval says how little 2 problems show
    assert first["settings"]["generation"] == "local" and first["settings"]["k"] == 2


def test_length_batches_keep_short_prompts_apart_from_long_ones():
    lengths = [800, 180, 700, 150, 600, 90]
    order = sorted(range(6), key=lambda i: -lengths[i])
    assert evaluation.length_batches(order, lengths, 8) == [[0, 2, 4], [1, 3, 5]]
    assert evaluation.length_batches(order, lengths, 2) == [[0, 2], [4], [1, 3], [5]]
    assert evaluation.length_batches([], [], 4) == []
