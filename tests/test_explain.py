"""`synthsmith explain TASK_ID`: one task's lineage from the versioned tables."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from synthsmith.cli import app
from synthsmith.contract import tables
from synthsmith.versions.diff import DiffError
from synthsmith.versions.explain import ExplainError, explain, render_text

GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.invalid", "DVC_NO_ANALYTICS": "1", "GIT_CONFIG_NOSYSTEM": "1"}
KEPT, DISCARDED, HYGIENE, PLAN_DROPPED = "task-00000", "task-00002", "task-00003", "task-00001"
WRITE_DROPPED = "task-00004"
BINARY_SEARCH, STACK, MONOTONIC = ("algorithm/searching/binary search", "data_structures/linear/stack",
                                   "data_structures/linear/stack/monotonic stack")


def write(project: Path, stage: str, name: str, rows: list[dict]) -> None:
    table = tables.STAGE_OUTPUTS[stage][name]
    directory = project / "data" / stage
    directory.mkdir(parents=True, exist_ok=True)
    tables.conform(pl.DataFrame(rows, schema=table.columns), table).write_parquet(directory / f"{name}.parquet")


def task(task_id: str, title: str) -> dict:
    return {"task_id": task_id, "style": "codeforces", "title": title, "statement": f"# {title}\n\nAdd two numbers.",
            "entry_point": None, "features": ["binary search", "stack"], "integration_strategy": "Search, then stack.",
            "tokens": 40}


def inputs_of(task_id: str) -> list[dict]:
    return [{"task_id": task_id, "test_id": f"{task_id}-p00{i}", "input": f"{i} {i}", "description": desc,
             "generator": gen, "size_weight": 1, "semantic_weight": w, "weight": w, "validation": validation}
            for i, (desc, gen, w, validation) in enumerate([("small example", "prompt", 1, "valid"),
                                                            ("boundary", "tool", 3, "validator_failed")])]


def solution(task_id: str, model: int, sample: int) -> dict:
    return {"task_id": task_id, "solution_id": f"{task_id}-m{model}s{sample}", "model": f"demo/model-{model}",
            "sample": sample, "reasoning": "Add.", "code": "print(sum(map(int, input().split())))"}


def runs(task_id: str, solution_id: str, outputs: list[str | None]) -> list[dict]:
    """One EXECUTIONS row per test; None is a timeout."""
    return [{"task_id": task_id, "solution_id": solution_id, "test_id": f"{task_id}-p00{i}",
             "status": "ok" if out is not None else "timeout", "output": out, "stderr": "", "exit_code": 0,
             "wall_ms": 1.0} for i, out in enumerate(outputs)]


def verdict(task_id: str, outcome: str, reason: str | None, candidates: int, golden: str | None = None) -> dict:
    golden_tests = [{"test_id": f"{task_id}-p000", "expected_output": "0"}] if golden else []
    return {"task_id": task_id, "kept": outcome == "kept", "golden_solution_id": golden, "golden_tests": golden_tests,
            "reason": reason, "outcome": outcome, "candidates": candidates}


def make_project(project: Path) -> Path:
    """generate_tasks sampled 5 subtrees: task-00001 dropped while planning, task-00004 while writing,
    task-00003 by hygiene; task-00000 kept in round 0 (3 candidates, golden cluster of 2); task-00002
    undecided in round 0, discarded after round 1."""
    write(project, "seeds", "seeds", [{"seed_id": "seed-001", "title": "Harvest Ledger", "statement": "s",
                                       "solution": "c", "io": "stdio", "entry_point": None, "source": "shipped"}])
    write(project, "extract_features", "answers", [{"seed_id": "seed-001", "status": "ok", "features_json": json.dumps(
        {"algorithm": {"Searching": ["Binary Search"]}, "data_structures": {"linear": ["stack"]}})}])
    write(project, "evolve_features", "pool", [
        {"category": "algorithm", "subcategory": "searching", "leaf": "binary search",
         "path": "algorithm/searching/binary search", "count": 1, "origin": "extracted", "round": 0},
        {"category": "data_structures", "subcategory": "linear", "leaf": "stack",
         "path": "data_structures/linear/stack", "count": 1, "origin": "extracted", "round": 0},
        {"category": "data_structures", "subcategory": "linear", "leaf": "monotonic stack",
         "path": "data_structures/linear/stack/monotonic stack", "count": 0, "origin": "depth", "round": 1}])
    write(project, "generate_tasks", "tasks", [task(KEPT, "Two Sums"), task(DISCARDED, "Hard Sums")])
    write(project, "generate_tasks", "task_features", [  # the plans select 2 of 3 sampled; none for PLAN_DROPPED
        {"task_id": t, "path": p, "sampled": True, "selected": p != STACK and t != PLAN_DROPPED}
        for t in (KEPT, PLAN_DROPPED, DISCARDED, HYGIENE, WRITE_DROPPED) for p in (BINARY_SEARCH, STACK, MONOTONIC)])
    write(project, "generate_tasks", "dropped", [
        {"task_id": PLAN_DROPPED, "title": None, "reason": "plan_missing_keys", "step": "plan"},
        {"task_id": WRITE_DROPPED, "title": "Short Sums", "reason": "too_short", "step": "write"},
        {"task_id": HYGIENE, "title": "Two Sums Again", "reason": "near_duplicate", "against": "tasks",
         "matched": KEPT, "score": 0.91, "step": "hygiene"}])
    write(project, "generate_tasks", "funnel", [
        {"stage": "generate_tasks", "metric": m, "value": v}
        for m, v in (("in", 5), ("dropped:near_duplicate", 1), ("dropped:plan_missing_keys", 1),
                     ("dropped:too_short", 1), ("out", 2))])
    write(project, "generate_tests", "tests", inputs_of(KEPT) + inputs_of(DISCARDED))
    write(project, "generate_solutions", "solutions", [solution(KEPT, 0, 0), solution(KEPT, 0, 1), solution(KEPT, 1, 0),
                                                       solution(DISCARDED, 0, 0), solution(DISCARDED, 1, 0)])
    write(project, "execute", "executions",
          runs(KEPT, f"{KEPT}-m0s0", ["0", "6"]) + runs(KEPT, f"{KEPT}-m0s1", ["0", None])
          + runs(KEPT, f"{KEPT}-m1s0", ["0", "6 "])  # same vote key as "6"
          + runs(DISCARDED, f"{DISCARDED}-m0s0", ["0", "6"]) + runs(DISCARDED, f"{DISCARDED}-m1s0", ["1", "7"]))
    write(project, "verify", "verdicts", [verdict(KEPT, "kept", None, 3, f"{KEPT}-m0s0"),
                                          verdict(DISCARDED, "undecided", "weak_consensus", 2)])
    write(project, "verify_rounds", "solutions", [solution(DISCARDED, 0, 1), solution(DISCARDED, 1, 1)])
    write(project, "verify_rounds", "executions", runs(DISCARDED, f"{DISCARDED}-m0s1", ["2", "8"])
          + runs(DISCARDED, f"{DISCARDED}-m1s1", [None, "9"]))
    write(project, "verify_rounds", "verdicts", [verdict(KEPT, "kept", None, 3, f"{KEPT}-m0s0"),
                                                 verdict(DISCARDED, "discarded", "weak_consensus", 4)])
    write(project, "verify_rounds", "rounds", [
        {"round": r, "samples_per_model": r + 1, "tasks": 2 - r, "requests": 0, "candidates": 0, "runs": 0,
         "kept": 1 - r, "discarded": r, "undecided": 1 - r, "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0}
        for r in (0, 1)])
    write(project, "export", "sft", [{"task_id": KEPT, "style": "codeforces", "source": "demo:demo/model-0",
                                      "split": "train", "messages": [{"role": "user", "content": "Solve."},
                                                                     {"role": "assistant", "content": "print(0)"}]}])
    write(project, "export", "rl", [{
        "task_id": KEPT, "style": "codeforces", "data_source": "demo", "ability": "code",
        "prompt": [{"role": "user", "content": "Solve."}],
        "reward_model": {"style": "rule", "ground_truth": json.dumps(
            {"tests": [{"input": "0 0", "output": "0", "weight": 1}], "io": "stdio", "entry_point": None})},
        "extra_info": {"task_id": KEPT, "split": "train", "index": 0}}])
    return project


@pytest.fixture
def project(tmp_path):
    return make_project(tmp_path / "project")


def test_kept_task(project):
    lineage = explain(KEPT, repo=project)
    assert lineage["fate"] == {"status": "exported", "stage": "export", "reason": None,
                               "detail": "kept by verify_rounds after round 0, with 3 candidates"}
    stages = lineage["stages"]
    features = {f["path"]: f for f in stages["features"]["features"]}
    assert features[BINARY_SEARCH] == {
        "path": BINARY_SEARCH, "sampled": True, "selected": True, "origin": "extracted", "evolution_round": 0,
        "grew_from": None, "seeds": ["seed-001"]}  # found under the seed's "Searching"/"Binary Search", normalised
    assert features[MONOTONIC]["grew_from"] == STACK
    assert (features[STACK]["sampled"], features[STACK]["selected"]) == (True, False)
    assert stages["features"]["subtree_recorded"] and "not_recorded" not in stages["features"]
    assert stages["generate_tasks"]["hygiene"] == {"passed": True}
    assert [(t["generator"], t["validation"]) for t in stages["generate_tests"]["tests"]] == [
        ("prompt", "valid"), ("tool", "validator_failed")]
    candidates = {c["solution_id"]: c for c in stages["candidates"]["candidates"]}
    assert {s: (c["round"], c["cluster"]) for s, c in candidates.items()} == {
        f"{KEPT}-m0s0": (0, 1), f"{KEPT}-m1s0": (0, 1), f"{KEPT}-m0s1": (0, 2)}
    assert [(r["status"], r["class"]) for r in candidates[f"{KEPT}-m0s1"]["runs"]] == [("ok", "a"), ("timeout", None)]
    assert stages["verify"]["golden_cluster"] == 1 and stages["verify"]["golden_solution"]["sample"] == 0
    assert stages["export"]["rl"][0]["tests"] == 1 and stages["export"]["sft"][0]["split"] == "train"

    text = render_text(lineage)
    assert "fate: exported at export" in text
    rows = {line.split()[0] + " " + line.split()[1]: line.split() for line in text.splitlines()
            if line.startswith("  demo/")}
    assert rows["demo/model-0 0"][2:] == ["0", "aa", "1*", "golden"]
    assert rows["demo/model-0 1"][2:] == ["0", "aT", "2"]
    assert "golden tests (1): #1=0" in text
    assert "sampled subtree: 3 features; the plan selected 2" in text
    assert f"  [x] {BINARY_SEARCH}" in text and f"  [ ] {STACK}" in text
    tests = [line.split() for line in text.splitlines() if line.startswith(("  1 ", "  2 "))]
    assert [row[5] for row in tests] == ["valid", "validator_failed"]
    assert "not recorded" not in text.replace("not recorded: the plan's feature roles", "")


def test_task_discarded_after_rounds(project):
    lineage = explain(DISCARDED, repo=project)
    assert lineage["fate"]["status"] == "dropped" and lineage["fate"]["stage"] == "verify_rounds"
    assert lineage["fate"]["reason"] == "weak_consensus"
    verify = lineage["stages"]["verify"]
    assert verify["first_round"]["outcome"] == "undecided" and verify["final"]["candidates"] == 4
    assert verify["rounds"] == 2
    rounds = {c["solution_id"]: c["round"] for c in lineage["stages"]["candidates"]["candidates"]}
    assert rounds == {f"{DISCARDED}-m0s0": 0, f"{DISCARDED}-m1s0": 0, f"{DISCARDED}-m0s1": 1, f"{DISCARDED}-m1s1": 1}
    assert lineage["stages"]["candidates"]["clusters"] == {1: 1, 2: 1, 3: 1, 4: 1}  # nobody agrees
    assert lineage["stages"]["export"]["sft"] == []
    assert "discarded by verify_rounds after round 1, with 4 candidates: weak_consensus" in render_text(lineage)


def test_task_dropped_by_hygiene(project):
    lineage = explain(HYGIENE, repo=project)
    assert lineage["fate"]["stage"] == "generate_tasks" and lineage["fate"]["reason"] == "near_duplicate"
    assert lineage["stages"]["generate_tasks"]["hygiene"] == {"passed": False, "reason": "near_duplicate",
                                                              "against": "tasks", "matched": KEPT, "score": 0.91}
    assert set(lineage["stages"]) == {"features", "generate_tasks"}  # later stages never saw it
    assert lineage["stages"]["generate_tasks"]["plan"] == {"selected_paths": [BINARY_SEARCH, MONOTONIC]}
    text = render_text(lineage)
    assert f"DROPPED: near_duplicate against tasks item {KEPT} (score 0.910)" in text
    assert "later stages never saw it" in text


def test_task_dropped_while_planning(project):
    lineage = explain(PLAN_DROPPED, repo=project)
    assert lineage["fate"] == {"status": "dropped", "stage": "generate_tasks", "step": "plan",
                               "reason": "plan_missing_keys",
                               "detail": "dropped while planning: the plan was rejected (plan_missing_keys)"}
    features = lineage["stages"]["features"]["features"]
    assert [(f["path"], f["sampled"], f["selected"]) for f in features] == [
        (BINARY_SEARCH, True, False), (STACK, True, False), (MONOTONIC, True, False)]
    assert lineage["stages"]["features"]["seeds"] == [{"seed_id": "seed-001", "title": "Harvest Ledger"}]
    tasks = lineage["stages"]["generate_tasks"]
    assert tasks["plan"] == {"rejected": "plan_missing_keys"} and tasks["statement"] is None
    text = render_text(lineage)
    assert "sampled subtree: 3 features; no plan" in text and f"  [ ] {BINARY_SEARCH}" in text
    assert "REJECTED: plan_missing_keys" in text and "not written: the plan was rejected" in text
    assert "which planning or writing check" not in text


def test_task_dropped_while_writing(project):
    lineage = explain(WRITE_DROPPED, repo=project)
    assert lineage["fate"]["step"] == "write" and lineage["fate"]["reason"] == "too_short"
    assert lineage["fate"]["detail"] == "dropped while writing: the statement was rejected (too_short)"
    tasks = lineage["stages"]["generate_tasks"]
    assert tasks["plan"] == {"selected_paths": [BINARY_SEARCH, MONOTONIC]}
    assert tasks["statement"] == {"title": "Short Sums", "rejected": "too_short"} and tasks["hygiene"] is None
    text = render_text(lineage)
    assert "title: Short Sums" in text and "REJECTED: too_short" in text and "  not reached" in text


def test_a_version_from_before_the_drops_subtrees_and_verdicts_were_kept(project):
    """Older tables: dropped.parquet with hygiene drops only and no step, task_features with the
    written tasks' selected paths only, tests.parquet with no validation."""
    data = project / "data"
    for path, drop in (("generate_tasks/dropped", ["step"]), ("generate_tasks/task_features", ["sampled", "selected"]),
                       ("generate_tests/tests", ["validation"])):
        frame = pl.read_parquet(data / f"{path}.parquet").drop(drop)
        if path.endswith("dropped"):
            frame = frame.filter(pl.col("task_id") == HYGIENE)
        if path.endswith("task_features"):
            frame = frame.filter(pl.col("task_id").is_in([KEPT, DISCARDED]) & (pl.col("path") != STACK))
        frame.write_parquet(data / f"{path}.parquet")
    planned = explain(PLAN_DROPPED, repo=project)
    assert planned["fate"]["stage"] == "generate_tasks" and planned["fate"]["reason"] is None
    assert "plan_missing_keys 1, too_short 1" in planned["fate"]["detail"]
    assert "near_duplicate" not in planned["fate"]["detail"]  # hygiene drops are listed, so not this one's
    assert "which planning or writing check dropped this task" in render_text(planned)
    text = render_text(explain(KEPT, repo=project))
    assert "not recorded: the feature subtree sampled for this task" in text
    assert "not recorded: the input validator's verdict per input" in text
    assert f"  {BINARY_SEARCH}" in text and "[x]" not in text
    hygiene = explain(HYGIENE, repo=project)
    assert hygiene["fate"]["step"] == "hygiene" and "its selected features" in render_text(hygiene)


