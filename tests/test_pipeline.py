"""The flows end to end on a tiny seed subset, and `dvc repro` on the shipped demo.

Both run against one real Prefect server on loopback (started once for the session).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml

pytestmark = pytest.mark.slow  # the flows and `dvc repro` end to end on a real Prefect server

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tools")]

from tools.project_copy import copy_project, run_data_flows  # noqa: E402


@pytest.fixture
def tiny_project(tmp_path, monkeypatch):
    project = copy_project(tmp_path / "project")
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["seeds"]["limit"] = 5
    params["evolve_features"]["rounds"] = 1
    params["generate_tasks"] |= {"num_tasks": 4, "style_mix": {"codeforces": 0.5, "atcoder": 0.25, "leetcode": 0.25}}
    params["generate_solutions"]["samples_per_model"] = 4
    params["llm"]["cassette"] = "tiny-cassette.jsonl"
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    monkeypatch.chdir(project)
    return project


def test_flows_record_then_replay_the_same_dataset(prefect_server, tiny_project):
    from demo_author.author import DemoAuthor

    from tools.stub_server import StubServer

    params = yaml.safe_load(Path("params.yaml").read_text())
    with StubServer(DemoAuthor(Path("data/shipped/seeds.jsonl")).respond) as server:
        params["llm"] |= {"mode": "record"}
        params["llm"]["endpoints"]["default"] |= {"api_base": server.api_base, "concurrency": 1}
        Path("record.yaml").write_text(yaml.safe_dump(params))
        run_data_flows("record.yaml")
        calls = len(server.requests)
    recorded = {name: pl.read_parquet(f"data/{name}.parquet") for name in
                ("generate_tasks/tasks", "generate_tests/tests", "generate_solutions/solutions", "verify/verdicts",
                 "verify_rounds/solutions", "verify_rounds/verdicts", "verify_rounds/rounds")}
    assert calls == sum(1 for _ in Path("tiny-cassette.jsonl").open())
    assert recorded["generate_tasks/tasks"].height >= 2
    assert recorded["verify/verdicts"]["kept"].sum() >= 1

    for stage in ("generate_tasks", "generate_tests", "generate_solutions", "verify", "verify_rounds"):
        shutil.rmtree(f"data/{stage}")
    shutil.rmtree(".synthsmith/prefect-results", ignore_errors=True)  # replay must not lean on the shard cache
    run_data_flows()  # replay mode, from the cassette just recorded
    for name, frame in recorded.items():
        assert pl.read_parquet(f"data/{name}.parquet").equals(frame), name
    metrics = json.loads(Path("reports/metrics.json").read_text())
    assert metrics["tasks"]["verified"] == int(recorded["verify_rounds/verdicts"]["kept"].sum())
    sft = pl.read_parquet("data/export/sft.parquet")
    assert sft.height == metrics["tasks"]["verified"]
    assert [m["role"] for m in sft["messages"][0]] == ["user", "assistant"]

    # Live mode against the same scripted server, which now also fails now and then: the gateway
    # retries through every fault and the dataset comes out the same (faulted requests never reach
    # the author, so its answers keep their order).
    faults = {3: "503", 10: "429", 20: "drop", 30: "malformed", 40: "empty"}
    with StubServer(DemoAuthor(Path("data/shipped/seeds.jsonl")).respond, faults=faults, retry_after_s=0.05) as server:
        params["llm"] |= {"mode": "live", "cache_dir": ".synthsmith/live-cache"}
        params["llm"]["endpoints"]["default"] |= {"api_base": server.api_base, "concurrency": 1}
        Path("live.yaml").write_text(yaml.safe_dump(params))
        for stage in ("extract_features", "evolve_features", "generate_tasks", "generate_tests",
                      "generate_solutions", "verify", "verify_rounds"):
            shutil.rmtree(f"data/{stage}")
        run_data_flows("live.yaml")
        assert [kind for _, kind in server.faults_served] == list(faults.values())
        assert len(server.requests) == calls + len(faults)
    for name, frame in recorded.items():
        assert pl.read_parquet(f"data/{name}.parquet").equals(frame), name
    llm = json.loads(Path("reports/metrics.json").read_text())["llm"]["total"]
    assert (llm["live_calls"] + llm["reasks"], llm["retries"]) == (calls, len(faults))  # every call, every fault


def test_replay_miss_is_a_clear_error_and_writes_nothing(prefect_server, tiny_project):
    Path("tiny-cassette.jsonl").write_text("")
    from flows import extract_features, seeds
    from synthsmith.llm.gateway import ReplayMiss

    seeds.seeds_flow()
    with pytest.raises(ReplayMiss, match=r"replay miss: .*tiny-cassette.jsonl.*model demo/feature-extractor"):
        extract_features.extract_features_flow()
    assert not Path("data/extract_features").exists()


def _stage(project: Path, stage: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", f"flows.{stage}"], cwd=project, capture_output=True, text=True,
                          env=os.environ | (env or {}))


@pytest.mark.parametrize("edit, message", [
    (lambda p: p["generate_tasks"]["style_mix"].update(codeforces=0.5), "generate_tasks.style_mix"),
    (lambda p: p["execute"].update(time_limit_s=-1), "execute.time_limit_s"),
    (lambda p: p["seeds"].update(sorce="file"), "seeds.sorce"),
])
def test_bad_params_fail_with_one_line_naming_the_key(tmp_path, edit, message):
    project = copy_project(tmp_path / "project")
    params = yaml.safe_load((project / "params.yaml").read_text())
    edit(params)
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    result = _stage(project, "seeds")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and message in result.stderr, result.stderr
    assert not (project / "data" / "seeds").exists()


def test_bad_seed_file_fails_with_one_line_naming_the_file(tmp_path, prefect_server):
    project = copy_project(tmp_path / "project")
    (project / "data/shipped/seeds.jsonl").write_text('{"seed_id": "s1", "statement": "x", "solution": "y"}\n{oops\n')
    result = _stage(project, "seeds")
    assert result.returncode == 2, result.stderr
    # Prefect logs the flow run around it (and may flush events after it): one error line, naming the file.
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "data/shipped/seeds.jsonl" in errors[0], result.stderr
    assert not (project / "data" / "seeds").exists()


GIT_USER = ("-c", "user.email=t@example.invalid", "-c", "user.name=t")
DOWNSTREAM_OF_TASKS = {"generate_tasks", "generate_tests", "generate_solutions", "execute", "verify", "verify_rounds",
                       "export", "report"}


def _run(project: Path, *command: str) -> subprocess.CompletedProcess:
    env = os.environ | {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(list(command), cwd=project, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    return done


def _stages_run(dvc_output: str) -> set[str]:
    return {line.split("'")[1] for line in dvc_output.splitlines() if line.startswith("Running stage")}


def _numbers(a: dict, b: dict, prefix: str = ""):
    """(dotted key, (a's value, b's value)) for every number in both, as `dvc metrics diff` names them."""
    for key in a.keys() & b.keys():
        if isinstance(a[key], dict) and isinstance(b[key], dict):
            yield from _numbers(a[key], b[key], f"{prefix}{key}.")
        elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a[key], b[key])):
            yield f"{prefix}{key}", (a[key], b[key])


def _back_to_commit(project: Path) -> None:
    _run(project, "git", "checkout", "-q", "--", ".")
    _run(project, "dvc", "checkout", "-q", "--force")


@pytest.fixture(scope="module")
def demo_repo(tmp_path_factory, prefect_server):
    """The shipped project in a git repository, reproduced by `dvc repro` and committed."""
    project = copy_project(tmp_path_factory.mktemp("demo") / "project")
    _shrink_training(project)
    _run(project, "git", "init", "-q")
    _run(project, "git", "add", "-A")
    _run(project, "git", *GIT_USER, "commit", "-qm", "project")
    _run(project, "dvc", "repro")
    assert json.loads((project / "reports/metrics.json").read_text())["tasks"]["verified"] >= 10
    _assert_goldens_are_correct_candidates(project)
    _assert_rounds_asked_only_new_samples_of_undecided_tasks(project)
    _run(project, "git", "add", "-A")
    _run(project, "git", *GIT_USER, "commit", "-qm", "demo run")
    return project


def _shrink_training(project: Path) -> None:
    """The whole DAG still runs, training and evaluation included, with the fewest steps and tokens."""
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train_sft"] |= {"steps": 1}
    params["train_rl"] |= {"steps": 1, "max_completion_length": 16}
    params["evaluate"] |= {"heldout_limit": 1, "humaneval_limit": 1, "samples": 1, "max_new_tokens": 8}
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_dvc_repro_twice_is_a_no_op_and_a_knob_reruns_only_its_stages(demo_repo):
    project = demo_repo
    try:
        assert "Running stage" not in _run(project, "dvc", "repro").stdout

        params = yaml.safe_load((project / "params.yaml").read_text())
        params["generate_tasks"]["min_tokens"] = 400  # drops some tasks; the rest replay from the cassette
        (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        ran = _stages_run(_run(project, "dvc", "repro", "report").stdout)  # the data; training is tested below
        assert "generate_tasks" in ran and ran <= DOWNSTREAM_OF_TASKS, ran
        assert "generate_tasks.min_tokens" in _run(project, "dvc", "params", "diff").stdout
        assert "tasks.generated" in _run(project, "dvc", "metrics", "diff").stdout
    finally:
        _back_to_commit(project)


PLOTS = {"funnel", "style_mix", "feature_growth", "agreement_histogram"}
TRAINING_PLOTS = {"train_sft_loss", "train_rl_loss", "train_rl_reward", "evaluation"}  # the seed4 run stops at report


def test_two_experiments_diff_with_synthsmith_dvc_metrics_and_dvc_plots(demo_repo):
    """The newcomer's path: a second experiment with another task-sampling seed (the shipped
    cassette holds both), then every way of comparing it with the committed run."""
    project = demo_repo
    try:
        ran = _stages_run(_run(project, "dvc", "exp", "run", "-n", "seed4", "-S", "generate_tasks.seed=4",
                               "report").stdout)
        assert ran == DOWNSTREAM_OF_TASKS, ran
        metrics = {"HEAD": json.loads(_run(project, "git", "show", "HEAD:reports/metrics.json").stdout),
                   "seed4": json.loads((project / "reports/metrics.json").read_text())}

        diff = json.loads(_run(project, "synthsmith", "diff", "HEAD", "seed4", "--json").stdout)
        tasks = diff["tasks"]
        assert all(type(tasks[key]) is int for key in ("added", "removed", "changed"))
        assert tasks["added"] + tasks["removed"] + tasks["changed"] > 0 and not diff["identical"]
        assert diff["metrics"]["tasks"]["verified"] == {
            "a": metrics["HEAD"]["tasks"]["verified"], "b": metrics["seed4"]["tasks"]["verified"],
            "delta": metrics["seed4"]["tasks"]["verified"] - metrics["HEAD"]["tasks"]["verified"]}
        same = json.loads(_run(project, "synthsmith", "diff", "seed4", "seed4", "--json").stdout)
        assert same["identical"] and (same["tasks"]["added"], same["tasks"]["removed"], same["tasks"]["changed"]) == (0, 0, 0)
        assert "added" in _run(project, "synthsmith", "diff", "HEAD", "seed4").stdout  # the readable table

        metrics_diff = json.loads(_run(project, "dvc", "metrics", "diff", "HEAD", "seed4", "--json").stdout)
        changed = {key: pair for key, pair in _numbers(metrics["HEAD"], metrics["seed4"]) if pair[0] != pair[1]}
        assert changed and changed.keys() <= metrics_diff["reports/metrics.json"].keys()
        for key, (old, new) in changed.items():
            assert (metrics_diff["reports/metrics.json"][key]["old"], metrics_diff["reports/metrics.json"][key]["new"]) == (old, new)

        plots = json.loads(_run(project, "dvc", "plots", "diff", "HEAD", "seed4", "--json").stdout)["data"]
        assert set(plots) == PLOTS | TRAINING_PLOTS  # each plot once: no table is also drawn as a default plot
        for name, (plot,) in ((name, plots[name]) for name in PLOTS):
            assert sorted(plot["revisions"]) == ["HEAD", "seed4"], name
            assert {row["rev"] for row in plot["content"]["data"]["values"]} == {"HEAD", "seed4"}, name
        histogram = plots["agreement_histogram"][0]["content"]["data"]["values"]
        for rev, numbers in metrics.items():  # every generated task is in one bin of its experiment's histogram
            assert sum(int(row["tasks"]) for row in histogram if row["rev"] == rev) == numbers["tasks"]["generated"]
    finally:
        _back_to_commit(project)


def _assert_goldens_are_correct_candidates(project: Path) -> None:
    """The demo catalogue labels each hand-written candidate (correct, wrong, timeout, ...):
    every golden solution verification picked must be one labelled correct. (Tasks the catalogue
    built to fool the paper's vote, `expect_verified: false`, may be kept by the strict method,
    but only with a correct golden solution.)"""
    catalogue = {entry["title"]: entry for entry in
                 (yaml.safe_load(p.read_text()) for p in (project / "tools/demo_author/tasks").glob("*.yaml"))}
    tasks = pl.read_parquet(project / "data/generate_tasks/tasks.parquet")
    verdicts = pl.read_parquet(project / "data/verify_rounds/verdicts.parquet").join(tasks, on="task_id")
    for row in verdicts.iter_rows(named=True):
        entry = catalogue[row["title"]]
        if not row["kept"]:
            continue
        model, sample = row["golden_solution_id"].rsplit("-m", 1)[1].split("s")
        assert entry["candidates"][(int(model) * 4 + int(sample)) % len(entry["candidates"])]["kind"] == "correct", row


def _assert_rounds_asked_only_new_samples_of_undecided_tasks(project: Path) -> None:
    """The shipped demo takes a second round (offline, from the cassette): each round asks the
    tasks still undecided, for the next samples of each model only; what verify decided stays."""
    rounds = pl.read_parquet(project / "data/verify_rounds/rounds.parquet")
    first = pl.read_parquet(project / "data/verify/verdicts.parquet")
    final = pl.read_parquet(project / "data/verify_rounds/verdicts.parquet")
    added = pl.read_parquet(project / "data/verify_rounds/solutions.parquet")
    params = yaml.safe_load((project / "params.yaml").read_text())
    solving = params["generate_solutions"]
    first_samples, per_round = solving["samples_per_model"], params["verify_rounds"]["samples_per_model"]
    assert rounds.height >= 2 and rounds["tasks"][1] == (first["outcome"] == "undecided").sum() >= 1
    assert rounds["kept"][1:].sum() >= 1  # a task the first candidates could not decide was kept later
    assert rounds["undecided"][-1] == 0 and (final["outcome"] != "undecided").all()
    for number in range(1, rounds.height):
        assert rounds["tasks"][number] == rounds["undecided"][number - 1]
        assert rounds["requests"][number] == rounds["tasks"][number] * per_round * len(solving["models"])
    assert added["sample"].min() == first_samples  # earlier samples are reused, never asked again
    assert not added.select("solution_id").is_duplicated().any()
    decided = first.filter(pl.col("outcome") != "undecided")
    assert final.join(decided.select("task_id"), on="task_id").equals(decided)
    assert set(added["task_id"]) == set(first.filter(pl.col("outcome") == "undecided")["task_id"])


TRAINING = {"train_sft", "train_rl", "evaluate"}


def test_a_training_knob_reruns_training_only_and_experiments_compare_its_metrics(demo_repo):
    project = demo_repo
    try:
        ran = _stages_run(_run(project, "dvc", "exp", "run", "-n", "lr", "-S", "train_sft.learning_rate=5e-5").stdout)
        assert ran == TRAINING, ran
        shown = json.loads(_run(project, "dvc", "exp", "show", "--json").stdout)
        runs = {exp["name"] or exp["rev"]: exp for baseline in shown
                for exp in [baseline, *[e for experiment in baseline.get("experiments") or [] for e in experiment["revs"]]]}
        metrics = {name: exp["data"]["metrics"] for name, exp in runs.items() if name in {"workspace", "lr"}}
        for name in ("workspace", "lr"):
            assert metrics[name]["reports/train_sft/metrics.json"]["data"]["steps"] == 1, name
            assert "pass@1" in metrics[name]["reports/evaluate.json"]["data"]["humaneval"]["sft"], name
    finally:
        _back_to_commit(project)


def test_every_checkpoint_loads_offline_with_its_chat_template_and_generates(demo_repo):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    for stage in ("base_model", "train_sft", "train_rl"):
        directory = demo_repo / "data" / stage
        model = AutoModelForCausalLM.from_pretrained(directory, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
        prompt = tokenizer.apply_chat_template([{"role": "user", "content": "Print 1."}], add_generation_prompt=True,
                                               return_tensors="pt", return_dict=True)
        assert "<|im_start|>assistant" in tokenizer.decode(prompt["input_ids"][0])
        out = model.generate(**prompt, max_new_tokens=4, do_sample=False)
        assert out.shape[1] == prompt["input_ids"].shape[1] + 4 or out[0, -1] == tokenizer.eos_token_id, stage
