"""Stage `export`: the seeded train / held-out split, and the RL table in verl's schema, read back
with `datasets` and scored by the reward with its own ground truth."""

from __future__ import annotations

import json

import polars as pl
import pytest

from synthsmith.contract import tables
from synthsmith.contract.params import ExportParams
from synthsmith.contract.values import SPLITS
from synthsmith.stages import export
from synthsmith.train.reward import compute_score
from synthsmith.versions.diff import task_digests

IDS = [f"task-{i:05d}" for i in range(40)]


@pytest.mark.parametrize(("n", "fraction", "heldout"), [
    (14, 0.25, 4), (16, 0.25, 4), (10, 0.25, 2), (2, 0.25, 1), (3, 0.1, 1), (1, 0.25, 0), (1, 0.9, 0),
    (2, 0.9, 1), (0, 0.25, 0), (14, 0.0, 0)])
def test_heldout_count(n, fraction, heldout):
    assert export.heldout_count(n, fraction) == heldout
    split = export.split_tasks(IDS[:n], fraction, 0)
    assert sorted(split.values()).count("heldout") == heldout and len(split) == n


def test_split_depends_only_on_seed_and_task_id():
    split = export.split_tasks(IDS[:14], 0.25, 0)
    assert split == export.split_tasks(list(reversed(IDS[:14])), 0.25, 0)  # not on order
    assert split == export.split_tasks(IDS[:14] + IDS[:3], 0.25, 0)  # nor on repeats
    assert split != export.split_tasks(IDS[:14], 0.25, 1)  # the seed matters
    # adding a task moves at most one other task across the split
    for n in range(1, len(IDS)):
        before, after = export.split_tasks(IDS[:n], 0.25, 7), export.split_tasks(IDS[:n + 1], 0.25, 7)
        assert sum(before[t] != after[t] for t in before) <= 1, n


def _inputs(n: int = 8):
    """n kept tasks (half stdio, half LeetCode style) with a golden solution and 2 golden tests, and one
    discarded task."""
    tasks, sols, tests, verdicts = [], [], [], []
    for i in range(n + 1):
        task_id, leetcode = f"T{i:02d}", i % 2 == 1
        tasks.append({"task_id": task_id, "style": "leetcode" if leetcode else "codeforces", "title": task_id,
                      "statement": f"Add {i} to x.", "entry_point": "Solution.f" if leetcode else None,
                      "features": [], "integration_strategy": "s", "tokens": 3})
        code = (f"class Solution:\n    def f(self, x):\n        return x + {i}\n" if leetcode
                else f"print(int(input()) + {i})\n")
        sols.append({"task_id": task_id, "solution_id": f"{task_id}-s0", "model": "m/a", "sample": 0,
                     "reasoning": "Add.", "code": code})
        for j, x in enumerate((1, 5)):
            tests.append({"task_id": task_id, "test_id": f"{task_id}-p{j}", "input": f"{x}\n", "description": "",
                          "generator": "prompt", "size_weight": 1, "semantic_weight": 1, "weight": j + 1})
        verdicts.append({"task_id": task_id, "kept": i < n, "golden_solution_id": f"{task_id}-s0" if i < n else None,
                         "reason": "kept" if i < n else "weak_consensus",
                         "golden_tests": [{"test_id": f"{task_id}-p{j}", "expected_output": str(x + i)}
                                          for j, x in enumerate((1, 5))] if i < n else []})
    frame = lambda rows, table: tables.conform(pl.DataFrame(rows, schema=table.columns), table)  # noqa: E731
    return (frame(tasks, tables.TASKS), frame(sols, tables.SOLUTIONS), frame(tests, tables.TEST_INPUTS),
            frame(verdicts, tables.VERDICTS))


