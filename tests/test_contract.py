"""The contract holds at the boundaries: value sets declared once, params.yaml mistakes as one
line naming the key and what is allowed, stage outputs conformed on write, inputs read or told
how to rebuild, reports/metrics.json of a declared shape."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import get_args

import polars as pl
import pytest
import yaml
from conftest import shipped_params_with

from synthsmith.contract import metrics as metrics_contract
from synthsmith.contract import params, tables, values
from synthsmith.contract.params import UserError, load_params
from synthsmith.runtime.io import read_table, write_tables
from synthsmith.stages.verify import METHODS
from synthsmith.versions.diff import DiffError, load_side

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "params.yaml"


# -- value sets -----------------------------------------------------------------------------------

def test_params_literals_are_the_value_sets():
    fields = {
        (params.VerifyParams, "method"): values.VERIFY_METHODS,
        (params.GenerateTestsParams, "weighting"): values.WEIGHTINGS,
        (params.DiversityParams, "embedder"): values.EMBEDDERS,
        (params.SeedsParams, "source"): values.SEED_SOURCES,
        (params.LLMParams, "mode"): values.LLM_MODES,
        (params.EndpointParams, "transport"): values.TRANSPORTS,
        (params.RunnerParams, "kind"): values.RUNNER_KINDS,
    }
    for (model, field), allowed in fields.items():
        assert get_args(model.model_fields[field].annotation) == allowed, f"{model.__name__}.{field}"
    style, _ = get_args(params.GenerateTasksParams.model_fields["style_mix"].annotation)
    assert get_args(style) == values.STATEMENT_STYLES
    (generator,) = get_args(params.GenerateTestsParams.model_fields["generators"].annotation)
    assert get_args(generator) == values.TEST_GENERATORS


def test_every_verify_method_is_implemented():
    assert set(METHODS) == set(values.VERIFY_METHODS)


def test_io_mode_follows_the_entry_point():
    assert values.io_mode("Solution.f") == values.FUNCTION and values.io_mode(None) == values.STDIO


def test_conform_rejects_a_value_outside_its_set():
    frame = pl.DataFrame({"task_id": ["t"], "solution_id": ["s"], "test_id": ["x"], "status": ["wrong"],
                          "output": [""], "stderr": [""], "exit_code": [0], "wall_ms": [1.0]})
    with pytest.raises(tables.ContractError, match=r"column status holds \['wrong'\]; allowed: ok, syntax_error"):
        tables.conform(frame, tables.EXECUTIONS)
    assert tables.conform(frame.with_columns(status=pl.lit(values.TIMEOUT)), tables.EXECUTIONS).height == 1


# -- params.yaml: one line naming the key and what is allowed ------------------------------------

@pytest.mark.parametrize("change, line", [
    (lambda raw: raw["verify"].update(method="strickt"),
     "verify.method: unknown value 'strickt'; allowed: strict, calibrated, paper"),
    (lambda raw: raw["generate_tasks"]["dedup"].update(treshold=0.5),
     "generate_tasks.dedup.treshold: unknown key; allowed: enabled, threshold, shingle_words, num_perm"),
    (lambda raw: raw["generate_tasks"].update(style_mix={"codeforces": 0.5, "topcoder": 0.5}),
     "generate_tasks.style_mix.topcoder: unknown value 'topcoder'; allowed: codeforces, atcoder, leetcode"),
    (lambda raw: raw["generate_tests"].update(generators=["prompt", "tol"]),
     "generate_tests.generators[1]: unknown value 'tol'; allowed: prompt, tool"),
    (lambda raw: raw["llm"]["endpoints"]["default"].update(transport="http"),
     "llm.endpoints.default.transport: unknown value 'http'; allowed: auto, litellm, openai"),
    (lambda raw: raw["llm"]["endpoints"]["default"].update(conc=3),
     "llm.endpoints.default.conc: unknown key; allowed: api_base, api_key_env, transport, concurrency, rpm, tpm, "
     "timeout_s"),
    (lambda raw: raw["generate_tasks"]["decontaminate"].update(benchmarks=[{"path": "b.jsonl", "txt": "q"}]),
     "generate_tasks.decontaminate.benchmarks[0].txt: unknown key; allowed: path, text, id"),
    (lambda raw: raw["runner"].update(kind="slurm"), "runner.kind: unknown value 'slurm'; allowed: local, dask, ray"),
    (lambda raw: raw["generate_tasks"]["diversity"].update(embedder="bert"),
     "generate_tasks.diversity.embedder: unknown value 'bert'; allowed: tfidf, minilm"),
    (lambda raw: raw.update(dedupe={}),
     "dedupe: unknown key; allowed: llm, seeds, extract_features, evolve_features, generate_tasks, generate_tests, "
     "generate_solutions, execute, verify, verify_rounds, export, base_model, train_sft, train_rl, evaluate, runner, "
     "serve"),
])
def test_a_typo_is_one_line_with_the_allowed_values(tmp_path, change, line):
    path = shipped_params_with(tmp_path, change)
    with pytest.raises(UserError) as caught:
        load_params(path)
    assert str(caught.value) == f"{path}: {line}"


@pytest.mark.parametrize("change, line", [
    (lambda raw: raw["verify"].update(method="strickt"),
     "error: params.yaml: verify.method: unknown value 'strickt'; allowed: strict, calibrated, paper"),
    (lambda raw: raw["generate_tasks"]["dedup"].update(treshold=0.5),
     "error: params.yaml: generate_tasks.dedup.treshold: unknown key; allowed: enabled, threshold, shingle_words, "
     "num_perm"),
])
def test_a_stage_process_stops_on_bad_params_with_one_line(tmp_path, change, line):
    shipped_params_with(tmp_path, change)
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "flows.verify"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [line]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]  # no data/, no server state


# -- stage outputs and inputs ----------------------------------------------------------------------

def _funnel() -> pl.DataFrame:
    return pl.DataFrame({"stage": ["seeds"], "metric": ["out"], "value": [1]})


def _seeds() -> pl.DataFrame:
    return pl.DataFrame({"seed_id": ["s1"], "title": ["T"], "statement": ["S"], "solution": ["print(1)"],
                         "io": [values.STDIO], "entry_point": [None], "source": [values.SHIPPED], "extra": [1]})


def test_every_stage_of_the_pipeline_declares_its_outputs():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    outs = [out if isinstance(out, str) else next(iter(out)) for spec in stages.values() for out in spec.get("outs", [])]
    written = {Path(out).name for out in outs if out.startswith("data/")}
    assert written - set(tables.STAGE_OUTPUTS) == {"base_model", "train_sft", "train_rl"}  # model checkpoints
    assert set(tables.STAGE_OUTPUTS) <= written
    assert all("funnel" in declared for declared in tables.STAGE_OUTPUTS.values())  # the report reads them all


def test_write_tables_conforms_and_swaps_a_whole_directory(tmp_path):
    target = tmp_path / "data" / "seeds"
    write_tables(target, {"seeds": _seeds(), "funnel": _funnel()})
    write_tables(target, {"seeds": _seeds().with_columns(seed_id=pl.lit("s2")), "funnel": _funnel()})
    assert sorted(p.name for p in target.iterdir()) == ["funnel.parquet", "seeds.parquet"]
    written = pl.read_parquet(target / "seeds.parquet")
    assert written.columns == list(tables.SEEDS.columns) and written["seed_id"].to_list() == ["s2"]
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("directory, frames, message", [
    ("seeds", {"seeds": "seeds", "funnel": "funnel", "notes": "funnel"}, "stage seeds writes seeds, funnel"),
    ("seeds", {"seeds": "seeds"}, "stage seeds writes seeds, funnel"),
    ("stage", {"funnel": "funnel"}, "not a stage's output directory"),
    ("seeds", {"seeds": "funnel", "funnel": "funnel"}, "table seeds: missing column"),
])
def test_write_tables_refuses_what_the_contract_does_not_declare(tmp_path, directory, frames, message):
    made = {"seeds": _seeds(), "funnel": _funnel()}
    with pytest.raises(tables.ContractError, match=message):
        write_tables(tmp_path / directory, {name: made[kind] for name, kind in frames.items()})
    assert not (tmp_path / directory).exists()


def test_a_truncated_input_is_one_line_naming_it_and_how_to_rebuild_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_tables("data/seeds", {"seeds": _seeds(), "funnel": _funnel()})
    path = Path("data/seeds/seeds.parquet")
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(UserError) as caught:
        read_table(path, tables.SEEDS)
    message = str(caught.value)
    assert message.startswith("data/seeds/seeds.parquet: not a readable Parquet file (")
    assert "`dvc checkout data/seeds`" in message and "`dvc repro --force seeds`" in message
    assert "\n" not in message


def test_a_missing_or_off_contract_input_names_it(tmp_path):
    with pytest.raises(UserError, match=r"none\.parquet: missing; rebuild it"):
        read_table(tmp_path / "none.parquet", tables.SEEDS)
    _funnel().write_parquet(tmp_path / "seeds.parquet")
    with pytest.raises(UserError, match=r"seeds\.parquet: does not match the contract \(table seeds: missing"):
        read_table(tmp_path / "seeds.parquet", tables.SEEDS)


# -- reports/metrics.json ----------------------------------------------------------------------------

def test_the_shipped_metrics_round_trip_unchanged():
    raw = (ROOT / "reports" / "metrics.json").read_text()
    shipped = metrics_contract.parse(raw)
    assert json.dumps(metrics_contract.as_json(shipped), indent=2, sort_keys=True) + "\n" == raw
    assert shipped.tasks.verified <= shipped.tasks.generated


def test_metrics_without_the_later_sections_still_parse():
    raw = json.loads((ROOT / "reports" / "metrics.json").read_text())
    older = {k: v for k, v in raw.items() if k not in ("llm", "hygiene", "diversity", "feature_coverage")}
    assert metrics_contract.as_json(metrics_contract.parse(json.dumps(older))) == older


@pytest.mark.parametrize("change, key", [
    (lambda m: m.pop("tasks"), "tasks: Field required"),
    (lambda m: m["tasks"].update(verified="many"), "tasks.verified: Input should be a valid integer"),
    (lambda m: m["labeling"].update(extra=1), "labeling.extra: Extra inputs are not permitted"),
])
def test_metrics_of_another_shape_name_the_key(change, key):
    raw = json.loads((ROOT / "reports" / "metrics.json").read_text())
    change(raw)
    with pytest.raises(metrics_contract.MetricsError, match=key):
        metrics_contract.parse(json.dumps(raw))


def test_diff_reads_metrics_through_the_contract(tmp_path):
    side = tmp_path / "export"
    side.mkdir()
    pl.DataFrame({"task_id": ["t1"], "messages": [[{"role": "user", "content": "x"}]], "style": ["codeforces"],
                  "source": ["s"]}).write_parquet(side / "sft.parquet")
    (side / "metrics.json").write_text(json.dumps({"tasks": {"generated": 1}}))
    with pytest.raises(DiffError, match=r"metrics\.json: not the shape of reports/metrics\.json .*: funnel: Field"):
        load_side(str(side))
