"""`synthsmith diff A B`: export directories, git revisions and DVC experiments."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from synthsmith.cli import app
from synthsmith.contract import tables
from synthsmith.versions.diff import DiffError, diff_specs, load_side, render_text, task_digests

GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.invalid", "DVC_NO_ANALYTICS": "1", "GIT_CONFIG_NOSYSTEM": "1"}


def sft_row(task_id: str, style: str = "codeforces", answer: str = "print(1)") -> dict:
    return {"task_id": task_id, "style": style, "source": "test:model", "split": "train",
            "messages": [{"role": "user", "content": f"Solve {task_id}."},
                         {"role": "assistant", "content": f"```python\n{answer}\n```"}]}


def rl_row(task_id: str, style: str = "codeforces", outputs: tuple[str, ...] = ("1",), index: int = 0) -> dict:
    tests = [{"input": str(i), "output": out, "weight": 1} for i, out in enumerate(outputs)]
    return {"task_id": task_id, "style": style, "data_source": "test", "ability": "code",
            "prompt": [{"role": "user", "content": f"Solve {task_id}."}],
            "reward_model": {"style": "rule", "ground_truth": json.dumps(
                {"tests": tests, "io": "stdio", "entry_point": None})},
            "extra_info": {"task_id": task_id, "split": "train", "index": index}}


def verification_round(tasks: int, kept: int, undecided: int) -> dict:
    return {"samples_per_model": 2, "tasks": tasks, "requests": 4 * tasks, "candidates": 4 * tasks, "runs": 40 * tasks,
            "kept": kept, "discarded": tasks - kept - undecided, "undecided": undecided, "prompt_tokens": 100 * tasks,
            "completion_tokens": 50 * tasks, "cost_usd": 0.01 * tasks}


def metrics(generated: int, verified: int, styles: dict[str, float], algorithm_leaves: int,
            mean_top_share: float, drop_reason: str | None = None) -> dict:
    rounds = {"0": verification_round(generated, verified, generated - verified)}
    if drop_reason:  # B: one more round, which discards what round 0 left
        rounds = {"0": verification_round(generated, verified - 1, generated - verified + 1),
                  "1": verification_round(generated - verified + 1, 1, 0)}
    return {
        "rounds": rounds,
        "tasks": {"generated": generated, "verified": verified, "keep_rate": round(verified / generated, 4)},
        "funnel": {"generate_tasks": {"in": generated + 1, "out": generated, "dropped:too_short": 1},
                   "verify": {"in": generated, "out": verified}
                   | ({f"dropped:{drop_reason}": generated - verified} if drop_reason else {})},
        "discard_reasons": {drop_reason: generated - verified} if drop_reason else {},
        "style_mix": {"generated": styles, "verified": styles},
        "features": {"leaves_before": 10, "leaves_after": algorithm_leaves + 5,
                     "per_category": {"algorithm": {"before": 6, "after": algorithm_leaves},
                                      "data_structures": {"before": 4, "after": 5}}},
        "labeling": {"labelled_tests": 40, "tied_tests": 2, "mean_top_share": mean_top_share},
        "execution": {"ok": 40},
        "golden_tests_per_task": 2.0,
        "llm": {"by_stage_and_model": {}, "total": {
            "requests": 10, "live_calls": 0, "retries": 0, "reasks": 0, "failed": 0, "prompt_tokens": 100,
            "completion_tokens": 50, "cost_usd": 0.5}},
    }


def write_export(directory: Path, sft: list[dict], rl: list[dict], metrics_json: dict | None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    tables.conform(pl.DataFrame(sft, schema=tables.SFT.columns), tables.SFT).write_parquet(directory / "sft.parquet")
    tables.conform(pl.DataFrame(rl, schema=tables.RL.columns), tables.RL).write_parquet(directory / "rl.parquet")
    if metrics_json is not None:
        (directory / "metrics.json").write_text(json.dumps(metrics_json, indent=2, sort_keys=True))
    return directory


@pytest.fixture
def two_versions(tmp_path):
    """A: t1, t2, t3. B: t1 removed, t2 the same, t3 with a different golden output, t4 new."""
    a = write_export(tmp_path / "a", [sft_row("t1"), sft_row("t2", "leetcode"), sft_row("t3")],
                     [rl_row("t1"), rl_row("t2", "leetcode"), rl_row("t3", outputs=("1", "2"))],
                     metrics(4, 3, {"codeforces": 0.75, "leetcode": 0.25}, 8, 0.9))
    b = write_export(tmp_path / "b", [sft_row("t2", "leetcode"), sft_row("t3"), sft_row("t4", "atcoder")],
                     [rl_row("t2", "leetcode"), rl_row("t3", outputs=("1", "3")), rl_row("t4", "atcoder")],
                     metrics(5, 3, {"atcoder": 0.2, "codeforces": 0.6, "leetcode": 0.2}, 11, 0.85,
                             drop_reason="golden_validation_disagree"))
    return a, b


def test_directories_tasks_and_metric_deltas(two_versions):
    a, b = two_versions
    result = diff_specs(str(a), str(b))
    tasks = result["tasks"]
    assert (tasks["added"], tasks["removed"], tasks["changed"], tasks["unchanged"]) == (1, 1, 1, 1)
    assert (tasks["added_ids"], tasks["removed_ids"], tasks["changed_ids"]) == (["t4"], ["t1"], ["t3"])
    assert tasks["changed_fields"] == {"t3": ["rl.reward_model"]}
    assert tasks["hashes"]["a"]["t2"] == tasks["hashes"]["b"]["t2"]
    assert not result["identical"]

    m = result["metrics"]
    assert m["tasks"]["keep_rate"] == {"a": 0.75, "b": 0.6, "delta": -0.15}
    assert m["tasks"]["generated"] == {"a": 4, "b": 5, "delta": 1}
    assert m["funnel"]["verify"]["out"] == {"a": 3, "b": 3, "delta": 0}
    assert m["funnel"]["verify"]["in"]["delta"] == 1
    # A drop reason only B has counts as 0 on A's side.
    assert m["funnel"]["verify"]["dropped:golden_validation_disagree"] == {"a": 0, "b": 2, "delta": 2}
    assert m["discard_reasons"]["golden_validation_disagree"] == {"a": 0, "b": 2, "delta": 2}
    # A style only B has: share 0 on A's side.
    assert m["style_mix"]["verified"]["atcoder"] == {"a": 0.0, "b": 0.2, "delta": 0.2}
    assert m["style_mix"]["verified"]["codeforces"]["delta"] == pytest.approx(-0.15)
    assert m["features"]["per_category"]["algorithm"]["after"] == {"a": 8, "b": 11, "delta": 3}
    assert m["features"]["per_category"]["data_structures"]["after"]["delta"] == 0
    assert m["labeling"]["mean_top_share"]["delta"] == pytest.approx(-0.05)
    assert m["llm"]["cost_usd"] == {"a": 0.5, "b": 0.5, "delta": 0.0}
    assert m["rounds"]["0"]["kept"] == {"a": 3, "b": 2, "delta": -1}
    assert m["rounds"]["1"]["tasks"] == {"a": None, "b": 3, "delta": None}  # a round only B took
    # From the export tables themselves (no metrics needed).
    assert result["export"]["style"]["atcoder"] == {"a": 0, "b": 1, "delta": 1}
    assert result["export"]["style"]["codeforces"] == {"a": 2, "b": 1, "delta": -1}


def test_readable_table(two_versions):
    a, b = two_versions
    text = render_text(diff_specs(str(a), str(b)))
    assert "tasks: 1 added, 1 removed, 1 changed, 1 unchanged (A 3, B 3)" in text
    assert "  + t4" in text and "  - t1" in text and "  ~ t3  (rl.reward_model)" in text
    rows = {line.split()[0]: line.split()[1:] for line in text.splitlines() if line.startswith(("tasks.", "funnel."))}
    assert rows["tasks.keep_rate"] == ["0.75", "0.6", "-0.15"]
    assert rows["funnel.verify.in"] == ["4", "5", "+1"]
    assert rows["funnel.verify.out"] == ["3", "3", "0"]
    assert "features.per_category.algorithm.after" in text  # changed, so shown
    assert "features.per_category.data_structures.after" not in text  # unchanged, hidden by default
    assert "features.per_category.data_structures.after" in render_text(diff_specs(str(a), str(b)), show_all=True)
    assert text.splitlines()[-1] == "changed"


def test_cli_json_shape(two_versions):
    a, b = two_versions
    out = CliRunner().invoke(app, ["diff", str(a), str(b), "--json"])
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout)
    assert {k: result["tasks"][k] for k in ("added", "removed", "changed")} == {"added": 1, "removed": 1, "changed": 1}
    assert all(type(result["tasks"][k]) is int for k in ("added", "removed", "changed"))
    assert set(result) >= {"a", "b", "tasks", "metrics", "identical"}
    assert result["a"]["kind"] == "directory" and result["a"]["metrics"] is True


def test_same_version_reports_no_change(two_versions):
    a, _ = two_versions
    result = diff_specs(str(a), str(a))
    assert result["identical"]
    assert (result["tasks"]["added"], result["tasks"]["removed"], result["tasks"]["changed"]) == (0, 0, 0)
    assert all(leaf["delta"] in (0, None) for leaf in _leaves(result["metrics"]))
    out = CliRunner().invoke(app, ["diff", str(a), str(a)])
    assert out.exit_code == 0
    assert "tasks: 0 added, 0 removed, 0 changed, 3 unchanged" in out.stdout
    assert out.stdout.rstrip().splitlines()[-1] == "no change"


def test_content_hash_ignores_row_and_column_order(two_versions):
    a, _ = two_versions
    frames = load_side(str(a)).tables
    shuffled = {name: frame.reverse().select(list(reversed(frame.columns))) for name, frame in frames.items()}
    def hashes(frames):
        return {task_id: digest for task_id, (digest, _) in task_digests(frames).items()}

    assert hashes(frames) == hashes(shuffled)


def test_export_dir_inside_a_project_finds_reports_metrics(tmp_path, two_versions):
    a, _ = two_versions
    project = tmp_path / "project"
    export = project / "data" / "export"
    export.mkdir(parents=True)
    for name in ("sft.parquet", "rl.parquet"):
        shutil.copy(a / name, export / name)
    (project / "reports").mkdir()
    shutil.copy(a / "metrics.json", project / "reports" / "metrics.json")
    for spec in (export, project):  # the export directory, or the checkout holding data/export
        side = load_side(str(spec))
        assert side.metrics["tasks"]["verified"] == 3 and set(side.tables) == {"sft", "rl"}
    assert diff_specs(str(export), str(a))["identical"]


def test_side_without_metrics_still_compares_tasks(tmp_path, two_versions):
    a, _ = two_versions
    bare = write_export(tmp_path / "bare", [sft_row("t1")], [rl_row("t1")], None)
    result = diff_specs(str(a), str(bare))
    assert result["b"]["metrics"] is False
    assert result["tasks"]["removed_ids"] == ["t2", "t3"]
    assert result["metrics"]["tasks"]["keep_rate"] == {"a": 0.75, "b": None, "delta": None}
    assert "B has no metrics.json" in render_text(result)


def test_unknown_revision_is_one_line_exit_2(tmp_path, monkeypatch):
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "commit", "-q", "--allow-empty", "-m", "empty")
    monkeypatch.chdir(tmp_path)
    out = CliRunner().invoke(app, ["diff", "HEAD", "no-such-rev"])
    assert out.exit_code == 2
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("error: ")
    assert "no-such-rev" in out.stderr


def _leaves(tree):
    if isinstance(tree, dict) and set(tree) == {"a", "b", "delta"}:
        yield tree
    elif isinstance(tree, dict):
        for value in tree.values():
            yield from _leaves(value)


# --- git revisions and DVC experiments in a scratch git + DVC repository ------------------------

MAKE = """\
import json, os
import polars as pl
import yaml

