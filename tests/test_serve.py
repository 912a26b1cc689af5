"""`synthsmith serve`: the pipeline as a Prefect deployment on a real server.

A scratch DVC project with one trivial stage (a tiny Prefect flow started by `run_stage`, as every
real stage is) keeps each deployed run to a few seconds; the session's loopback server
(conftest's `prefect_server`) records the runs.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

TINY_FLOW = '''\
from pathlib import Path

import yaml
from synthsmith.runtime.stage import run_stage
from prefect import flow, get_run_logger, task


@task
def double(value: int) -> int:
    return 2 * value


@flow(name="tiny")
def tiny_flow() -> None:
    value = yaml.safe_load(Path("tiny.yaml").read_text())["value"]
    result = double(value)
    get_run_logger().info("tiny stage: %s -> %s", value, result)
    Path("out").mkdir(exist_ok=True)
    Path("out/result.txt").write_text(f"{result}\\n")


if __name__ == "__main__":
    run_stage(tiny_flow)
'''

DVC_YAML = """\
stages:
  tiny:
    cmd: python tiny_flow.py
    deps: [tiny_flow.py]
    params:
      - tiny.yaml:
          - value
    outs: [out]
"""


def _git(project: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=test", "-c", "user.email=test@example.com", *args],
                          cwd=project, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def scratch_project(tmp_path, monkeypatch):
    """A git + DVC project: the real params.yaml (serve section tuned for tests) and one tiny stage."""
    project = tmp_path / "project"
    project.mkdir()
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["serve"] = {"name": "scratch", "cron": "15 4 * * *", "timezone": "UTC", "lock_wait_s": 1}
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (project / "tiny_flow.py").write_text(TINY_FLOW)
    (project / "tiny.yaml").write_text("value: 1\n")
    (project / "dvc.yaml").write_text(DVC_YAML)
    (project / ".gitignore").write_text("/out\n/.synthsmith/\n")
    _git(project, "init", "-q")
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=project, check=True)
    _git(project, "add", "-A")
    _git(project, "commit", "-qm", "scratch project")
    monkeypatch.chdir(project)
    return project


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)  # what Ctrl-C does: the runner pauses the schedule and exits
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_for_deployment(client, name: str, serve: subprocess.Popen, log: Path, timeout_s: float = 60):
    from prefect.exceptions import ObjectNotFound

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert serve.poll() is None, f"synthsmith serve exited early:\n{log.read_text()}"
        try:
            return client.read_deployment_by_name(name)
        except ObjectNotFound:
            time.sleep(0.5)
    raise AssertionError(f"{name} was not registered within {timeout_s} s:\n{log.read_text()}")


@pytest.mark.slow
def test_served_pipeline_runs_dvc_with_each_stage_as_a_subflow_run(prefect_server, scratch_project):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterParentFlowRunId,
        FlowRunFilterState,
        FlowRunFilterStateType,
        LogFilter,
        LogFilterFlowRunId,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort, LogSort
    from prefect.deployments import run_deployment

    log = scratch_project / "serve.log"
    env = os.environ | {"PREFECT_RUNNER_POLL_FREQUENCY": "1",  # pick triggered runs up within a second
                        "PREFECT_LOGGING_TO_API_ENABLED": "true"}  # the server outlives these runs
    with log.open("w") as out:  # no arguments: name and schedule come from params.yaml
        serve = subprocess.Popen([str(BIN / "synthsmith"), "serve"], cwd=scratch_project, env=env,
                                 stdout=out, stderr=subprocess.STDOUT)
    try:
        with get_client(sync_client=True) as client:
            deployment = _wait_for_deployment(client, "pipeline/scratch", serve, log)
            assert [s.schedule.cron for s in deployment.schedules] == ["15 4 * * *"]
            assert deployment.global_concurrency_limit.limit == 1

            run = run_deployment("pipeline/scratch", timeout=120, poll_interval=1, as_subflow=False)
            assert run.state.is_completed(), (run.state, log.read_text())
            assert (scratch_project / "out/result.txt").read_text() == "2\n"

            # The stage's flow run (its own process, started by DVC) hangs under the pipeline run.
            children = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[run.id])),
                sort=FlowRunSort.START_TIME_ASC, limit=10)
            assert [(child.name, child.state.type.value) for child in children] == [("tiny", "COMPLETED")]
            # DVC's output is in the pipeline run's log; the stage's own log (its task runs too) in its run's.
            deadline = time.monotonic() + 15  # logs reach the API in batches

            def messages(flow_run_id) -> str:
                return "\n".join(entry.message for entry in client.read_logs(
                    log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])), limit=200, offset=0,
                    sort=LogSort.TIMESTAMP_ASC))

            while True:
                parent_log, stage_log = messages(run.id), messages(children[0].id)
                if ("dvc repro finished" in parent_log and "tiny stage: 1 -> 2" in stage_log
                        and "Finished in state Completed()" in stage_log) or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            assert "Running stage 'tiny'" in parent_log and "dvc repro finished" in parent_log, parent_log
            assert "tiny stage: 1 -> 2" in stage_log and "Finished in state Completed()" in stage_log, stage_log

            # Parameters given with the run: an experiment, named after the flow run.
            run = run_deployment("pipeline/scratch", parameters={"set_params": ["tiny.yaml:value=5"]},
                                 timeout=120, poll_interval=1, as_subflow=False)
            assert run.state.is_completed(), (run.state, log.read_text())
            assert (scratch_project / "out/result.txt").read_text() == "10\n"
            assert run.name in _git(scratch_project, "for-each-ref", "--format=%(refname)", "refs/exps")

            # The cron schedule yields scheduled runs: this is the insert Prefect's scheduler service
            # makes every pass (it fails on SQLAlchemy 2.1, hence the pin), asked for through the API.
            client._client.post(f"/deployments/{deployment.id}/schedule", json={}).raise_for_status()
            scheduled = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])),
                flow_run_filter=FlowRunFilter(state=FlowRunFilterState(
                    type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))),
                sort=FlowRunSort.EXPECTED_START_TIME_ASC, limit=10)
            assert scheduled and {r.expected_start_time.minute for r in scheduled} == {15}, scheduled
    finally:
        _stop(serve)


def _serve_with_its_own_server(project: Path, log: Path) -> tuple[subprocess.Popen, str]:
    """`synthsmith serve --start-server` as from a terminal: a process group of its own (the
    foreground job, which Ctrl-C signals as a whole); no PREFECT_API_URL of the test session's."""
    from synthsmith.runtime.server import _free_port

    port = _free_port()
    env = {key: value for key, value in os.environ.items() if key != "PREFECT_API_URL"}
    with log.open("w") as out:
        serve = subprocess.Popen([str(BIN / "synthsmith"), "serve", "--start-server", "--port", str(port)],
                                 cwd=project, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while "run it now:" not in log.read_text():  # printed once the deployment is registered
        assert serve.poll() is None, f"synthsmith serve exited early:\n{log.read_text()}"
        assert time.monotonic() < deadline, f"serve did not start within 120 s:\n{log.read_text()}"
        time.sleep(0.5)
    return serve, f"http://127.0.0.1:{port}/api"


def _kill_if_left(serve: subprocess.Popen, project: Path) -> None:
    """After a failed test: serve, and its server, which runs in a session of its own."""
    if serve.poll() is None:
        os.killpg(serve.pid, signal.SIGKILL)
    try:
        os.kill(json.loads((project / ".synthsmith/prefect-home/server.json").read_text())["pid"], signal.SIGKILL)
    except (OSError, ValueError):
        pass


@pytest.mark.slow
@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl_c", "sigterm"])
def test_serve_with_its_own_server_pauses_the_schedule_on_ctrl_c_then_stops_the_server(scratch_project,
                                                                                      stop_signal):
    from synthsmith.runtime.server import healthy

    log = scratch_project / "serve.log"
    serve, api_url = _serve_with_its_own_server(scratch_project, log)
    try:
        # Prefect's CLI works against it (its list commands send JSON nulls that fastapi >= 0.151 rejects).
        # The server's scheduler may or may not have planned the cron's runs yet: either answer is a listing.
        for command, shows in ((["deployment", "ls"], r"pipeline/scratch"),
                               (["flow-run", "ls"], r"No flow runs found\.|Flow Runs(.|\n)*│ pipeline +│")):
            listed = subprocess.run([str(BIN / "prefect"), *command], capture_output=True, text=True, timeout=120,
                                    env=os.environ | {"PREFECT_API_URL": api_url, "COLUMNS": "200"})
            assert listed.returncode == 0 and re.search(shows, listed.stdout), listed.stdout + listed.stderr
        if stop_signal == signal.SIGINT:  # once: the hint `serve` prints works pasted into a new shell
            hint = re.search(r"run it now: (.+?), or from the UI", log.read_text()).group(1)
            shell = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
            shell["PATH"] = f"{BIN}{os.pathsep}{shell['PATH']}"  # the virtualenv active
            ran = subprocess.run(["bash", "-c", hint], cwd=scratch_project, env=shell, capture_output=True,
                                 text=True, timeout=120)
            assert ran.returncode == 0 and "Created flow run" in ran.stdout, ran.stdout + ran.stderr
            deadline = time.monotonic() + 120
            while not (scratch_project / "out/result.txt").exists():  # the served run did `dvc repro`
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.5)
            time.sleep(2)  # let the run finish reporting
        os.killpg(serve.pid, stop_signal)  # as from the terminal: the server is not in the group
        assert serve.wait(60) == 0, log.read_text()
    finally:
        _kill_if_left(serve, scratch_project)
    home = scratch_project / ".synthsmith/prefect-home"
    assert "All deployments have been paused!" in log.read_text(), log.read_text()
    assert "never awaited" not in log.read_text() and "Traceback" not in log.read_text(), log.read_text()
    assert not healthy(api_url) and not (home / "server.json").exists()
    with sqlite3.connect(home / "prefect.db") as db:  # paused while the server was still up to record it
        assert db.execute("select name, paused from deployment").fetchall() == [("scratch", 1)]