def test_unknown_task_is_one_line_exit_2(project):
    for task_id, similar in (("task-0002", "task-00002"), ("no-such-task", None)):
        out = CliRunner().invoke(app, ["explain", task_id, "--repo", str(project)])
        assert out.exit_code == 2
        assert out.stderr.count("\n") == 1 and out.stderr.startswith(f"error: {task_id}: no such task in workspace")
        assert (f"similar: {similar}" in out.stderr) if similar else ("similar" not in out.stderr)


def test_missing_tables_is_one_line_exit_2(tmp_path):
    out = CliRunner().invoke(app, ["explain", KEPT, "--repo", str(tmp_path)])
    assert out.exit_code == 2 and out.stderr.count("\n") == 1
    assert "no data/generate_tasks/tasks.parquet" in out.stderr


def test_cli_text_and_json(project):
    text = CliRunner().invoke(app, ["explain", KEPT, "--repo", str(project)])
    assert text.exit_code == 0, text.output
    sections = [line for line in text.stdout.splitlines() if line.startswith("== ")]
    assert [s.split(" (")[0].split(":")[0] for s in sections] == [
        "== seeds and features", "== plan", "== statement and style", "== hygiene", "== test inputs",
        "== candidates", "== verdict", "== export"]
    as_json = CliRunner().invoke(app, ["explain", KEPT, "--repo", str(project), "--json"])
    assert as_json.exit_code == 0, as_json.output
    lineage = json.loads(as_json.stdout)
    assert lineage["version"]["kind"] == "workspace" and lineage["fate"]["status"] == "exported"
    assert lineage["stages"]["verify"]["final"]["golden_tests"] == [{"test_id": f"{KEPT}-p000", "expected_output": "0"}]
    # --rev accepts a project directory, like diff's sides
    other = CliRunner().invoke(app, ["explain", KEPT, "--rev", str(project), "--json"])
    assert json.loads(other.stdout)["version"]["kind"] == "directory"