p = yaml.safe_load(open("params.yaml"))["make"]
ids = [f"t{i}" for i in range(p["first"], p["first"] + p["n"])]
os.makedirs("data/export", exist_ok=True)
os.makedirs("reports", exist_ok=True)
pl.DataFrame({"task_id": ids, "style": ["codeforces"] * len(ids),
              "messages": [[{"role": "assistant", "content": p["answer"]}] for _ in ids]}
             ).write_parquet("data/export/sft.parquet")
pl.DataFrame({"task_id": ids, "tests": [[{"input": "1", "output": "1", "weight": 1}] for _ in ids]}
             ).write_parquet("data/export/rl.parquet")
m = {"tasks": {"generated": p["n"] + 1, "verified": p["n"], "keep_rate": round(p["n"] / (p["n"] + 1), 4)},
     "funnel": {"verify": {"in": p["n"] + 1, "out": p["n"]}},
     "discard_reasons": {"weak_consensus": 1},
     "style_mix": {"generated": {"codeforces": 1.0}, "verified": {"codeforces": 1.0}},
     "features": {"leaves_before": 6, "leaves_after": 8 + p["n"],
                  "per_category": {"algorithm": {"before": 6, "after": 8 + p["n"]}}},
     "labeling": {"labelled_tests": p["n"], "tied_tests": 0, "mean_top_share": 1.0},
     "execution": {"ok": p["n"]},
     "golden_tests_per_task": 1.0}