@pytest.mark.slow
def test_serve_stops_when_its_server_dies(scratch_project):
    log = scratch_project / "serve.log"
    serve, api_url = _serve_with_its_own_server(scratch_project, log)
    try:
        server_pid = json.loads((scratch_project / ".synthsmith/prefect-home/server.json").read_text())["pid"]
        os.kill(server_pid, signal.SIGKILL)
        assert serve.wait(60) == 1, log.read_text()  # not polling a dead server forever
    finally:
        _kill_if_left(serve, scratch_project)
    assert f"error: the Prefect server (pid {server_pid}) exited with code -9" in log.read_text()


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.mark.slow
def test_a_run_finding_dvcs_lock_held_is_skipped_with_a_clear_log_line(prefect_server, scratch_project):
    import zc.lockfile

    from synthsmith.runtime.deployment import pipeline

    lines = _Lines()
    logging.getLogger("prefect.flow_runs").addHandler(lines)
    held = zc.lockfile.LockFile(".dvc/tmp/lock")  # as a running `dvc repro` holds it
    try:
        state = pipeline(return_state=True)
    finally:
        held.close()
        logging.getLogger("prefect.flow_runs").removeHandler(lines)
    assert state.is_completed() and state.name == "Skipped", state
    text = "\n".join(lines.lines)
    assert f"DVC's lock (.dvc/tmp/lock) is held by pid {os.getpid()}" in text
    assert "skipped: DVC's lock (.dvc/tmp/lock) was still held after 1 s" in text
    assert not (scratch_project / "out").exists() and not (scratch_project / "dvc.lock").exists()


