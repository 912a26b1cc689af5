"""Tool-based test inputs (METHOD 4) and input validation.

The model writes a CYaRon generator per task; it runs in the sandbox with `--seed`, writing one
`<characteristic>.in` file per case, which a wrapper hands back as JSON. The model also writes a
validator per task; every input (from any generator) it rejects is dropped and counted, like
CodeContests+ and HardTests do. Every failure is counted under a reason, never silently lost.
"""

from __future__ import annotations

import json
from collections import Counter

import polars as pl

from synthsmith.contract import tables
from synthsmith.contract.params import GenerateTestsParams
from synthsmith.contract.values import (
    INVALID,
    OK,
    RUNTIME_ERROR,
    STDIO,
    UNVALIDATED,
    VALID,
    VALIDATOR_FAILED,
    io_mode,
)
from synthsmith.llm.answers import parse_answers, reasoning_and_code
from synthsmith.llm.prompts import render
from synthsmith.llm.requests import make_request
from synthsmith.stages.generate_tests import json_lines

PACKAGES = ("cyaron", "colorful", "xeger")  # CYaRon and what it imports: copied into the sandbox
VALIDATOR_TIME_LIMIT_S = 2.0

# Runs the generator as __main__ with --seed, its stdout sent to stderr, then prints every
# <name>.in it wrote as one JSON object on the real stdout (the working directory is discarded).
WRAPPER = """\
import json as _json, os as _os, sys as _sys
_sys.argv = ["generator.py", "--seed", {seed!r}]
_result = _os.dup(1)
_os.dup2(2, 1)
try:
    exec(compile({source!r}, "generator.py", "exec"), {{"__name__": "__main__"}})
except SystemExit as _exit:
    if _exit.code not in (None, 0):
        raise
_sys.stdout.flush()
_files = {{}}
for _name in sorted(_os.listdir(".")):
    if _name.endswith(".in") and _os.path.isfile(_name):
        with open(_name, "rb") as _f:
            _files[_name[:-3]] = _f.read().decode("utf-8", "replace")
_os.write(_result, _json.dumps(_files).encode())
"""


def check_program(content: str) -> tuple[str, str]:
    """The format check the gateway re-asks on: reasoning, then one Python block that parses."""
    return reasoning_and_code(content)


def program_requests(tasks: pl.DataFrame, params: GenerateTestsParams, template: str) -> pl.DataFrame:
    """One request per task for a `tool_generator` or an `input_validator` program."""
    return pl.DataFrame([make_request(params.model, render(
        template, statement=t["statement"], num_inputs=params.num_inputs, io=io_mode(t["entry_point"])),
        temperature=params.temperature, max_tokens=params.max_tokens) for t in tasks.iter_rows(named=True)],
        schema=tables.LLM_REQUESTS.columns)


def parse_programs(tasks: pl.DataFrame, responses: pl.DataFrame, kind: str) -> tuple[pl.DataFrame, Counter]:
    """(task_id, code) per task whose answer holds a usable program; the rest counted as `<kind>_<reason>`."""
    dropped: Counter = Counter()
    rows = [{"task_id": task["task_id"], "code": code}
            for task, (_, code) in parse_answers(tasks, responses, lambda _, text: check_program(text), dropped,
                                                 f"{kind}_")]
    return pl.DataFrame(rows, schema={"task_id": pl.String, "code": pl.String}), dropped


def generator_jobs(generators: pl.DataFrame, params: GenerateTestsParams) -> pl.DataFrame:
    rows = [{"job_id": g["task_id"], "code": WRAPPER.format(seed=str(params.tool.seed), source=g["code"]),
             "mode": STDIO, "entry": None, "input": "", "time_limit_s": params.tool.time_limit_s,
             "memory_mb": params.tool.memory_mb} for g in generators.iter_rows(named=True)]
    return tables.conform(pl.DataFrame(rows, schema=tables.SANDBOX_JOBS.columns), tables.SANDBOX_JOBS)


