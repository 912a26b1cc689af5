"""Rebuild data/shipped/cassette.jsonl from the hand-written demo author (tools/demo_author).

Runs the LLM stages in `record` mode through the real live path (litellm -> an OpenAI-compatible
server on 127.0.0.1 that answers with tools/demo_author/author.py), one request at a time so the
author's choices are reproducible, then records every later candidate sample stage verify_rounds
may ask for. Run from the project root:  python tools/build_cassette.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tools")]

from demo_author.author import MODEL_NAME, DemoAuthor  # noqa: E402

import flows  # noqa: E402,F401  (Prefect defaults before Prefect)
from flows.evolve_features import evolve_features_flow  # noqa: E402
from flows.extract_features import extract_features_flow  # noqa: E402
from flows.generate_solutions import generate_solutions_flow  # noqa: E402
from flows.generate_tasks import generate_tasks_flow  # noqa: E402
from flows.generate_tests import generate_tests_flow  # noqa: E402
from flows.seeds import seeds_flow  # noqa: E402
from synthsmith.contract import tables  # noqa: E402
from synthsmith.contract.params import load_params  # noqa: E402
from synthsmith.llm.gateway import answer_requests, shard_settings  # noqa: E402
from synthsmith.runtime.io import read_table  # noqa: E402
from synthsmith.stages.generate_solutions import solution_requests  # noqa: E402
from synthsmith.stages.verify_rounds import samples_cap  # noqa: E402
from tools.stub_server import StubServer  # noqa: E402

# The configurations the cassette answers offline: the shipped params, and each variant applied on
# top of them (so a newcomer can run two experiments and diff them: see README, "Dataset versions").
VARIANTS = [{}, {"generate_tasks": {"seed": 4}}]


def record_every_sample(params_path: str) -> None:
    """Every candidate sample verify_rounds may ask for, of every task, up to verify.max_candidates.
    Which tasks it asks depends on how the candidates ran in the sandbox, which can differ from
    machine to machine (a run near the time limit), so the cassette must not depend on it."""
    params = load_params(params_path)
    solving = params.generate_solutions
    tasks = read_table("data/generate_tasks/tasks.parquet", tables.TASKS)
    asked = solution_requests(tasks, solving, range(solving.samples_per_model, samples_cap(params.verify, solving)))
    answer_requests(asked, **shard_settings(params.llm, what="later candidate samples", reask=solving.reask,
                                            validator="synthsmith.stages.generate_solutions:check_solution"))


def main(params_file: str = "params.yaml") -> None:
    shipped = yaml.safe_load(Path(params_file).read_text())
    cassette = Path(shipped["llm"]["cassette"])
    cassette.unlink(missing_ok=True)
    author = DemoAuthor(Path(shipped["seeds"]["path"]))
    with StubServer(author.respond, served_model=f"{MODEL_NAME} (hand-written demo responses, not a model)") as server, \
            tempfile.TemporaryDirectory() as scratch:
        for number, variant in enumerate(VARIANTS):
            params = yaml.safe_load(Path(params_file).read_text())
            for section, knobs in variant.items():
                params[section] |= knobs
            # One cache for all variants: a request they share is recorded once.
            params["llm"] |= {"mode": "record", "cache_dir": f"{scratch}/llm-cache", "progress": False}
            params["llm"]["endpoints"]["default"] |= {"api_base": server.api_base, "concurrency": 1}
            recording = Path(scratch) / f"params-{number}.yaml"
            recording.write_text(yaml.safe_dump(params, sort_keys=False))
            seeds_flow(str(recording))
            for stage in (extract_features_flow, evolve_features_flow, generate_tasks_flow, generate_tests_flow,
                          generate_solutions_flow):
                stage(str(recording))
            record_every_sample(str(recording))
    print(f"{cassette}: {sum(1 for _ in cassette.open())} responses for {len(VARIANTS)} configurations")


if __name__ == "__main__":
    main(*sys.argv[1:])
