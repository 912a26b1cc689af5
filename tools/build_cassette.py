"""Rebuild data/shipped/cassette.jsonl from the hand-written demo author (tools/demo_author).

Runs the data stages up to verify_rounds in `record` mode through the real live path (litellm -> an
OpenAI-compatible server on 127.0.0.1 that answers with tools/demo_author/author.py), one request
at a time so the author's choices are reproducible. Run from the project root:  python tools/build_cassette.py
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
from flows.execute import execute_flow  # noqa: E402
from flows.extract_features import extract_features_flow  # noqa: E402
from flows.generate_solutions import generate_solutions_flow  # noqa: E402
from flows.generate_tasks import generate_tasks_flow  # noqa: E402
from flows.generate_tests import generate_tests_flow  # noqa: E402
from flows.seeds import seeds_flow  # noqa: E402
from flows.verify import verify_flow  # noqa: E402
from flows.verify_rounds import verify_rounds_flow  # noqa: E402
from tools.stub_server import StubServer  # noqa: E402

# The configurations the cassette answers offline: the shipped params, and each variant applied on
# top of them (so a newcomer can run two experiments and diff them: see README, "Dataset versions").
VARIANTS = [{}, {"generate_tasks": {"seed": 4}}]


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
            # execute and verify too: which tasks verify_rounds asks more candidates for depends on them
            for stage in (extract_features_flow, evolve_features_flow, generate_tasks_flow, generate_tests_flow,
                          generate_solutions_flow, execute_flow, verify_flow, verify_rounds_flow):
                stage(str(recording))
    print(f"{cassette}: {sum(1 for _ in cassette.open())} responses for {len(VARIANTS)} configurations")


if __name__ == "__main__":
    main(*sys.argv[1:])
