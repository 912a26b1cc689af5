"""The pipeline as a Prefect deployment (`synthsmith serve`): scheduled and UI-triggered runs.

A run of the `pipeline` flow executes `dvc repro` (or `dvc exp run -S key=value ...` when the
run is given parameters) from the project root, so DVC alone decides which stages rerun. DVC's
output streams into the run's log, and every stage's flow run (`python -m flows.<stage>`, started
by DVC in its own process) reports to the same server as a subflow run of the pipeline run:
`run_stage` sees SYNTHSMITH_PARENT_FLOW_RUN_ID and links its flow run to the parent the way
Prefect links an in-process subflow (a tracking task run in the parent, the flow run's
`parent_task_run_id` pointing at it).

DVC's repository lock is never fought over: a run that finds it held (a `dvc repro` in a
terminal, say) waits up to `serve.lock_wait_s`, then ends as `Skipped` with a log line saying
why, having run nothing. The deployment has a concurrency limit of 1, so scheduled and manual
runs queue instead of overlapping.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import yaml
from prefect import flow, get_run_logger
from prefect.states import Completed, State
from pydantic import ValidationError

from synthsmith.contract.params import Params, UserError, describe, load_params

PARENT_ENV = "SYNTHSMITH_PARENT_FLOW_RUN_ID"
LOCK_FILE = Path(".dvc/tmp/lock")
DVC_LOCK_ERROR = "Unable to acquire lock"  # dvc.lock.FAILED_TO_LOCK_MESSAGE
_OVERRIDE = re.compile(r"^(?:(?P<file>[^=:]+):)?(?P<key>[^=]+)=(?P<value>.*)$", re.S)
_DOTTED_KEY = re.compile(r"^[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)*$")


def dvc_lock_holder(root: Path) -> str | None:
    """None when DVC's repository lock is free, else who holds it ("pid 123").

    DVC takes `.dvc/tmp/lock` with flock (zc.lockfile) and writes its pid there. A shared,
    non-blocking flock tells whether it is held; when it is free we hold nothing afterwards."""
    path = root / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = path.read_text(errors="replace").strip()
            return f"pid {pid}" if pid else "another process"
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def wait_for_dvc_lock(root: Path, wait_s: float, log: logging.Logger | logging.LoggerAdapter,
                      poll_s: float = 1.0) -> bool:
    """True as soon as DVC's lock is free; False if it is still held after wait_s (logged either way)."""
    holder = dvc_lock_holder(root)
    if holder is None:
        return True
    log.warning("DVC's lock (%s) is held by %s: another `dvc repro`/`dvc exp run` is working in %s; "
                "waiting up to %.0f s for it", LOCK_FILE, holder, root, wait_s)
    started = time.monotonic()
    while time.monotonic() - started < wait_s:
        time.sleep(min(poll_s, max(0.0, wait_s - (time.monotonic() - started))))
        if dvc_lock_holder(root) is None:
            log.info("DVC's lock was released after %.1f s; going on", time.monotonic() - started)
            return True
    return False


def check_overrides(set_params: list[str], root: Path) -> None:
    """Fail before DVC runs if an override is malformed or would make params.yaml invalid."""
    raw = yaml.safe_load((root / "params.yaml").read_text()) or {}
    touched = False
    for item in set_params:
        match = _OVERRIDE.match(item)
        if not match:
            raise UserError(f"set_params: {item!r} is not key=value (e.g. generate_tasks.num_tasks=8, "
                            "or file.yaml:key=value for another params file)")
        if match["file"] not in (None, "params.yaml") or not _DOTTED_KEY.match(match["key"]):
            continue  # another params file, or DVC's own syntax (+key, ~key, key[0]): DVC checks it
        *parents, leaf = match["key"].split(".")
        section = raw
        for part in parents:
            section = section.setdefault(part, {})
            if not isinstance(section, dict):
                raise UserError(f"set_params: {match['key']}: {part} is not a section of params.yaml")
        section[leaf] = yaml.safe_load(match["value"]) if match["value"] else None
        touched = True
    if touched:
        try:
            Params.model_validate(raw)
        except ValidationError as exc:
            raise UserError(f"set_params would make params.yaml invalid: {describe(exc)}") from None


