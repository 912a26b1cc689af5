"""A DVC remote in a local directory: `dvc push`, lose the cache and the outs, `dvc pull`; a fresh
clone diffs two dataset versions straight from the remote, then from its own cache (docs/remote.md)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from synthsmith.versions.diff import DiffError, diff_specs

pytestmark = pytest.mark.slow  # git and DVC subprocesses

GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.invalid", "DVC_NO_ANALYTICS": "1", "GIT_CONFIG_NOSYSTEM": "1"}


def _run(cwd: Path, *command: str) -> str:
    done = subprocess.run(command, cwd=cwd, env=os.environ | GIT_ENV, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(command)}: {done.stdout}{done.stderr}"
    return done.stdout


def _git(cwd: Path, *args: str) -> str:
    return _run(cwd, "git", *args)


def _dvc(cwd: Path, *args: str) -> str:
    return _run(cwd, sys.executable, "-m", "dvc", *args)


def _write_version(repo: Path, ids: list[str], answer: str) -> None:
    export = repo / "data" / "export"
    export.mkdir(parents=True, exist_ok=True)
    pl.DataFrame({"task_id": ids, "style": ["atcoder"] * len(ids), "answer": [answer] * len(ids)}
                 ).write_parquet(export / "sft.parquet")
    pl.DataFrame({"task_id": ids, "tests": [[{"input": i, "output": answer}] for i in ids]}
                 ).write_parquet(export / "rl.parquet")


def _digests(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


@pytest.fixture(scope="module")
def pushed(tmp_path_factory):
    """A git + DVC repo with a local-directory default remote and two committed, pushed versions
    of data/export (v1: t1, t2; v2: t2 changed, t3). Returns (repo, remote, v2 file digests)."""
    base = tmp_path_factory.mktemp("remote")
    repo, remote = base / "repo", base / "remote"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    _dvc(repo, "init", "-q")
    _dvc(repo, "remote", "add", "-d", "local", str(remote))  # written to .dvc/config, committed below
    for version, (ids, answer) in enumerate([(["t1", "t2"], "1"), (["t2", "t3"], "2")], start=1):
        _write_version(repo, ids, answer)
        _dvc(repo, "add", "-q", "data/export")
        _git(repo, "add", "-A")
        _git(repo, "commit", "-qm", f"v{version}")
    _dvc(repo, "push", "-q", "--all-commits")
    return repo, remote, _digests(repo / "data" / "export")


def test_push_pull_round_trip(pushed):
    repo, _, v2 = pushed
    assert "in sync" in _dvc(repo, "status", "--cloud")
    # Lose the local cache and the outs; pull brings back the same bytes.
    shutil.rmtree(repo / ".dvc" / "cache")
    shutil.rmtree(repo / "data" / "export")
    _dvc(repo, "pull", "-q")
    assert _digests(repo / "data" / "export") == v2
    assert "in sync" in _dvc(repo, "status", "--cloud")


def test_fresh_clone_diffs_versions_from_the_remote(pushed, tmp_path):
    repo, remote, v2 = pushed
    clone = tmp_path / "clone"
    _git(tmp_path, "clone", "-q", str(repo), str(clone))
    assert not (clone / ".dvc" / "cache").exists()
    # Without a pull, diff streams both versions from the default remote (and caches nothing).
    expected = (["t3"], ["t1"], ["t2"])
    assert _ids(diff_specs("HEAD~1", "HEAD", clone)) == expected
    assert not [p for p in (clone / ".dvc" / "cache").rglob("*") if p.is_file()]
    away = tmp_path / "remote-away"
    remote.rename(away)
    try:
        # The remote unreachable and nothing cached: one clear line naming the revision.
        with pytest.raises(DiffError, match=r"HEAD~1 \(commit [0-9a-f]{7}\): data/export(/sft\.parquet)? "
                                            r"is tracked by DVC.*dvc fetch"):
            diff_specs("HEAD~1", "HEAD", clone)
        away.rename(remote)
        _dvc(clone, "pull", "-q", "--all-commits")
        assert _digests(clone / "data" / "export") == v2
        remote.rename(away)  # now everything comes from the clone's own cache
        assert _ids(diff_specs("HEAD~1", "HEAD", clone)) == expected
    finally:
        if away.exists():
            away.rename(remote)


def _ids(result: dict) -> tuple:
    tasks = result["tasks"]
    return tasks["added_ids"], tasks["removed_ids"], tasks["changed_ids"]
