"""Tool-based inputs: real CYaRon generators and validators run in the real sandbox."""

from __future__ import annotations

import json

import polars as pl

from synthsmith.contract import tables
from synthsmith.contract.params import GenerateTestsParams
from synthsmith.sandbox.runner import run_jobs
from synthsmith.stages import tool_inputs

PARAMS = GenerateTestsParams(model="m", tool={"seed": 7, "time_limit_s": 10, "max_input_bytes": 2000})
TASKS = pl.DataFrame([{"task_id": "A", "entry_point": None}, {"task_id": "F", "entry_point": "Solution.f"},
                      {"task_id": "X", "entry_point": None}, {"task_id": "Y", "entry_point": None}])

GENERATOR = """
import argparse, random
from cyaron import randint, Sequence
seed = argparse.ArgumentParser()
seed.add_argument("--seed", type=int)
random.seed(seed.parse_args().seed)
print("chatter on stdout must not break the result")
n = randint(3, 5)
with open("random_small.in", "w") as f:
    f.write(f"{n}\\n" + " ".join(str(randint(1, 9)) for _ in range(n)) + "\\n")
with open("max_n.in", "w") as f:
    f.write("5\\n" + " ".join(["9"] * 5) + "\\n")
with open("too_big.in", "w") as f:
    f.write("1" * 5000)
with open("notes.txt", "w") as f:
    f.write("not an input")
"""


def run(generators: dict[str, str]) -> pl.DataFrame:
    programs = pl.DataFrame({"task_id": list(generators), "code": list(generators.values())})
    jobs = tool_inputs.generator_jobs(programs, PARAMS)
    return run_jobs(jobs, packages=tool_inputs.PACKAGES)


def test_a_cyaron_generator_runs_in_the_sandbox_and_its_files_become_named_inputs():
    results = run({"A": GENERATOR, "F": "open('one.in', 'w').write('[1, 2]\\nnot json\\n')",
                   "X": "raise RuntimeError('the model forgot a case')", "Y": "import os"})
    inputs, dropped = tool_inputs.collect_inputs(results, TASKS, PARAMS)
    assert inputs.filter(pl.col("task_id") == "A")["description"].sort().to_list() == ["max n", "random small"]
    assert inputs.filter(pl.col("description") == "max n")["input"].to_list() == ["5\n9 9 9 9 9\n"]
    assert dict(dropped) == {"input_too_large": 1, "input_not_json_args": 1, "generator_runtime_error": 1,
                             "generator_wrote_nothing": 1}
    again, _ = tool_inputs.collect_inputs(run({"A": GENERATOR}), TASKS, PARAMS)
    assert again.equals(inputs.filter(pl.col("task_id") == "A"))  # same --seed, same inputs


VALIDATOR = """
import sys
lines = sys.stdin.read().split("\\n")
n = int(lines[0])
values = list(map(int, lines[1].split()))
if not 1 <= n <= 5 or len(values) != n:
    print("bad n", file=sys.stderr)
    sys.exit(1)
"""


def test_validator_drops_rejected_inputs_keeps_unjudged_ones_and_distrusts_a_reject_all_validator():
    inputs = pl.DataFrame({"task_id": ["A", "A", "A", "X", "X", "Y"],
                           "input": ["2\n1 2\n", "9\n1\n", "oops\n", "1\n1\n", "2\n1 1\n", "1\n5\n"],
                           "description": [""] * 6, "generator": ["tool"] * 6})
    validators = pl.DataFrame({"task_id": ["A", "X"], "code": [VALIDATOR, "import sys\nsys.exit(1)"]})
    results = run_jobs(tool_inputs.validation_jobs(validators, inputs))
    kept, dropped = tool_inputs.apply_validation(inputs, results)
    # A: valid kept, n=9 rejected, "oops" crashes the validator (kept, counted); X: rejects all -> kept; Y: none.
    assert kept["input"].to_list() == ["2\n1 2\n", "oops\n", "1\n1\n", "2\n1 1\n", "1\n5\n"]
    assert dict(dropped) == {"input_rejected_by_validator": 1, "validator_rejected_every_input": 1,
                             "validator_failed_on_input": 1}
    assert kept.columns == [*inputs.columns, "validation"]


def test_wrapper_reads_back_a_function_style_file_as_json_lines():
    results = run({"F": "import json\nopen('edge.in', 'w').write(json.dumps([3, 1]) + '\\n' + json.dumps('ab'))"})
    inputs, dropped = tool_inputs.collect_inputs(results, TASKS, PARAMS)
    assert [json.loads(line) for line in inputs["input"][0].splitlines()] == [[3, 1], "ab"]
    assert not dropped and tables.SANDBOX_JOBS.columns


def test_packages_are_copied_even_after_this_process_imported_them(tmp_path):
    """An imported colorful (CYaRon imports it) replaces itself in sys.modules by an object with no
    __spec__, which importlib.util.find_spec refuses: the copy must look at the installed files."""
    import colorful  # noqa: F401
    import cyaron  # noqa: F401

    from synthsmith.sandbox.runner import _copy_packages

    library = _copy_packages(tool_inputs.PACKAGES, tmp_path / "lib")
    assert sorted(path.name for path in library.iterdir()) == sorted(tool_inputs.PACKAGES)
    assert (library / "colorful" / "__init__.py").is_file() and (library / "cyaron" / "__init__.py").is_file()
