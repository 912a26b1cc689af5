"""The shipped seed set is what the README says: >= 20 problems, both io styles, and every
reference solution passes its own examples in the sandbox."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from synthsmith.contract.params import SeedsParams
from synthsmith.sandbox.runner import run_jobs
from synthsmith.stages.compare import outputs_match
from synthsmith.stages.seeds import prepare_seeds
from synthsmith.stages.sources import load_seed_source

SHIPPED = Path(__file__).resolve().parent.parent / "data" / "shipped" / "seeds.jsonl"


def test_shipped_seeds_load_and_cover_both_styles():
    seeds, funnel = prepare_seeds(load_seed_source(SeedsParams(path=str(SHIPPED))), SeedsParams(), str(SHIPPED))
    assert seeds.height >= 20
    assert set(seeds["io"]) == {"stdio", "function"}
    assert dict(funnel.select("metric", "value").iter_rows())["out"] == seeds.height


def test_every_reference_solution_passes_its_examples():
    seeds = [json.loads(line) for line in SHIPPED.read_text().splitlines()]
    jobs = pl.DataFrame([{
        "job_id": f"{seed['seed_id']}#{n}", "code": seed["solution"], "mode": seed["io"],
        "entry": seed["entry_point"], "input": example["input"], "time_limit_s": 5.0, "memory_mb": 1024}
        for seed in seeds for n, example in enumerate(seed["examples"])])
    results = run_jobs(jobs, workers=2)
    expected = [example["output"] for seed in seeds for example in seed["examples"]]
    failures = [(row["job_id"], row["status"], row["stderr"][-300:] if row["stderr"] else "")
                for row, want in zip(results.iter_rows(named=True), expected, strict=True)
                if row["status"] != "ok" or not outputs_match(want, row["output"])]
    assert not failures
