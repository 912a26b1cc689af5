"""Stage `generate_solutions`: m candidates per task from several models, format-checked."""

from __future__ import annotations

from collections import Counter

import polars as pl

from synthsmith.contract import tables
from synthsmith.contract.params import GenerateSolutionsParams
from synthsmith.contract.values import io_mode
from synthsmith.llm.answers import Rejected, count_tokens, parse_answers, reasoning_and_code
from synthsmith.llm.prompts import render
from synthsmith.llm.requests import make_request


def solution_requests(tasks: pl.DataFrame, params: GenerateSolutionsParams,
                      samples: range | None = None) -> pl.DataFrame:
    """task x model x sample (`samples`, default the first `samples_per_model`); the sample index is
    sent as `seed`, so each sample has its own key and a later round never re-asks an earlier one."""
    samples = range(params.samples_per_model) if samples is None else samples
    rows = []
    for task in tasks.iter_rows(named=True):
        messages = render("solve_task", statement=task["statement"], entry_point=task["entry_point"],
                          io=io_mode(task["entry_point"]))
        for model_no, model in enumerate(params.models):
            for sample in samples:
                rows.append(make_request(model, messages, temperature=params.temperature,
                                         max_tokens=params.max_tokens, seed=sample)
                            | {"task_id": task["task_id"], "solution_id": f"{task['task_id']}-m{model_no}s{sample}",
                               "sample": sample})
    return pl.DataFrame(rows)


def check_solution(content: str) -> tuple[str, str]:
    """The format check the gateway re-asks on: reasoning, then exactly one Python block that parses."""
    return reasoning_and_code(content)


def parse_solutions(asked: pl.DataFrame, responses: pl.DataFrame,
                    params: GenerateSolutionsParams) -> tuple[pl.DataFrame, Counter]:
    def checked(_: dict, content: str) -> tuple[str, str]:
        tokens = count_tokens(content)
        if tokens > params.max_tokens:
            raise Rejected("too_long", f"the answer must fit in {params.max_tokens} tokens; it had {tokens}")
        return reasoning_and_code(content)

    rows, rejected = [], Counter()
    for ask, (reasoning, code) in parse_answers(asked, responses, checked, rejected):
        rows.append({"task_id": ask["task_id"], "solution_id": ask["solution_id"], "model": ask["model"],
                     "sample": ask["sample"], "reasoning": reasoning, "code": code})
    return tables.conform(pl.DataFrame(rows, schema=tables.SOLUTIONS.columns), tables.SOLUTIONS), rejected
