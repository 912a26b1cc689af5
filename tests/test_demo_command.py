"""`synthsmith demo` says what it is doing before anything slow starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def test_demo_says_what_it_does_before_starting_anything(tmp_path):
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    demo = subprocess.Popen([str(BIN / "synthsmith"), "demo"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        first = demo.stderr.readline()
    finally:
        demo.kill()
        demo.wait()
    assert first.startswith("synthsmith demo: starting a local Prefect server, then `dvc repro`"), first