def dvc_command(set_params: list[str], force: bool, experiment_name: str | None = None) -> list[str]:
    command = [sys.executable, "-m", "dvc"]
    if set_params:
        command += ["exp", "run", *(["--name", experiment_name] if experiment_name else [])]
        for item in set_params:
            command += ["--set-param", item]
    else:
        command += ["repro"]
    return command + (["--force"] if force else [])


def _run_streaming(command: list[str], root: Path, env: dict[str, str],
                   log: logging.Logger | logging.LoggerAdapter) -> tuple[int, bool]:
    """Run command, each output line into the log; returns (exit code, DVC could not get its lock)."""
    lock_refused = False
    process = subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, text=True, errors="replace", bufsize=1,
                               start_new_session=True)
    try:
        assert process.stdout is not None
        for line in process.stdout:
            line = line.rstrip()
            if line:
                log.info("%s", line)
                lock_refused = lock_refused or DVC_LOCK_ERROR in line
        return process.wait(), lock_refused
    except BaseException:  # cancelled or killed: let DVC stop its stage cleanly (it releases its lock)
        for sig, grace in ((signal.SIGINT, 30), (signal.SIGKILL, 5)):
            try:
                os.killpg(process.pid, sig)
                process.wait(grace)
                break
            except (ProcessLookupError, subprocess.TimeoutExpired):
                continue
        raise


def _skipped(log, root: Path, wait_s: float) -> State:
    message = (f"skipped: DVC's lock ({LOCK_FILE}) was still held after {wait_s:.0f} s by another DVC "
               f"process in {root}; nothing was run (the next run will try again)")
    log.warning(message)
    return Completed(name="Skipped", message=message)


@flow(name="pipeline", description="Run the SynthSmith pipeline: `dvc repro`, or `dvc exp run -S k=v ...` "
                                   "when set_params is given. DVC decides which stages rerun.")
