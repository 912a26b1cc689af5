"""A stage that fails keeps its previous outputs: every out in dvc.yaml is `persist: true`, so DVC
does not delete it before the command runs, and our stages replace their outputs whole
(`write_tables` swaps a directory in) only once they succeed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DVC = [sys.executable, "-m", "dvc"]


def test_every_output_of_the_pipeline_persists():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    outs = [(name, out) for name, spec in stages.items() for kind in ("outs", "metrics") for out in spec.get(kind, [])]
    not_persisted = [(name, out) for name, out in outs
                     if not (isinstance(out, dict) and next(iter(out.values())).get("persist"))]
    assert outs and not not_persisted


STAGE = """
stages:
  double:
    cmd: python double.py
    params: [double]
    outs:
      - out:
          persist: true
"""
# Like write_tables: the output directory is built aside and swapped in once complete.
DOUBLE = """
import json, os, yaml
n = int(yaml.safe_load(open("params.yaml"))["double"]["n"])
os.makedirs(".out.tmp")
json.dump({"n": 2 * n}, open(".out.tmp/n.json", "w"))
os.rename(".out.tmp", "out")
"""


def _dvc(project: Path, *args: str) -> subprocess.CompletedProcess:
    env = os.environ | {"PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}
    return subprocess.run([*DVC, *args], cwd=project, env=env, capture_output=True, text=True)


def test_a_failing_stage_keeps_its_previous_outputs_and_dvc_says_it_changed(tmp_path):
    """With DVC 3.67: a bad param fails the stage, the out of the last good run stays (unlike
    without `persist`), `dvc status` names the stage; a fix reruns it, then nothing reruns."""
    assert _dvc(tmp_path, "init", "--no-scm").returncode == 0
    (tmp_path / "dvc.yaml").write_text(STAGE)
    (tmp_path / "double.py").write_text(DOUBLE)
    (tmp_path / "params.yaml").write_text("double: {n: 2}\n")
    assert _dvc(tmp_path, "repro").returncode == 0
    assert (tmp_path / "out" / "n.json").read_text() == '{"n": 4}'

    (tmp_path / "params.yaml").write_text("double: {n: notanint}\n")
    failed = _dvc(tmp_path, "repro")
    assert failed.returncode != 0 and "ValueError" in failed.stderr
    assert (tmp_path / "out" / "n.json").read_text() == '{"n": 4}'
    status = _dvc(tmp_path, "status").stdout
    assert "double:" in status and "params.yaml" in status

    (tmp_path / "params.yaml").write_text("double: {n: 2}\n")
    assert "Data and pipelines are up to date" in _dvc(tmp_path, "status").stdout
    assert "didn't change" in _dvc(tmp_path, "repro").stdout
