"""Stage `report`: the funnel, style mix, feature growth, labelling agreement, keep rate, and the task
set's hygiene (dropped tasks), diversity and feature coverage."""

from __future__ import annotations

import polars as pl

from synthsmith.contract.params import DiversityParams
from synthsmith.contract.values import HYGIENE
from synthsmith.stages import diversity as diversity_stage


def metrics(funnel: pl.DataFrame, tasks: pl.DataFrame, verdicts: pl.DataFrame, growth: pl.DataFrame,
            agreement: pl.DataFrame, executions: pl.DataFrame, llm_usage: pl.DataFrame,
            task_set: dict | None = None, rounds: pl.DataFrame | None = None) -> dict:
    """task_set: from `task_set_metrics` (hygiene, diversity, feature_coverage), merged in;
    rounds: verify_rounds' ROUNDS."""
    kept = verdicts.filter("kept")
    generated_styles = dict(tasks.group_by("style").len().iter_rows())
    kept_styles = dict(tasks.join(kept, on="task_id").group_by("style").len().iter_rows())
    return {
        "funnel": {stage: dict(rows.select("metric", "value").iter_rows())
                   for (stage,), rows in funnel.group_by("stage", maintain_order=True)},
        "tasks": {"generated": tasks.height, "verified": kept.height,
                  "keep_rate": round(kept.height / tasks.height, 4) if tasks.height else 0.0},
        "discard_reasons": dict(verdicts.filter(~pl.col("kept")).group_by("reason").len().sort("reason").iter_rows()),
        "style_mix": {"generated": _shares(generated_styles), "verified": _shares(kept_styles)},
        "features": {"leaves_before": int(growth["leaves_before"].sum()),
                     "leaves_after": int(growth["leaves_after"].sum()),
                     "per_category": {r["category"]: {"before": r["leaves_before"], "after": r["leaves_after"]}
                                      for r in growth.iter_rows(named=True)}},
        "labeling": {"labelled_tests": int(agreement["labelled_tests"].sum()),
                     "tied_tests": int(agreement["tied_tests"].sum()),
                     "mean_top_share": round(float(agreement["mean_top_share"].mean() or 0.0), 4)},
        "execution": dict(executions.group_by("status").len().sort("status").iter_rows()),
        "golden_tests_per_task": round(float(kept["golden_tests"].list.len().mean() or 0.0), 2),
        "llm": llm_metrics(llm_usage),
    } | (task_set or {}) | ({} if rounds is None else {"rounds": {
        str(r.pop("round")): r | {"cost_usd": round(r["cost_usd"], 6)} for r in rounds.iter_rows(named=True)}})


def task_set_metrics(tasks: pl.DataFrame, verdicts: pl.DataFrame, dropped: pl.DataFrame,
                     task_features: pl.DataFrame, leaves: set[str], params: DiversityParams) -> dict:
    """Hygiene (every task hygiene dropped, keyed by task_id, and counts per reason: the funnel
    counts the plans and statements rejected before it), diversity (mean cosine distance to the
    k-means centroid of statement embeddings) and the share of the feature pool's leaves the tasks'
    plans selected: for the generated task set and its verified part."""
    dropped = dropped.filter(pl.col("step") == HYGIENE)
    task_features = task_features.filter(pl.col("selected"))
    verified_ids = set(verdicts.filter("kept")["task_id"])
    verified = tasks.filter(pl.col("task_id").is_in(verified_ids))
    return {
        "hygiene": {
            "dropped": {r["task_id"]: {k: r[k] for k in ("title", "reason", "against", "matched", "score")}
                        for r in dropped.sort("task_id").iter_rows(named=True)},
            "dropped_by_reason": dict(dropped.group_by("reason").len().sort("reason").iter_rows()),
        },
        "diversity": {"generated": diversity_stage.diversity(tasks["statement"].to_list(), params),
                      "verified": diversity_stage.diversity(verified["statement"].to_list(), params)},
        "feature_coverage": {
            "generated": diversity_stage.coverage(
                task_features.filter(pl.col("task_id").is_in(set(tasks["task_id"]))), leaves),
            "verified": diversity_stage.coverage(task_features.filter(pl.col("task_id").is_in(verified_ids)), leaves)},
    }


