"""A Prefect server that dies mid-stage: one `error:` line within seconds, exit code 1, and the
shards finished before it are cached for the rerun against a new server."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from synthsmith.runtime.server import stop_server, wait_healthy

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


def _start_server(home: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    home.mkdir()
    server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                               "--port", str(port), "--no-services", "--no-ui"],
                              env=os.environ | {"PREFECT_HOME": str(home)}, stdout=(home / "server.log").open("w"),
                              stderr=subprocess.STDOUT)
    api_url = f"http://127.0.0.1:{port}/api"
    wait_healthy(api_url, server, 180, home / "server.log")
    return server, api_url


def _stage(cwd: Path, api_url: str, delay_s: float) -> subprocess.Popen:
    env = os.environ | {"PREFECT_API_URL": api_url, "PREFECT_LOCAL_STORAGE_PATH": str(cwd / "results"),
                        "FAILURES_LOG": str(cwd / "calls.txt"), "FAILURES_DELAY_S": str(delay_s),
                        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-m", "failures_flow"], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _calls(cwd: Path) -> list[str]:
    path = cwd / "calls.txt"
    return path.read_text().split() if path.exists() else []


@pytest.mark.slow
def test_a_server_killed_mid_stage_is_one_line_and_the_rerun_reuses_finished_shards(tmp_path):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    server, api_url = _start_server(tmp_path / "home-a")
    try:
        stage = _stage(tmp_path, api_url, delay_s=120)
        deadline = time.monotonic() + 120
        while _calls(tmp_path) != ["0", "1"]:  # shard 1 finished (its result stored), shard 2 runs
            assert stage.poll() is None and time.monotonic() < deadline, stage.communicate()
            time.sleep(0.1)
        server.kill()
        killed = time.monotonic()
        stdout, stderr = stage.communicate(timeout=60)
        elapsed = time.monotonic() - killed
    finally:
        stop_server(server, grace_s=5)
    assert stage.returncode == 1, stderr
    assert elapsed < 30
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: the Prefect server at {api_url} stopped answering during stage failures_flow; "
                      "shards finished before are cached: start the server again (or unset PREFECT_API_URL) "
                      "and rerun `dvc repro`"], stderr
    assert stderr.rstrip().endswith(errors[0]) and "Traceback" not in stderr + stdout

    (tmp_path / "calls.txt").write_text("")
    server, api_url = _start_server(tmp_path / "home-b")
    try:
        stage = _stage(tmp_path, api_url, delay_s=0)
        stdout, stderr = stage.communicate(timeout=120)
    finally:
        stop_server(server, grace_s=5)
    assert stage.returncode == 0, stderr
    assert _calls(tmp_path) == ["1", "2"]  # shard 1 came from the cache
    assert re.search(r"Task run 'slow 1/3' - Finished in state Cached", stdout + stderr)


def test_a_server_that_does_not_answer_at_the_start_is_one_line(tmp_path):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        api_url = f"http://127.0.0.1:{probe.getsockname()[1]}/api"
    stage = _stage(tmp_path, api_url, delay_s=0)
    stdout, stderr = stage.communicate(timeout=120)
    assert stage.returncode == 1
    assert stderr.strip() == (f"error: no Prefect server answers at {api_url} (PREFECT_API_URL): start it, "
                              "or unset PREFECT_API_URL and the stage starts a temporary one")
    assert _calls(tmp_path) == []
