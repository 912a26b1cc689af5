"""`synthsmith plan` (stages/plan.py): counts from params, sizes and rates from a run, prices, estimate
beside actual. Hand-made params and tables only: no model call, no flow."""

from __future__ import annotations

import json

import polars as pl
import pytest
import yaml

from synthsmith.contract import tables
from synthsmith.contract.params import Params
from synthsmith.stages import plan

BASE = {
    "llm": {"models": {"m/a": {"input_usd_per_mtok": 1.0, "output_usd_per_mtok": 2.0},
                       "m/b": {"input_usd_per_mtok": 0.5, "output_usd_per_mtok": 4.0}}},
    "extract_features": {"model": "m/extract"},
    "evolve_features": {"model": "m/evolve", "rounds": 2},
    "generate_tasks": {"planner_model": "m/plan", "writer_model": "m/write", "num_tasks": 10,
                       "style_mix": {"codeforces": 1.0}},
    "generate_tests": {"model": "m/tests", "generators": ["prompt", "tool"], "validate_inputs": True},
    "generate_solutions": {"models": ["m/a", "m/b"], "samples_per_model": 2},
    "verify": {"max_candidates": None},
    "verify_rounds": {"samples_per_model": 2},
}


def params(**changes) -> Params:
    raw = json.loads(json.dumps(BASE))
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        raw[section][key] = value
    return Params.model_validate(raw)


def usage_rows(rows: list[tuple]) -> pl.DataFrame:
    """(stage, model, requests, reasks, prompt_tokens, completion_tokens, cost_usd) -> LLM_USAGE."""
    frame = pl.DataFrame([{"stage": s, "model": m, "requests": n, "live_calls": 0, "retries": 0, "reasks": r,
                           "failed": 0, "prompt_tokens": p, "completion_tokens": c, "cost_usd": usd}
                          for s, m, n, r, p, c, usd in rows])
    return tables.conform(frame, tables.LLM_USAGE)


def row(frame: pl.DataFrame, stage: str, model: str) -> dict:
    found = frame.filter((pl.col("stage") == stage) & (pl.col("model") == model))
    assert found.height == 1, (stage, model, frame)
    return found.row(0, named=True)


def test_counts_follow_params_with_default_rates():
    estimate = plan.estimate(params(), seeds=5)
    tasks = 10 * plan.DEFAULT_PLAN_SURVIVAL * plan.DEFAULT_TASK_SURVIVAL
    assert row(estimate, "extract_features", "m/extract")["requests"] == 5
    assert row(estimate, "evolve_features", "m/evolve")["requests"] == 2 * plan.CATEGORIES
    assert row(estimate, "generate_tasks", "m/plan")["requests"] == 10
    assert row(estimate, "generate_tasks", "m/write")["requests"] == pytest.approx(10 * plan.DEFAULT_PLAN_SURVIVAL)
    assert row(estimate, "generate_tests", "m/tests")["requests"] == pytest.approx(3 * tasks)
    assert row(estimate, "generate_solutions", "m/a")["requests"] == pytest.approx(2 * tasks)
    assert "verify_rounds" not in estimate["stage"].to_list()  # max_candidates null: no rounds
    extract = row(estimate, "extract_features", "m/extract")
    size = plan.DEFAULT_SIZES["extract_features"]
    assert (extract["prompt_tokens"], extract["completion_tokens"]) == (5 * size.prompt, 5 * size.completion)
    assert extract["tokens"] == extract["prompt_tokens"] + extract["completion_tokens"]
    assert set(estimate["basis"]) == {"defaults"}


def test_fewer_generators_and_no_validator_ask_less():
    both = row(plan.estimate(params(), 5), "generate_tests", "m/tests")["requests"]
    one = row(plan.estimate(params(generate_tests__generators=["prompt"], generate_tests__validate_inputs=False), 5),
              "generate_tests", "m/tests")["requests"]
    assert one == pytest.approx(both / 3)


def test_no_seeds_means_no_later_calls():
    estimate = plan.estimate(params(), seeds=0)
    assert estimate["requests"].sum() == 0


def test_prices_from_params_and_unpriced_models():
    estimate = plan.estimate(params(), seeds=5)
    a = row(estimate, "generate_solutions", "m/a")
    assert a["priced"] and a["cost_usd"] == pytest.approx(a["prompt_tokens"] * 1e-6 + a["completion_tokens"] * 2e-6)
    extract = row(estimate, "extract_features", "m/extract")
    assert not extract["priced"] and extract["cost_usd"] == 0.0


