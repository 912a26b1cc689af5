"""Copy the project and run its data flows in-process: for the end-to-end tests and the
real-model recording (tools/record_real_run.py)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def copy_project(destination: Path) -> Path:
    """The files git would ship (tracked or new, not ignored), without data outputs."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout.split("\n")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    return destination


def run_data_flows(params_path: str = "params.yaml") -> None:
    """Every data stage's flow in this process (one Prefect server for all), in the working directory."""
    from flows import (
        evolve_features,
        execute,
        export,
        extract_features,
        generate_solutions,
        generate_tasks,
        generate_tests,
        report,
        seeds,
        verify,
        verify_rounds,
    )

    seeds.seeds_flow(params_path)
    extract_features.extract_features_flow(params_path)
    evolve_features.evolve_features_flow(params_path)
    generate_tasks.generate_tasks_flow(params_path)
    generate_tests.generate_tests_flow(params_path)
    generate_solutions.generate_solutions_flow(params_path)
    execute.execute_flow(params_path)
    verify.verify_flow(params_path)
    verify_rounds.verify_rounds_flow(params_path)
    export.export_flow(params_path)
    report.report_flow(params_path)
