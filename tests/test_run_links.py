"""Prefect logs "View at <link>" for every flow run: only for a server that outlives the command.
(A stage's own temporary server gets no links from Prefect itself.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # flow runs in fresh processes

ROOT = Path(__file__).resolve().parent.parent
A_FLOW = ("from pathlib import Path; from synthsmith.runtime.stage import configure_prefect; "
          "configure_prefect(Path.cwd()); from prefect import flow; flow(name='hello')(lambda: None)()")


def _flow_log(tmp_path, env: dict[str, str]) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    done = subprocess.run([sys.executable, "-c", A_FLOW], cwd=tmp_path, env=clean | env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Beginning flow run" in done.stderr, done.stderr[-2000:]
    return done.stderr


def test_no_run_links_to_the_server_a_command_starts_for_itself(prefect_server, tmp_path):
    assert prefect_server["PREFECT_UI_URL"] == ""  # synthsmith demo's server: API only, gone when it ends
    assert "View at" not in _flow_log(tmp_path, prefect_server)
    # The same server taken for one that outlives the command: then the link is worth printing.
    lasting = {k: v for k, v in prefect_server.items() if k != "PREFECT_UI_URL"}
    assert "View at http://127.0.0.1:" in _flow_log(tmp_path, lasting)

