"""Stage `evaluate`: pass@1, pass@k and avg@k (with problems and a confidence interval) of each
checkpoint in `evaluate.models` on the export's held-out tasks and on HumanEval ->
reports/evaluate.json (DVC metrics) and reports/plots/evaluation.csv (the `evaluation` plot)."""

import csv
import logging
import os
import time
import uuid
from pathlib import Path

import polars as pl
from prefect import flow, get_run_logger

from synthsmith.contract.params import EvaluateParams, UserError, load_params
from synthsmith.runtime.io import write_json
from synthsmith.runtime.stage import run_stage
from synthsmith.sandbox.runner import run_jobs
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
    """The stage's work in the current directory; `outcomes` scores held-out completions
    (`synthsmith.train.reward.test_outcomes` in the stage)."""
    if settings.endpoint is not None:
        unserved = [name for name in settings.models if name not in settings.served_models]
        if unserved:
            raise UserError(f"evaluate.served_models: no served name for {', '.join(unserved)} "
                            "(e.g. {base: base, sft: sft, rl: rl}, the names the endpoint serves them as)")

    heldout = evaluation.heldout_tasks(pl.read_parquet(RL_TABLE), settings.heldout_limit)
    problems = evaluation.humaneval_problems(settings.humaneval_limit)
    conversations = ([task["messages"] for task in heldout]
                     + [evaluation.humaneval_messages(problem) for problem in problems])
    log.info("evaluate %s on %d held-out tasks and %d HumanEval problems, k=%d", ", ".join(settings.models),
             len(heldout), len(problems), settings.samples)

    completions: dict[str, list[list[str]]] = {}
    for name in settings.models:
        start = time.perf_counter()
        if settings.endpoint is None:
            completions[name] = evaluation.generate_local(CHECKPOINTS[name], conversations, settings)
        else:
            completions[name] = evaluation.generate_endpoint(settings.served_models[name], conversations,
                                                             settings, settings.endpoint)
        log.info("%s: %d completions in %.1f s", name, len(conversations) * settings.samples,
                 time.perf_counter() - start)

    # Every model's samples scored at once: one sandbox batch for HumanEval, one reward call for held-out.
    start = time.perf_counter()
    limits = settings.reward
    jobs = pl.concat([evaluation.humaneval_jobs(problems, completions[name][len(heldout):], limits.time_limit_s,
                                                limits.memory_mb, tag=f"{name}/") for name in settings.models])
    results = run_jobs(jobs, workers=limits.workers)
    per_model = len(problems) * settings.samples
    metrics: dict = {"heldout": {}, "humaneval": {}}
    for index, name in enumerate(settings.models):
        correct = evaluation.humaneval_correct(results[index * per_model:(index + 1) * per_model], settings.samples)
        metrics["humaneval"][name] = evaluation.summarize(correct, settings.samples, settings.confidence)
    truths = [task["ground_truth"] for task in heldout]
    flat = [texts for name in settings.models for texts in completions[name][:len(heldout)]]
    correct = evaluation.heldout_correct(flat, truths * len(settings.models), outcomes, limits)
    for index, name in enumerate(settings.models):
        metrics["heldout"][name] = evaluation.summarize(correct[index * len(heldout):(index + 1) * len(heldout)],
                                                        settings.samples, settings.confidence)
    log.info("scored in %.1f s", time.perf_counter() - start)

    metrics["settings"] = {
        "k": settings.samples, "temperature": settings.temperature, "max_new_tokens": settings.max_new_tokens,
        "seed": settings.seed, "confidence": settings.confidence, "ci_method": evaluation.CI_METHOD,
        "generation": "endpoint" if settings.endpoint is not None else "local",
        "heldout_problems": len(heldout), "humaneval_problems": len(problems),
        "pass@k_estimator": "unbiased, Chen et al. 2021: 1 - C(n-c,k)/C(n,k) per problem, averaged",
    }
    write_json(METRICS, metrics)
    _write_csv(PLOT, evaluation.plot_rows(metrics))
    for benchmark in ("heldout", "humaneval"):
        for name, figures in metrics[benchmark].items():
            log.info("%s / %s: pass@1 %s [%s, %s], pass@%d %s, avg@%d %s over %d problems", name, benchmark,
                     figures["pass@1"], figures["pass@1_ci_low"], figures["pass@1_ci_high"], settings.samples,
                     figures["pass@k"], settings.samples, figures["avg@k"], figures["problems"])
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