# --- a git revision of a scratch git + DVC repository -------------------------------------------


def _run(cwd: Path, *command: str) -> None:
    done = subprocess.run(command, cwd=cwd, env=os.environ | GIT_ENV, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(command)}: {done.stdout}{done.stderr}"


@pytest.mark.slow
def test_git_revision(tmp_path):
    """v1 has the tables as above; v2 (HEAD) discards the kept task. Explained at HEAD~1 and HEAD,
    then at HEAD~1 with its data gone from the DVC cache."""
    repo = make_project(tmp_path / "repo")
    dvc = [sys.executable, "-m", "dvc"]
    _run(repo, "git", "init", "-q", "-b", "main")
    _run(repo, *dvc, "init", "-q")
    stage_dirs = sorted(str(p.relative_to(repo)) for p in (repo / "data").iterdir())
    _run(repo, *dvc, "add", "-q", *stage_dirs)
    _run(repo, "git", "add", "-A")
    _run(repo, "git", "commit", "-qm", "v1")
    write(repo, "verify_rounds", "verdicts", [verdict(KEPT, "discarded", "contested_consensus", 3),
                                              verdict(DISCARDED, "discarded", "weak_consensus", 4)])
    _run(repo, *dvc, "add", "-q", "data/verify_rounds")
    _run(repo, "git", "commit", "-qam", "v2")

    before, after = explain(KEPT, "HEAD~1", repo), explain(KEPT, "HEAD", repo)
    assert before["version"]["kind"] == "git" and before["fate"]["status"] == "exported"
    assert after["fate"]["reason"] == "contested_consensus"
    out = CliRunner().invoke(app, ["explain", "task-09", "--rev", "HEAD~1", "--repo", str(repo)])
    assert out.exit_code == 2 and "HEAD~1 (commit" in out.stderr

    cache = repo / ".dvc" / "cache"
    shutil.rmtree(cache)
    with pytest.raises(DiffError) as caught:
        explain(KEPT, "HEAD~1", repo)
    assert "dvc fetch" in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(ExplainError):  # the workspace still has its files
        explain("task-09", None, repo)