def test_heldout_tasks_are_heldout_in_both_tables():
    task_frame, sols, tests, verdicts = _inputs()
    params = ExportParams(data_source="demo", heldout_fraction=0.25, split_seed=3)
    sft = export.to_sft(task_frame, sols, verdicts, params)
    rl = export.to_rl(task_frame, tests, verdicts, params)
    sft_split = dict(zip(sft["task_id"], sft["split"], strict=True))
    rl_split = {e["task_id"]: e["split"] for e in rl["extra_info"].to_list()}
    assert sft_split == rl_split == export.split_tasks([f"T{i:02d}" for i in range(8)], 0.25, 3)
    assert set(sft["split"]) <= set(SPLITS)
    heldout = {t for t, s in rl_split.items() if s == "heldout"}
    assert len(heldout) == 2
    train_ids = set(sft.filter(pl.col("split") == "train")["task_id"]) | {
        e["task_id"] for e in rl["extra_info"].to_list() if e["split"] == "train"}
    assert not heldout & train_ids
    assert export.split_counts(sft) == export.split_counts(rl) == {"train": 6, "heldout": 2}
    assert rl["task_id"].to_list() == [e["task_id"] for e in rl["extra_info"].to_list()]
    assert [e["index"] for e in rl["extra_info"].to_list()] == list(range(8))
    with pytest.raises(tables.ContractError, match="split"):
        tables.conform(sft.with_columns(split=pl.lit("test")), tables.SFT)


VERL_COLUMNS = ["data_source", "prompt", "ability", "reward_model", "extra_info", "task_id", "style"]


def _rl_parquet(tmp_path):
    task_frame, sols, tests, verdicts = _inputs(4)
    export.to_rl(task_frame, tests, verdicts, ExportParams(data_source="demo")).write_parquet(tmp_path / "rl.parquet")
    return tmp_path / "rl.parquet", sols


def test_rl_rows_score_their_golden_solutions_with_their_own_ground_truth(tmp_path):
    path, sols = _rl_parquet(tmp_path)
    rows = pl.read_parquet(path).to_dicts()
    golden = dict(zip(sols["task_id"], sols["code"], strict=True))
    completions = {row["task_id"]: f"Add.\n```python\n{golden[row['task_id']]}```" for row in rows}
    for row in rows[:2]:  # T00 stdio, T01 function
        assert compute_score(data_source=row["data_source"], solution_str=completions[row["task_id"]],
                             ground_truth=row["reward_model"]["ground_truth"], extra_info=row["extra_info"]) == 5.0
    # another task's solution fails this one's tests
    assert compute_score(data_source="demo", solution_str=completions["T02"],
                         ground_truth=rows[0]["reward_model"]["ground_truth"]) == 0.0


@pytest.mark.slow  # importing `datasets` takes over a second
def test_rl_parquet_reads_back_with_datasets_in_verls_schema(tmp_path):
    import datasets

    path, _ = _rl_parquet(tmp_path)
    data = datasets.load_dataset("parquet", data_files=str(path), cache_dir=str(tmp_path / "hf-cache"), split="train")
    assert data.column_names == VERL_COLUMNS and data.num_rows == 4
    row = data[1]
    assert row["data_source"] == "demo" and row["ability"] == "code" and row["task_id"] == "T01"
    assert row["prompt"][0]["role"] == "user" and "Add 1 to x." in row["prompt"][0]["content"]
    assert row["reward_model"]["style"] == "rule"
    assert row["extra_info"] == {"task_id": "T01", "split": row["extra_info"]["split"], "index": 1}
    assert row["extra_info"]["split"] in SPLITS
    truth = json.loads(row["reward_model"]["ground_truth"])
    assert truth == {"io": "function", "entry_point": "Solution.f",
                     "tests": [{"input": "1\n", "output": "2", "weight": 1}, {"input": "5\n", "output": "6", "weight": 2}]}
    assert json.loads(data[0]["reward_model"]["ground_truth"])["io"] == "stdio"


def test_diff_ignores_the_rl_row_index():
    task_frame, _, tests, verdicts = _inputs(6)
    params = ExportParams(data_source="demo")
    full = export.to_rl(task_frame, tests, verdicts, params)
    fewer = export.to_rl(task_frame.filter(pl.col("task_id") != "T00"), tests, verdicts, params)
    assert full.filter(pl.col("task_id") == "T03")["extra_info"][0]["index"] == 3
    assert fewer.filter(pl.col("task_id") == "T03")["extra_info"][0]["index"] == 2
    a, b = task_digests({"rl": full}), task_digests({"rl": fewer})
    same_split = [t for t in b if full.filter(pl.col("task_id") == t)["extra_info"][0]["split"]
                  == fewer.filter(pl.col("task_id") == t)["extra_info"][0]["split"]]
    assert len(same_split) >= len(b) - 1
    assert all(a[t][0] == b[t][0] for t in same_split)
