"""The project's long-running Prefect server, with the UI: started by `synthsmith serve --start-server`.

It keeps its database in `.synthsmith/prefect-home` and, while it runs, writes its API URL to
`.synthsmith/prefect-home/server.json`, so a plain `dvc repro` in another terminal (each stage's
`python -m flows.<stage>`) finds it and skips the 11-15 s temporary server Prefect otherwise
starts per process. Nothing here imports Prefect: the stage processes call `project_server_url`
before Prefect reads its settings.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

PROJECT_SERVER_HOME = Path(".synthsmith/prefect-home")
SERVER_FILE = "server.json"


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

    A Prefect server already answering on that port is used as is (and left running). The server
    runs in a session of its own: a Ctrl-C (or any signal to our process group) reaches only us,
    so the server is still there while we shut down cleanly, and we stop it last."""
    from synthsmith.prefect_server import _wait_healthy, ensure_loopback, stop_server

    api_url = f"http://127.0.0.1:{port}/api"
    if healthy(api_url):
        echo(f"a Prefect server already answers at {api_url}: using it")
        yield LocalServer(api_url)
        return
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
            _wait_healthy(api_url, server, timeout_s, log_path)
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
