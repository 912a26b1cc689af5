"""Stage `report`: the funnel, style mix, feature growth, labelling agreement and keep rate."""

from __future__ import annotations

import polars as pl


def metrics(funnel: pl.DataFrame, tasks: pl.DataFrame, verdicts: pl.DataFrame, growth: pl.DataFrame,
            agreement: pl.DataFrame, executions: pl.DataFrame, llm_usage: pl.DataFrame) -> dict:
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
    }


def llm_metrics(usage: pl.DataFrame) -> dict:
    """Per stage and model: requests, live calls, retries, re-asks, failures, tokens, cost; and totals."""
    numbers = [c for c in usage.columns if c not in ("stage", "model")]
    per_call = {f"{r['stage']}/{r['model']}": {c: (round(r[c], 6) if c == "cost_usd" else r[c]) for c in numbers}
                for r in usage.sort("stage", "model").iter_rows(named=True)}
    totals = {c: (round(float(usage[c].sum()), 6) if c == "cost_usd" else int(usage[c].sum())) for c in numbers}
    return {"by_stage_and_model": per_call, "total": totals}


def _shares(counts: dict[str, int]) -> dict[str, float]:
    total = sum(counts.values())
    return {style: round(n / total, 4) for style, n in sorted(counts.items())} if total else {}


def plot_tables(funnel: pl.DataFrame, tasks: pl.DataFrame, verdicts: pl.DataFrame, growth: pl.DataFrame,
                agreement: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """Small CSV-ready tables for `dvc plots`."""
    stage_counts = funnel.filter(pl.col("metric").is_in(["in", "out"])).pivot(
        "metric", index="stage", values="value", aggregate_function="first")
    styles = tasks.join(verdicts.select("task_id", "kept"), on="task_id", how="left").group_by("style").agg(
        generated=pl.len(), verified=pl.col("kept").fill_null(False).sum()).sort("style")
    return {"funnel": stage_counts.rename({"in": "count_in", "out": "count_out"}), "style_mix": styles,
            "feature_growth": growth.select("category", "leaves_before", "leaves_after"),
            "agreement": agreement.select("task_id", "mean_top_share").sort("task_id")}
