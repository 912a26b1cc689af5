"""Start a real Prefect server on loopback for the length of a command.

Each stage process then talks to it (~1.5 s start-up) instead of spawning its own temporary
server (11-25 s each here). A server the user already runs (PREFECT_API_URL) is used as is.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def prefect_api(home: Path, timeout_s: float = 180) -> Iterator[dict[str, str]]:
    """Yields the environment variables that point Prefect clients at a running server.

    The server runs the API only (no UI, no background services): it records this command's
    flow runs; scheduling from the UI is a long-running `prefect server start` of the user's."""
    if os.environ.get("PREFECT_API_URL"):
        yield {}
        return
    port = _free_port()
    env = os.environ | {"PREFECT_HOME": str(home.resolve()), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    home.mkdir(parents=True, exist_ok=True)
    log = (home / "server.log").open("w")
    server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                               "--port", str(port), "--no-services", "--no-ui"],
                              env=env, stdout=log, stderr=subprocess.STDOUT)
    api = f"http://127.0.0.1:{port}/api"
    try:
        _wait_healthy(api, server, timeout_s, home / "server.log")
        yield {"PREFECT_API_URL": api, "PREFECT_HOME": env["PREFECT_HOME"]}
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def _wait_healthy(api: str, server: subprocess.Popen, timeout_s: float, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the Prefect server exited early; see {log}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"{api}/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        time.sleep(0.5)
    raise RuntimeError(f"the Prefect server did not answer within {timeout_s:.0f} s; see {log}")