def llm_metrics(usage: pl.DataFrame) -> dict:
    """Per stage and model: requests, live calls, retries, re-asks, failures, tokens, cost; totals; and
    the models nobody prices."""
    numbers = [c for c in usage.columns if c not in ("stage", "model")]
    per_call = {f"{r['stage']}/{r['model']}": {c: (round(r[c], 6) if c == "cost_usd" else r[c]) for c in numbers}
                for r in usage.sort("stage", "model").iter_rows(named=True)}
    totals = {c: (round(float(usage[c].sum()), 6) if c == "cost_usd" else int(usage[c].sum())) for c in numbers}
    unpriced = dict(usage.filter(pl.col("unpriced_calls") > 0).group_by("model").agg(pl.col("unpriced_calls").sum())
                    .sort("model").iter_rows())
    return {"by_stage_and_model": per_call, "total": totals, "unpriced_models": unpriced}


def _shares(counts: dict[str, int]) -> dict[str, float]:
    total = sum(counts.values())
    return {style: round(n / total, 4) for style, n in sorted(counts.items())} if total else {}


# The funnel chart counts tasks only, in pipeline order: (stage, funnel metric, label). Every
# stage's own counts, in its own units, are in metrics.json's funnel.
TASK_STEPS = (("generate_tasks", "out", "generate_tasks: tasks written"),
              ("generate_tests", "out", "generate_tests: tasks with test inputs"),
              ("verify", "kept", "verify: verified on the first candidates"),
              ("verify_rounds", "out", "verify_rounds: verified after the rounds"),
              ("export", "out", "export: tasks exported"))


def task_funnel(funnel: pl.DataFrame) -> pl.DataFrame:
    """step, tasks: TASK_STEPS' counts (0 where a stage did not write the metric)."""
    counts = {(stage, metric): value for stage, metric, value in funnel.select("stage", "metric", "value").iter_rows()}
    return pl.DataFrame({"step": [label for _, _, label in TASK_STEPS],
                         "tasks": [counts.get((stage, metric), 0) for stage, metric, _ in TASK_STEPS]},
                        schema={"step": pl.String, "tasks": pl.Int64})


def plot_tables(funnel: pl.DataFrame, tasks: pl.DataFrame, verdicts: pl.DataFrame, growth: pl.DataFrame,
                agreement: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """Small CSV-ready tables for `dvc plots`."""
    styles = tasks.join(verdicts.select("task_id", "kept"), on="task_id", how="left").group_by("style").agg(
        generated=pl.len(), verified=pl.col("kept").fill_null(False).sum()).sort("style")
    return {"funnel": task_funnel(funnel), "style_mix": styles,
            "feature_growth": growth.select("category", "leaves_before", "leaves_after"),
            "agreement_histogram": agreement_histogram(agreement, verdicts)}


AGREEMENT_BINS = [f"{i / 10:.1f}-{(i + 1) / 10:.1f}" for i in range(10)] + ["none"]


def agreement_histogram(agreement: pl.DataFrame, verdicts: pl.DataFrame) -> pl.DataFrame:
    """Tasks (and verified tasks) per tenth of mean top-answer share; `none`: no labelled test.
    Every bin is listed, empty or not, so histograms of two experiments line up row by row."""
    binned = agreement.join(verdicts.select("task_id", "kept"), on="task_id", how="left").select(
        pl.when(pl.col("mean_top_share").is_null()).then(pl.lit("none"))
        .otherwise(pl.lit(AGREEMENT_BINS).list.get(  # round first: (1 - 0.9) * 10 is 0.99999...
            (pl.col("mean_top_share") * 10).round(9).floor().clip(0, 9).cast(pl.Int64))).alias("agreement"),
        pl.col("kept").fill_null(False))
    counts = binned.group_by("agreement").agg(tasks=pl.len(), verified=pl.col("kept").sum())
    return pl.DataFrame({"agreement": AGREEMENT_BINS}).join(counts, on="agreement", how="left").select(
        "agreement", pl.col("tasks", "verified").fill_null(0).cast(pl.Int64))
