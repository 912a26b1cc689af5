"""Prefect servers on loopback: one for the length of a command, and the project's long-running one.

`prefect_api` starts an API-only server for a command (`synthsmith demo`, the tests): each stage
process then talks to it (~1.5 s start-up) instead of spawning its own temporary server (11-25 s
each here). A server the user already runs (PREFECT_API_URL) is used as is.

`local_server` runs the project's long-running server with the UI (`synthsmith serve
--start-server`). It keeps its database in `.synthsmith/prefect-home` and, while it runs, writes
its API URL to `.synthsmith/prefect-home/server.json`, so a plain `dvc repro` in another terminal
finds it (`project_server_url`). Nothing here imports Prefect.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

PROJECT_SERVER_HOME = Path(".synthsmith/prefect-home")
SERVER_FILE = "server.json"


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
        wait_healthy(api, server, timeout_s, home / "server.log")
        # No UI, and gone when the command ends: Prefect must not print run links to it.
        yield {"PREFECT_API_URL": api, "PREFECT_HOME": env["PREFECT_HOME"], "PREFECT_UI_URL": ""}
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


def wait_healthy(api: str, server: subprocess.Popen, timeout_s: float, log: Path) -> None:
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


def healthy(api_url: str, timeout_s: float = 1.0) -> bool:
    """Does a Prefect server answer at api_url (http://host:port/api)?"""
    with contextlib.suppress(OSError, ValueError):
        with urllib.request.urlopen(f"{api_url.rstrip('/')}/health", timeout=timeout_s) as answer:
            return answer.status == 200
    return False


def project_server_url(home: Path = PROJECT_SERVER_HOME, timeout_s: float = 1.0) -> str | None:
    """The API URL of the server `synthsmith serve --start-server` runs for this project, if it answers."""
    try:
        api_url = json.loads((home / SERVER_FILE).read_text())["api_url"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return api_url if isinstance(api_url, str) and healthy(api_url, timeout_s) else None


@dataclass
class LocalServer:
    api_url: str
    exit_code: int | None = None  # set if the server stopped before we stopped it
    # Called (from a watcher thread) with the exit code if the server stops before we stop it.
    on_exit: Callable[[int], None] | None = None


@contextlib.contextmanager
def local_server(port: int = 4200, home: Path = PROJECT_SERVER_HOME, timeout_s: float = 180,
                 echo=print) -> Iterator[LocalServer]:
    """Run `prefect server start` (API, UI and scheduler) on 127.0.0.1:port for the block.

    This checkout's server, already running on that port (its `server.json` names it), is used as
    is and left running. Any other server on the port belongs to someone else (another checkout,
    a `prefect server start`): this checkout's starts on a free port instead, so that neither
    registers, pauses or stops the other's deployments. The server runs in a session of its own:
    a Ctrl-C (or any signal to our process group) reaches only us, so the server is still there
    while we shut down cleanly, and we stop it last."""
    api_url = f"http://127.0.0.1:{port}/api"
    if healthy(api_url):
        if project_server_url(home) == api_url:
            echo(f"this checkout's Prefect server already runs at {api_url}: using it")
            yield LocalServer(api_url)
            return
        taken, port = port, _free_port()
        api_url = f"http://127.0.0.1:{port}/api"
        echo(f"port {taken} has a Prefect server that is not this checkout's ({home / SERVER_FILE} does not "
             f"name it): starting this checkout's on port {port} instead")
    ensure_loopback()
    home = home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    env = os.environ | {"PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                        "PREFECT_UI_API_URL": api_url}  # else the UI calls port 4200 whatever --port says
    env.pop("PREFECT_API_URL", None)
    log_path = home / "server.log"
    echo(f"starting a Prefect server on 127.0.0.1:{port} (PREFECT_HOME={home}, log {log_path}) ...")
    with log_path.open("w") as log:
        server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start",
                                   "--host", "127.0.0.1", "--port", str(port)],
                                  env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        marker = home / SERVER_FILE
        handle = LocalServer(api_url)
        stopping = threading.Event()

        def watch() -> None:
            code = server.wait()
            if not stopping.is_set():
                handle.exit_code = code
                echo(f"error: the Prefect server (pid {server.pid}) exited with code {code}; see {log_path}")
                if handle.on_exit:
                    handle.on_exit(code)

        try:
            wait_healthy(api_url, server, timeout_s, log_path)
            marker.write_text(json.dumps({"api_url": api_url, "pid": server.pid}) + "\n")
            echo(f"Prefect UI: http://127.0.0.1:{port}  (API {api_url})")
            threading.Thread(target=watch, name="prefect-server-watch", daemon=True).start()
            yield handle
        finally:
            stopping.set()
            with contextlib.suppress(OSError, ValueError):
                if json.loads(marker.read_text()).get("pid") == server.pid:
                    marker.unlink()
            stop_server(server, grace_s=20)


def stage_api_url() -> str:
    """The Prefect API of the running flow, even a temporary server's: workers started for the flow
    must report there, or each would start a temporary server of its own."""
    from prefect.client.orchestration import get_client

    return str(get_client(sync_client=True).api_url)  # in a flow run, and as its task runner starts: the engine's