def test_rates_from_a_run():
    usage = usage_rows([("extract_features", "m/extract", 4, 1, 400, 100, 0.0),
                        ("generate_solutions", "m/a", 10, 0, 3000, 1000, 0.0)])
    funnel = pl.DataFrame({"stage": ["generate_tasks"] * 4, "metric": ["in", "dropped:plan_missing_keys",
                                                                        "dropped:too_short", "out"],
                           "value": [10, 2, 1, 7]})
    rates = plan.rates_from_run(usage, funnel)
    assert rates.sizes["extract_features", "m/extract"] == plan.Size(100, 25, 0.25)
    assert rates.plan_survival == pytest.approx(0.8) and rates.task_survival == pytest.approx(7 / 8)
    assert rates.seeds == 4 and rates.undecided == plan.DEFAULT_UNDECIDED


def rounds_table(rows: list[tuple]) -> pl.DataFrame:
    """(round, samples_per_model, tasks, undecided) -> ROUNDS."""
    return tables.conform(pl.DataFrame([{"round": r, "samples_per_model": s, "tasks": t, "requests": 0,
                                         "candidates": 0, "runs": 0, "kept": 0, "discarded": 0, "undecided": u,
                                         "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0}
                                        for r, s, t, u in rows]), tables.ROUNDS)


def test_undecided_curve_leaves_out_a_last_round_that_closed_everything():
    curve = plan.undecided_curve(rounds_table([(0, 2, 20, 10), (1, 4, 10, 5), (2, 6, 5, 0)]))
    assert curve == ((2, 0.5), (4, 0.25))
    assert plan.undecided_curve(rounds_table([(0, 2, 20, 0)])) == plan.DEFAULT_UNDECIDED  # no rounds ran
    assert plan.undecided_curve(None) == plan.DEFAULT_UNDECIDED


def test_undecided_share_interpolates_and_extrapolates():
    curve = ((2, 0.5), (4, 0.25))
    assert plan.undecided_share(curve, 3) == pytest.approx(0.375)
    assert plan.undecided_share(curve, 6) == pytest.approx(0.125)  # halves every 2 samples, as 2 -> 4 did
    assert plan.undecided_share(curve, 1) == pytest.approx(0.5 / 0.5 ** 0.5)
    assert plan.undecided_share(((2, 0.5),), 4) == pytest.approx(0.5 * plan.DEFAULT_DECAY)


def test_verification_rounds_stop_at_max_candidates():
    curve = ((2, 0.5), (4, 0.25))
    # 2 models, max_candidates 8: 4 samples per model at most, so one round of 2 more
    steps = plan.verification_rounds(params(verify__max_candidates=8), 20, curve)
    assert steps == [{"round": 1, "tasks": 10.0, "samples": 2, "samples_per_model": 4}]
    steps = plan.verification_rounds(params(verify__max_candidates=12), 20, curve)
    assert [(s["tasks"], s["samples"]) for s in steps] == [(10.0, 2), (5.0, 2)]
    assert plan.verification_rounds(params(verify__max_candidates=4), 20, curve) == []  # the first round is the cap


def test_round_sizes_fall_back_to_the_models_first_round():
    rates = plan.Rates(sizes={("generate_solutions", "m/a"): plan.Size(300, 100),
                              ("generate_solutions", "m/b"): plan.Size(500, 300)}, undecided=((2, 0.5),),
                       basis="run")
    estimate = plan.estimate(params(verify__max_candidates=8), seeds=5, rates=rates)
    a = row(estimate, "verify_rounds", "m/a")
    assert a["prompt_tokens"] / a["requests"] == pytest.approx(300) and a["basis"] == "run (generate_solutions)"
    # a model the run did not ask: the stage's other models, pooled
    estimate = plan.estimate(params(generate_solutions__models=["m/a", "m/c"]), seeds=5, rates=rates)
    c = row(estimate, "generate_solutions", "m/c")
    assert c["prompt_tokens"] / c["requests"] == pytest.approx(400) and "other models" in c["basis"]


def test_a_run_at_the_same_params_is_estimated_exactly():
    """Rates read from a run whose counts the params explain give back that run's usage."""
    p = params(generate_tasks__num_tasks=10, verify__max_candidates=8)
    # 10 planned, 10 written, 8 tasks; 2 x 2 x 8 first candidates; round 1: 4 undecided tasks x 2 x 2
    usage = usage_rows([("extract_features", "m/extract", 5, 0, 500, 100, 0.0),
                        ("evolve_features", "m/evolve", 14, 0, 1400, 700, 0.0),
                        ("generate_tasks", "m/plan", 10, 0, 1000, 500, 0.0),
                        ("generate_tasks", "m/write", 10, 0, 2000, 1500, 0.0),
                        ("generate_tests", "m/tests", 24, 2, 4800, 2400, 0.0),
                        ("generate_solutions", "m/a", 16, 0, 3200, 1600, 0.0064),
                        ("generate_solutions", "m/b", 16, 1, 3200, 1600, 0.008),
                        ("verify_rounds", "m/a", 8, 0, 2000, 800, 0.0036),
                        ("verify_rounds", "m/b", 8, 0, 2000, 800, 0.0042)])
    funnel = pl.DataFrame({"stage": ["generate_tasks"] * 3, "metric": ["in", "dropped:too_short", "out"],
                           "value": [10, 2, 8]})
    rates = plan.rates_from_run(usage, funnel, rounds_table([(0, 2, 8, 4), (1, 4, 4, 0)]), basis="run")
    compared = plan.beside(plan.estimate(p, seeds=5, rates=rates), usage)
    assert compared.height == usage.height
    for metric in ("requests", "tokens"):
        assert compared[f"{metric}_ratio"].to_list() == pytest.approx([1.0] * usage.height), metric
    # null where the run had none: re-asks of most stages, dollars of unpriced models
    assert compared["reasks_ratio"].drop_nulls().to_list() == pytest.approx([1.0, 1.0])
    assert compared["cost_usd_ratio"].drop_nulls().to_list() == pytest.approx([1.0] * 4)
    assert plan.totals(compared)["tokens_ratio"] == pytest.approx(1.0)


def test_beside_keeps_rows_only_one_side_has():
    estimate = plan.estimate(params(), seeds=5)
    actual = usage_rows([("generate_solutions", "m/a", 3, 0, 30, 10, 0.0),
                         ("generate_solutions", "m/old", 3, 0, 30, 10, 0.0)])
    compared = plan.beside(estimate, actual)
    old = row(compared, "generate_solutions", "m/old")
    assert old["tokens"] == 0 and old["tokens_actual"] == 40 and old["tokens_ratio"] == 0
    extract = row(compared, "extract_features", "m/extract")
    assert extract["tokens_actual"] == 0 and extract["tokens_ratio"] is None
    text = plan.render_text(estimate, plan.assumptions(params(), 5, plan.Rates()) | {"seeds_from": "test"}, compared)
    assert "estimate / actual" in text and "unpriced (counted as $0): m/evolve" in text


def test_plan_command(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from synthsmith.cli import app

    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(json.dumps({"seed_id": f"s{i}", "statement": f"problem {i}", "solution": "print(1)"})
                             + "\n" for i in range(3)))
    raw = json.loads(json.dumps(BASE)) | {"seeds": {"source": "file", "path": str(seeds), "limit": 2}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["plan", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["assumptions"]["seeds"] == 2 and out["assumptions"]["basis"] == "defaults"
    assert "beside_actual" not in out and out["total"]["requests"] > 0
    # after a run: estimate beside actual, rates from it
    (tmp_path / "data" / "extract_features").mkdir(parents=True)
    usage_rows([("extract_features", "m/extract", 2, 0, 200, 40, 0.0)]).write_parquet(
        tmp_path / "data" / "extract_features" / "llm_usage.parquet")
    result = CliRunner().invoke(app, ["plan"])
    assert result.exit_code == 0, result.output
    assert "estimate | actual" in result.output and "last run" in result.output
    extract = next(line for line in result.output.splitlines() if line.startswith("extract_features"))
    assert "1.00" in extract  # 2 seeds, 120 tokens each: exactly the run
    bad = CliRunner().invoke(app, ["plan", "--params", "missing.yaml"])
    assert bad.exit_code == 2 and "file not found" in bad.output