def test_waiting_for_dvcs_lock_goes_on_once_it_is_released(tmp_path):
    import zc.lockfile

    from synthsmith.runtime.deployment import dvc_lock_holder, wait_for_dvc_lock

    assert dvc_lock_holder(tmp_path) is None  # no .dvc/tmp/lock at all
    (tmp_path / ".dvc/tmp").mkdir(parents=True)
    held = zc.lockfile.LockFile(str(tmp_path / ".dvc/tmp/lock"))
    assert dvc_lock_holder(tmp_path) == f"pid {os.getpid()}"
    log = logging.getLogger(f"test-{uuid.uuid4().hex}")
    lines = _Lines()
    log.addHandler(lines)
    log.setLevel(logging.INFO)
    returned: list[bool] = []
    waiter = threading.Thread(target=lambda: returned.append(
        wait_for_dvc_lock(tmp_path, wait_s=3600, log=log, poll_s=0.1)), daemon=True)
    waiter.start()
    deadline = time.monotonic() + 30
    while not lines.lines:  # it saw the lock held and said it waits
        assert time.monotonic() < deadline, "wait_for_dvc_lock logged nothing within 30 s"
        time.sleep(0.01)
    assert waiter.is_alive() and returned == []  # still waiting while the lock is held
    held.close()
    waiter.join(30)  # it goes on at its next poll, not after wait_s (an hour)
    assert returned == [True], "wait_for_dvc_lock did not go on within 30 s of the lock's release"
    assert "waiting up to 3600 s" in lines.lines[0] and "released" in lines.lines[1]
    assert dvc_lock_holder(tmp_path) is None  # looking took nothing


