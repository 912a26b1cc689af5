"""Stage `evaluate`: pass@1, pass@k and avg@k (with problems and a confidence interval) of each
checkpoint in `evaluate.models` on the export's held-out tasks and on HumanEval ->
reports/evaluate.json (DVC metrics) and reports/plots/evaluation.csv (the `evaluation` plot)."""

import csv
import logging
import os
import uuid
from pathlib import Path

from prefect import flow, get_run_logger

from synthsmith.contract import tables
from synthsmith.contract.params import EvaluateParams, load_params
from synthsmith.runtime.io import read_table, write_json
from synthsmith.runtime.stage import run_stage
from synthsmith.train import evaluation
from synthsmith.train.reward import test_outcomes

CHECKPOINTS = {"base": "data/base_model", "sft": "data/train_sft", "rl": "data/train_rl"}
RL_TABLE = "data/export/rl.parquet"
METRICS = "reports/evaluate.json"
PLOT = "reports/plots/evaluation.csv"
PLOT_COLUMNS = ["model_benchmark", "pass_at_1", "ci_low", "ci_high", "problems"]


@flow(name="evaluate")
def evaluate_flow(params_path: str = "params.yaml") -> dict:
    return evaluate(load_params(params_path).evaluate, test_outcomes, get_run_logger())


def evaluate(settings: EvaluateParams, outcomes: evaluation.Outcomes,
             log: logging.Logger | logging.LoggerAdapter) -> dict:
    """The stage's work in the current directory: the export's RL table and the checkpoints in,
    the metrics and the plot's table out."""
    rl = read_table(RL_TABLE, tables.RL)
    metrics = evaluation.evaluate_checkpoints(settings, CHECKPOINTS, rl, outcomes, log)
    write_json(METRICS, metrics)
    _write_csv(PLOT, evaluation.plot_rows(metrics))
    return metrics


def _write_csv(path: str, rows: list[dict]) -> None:
    """Written beside the target and renamed over it: never half a file."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with temporary.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=PLOT_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


if __name__ == "__main__":
    run_stage(evaluate_flow)
