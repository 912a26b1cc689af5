"""Stage `export`: verified tasks as SFT chat pairs and RL prompts with golden tests."""

from __future__ import annotations

import polars as pl

from synthsmith.contract import tables
from synthsmith.contract.params import ExportParams
from synthsmith.contract.values import io_mode
from synthsmith.llm.prompts import render


def task_prompt(task: dict) -> str:
    """What the model being trained sees: the same wording the candidates were asked with."""
    return render("solve_task", statement=task["statement"], entry_point=task["entry_point"],
                  io=io_mode(task["entry_point"]))[0]["content"]


def _kept(tasks: pl.DataFrame, verdicts: pl.DataFrame) -> pl.DataFrame:
    return tasks.join(verdicts.filter("kept"), on="task_id").sort("task_id")


def to_sft(tasks: pl.DataFrame, solutions: pl.DataFrame, verdicts: pl.DataFrame,
           params: ExportParams) -> pl.DataFrame:
    golden = _kept(tasks, verdicts).join(solutions.drop("task_id"), left_on="golden_solution_id",
                                         right_on="solution_id")
    rows = [{"task_id": row["task_id"], "style": row["style"], "source": f"{params.data_source}:{row['model']}",
             "messages": [{"role": "user", "content": task_prompt(row)},
                          {"role": "assistant", "content": f"{row['reasoning']}\n\n```python\n{row['code']}```"}]}
            for row in golden.iter_rows(named=True)]
    return tables.conform(pl.DataFrame(rows, schema=tables.SFT.columns), tables.SFT)


def to_rl(tasks: pl.DataFrame, tests: pl.DataFrame, verdicts: pl.DataFrame, params: ExportParams) -> pl.DataFrame:
    weights = dict(zip(tests["test_id"], tests["weight"], strict=True))
    inputs = dict(zip(tests["test_id"], tests["input"], strict=True))
    rows = [{"task_id": row["task_id"], "style": row["style"], "entry_point": row["entry_point"],
             "data_source": params.data_source, "prompt": [{"role": "user", "content": task_prompt(row)}],
             "tests": [{"input": inputs[t["test_id"]], "output": t["expected_output"], "weight": weights[t["test_id"]]}
                       for t in row["golden_tests"]]}
            for row in _kept(tasks, verdicts).iter_rows(named=True)]
    return tables.conform(pl.DataFrame(rows, schema=tables.RL.columns), tables.RL)