json.dump(m, open("reports/metrics.json", "w"), indent=2, sort_keys=True)
"""


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, env=os.environ | GIT_ENV, check=True,
                          capture_output=True, text=True).stdout


def _dvc(cwd: Path, *args: str) -> str:
    env = os.environ | GIT_ENV
    done = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"dvc {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout


def _params(repo: Path, first: int, n: int, answer: str) -> None:
    (repo / "params.yaml").write_text(f"make:\n  first: {first}\n  n: {n}\n  answer: '{answer}'\n")


@pytest.fixture(scope="module")
def dvc_repo(tmp_path_factory):
    """v1: t0..t2; v2 (HEAD): t1..t3 with a different answer; experiment `wider` on HEAD: t1..t5."""
    repo = tmp_path_factory.mktemp("dvcrepo")
    _git(repo, "init", "-q", "-b", "main")
    _dvc(repo, "init", "-q")
    (repo / "make.py").write_text(MAKE)
    (repo / "dvc.yaml").write_text(textwrap.dedent(f"""\
        stages:
          make:
            cmd: {sys.executable} make.py
            deps: [make.py]
            params: [make]
            outs: [data/export]
            metrics:
              - reports/metrics.json:
                  cache: false
        """))
    _params(repo, 0, 3, "print(1)")
    _dvc(repo, "repro", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "v1")
    _params(repo, 1, 3, "print(2)")
    _dvc(repo, "repro", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "v2")
    _dvc(repo, "exp", "run", "-q", "-n", "wider", "-S", "make.n=5")  # (its results stay in the workspace)
    return repo


@pytest.mark.slow
def test_git_revisions(dvc_repo):
    result = diff_specs("HEAD~1", "HEAD", dvc_repo)
    assert result["a"]["kind"] == result["b"]["kind"] == "git"
    tasks = result["tasks"]
    assert (tasks["added_ids"], tasks["removed_ids"], tasks["changed_ids"]) == (["t3"], ["t0"], ["t1", "t2"])
    assert tasks["changed_fields"]["t1"] == ["sft.messages"]
    assert result["metrics"]["tasks"]["verified"] == {"a": 3, "b": 3, "delta": 0}
    assert diff_specs("HEAD", "main", dvc_repo)["identical"]
    # the CLI, from inside the repository
    out = CliRunner().invoke(app, ["diff", "HEAD~1", "HEAD", "--json", "--repo", str(dvc_repo)])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["tasks"]["changed"] == 2


@pytest.mark.slow
def test_experiment_name(dvc_repo):
    refs = _git(dvc_repo, "for-each-ref", "--format=%(refname)", "refs/exps/")
    head = _git(dvc_repo, "rev-parse", "HEAD").strip()
    assert f"refs/exps/{head[:2]}/{head[2:]}/wider" in refs.split()  # how DVC 3 stores experiments
    result = diff_specs("HEAD", "wider", dvc_repo)
    assert result["b"]["kind"] == "experiment"
    assert result["tasks"]["added_ids"] == ["t4", "t5"]
    assert result["tasks"]["changed"] == result["tasks"]["removed"] == 0
    assert result["metrics"]["tasks"]["verified"] == {"a": 3, "b": 5, "delta": 2}
    assert result["metrics"]["features"]["per_category"]["algorithm"]["after"]["delta"] == 2


@pytest.mark.slow
def test_revision_whose_data_is_not_in_the_cache(dvc_repo):
    cache = dvc_repo / ".dvc" / "cache"
    aside = dvc_repo / ".dvc" / "cache-aside"
    cache.rename(aside)
    try:
        with pytest.raises(DiffError) as caught:
            load_side("HEAD~1", dvc_repo)
        message = str(caught.value)
        assert "HEAD~1" in message and "data/export/sft.parquet" in message and "dvc fetch" in message
        assert "\n" not in message
    finally:
        shutil.rmtree(cache, ignore_errors=True)
        aside.rename(cache)
