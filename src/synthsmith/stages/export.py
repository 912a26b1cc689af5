"""Stage `export`: verified tasks as SFT chat pairs and RL prompts with golden tests, split into
train and held-out tasks (seeded; held-out tasks are never trained on, only evaluated)."""

from __future__ import annotations

import hashlib
import json

import polars as pl

from synthsmith.contract import tables
from synthsmith.contract.params import ExportParams
from synthsmith.contract.values import io_mode
from synthsmith.llm.prompts import render

ABILITY = "code"  # verl's `ability` column
REWARD_STYLE = "rule"  # verl's reward_model.style: scored by a rule (train.reward), not a model


def task_prompt(task: dict) -> str:
    """What the model being trained sees: the same wording the candidates were asked with."""
    return render("solve_task", statement=task["statement"], entry_point=task["entry_point"],
                  io=io_mode(task["entry_point"]))[0]["content"]


def heldout_count(n: int, fraction: float) -> int:
    """round(fraction * n) (Python's round), at least 1 when fraction > 0 and n >= 2, and never
    all of them: at least one task stays in train when there are two or more."""
    if n < 2 or fraction <= 0:
        return 0
    return min(max(round(fraction * n), 1), n - 1)


def split_tasks(task_ids: list[str], fraction: float, seed: int) -> dict[str, str]:
    """task_id -> "train" | "heldout". Tasks are ranked by sha256(f"{seed}:{task_id}") and the first
    `heldout_count` are held out: a task's rank depends only on (seed, task_id), so adding a task
    moves at most the one or two tasks at the edge of the held-out set."""
    ids = sorted(set(task_ids), key=lambda t: (hashlib.sha256(f"{seed}:{t}".encode()).hexdigest(), t))
    heldout = set(ids[:heldout_count(len(ids), fraction)])
    return {t: "heldout" if t in heldout else "train" for t in ids}


def _kept(tasks: pl.DataFrame, verdicts: pl.DataFrame) -> pl.DataFrame:
    return tasks.join(verdicts.filter("kept"), on="task_id").sort("task_id")


def _splits(kept: pl.DataFrame, params: ExportParams) -> dict[str, str]:
    return split_tasks(kept["task_id"].to_list(), params.heldout_fraction, params.split_seed)


def to_sft(tasks: pl.DataFrame, solutions: pl.DataFrame, verdicts: pl.DataFrame,
           params: ExportParams) -> pl.DataFrame:
    kept = _kept(tasks, verdicts)
    splits = _splits(kept, params)
    golden = kept.join(solutions.drop("task_id"), left_on="golden_solution_id", right_on="solution_id")
    rows = [{"task_id": row["task_id"], "style": row["style"], "source": f"{params.data_source}:{row['model']}",
             "split": splits[row["task_id"]],
             "messages": [{"role": "user", "content": task_prompt(row)},
                          {"role": "assistant", "content": f"{row['reasoning']}\n\n```python\n{row['code']}```"}]}
            for row in golden.iter_rows(named=True)]
    return tables.conform(pl.DataFrame(rows, schema=tables.SFT.columns), tables.SFT)


def ground_truth(tests: list[dict], entry_point: str | None) -> str:
    """reward_model.ground_truth: the golden tests and how to call the program, as canonical JSON."""
    return json.dumps({"tests": tests, "io": io_mode(entry_point), "entry_point": entry_point},
                      sort_keys=True, ensure_ascii=False)


def to_rl(tasks: pl.DataFrame, tests: pl.DataFrame, verdicts: pl.DataFrame, params: ExportParams) -> pl.DataFrame:
    """verl's RL dataset rows (TRL's GRPOTrainer reads the same); every kept task, with its split in
    extra_info (train_rl keeps split == "train")."""
    weights = dict(zip(tests["test_id"], tests["weight"], strict=True))
    inputs = dict(zip(tests["test_id"], tests["input"], strict=True))
    kept = _kept(tasks, verdicts)
    splits = _splits(kept, params)
    rows = []
    for index, row in enumerate(kept.iter_rows(named=True)):
        golden = [{"input": inputs[t["test_id"]], "output": t["expected_output"], "weight": weights[t["test_id"]]}
                  for t in row["golden_tests"]]
        rows.append({
            "data_source": params.data_source, "prompt": [{"role": "user", "content": task_prompt(row)}],
            "ability": ABILITY,
            "reward_model": {"style": REWARD_STYLE, "ground_truth": ground_truth(golden, row["entry_point"])},
            "extra_info": {"task_id": row["task_id"], "split": splits[row["task_id"]], "index": index},
            "task_id": row["task_id"], "style": row["style"]})
    return tables.conform(pl.DataFrame(rows, schema=tables.RL.columns), tables.RL)


def split_counts(sft_or_rl: pl.DataFrame) -> dict[str, int]:
    """{"train": n, "heldout": m} of an SFT table (column `split`) or an RL table (extra_info.split)."""
    column = (sft_or_rl["split"] if "split" in sft_or_rl.columns
              else sft_or_rl["extra_info"].struct.field("split"))
    counts = dict(column.value_counts().iter_rows())
    return {"train": int(counts.get("train", 0)), "heldout": int(counts.get("heldout", 0))}
