"""The entry point of every stage process (`python -m flows.<stage>`): configure Prefect, validate
params.yaml, run the flow (on the configured task runner, under a pipeline run if one started
it), and turn a user's mistake into one `error:` line and exit code 2.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from synthsmith.contract.params import UserError, load_params
from synthsmith.runtime.server import PROJECT_SERVER_HOME, project_server_url


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
    """Prefect logs a failing flow's traceback; for a user's mistake the message alone is the point."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], UserError):
            record.exc_info, record.exc_text = None, None
        return True


def run_stage(flow: Callable[[], object], scale_out: bool = False) -> None:
    """Entry point of `python -m flows.<stage>`: user mistakes become one line and exit code 2.

    params.yaml is validated before the flow starts, so a bad knob fails fast and cleanly.
    `scale_out`: the flow's shard tasks run on the task runner of params.yaml's `runner` section."""
    one_line = _UserErrorsInOneLine()
    for handler in logging.getLogger().handlers + logging.getLogger("prefect").handlers:
        handler.addFilter(one_line)
    try:
        params = load_params("params.yaml")
        configure_prefect(Path.cwd())
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
