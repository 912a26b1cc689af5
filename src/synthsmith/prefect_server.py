"""Start a real Prefect server on loopback for the length of a command.

Each stage process then talks to it (~1.5 s start-up) instead of spawning its own temporary
server (11-25 s each here). A server the user already runs (PREFECT_API_URL) is used as is.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path


def ensure_loopback() -> None:
    """Prefect clients reach their server over 127.0.0.1. In a fresh network namespace (e.g.
    `unshare -n`, how we check offline runs) the loopback interface starts down: bring it up.
    Nothing but `lo` is touched."""
    with socket.socket() as listener, socket.socket() as client:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        try:
            client.connect(listener.getsockname())
            return
        except OSError:
            pass
    flags_get, flags_set, up = 0x8913, 0x8914, 0x1  # SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as control:
        request = struct.pack("16sH", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(control, flags_get, request)[:18])[1]
        try:
            fcntl.ioctl(control, flags_set, struct.pack("16sH", b"lo", flags | up))
        except PermissionError:
            raise RuntimeError("the loopback interface is down and cannot be brought up here; "
                               "the local Prefect server needs 127.0.0.1") from None
    print("loopback was down (a fresh network namespace?): brought `lo` up for the local Prefect server",
          file=sys.stderr)


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
    from synthsmith.local_server import project_server_url

    if api_url := project_server_url(home):  # a server already runs on this home (`synthsmith serve --start-server`)
        yield {"PREFECT_API_URL": api_url}
        return
    ensure_loopback()
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
        stop_server(server, grace_s=15)
        log.close()


def stop_server(server: subprocess.Popen, grace_s: float) -> None:
    """SIGTERM, then SIGKILL after `grace_s`; reaped either way."""
    server.terminate()
    try:
        server.wait(grace_s)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


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
