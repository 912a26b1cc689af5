"""The demo's local Prefect server must work offline, in a fresh network namespace too."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

CONNECT = ("from synthsmith.runtime.server import ensure_loopback; ensure_loopback(); import socket; "
           "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); "
           "socket.create_connection(s.getsockname(), timeout=2); print('connected')")


def _unshare_works() -> bool:
    return shutil.which("unshare") is not None and subprocess.run(
        ["unshare", "-n", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _unshare_works(), reason="needs `unshare -n` (root or user namespaces)")
def test_loopback_is_brought_up_in_a_fresh_network_namespace():
    before = subprocess.run(["unshare", "-n", sys.executable, "-c", CONNECT.replace("ensure_loopback(); ", "")],
                            capture_output=True, text=True)
    assert before.returncode != 0  # lo starts down: this is the case being fixed
    after = subprocess.run(["unshare", "-n", sys.executable, "-c", CONNECT], capture_output=True, text=True)
    assert after.stdout.strip() == "connected", after.stderr


def test_loopback_check_is_a_no_op_when_it_works(capsys):
    from synthsmith.runtime.server import ensure_loopback

    ensure_loopback()
    assert capsys.readouterr().err == ""
