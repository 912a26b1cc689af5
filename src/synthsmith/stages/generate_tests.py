"""Stage `generate_tests`: test inputs per task from pluggable generators, weighted.

A generator is a pair (requests, parse). `prompt` asks the model for inputs directly; the
tool-based generator (a CYaRon program run in the sandbox) registers beside it.
"""

from __future__ import annotations

import json
import re
from collections import Counter

import polars as pl

from synthsmith.contract import tables
from synthsmith.contract.params import GenerateTestsParams
from synthsmith.contract.values import (
    PROMPT,
    SIZE,
    UNVALIDATED,
    io_mode,
)
from synthsmith.llm.answers import Rejected, json_object, parse_answers
from synthsmith.llm.prompts import render
from synthsmith.llm.requests import make_request
from synthsmith.stages.weights import size_quartile_weight

# Semantic weights (METHOD 4): the strongest keyword in a description wins.
SEMANTIC = ((4, re.compile(r"\b(stress|large|max(imum)?|huge|performance|worst)\b", re.I)),
            (3, re.compile(r"\b(boundary|edge|corner|min(imum)?|extreme|limit)\b", re.I)),
            (2, re.compile(r"\b(complex|tricky|special|random|mixed)\b", re.I)))


def prompt_requests(tasks: pl.DataFrame, params: GenerateTestsParams) -> pl.DataFrame:
    return pl.DataFrame([make_request(params.model, render(
        "test_inputs", statement=t["statement"], num_inputs=params.num_inputs,
        io=io_mode(t["entry_point"])), temperature=params.temperature, max_tokens=params.max_tokens)
        for t in tasks.iter_rows(named=True)], schema=tables.LLM_REQUESTS.columns)


def parse_prompt_inputs(tasks: pl.DataFrame, responses: pl.DataFrame) -> tuple[pl.DataFrame, Counter]:
    """Rows (task_id, input, description); malformed answers and invalid inputs are counted."""
    rows, dropped = [], Counter()
    for task, cases in parse_answers(tasks, responses, _test_cases, dropped, "answer_"):
        for case in cases:
            text = case.get("input_string") if isinstance(case, dict) else None
            if not isinstance(text, str) or not text.strip():
                dropped["input_missing"] += 1
            elif task["entry_point"] and not json_lines(text):
                dropped["input_not_json_args"] += 1
            else:
                rows.append({"task_id": task["task_id"], "input": text if text.endswith("\n") else text + "\n",
                             "description": str(case.get("description") or "")})
    return pl.DataFrame(rows, schema={"task_id": pl.String, "input": pl.String, "description": pl.String}), dropped


def check_test_cases(content: str) -> list:
    """The format check the gateway re-asks on."""
    return _test_cases({}, content)


def _test_cases(_: dict, content: str) -> list:
    answer = json_object(content, TESTS_SHAPE)
    cases = answer.get("test_cases")
    if not isinstance(cases, list):
        found = "no such key" if cases is None else f"a {type(cases).__name__} there"
        raise Rejected("no_test_cases", f'the JSON object must have the key "test_cases" holding a list of '
                                        f'{{"idx", "description", "input_string"}} objects; it had {found} '
                                        f"(keys: {', '.join(map(str, answer))})")
    return cases


def json_lines(text: str) -> bool:
    """Every line parses as JSON: the form of a function-style input (one argument a line)."""
    try:
        for line in text.strip().splitlines():
            json.loads(line)
    except json.JSONDecodeError:
        return False
    return True


GENERATORS = {PROMPT: (prompt_requests, parse_prompt_inputs)}
TESTS_SHAPE = '{"test_cases": [{"idx": 1, "description": "...", "input_string": "..."}]}'


def unvalidated(inputs: pl.DataFrame) -> pl.DataFrame:
    """The inputs, no validator having run (validate_inputs off)."""
    return inputs.with_columns(validation=pl.lit(UNVALIDATED))


def weigh(inputs: pl.DataFrame, generator: str, weighting: str) -> tuple[pl.DataFrame, int]:
    """`weigh_all` for the inputs of one generator."""
    return weigh_all(inputs.with_columns(generator=pl.lit(generator)), weighting)


def weigh_all(inputs: pl.DataFrame, weighting: str) -> tuple[pl.DataFrame, int]:
    """Dedup inputs per task (across generators: the first kept), number them per generator
    ("<task>-p000", "<task>-t000"), add size and semantic weights. Returns (tests, duplicates)."""
    unique = inputs.unique(["task_id", "input"], keep="first", maintain_order=True)
    tests = unique.with_columns(
        test_id=pl.format("{}-{}{}", pl.col("task_id"), pl.col("generator").str.slice(0, 1),
                          pl.int_range(pl.len()).over("task_id", "generator").cast(pl.String).str.zfill(3)),
        size_weight=size_quartile_weight(pl.col("input").str.len_chars()),
        semantic_weight=pl.col("description").map_elements(semantic_weight, return_dtype=pl.Int64),
    ).with_columns(weight=pl.col("size_weight" if weighting == SIZE else "semantic_weight"))
    return tables.conform(tests, tables.TEST_INPUTS), inputs.height - unique.height


def semantic_weight(description: str) -> int:
    return next((w for w, pattern in SEMANTIC if pattern.search(description or "")), 1)
