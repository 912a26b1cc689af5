"""The recorded real-model run (SmolLM2-135M-Instruct via llama.cpp, tools/record_real_run.py)
replays offline end to end and gives back the funnel it was recorded with."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # the data flows on a real Prefect server

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "data/shipped/smollm2"
sys.path[:0] = [str(ROOT), str(ROOT / "tools")]

from synthsmith.contract import tables  # noqa: E402
from synthsmith.contract.funnel import balanced  # noqa: E402
from synthsmith.runtime.io import read_table  # noqa: E402
from tools.project_copy import copy_project, run_data_flows  # noqa: E402
from tools.record_real_run import LLM_STAGES, MODEL, funnel_summary  # noqa: E402


def test_the_cassette_is_labelled_as_real_model_output():
    entries = [json.loads(line) for line in (RUN / "cassette.jsonl").read_text().splitlines()]
    assert entries and {entry["model"] for entry in entries} == {MODEL}
    assert {entry["author"] for entry in entries} == {f"recorded live from {MODEL}"}
    assert "SmolLM2-135M-Instruct" in (RUN / "README.md").read_text()


def test_the_recorded_real_model_run_replays_offline_with_its_funnel(prefect_server, tmp_path, monkeypatch):
    project = copy_project(tmp_path / "project")
    shutil.copy2(RUN / "params.yaml", project / "params.yaml")
    monkeypatch.chdir(project)
    run_data_flows()  # replay: a request the cassette lacks would be an error, never a live call

    recorded = json.loads((RUN / "funnel.json").read_text())
    replayed = funnel_summary(project)
    for stage in ("seeds", *LLM_STAGES):  # what the model said, and what the stages made of it
        assert replayed[stage] == recorded[stage], stage
    for stage in recorded:  # sandbox statuses can differ by machine; the balance cannot
        frame = read_table(project / f"data/{stage}/funnel.parquet", tables.FUNNEL)
        assert balanced(frame), stage
    metrics = json.loads((project / "reports/metrics.json").read_text())
    assert metrics["llm"]["total"]["requests"] == sum(recorded[s].get("llm:requests", 0) for s in LLM_STAGES)
    assert metrics["llm"]["total"]["live_calls"] == 0
