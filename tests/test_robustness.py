"""Models that answer badly: the whole data DAG live against a scripted server that answers with junk.

Every stage must write conformed (possibly empty) tables and a funnel that balances (rows in +
rows added == rows out + counted drops), and a run that ends with an empty export says where its
funnel reached zero, in one line, with no traceback anywhere.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import polars as pl
import pytest
import yaml

pytestmark = pytest.mark.slow  # the flows and `dvc repro` on a real Prefect server

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tools")]

from synthsmith.contract import tables  # noqa: E402
from synthsmith.contract.funnel import STAGE_UNITS, balanced  # noqa: E402
from synthsmith.runtime.io import read_table  # noqa: E402
from tools.project_copy import copy_project, run_data_flows  # noqa: E402
from tools.stub_server import JUNK  # noqa: E402


class JunkServer:
    """Answers each model's requests in turn: every `good_every`-th one from the demo author (so
    every stage gets real work), the others with the next kind of junk."""

    def __init__(self, good_every: int | None):
        from demo_author.author import DemoAuthor

        self.author = DemoAuthor(ROOT / "data/shipped/seeds.jsonl")
        self.good_every = good_every
        self.asked: Counter = Counter()
        self.served: Counter = Counter()  # (model, kind)

    def respond(self, model: str, messages: list[dict], sampling: dict) -> str:
        n = self.asked[model]
        self.asked[model] += 1
        if self.good_every and n % self.good_every == 0:
            self.served[model, "good"] += 1
            return self.author.respond(model, messages, sampling)
        kind = list(JUNK)[n % len(JUNK)]
        self.served[model, kind] += 1
        return JUNK[kind]


def _live_params(project: Path, api_base: str, seeds: int) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["llm"] |= {"mode": "live", "max_retries": 1, "progress": False, "cache_dir": ".synthsmith/junk-cache"}
    params["llm"]["endpoints"]["default"] |= {"api_base": api_base, "concurrency": 1}  # one at a time: in order
    params["seeds"]["limit"] = seeds
    params["evolve_features"]["rounds"] = 1
    params["generate_tasks"]["num_tasks"] = 8
    params["generate_solutions"]["samples_per_model"] = 4  # enough requests per model for every kind of junk
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def _stage_funnels(project: Path) -> dict[str, pl.DataFrame]:
    return {stage: read_table(project / "data" / stage / "funnel.parquet", tables.FUNNEL) for stage in STAGE_UNITS}


def test_every_stage_survives_junk_among_good_answers(prefect_server, tmp_path, monkeypatch):
    from tools.stub_server import StubServer

    project = copy_project(tmp_path / "project")
    monkeypatch.chdir(project)
    junk = JunkServer(good_every=2)
    with StubServer(junk.respond) as server:
        _live_params(project, server.api_base, seeds=6)
        run_data_flows()

    kinds_served = {kind for (_, kind), n in junk.served.items() if n}
    assert kinds_served == {"good", *JUNK}, kinds_served
    for model in junk.asked:  # every model behind a stage got both good answers and junk
        assert junk.served[model, "good"] and sum(n for (m, k), n in junk.served.items() if m == model and k != "good")
    for stage, frame in _stage_funnels(project).items():
        counts = dict(frame.select("metric", "value").iter_rows())
        assert balanced(frame), (stage, counts)
        for name, table in tables.STAGE_OUTPUTS[stage].items():  # every output is there and on contract
            read_table(project / "data" / stage / f"{name}.parquet", table)
    funnels = _stage_funnels(project)
    dropped = {stage: sum(n for m, n in frame.select("metric", "value").iter_rows() if m.startswith("dropped:"))
               for stage, frame in funnels.items()}
    assert dropped["extract_features"] and dropped["generate_tasks"] and dropped["generate_solutions"], dropped
    metrics = json.loads((project / "reports/metrics.json").read_text())
    assert metrics["llm"]["total"]["failed"] > 0


def test_dvc_repro_against_a_model_that_only_answers_junk_completes_and_says_where_it_stopped(prefect_server,
                                                                                                 tmp_path):
    from tools.stub_server import StubServer

    project = copy_project(tmp_path / "project")
    env = os.environ | {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}

    def run(*command: str) -> subprocess.CompletedProcess:
        return subprocess.run(command, cwd=project, env=env, capture_output=True, text=True)

    junk = JunkServer(good_every=None)
    with StubServer(junk.respond) as server:
        _live_params(project, server.api_base, seeds=4)
        for command in (("git", "init", "-q"), ("git", "add", "-A"),
                        ("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "project")):
            assert run(*command).returncode == 0
        data = run("dvc", "repro", "report")
        training = run(sys.executable, "-m", "flows.train_sft")  # what `dvc repro` runs after the data

    output = data.stdout + data.stderr
    assert data.returncode == 0, output[-3000:]
    assert "Traceback" not in output
    stopped = "the funnel reached zero at extract_features: 0 of 4 seeds gave features ("
    assert stopped in output and "nothing to evolve" in output
    funnels = _stage_funnels(project)
    assert all(balanced(frame) for frame in funnels.values())
    assert [stage for stage, frame in funnels.items() if frame.filter(pl.col("metric") == "out")["value"][0]] \
        == ["seeds"]
    assert pl.read_parquet(project / "data/export/sft.parquet").height == 0
    assert set(junk.asked) == {"demo/feature-extractor"}  # nothing is asked of later stages' models

    assert training.returncode == 2
    lines = [line for line in training.stderr.splitlines() if line.strip()]
    reported = next(line for line in output.splitlines() if stopped in line)
    said = reported[reported.index("the funnel reached zero at"):]
    assert "Traceback" not in training.stderr and lines[-1].startswith("error: data/export/sft.parquet: no rows") \
        and lines[-1].endswith(said), training.stderr[-2000:]  # train_sft says where, as report did