def pipeline(set_params: list[str] = [], force: bool = False) -> State | None:  # noqa: B006 (Prefect copies it)
    """set_params: DVC params overrides, e.g. `generate_tasks.num_tasks=8` (runs `dvc exp run -S ...`, an
    experiment named after this flow run; the workspace keeps its params and results, as from a shell).
    force: rerun every stage even if DVC finds it up to date."""
    from prefect.runtime import flow_run
    from prefect.settings import PREFECT_API_URL

    log = get_run_logger()
    root = Path.cwd()
    if not (root / "dvc.yaml").exists():
        raise UserError(f"{root} has no dvc.yaml: serve the deployment from the project root")
    settings = load_params(root / "params.yaml").serve
    check_overrides(set_params, root)

    env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT__")}  # runner-internal
    env |= {PARENT_ENV: str(flow_run.id),
            # dvc.yaml's `python -m flows.<stage>` runs with this interpreter
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    if api_url := PREFECT_API_URL.value():
        env["PREFECT_API_URL"] = api_url  # every stage process reports to this server: no temporary one each
    # The experiment is named after the flow run (a retry of the run gets a suffix: names are unique).
    attempt = flow_run.run_count or 1
    command = dvc_command(set_params, force, experiment_name=flow_run.name + (f"-{attempt}" if attempt > 1 else ""))
    shown = "dvc " + " ".join(command[3:])

    started = time.monotonic()
    while True:
        remaining = settings.lock_wait_s - (time.monotonic() - started)
        if not wait_for_dvc_lock(root, max(0.0, remaining), log):
            return _skipped(log, root, settings.lock_wait_s)
        log.info("$ %s   (in %s)", shown, root)
        code, lock_refused = _run_streaming(command, root, env, log)
        if code == 0:
            log.info("%s finished in %.1f s", shown, time.monotonic() - started)
            return None
        if not lock_refused:
            raise RuntimeError(f"`{shown}` exited with code {code}; its output is in this run's log")
        # Taken between our look and DVC's own attempt: DVC changed nothing; wait again.
        log.warning("DVC could not acquire its lock (another DVC process took it first); waiting again")
        if time.monotonic() - started >= settings.lock_wait_s:
            return _skipped(log, root, settings.lock_wait_s)
        time.sleep(1.0)


CHECKOUT_TAG = "checkout:"  # + the directory a deployment runs `dvc repro` in


def _claim(name: str, checkout: Path) -> None:
    """Refuse a deployment name that another checkout serves on this server: registering it would
    take over that checkout's schedule, and stopping would pause it."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            existing = client.read_deployment_by_name(f"pipeline/{name}")
        except ObjectNotFound:
            return
    owners = [tag.removeprefix(CHECKOUT_TAG) for tag in existing.tags or [] if tag.startswith(CHECKOUT_TAG)]
    if owners and owners != [str(checkout)]:
        raise UserError(f"pipeline/{name} on this Prefect server is served from {owners[0]}, another checkout: "
                        "serve this one under another name (--name NAME, or serve.name in params.yaml)")


def pipeline_runner(name: str, cron: str | None, timezone: str = "UTC"):
    """A Prefect Runner holding the `pipeline` deployment (schedule from cron, at most one run at a
    time, from the current directory), paused when the runner stops; and the deployment's id.
    Raises UserError when another checkout serves a deployment of that name on the server."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
    from prefect.deployments.runner import EntrypointType
    from prefect.runner import Runner
    from prefect.schedules import Cron

    try:
        schedules = [Cron(cron, timezone=timezone)] if cron else None
    except ValueError as exc:
        raise UserError(f"serve.cron: {exc}") from None
    _claim(name, Path.cwd())
    runner = Runner(name=name, pause_on_shutdown=True, limit=1)
    deployment_id = runner.add_flow(
        pipeline,
        name=name,
        schedules=schedules,
        concurrency_limit=ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE),
        tags=["synthsmith", f"{CHECKOUT_TAG}{Path.cwd()}"],
        description=f"`dvc repro` in {Path.cwd()} (or `dvc exp run -S ...` with set_params); "
                    "DVC decides which stages rerun.",
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    return runner, deployment_id


def _sigterm_as_ctrl_c(*_) -> None:
    raise KeyboardInterrupt


def run_until_stopped(runner) -> None:
    """Poll for and execute the deployment's runs until Ctrl-C / SIGTERM (which pause the schedule)."""
    import asyncio

    from prefect.exceptions import TerminationSignal

    # Prefect's own SIGTERM handler calls the runner's stop() from inside its event loop, which
    # leaves a coroutine never awaited (a warning on every `kill`); a SIGTERM handled as a Ctrl-C
    # shuts down the same clean way Ctrl-C does. Runner.start installs `self.handle_sigterm`.
    runner.handle_sigterm = _sigterm_as_ctrl_c
    try:
        asyncio.run(runner.start())
    except (KeyboardInterrupt, TerminationSignal):
        pass


def stop_without_pausing(runner) -> None:
    """Stop `run_until_stopped` from another thread when the server is gone: pausing the schedule
    would only retry against a dead server."""
    import _thread

    runner.pause_on_shutdown = False
    _thread.interrupt_main()  # a Ctrl-C for the main thread, which runs the runner's event loop


def run_under_parent(stage_flow: Callable, parent_flow_run_id: str) -> None:
    """Run a stage's flow as a subflow run of a pipeline run living in another process.

    Prefect links an in-process subflow with a tracking task run in the parent flow run and the
    child's parent_task_run_id; the server then mirrors the child's state onto that task run.
    We create the same two records through the API, then run the flow on the flow run made."""
    from prefect import Task
    from prefect.client.orchestration import get_client
    from prefect.flow_engine import run_flow
    from prefect.states import Pending

    try:
        with get_client(sync_client=True) as client:
            tracker = Task(name=stage_flow.name, fn=stage_flow.fn, version=stage_flow.version)
            task_run = client.create_task_run(tracker, flow_run_id=uuid.UUID(parent_flow_run_id),
                                              dynamic_key=uuid.uuid4().hex[:8], name=stage_flow.name,
                                              state=Pending())
            child = client.create_flow_run(stage_flow, name=stage_flow.name, parameters={},
                                           parent_task_run_id=task_run.id, state=Pending(),
                                           tags=["synthsmith", "stage"])
    except Exception as exc:  # a server that went away, a bad id: the stage still runs, unlinked
        print(f"warning: could not link stage {stage_flow.name!r} to pipeline run {parent_flow_run_id}: {exc}",
              file=sys.stderr)
        stage_flow()
        return
    run_flow(stage_flow, flow_run=child)
