"""The entry point of every stage process (`python -m flows.<stage>`): configure Prefect, validate
params.yaml, run the flow (on the configured task runner, under a pipeline run if one started
it), and turn a user's mistake into one `error:` line and exit code 2, and a Prefect server that
stops answering into one `error:` line and exit code 1.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

from synthsmith.contract.params import UserError, load_params
from synthsmith.runtime.server import PROJECT_SERVER_HOME, project_server_url

if TYPE_CHECKING:
    from prefect import Flow


def configure_prefect(project_root: Path) -> None:
    """Prefect's settings for a stage process, set before its flow runs (Prefect reads its
    settings once at import; `refresh_global_settings_context` makes it read them again).

    The project's own server (`synthsmith serve --start-server`), if one runs, so the stage does
    not start a temporary server; results under `.synthsmith/`; no analytics; litellm's price map
    from its package. Variables the user set win."""
    if "PREFECT_API_URL" not in os.environ and "PREFECT_HOME" not in os.environ:
        if api_url := project_server_url(project_root / PROJECT_SERVER_HOME):
            os.environ["PREFECT_API_URL"] = api_url
    for name, value in {
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOCAL_STORAGE_PATH": str(project_root / ".synthsmith" / "prefect-results"),
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",  # 20 s default is too short on 2 cores
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }.items():
        os.environ.setdefault(name, value)
    from prefect.context import refresh_global_settings_context

    refresh_global_settings_context()


class _UserErrorsInOneLine(logging.Filter):
    """Prefect logs a failing flow's exception with its traceback, then the failed state quoting it;
    for a user's mistake `run_stage`'s own `error:` line is the point, so the console shows only
    that line (the run's state on the server still says why it failed)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], UserError):
            return False
        message = record.getMessage()
        return not (message.startswith("Finished in state Failed") and f"{UserError.__name__}:" in message)


SERVER_CHECK_S = 2.0  # between checks that the Prefect server still answers
SERVER_GONE_AFTER = 5  # failed checks in a row (about 10 s): a restart or a blip is not a death


def _answers(api_url: str) -> bool:
    """Does anything accept a TCP connection at the API's host and port? A busy server still
    does (the kernel accepts for it), a dead one refuses at once: no false alarm under load."""
    url = urllib.parse.urlsplit(api_url)
    try:
        with socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)),
                                      timeout=SERVER_CHECK_S):
            return True
    except (OSError, ValueError):
        return False


def _proxied(api_url: str) -> bool:
    """Through a proxy (HTTP(S)_PROXY, which Prefect's client honours) a direct TCP connect says
    nothing about the server: such a server is left to the client's own retries."""
    url = urllib.parse.urlsplit(api_url)
    return url.scheme in urllib.request.getproxies() and not urllib.request.proxy_bypass(url.hostname or "")


def _watch_server(api_url: str, stage: str) -> None:
    """Exit with one line once the server stops answering. Without this, a dead server costs
    minutes of client retries and then tracebacks; the shards do not need it (their results are
    stored locally), so everything finished so far is cached for the rerun. The exit is
    immediate (os._exit): a clean shutdown would report the flow's state to the dead server,
    retrying for minutes."""

    def watch() -> None:
        failures = 0
        while failures < SERVER_GONE_AFTER:
            time.sleep(SERVER_CHECK_S)
            failures = 0 if _answers(api_url) else failures + 1
        logging.disable(logging.CRITICAL)  # Prefect's log and event workers would add their errors
        print(f"error: the Prefect server at {api_url} stopped answering during stage {stage}; shards "
              "finished before are cached: start the server again (or unset PREFECT_API_URL) and rerun "
              "`dvc repro`", file=sys.stderr, flush=True)
        os._exit(1)

    threading.Thread(target=watch, name="prefect-server-watch", daemon=True).start()


def _check_server(stage: str) -> None:
    """A configured server must answer before the flow starts (Prefect would fail with a
    traceback); then it is watched for the length of the stage. No server configured: Prefect
    starts a temporary one as this process's child, nothing to watch."""
    from prefect.settings import get_current_settings

    if not (api_url := get_current_settings().api.url) or _proxied(api_url):
        return
    if not _answers(api_url):
        print(f"error: no Prefect server answers at {api_url} (PREFECT_API_URL): start it, or unset "
              "PREFECT_API_URL and the stage starts a temporary one", file=sys.stderr)
        raise SystemExit(1)
    _watch_server(api_url, stage)


def run_stage(flow: Flow, scale_out: bool = False) -> None:
    """Entry point of `python -m flows.<stage>`: user mistakes become one line and exit code 2,
    a Prefect server that is down or dies mid-stage one line and exit code 1.

    params.yaml is validated before the flow starts, so a bad knob fails fast and cleanly.
    `scale_out`: the flow's shard tasks run on the task runner of params.yaml's `runner` section."""
    one_line = _UserErrorsInOneLine()
    for handler in logging.getLogger().handlers + logging.getLogger("prefect").handlers:
        handler.addFilter(one_line)
    try:
        params = load_params("params.yaml")
        configure_prefect(Path.cwd())
        _check_server(flow.name)
        if scale_out:
            from synthsmith.runtime.runners import with_runner

            flow = with_runner(flow, params.runner)
        if parent := os.environ.get("SYNTHSMITH_PARENT_FLOW_RUN_ID"):  # started by a `synthsmith serve` run
            from synthsmith.runtime.deployment import run_under_parent

            run_under_parent(flow, parent)
        else:
            flow()
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
