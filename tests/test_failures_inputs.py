"""A corrupt input table stops a stage with one line naming the file, on the console and in the exit code."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_a_truncated_input_is_one_error_line_naming_it(tmp_path, prefect_server):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    executions = tmp_path / "data" / "execute" / "executions.parquet"
    executions.parent.mkdir(parents=True)
    executions.write_bytes(b"PAR1" + b"\0" * 4000)  # a Parquet header and nothing a reader can use
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-m", "flows.verify"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 2
    naming = [line for line in (run.stdout + run.stderr).splitlines() if "executions.parquet" in line]
    assert len(naming) == 1, naming
    assert naming[0].startswith("error: data/execute/executions.parquet: not a readable Parquet file (")
    assert naming[0].endswith("restore it with `dvc checkout data/execute` or rebuild it with `dvc repro --force execute`")
    assert "Traceback" not in run.stderr