def test_overrides_are_checked_before_dvc_runs(tmp_path):
    from synthsmith.contract.params import UserError
    from synthsmith.runtime.deployment import check_overrides, dvc_command

    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    check_overrides(["generate_tasks.num_tasks=8", "verify.seed=3", "other.yaml:anything=1"], tmp_path)
    with pytest.raises(UserError, match="is not key=value"):
        check_overrides(["generate_tasks.num_tasks"], tmp_path)
    with pytest.raises(UserError, match="generate_tasks.num_tasks"):
        check_overrides(["generate_tasks.num_tasks=many"], tmp_path)
    with pytest.raises(UserError, match="no_such_knob"):
        check_overrides(["verify.no_such_knob=1"], tmp_path)
    assert dvc_command([], force=False)[3:] == ["repro"]
    assert dvc_command(["verify.seed=3"], force=True, experiment_name="calm-otter")[3:] == [
        "exp", "run", "--name", "calm-otter", "--set-param", "verify.seed=3", "--force"]


@pytest.mark.slow
def test_a_checkout_never_takes_over_another_checkout_s_server_or_deployment(prefect_server, tmp_path,
                                                                             monkeypatch):
    from synthsmith.contract.params import UserError
    from synthsmith.runtime.deployment import pipeline_runner
    from synthsmith.runtime.server import healthy, local_server

    foreign = prefect_server["PREFECT_API_URL"]  # someone else's server, on the port we ask for
    port = int(foreign.split(":")[2].split("/")[0])
    said: list[str] = []
    with local_server(port=port, home=tmp_path / "home", echo=said.append) as ours:
        assert ours.api_url != foreign and healthy(ours.api_url), said
        assert any(f"port {port} has a Prefect server that is not this checkout's" in line for line in said), said
        again: list[str] = []
        with local_server(port=int(ours.api_url.split(":")[2].split("/")[0]), home=tmp_path / "home",
                          echo=again.append) as same:  # a second `serve --start-server` in this checkout
            assert same.api_url == ours.api_url and "this checkout's Prefect server already runs" in again[0]
    assert healthy(foreign) and not healthy(ours.api_url)  # ours stopped, theirs untouched

    for checkout in ("first", "second"):
        (tmp_path / checkout).mkdir()
    monkeypatch.chdir(tmp_path / "first")
    pipeline_runner(name="shared", cron=None)  # registers pipeline/shared for the first checkout
    pipeline_runner(name="shared", cron=None)  # the same checkout again: fine
    monkeypatch.chdir(tmp_path / "second")
    with pytest.raises(UserError, match=f"pipeline/shared on this Prefect server is served from {tmp_path / 'first'}"):
        pipeline_runner(name="shared", cron=None)