def collect_inputs(results: pl.DataFrame, tasks: pl.DataFrame, params: GenerateTestsParams) -> tuple[pl.DataFrame, Counter]:
    """Rows (task_id, input, description = the characteristic) from the generators' runs."""
    function_style = dict(tasks.select("task_id", pl.col("entry_point").is_not_null()).iter_rows())
    rows, dropped = [], Counter()
    for run in results.iter_rows(named=True):
        if run["status"] != OK:
            dropped[f"generator_{run['status']}"] += 1
            continue
        try:
            files = json.loads(run["output"] or "")
        except json.JSONDecodeError:
            dropped["generator_output_unreadable"] += 1
            continue
        if not files:
            dropped["generator_wrote_nothing"] += 1
        for name, text in files.items():
            reason = _input_problem(text, function_style.get(run["job_id"], False), params.tool.max_input_bytes)
            if reason:
                dropped[reason] += 1
            else:
                rows.append({"task_id": run["job_id"], "input": text if text.endswith("\n") else text + "\n",
                             "description": name.replace("_", " ")})
    return pl.DataFrame(rows, schema={"task_id": pl.String, "input": pl.String, "description": pl.String}), dropped


def _input_problem(text: str, function_style: bool, max_bytes: int) -> str | None:
    if not text.strip():
        return "input_empty"
    if len(text.encode()) > max_bytes:
        return "input_too_large"
    if function_style and not json_lines(text):
        return "input_not_json_args"
    return None


def validation_jobs(validators: pl.DataFrame, inputs: pl.DataFrame) -> pl.DataFrame:
    """One job per (task with a validator, input): the validator reads the input on stdin."""
    jobs = (inputs.with_row_index("row").join(validators, on="task_id")
            .select(job_id=pl.col("row").cast(pl.String), code="code", mode=pl.lit(STDIO), entry=pl.lit(None),
                    input="input", time_limit_s=pl.lit(VALIDATOR_TIME_LIMIT_S), memory_mb=pl.lit(512)))
    return tables.conform(jobs, tables.SANDBOX_JOBS)


def apply_validation(inputs: pl.DataFrame, results: pl.DataFrame) -> tuple[pl.DataFrame, Counter]:
    """Keep inputs the validator accepts (exit 0) or could not judge (it crashed or hung: counted);
    drop the ones it rejects (exit 1), unless it rejects every input of a task: a validator that
    accepts nothing is broken, not the inputs, so that task's inputs stay (counted). Each kept input
    gets `validation`, what the validator said of it (values.INPUT_VALIDATIONS). RESULTS: the runs
    of `validation_jobs(validators, inputs)`, whose job ids number the inputs."""
    verdict = results.select(
        row=pl.col("job_id").cast(pl.UInt32),
        validation=pl.when(pl.col("status") == OK).then(pl.lit(VALID))
        .when((pl.col("status") == RUNTIME_ERROR) & (pl.col("exit_code") == 1)
              & ~pl.col("stderr").fill_null("").str.contains("Traceback")).then(pl.lit(INVALID))
        .otherwise(pl.lit(VALIDATOR_FAILED)))
    judged = inputs.with_row_index("row").join(verdict, on="row", how="left", maintain_order="left").with_columns(
        pl.col("validation").fill_null(UNVALIDATED))
    rejects_all = judged.group_by("task_id").agg(all_invalid=(pl.col("validation") == INVALID).all())
    judged = judged.join(rejects_all, on="task_id", maintain_order="left")
    drop = (pl.col("validation") == INVALID) & ~pl.col("all_invalid")
    dropped = Counter({
        "input_rejected_by_validator": judged.filter(drop).height,
        "validator_rejected_every_input": judged.filter(pl.col("all_invalid")).select("task_id").n_unique(),
        "validator_failed_on_input": judged.filter(pl.col("validation") == VALIDATOR_FAILED).height,
    })
    return judged.filter(~drop).drop("row", "all_invalid"), +dropped
