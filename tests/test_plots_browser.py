"""`dvc plots show` and `dvc plots diff` pages, opened in a real headless browser with no network:
every chart must draw its marks (DVC's own page loads Vega from a CDN and stays blank offline)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow  # a git + DVC project and a browser

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from tools.project_copy import copy_project  # noqa: E402

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")


def _run(project: Path, *command: str) -> str:
    env = os.environ | {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
    return done.stdout


def _offline(command: list[str]) -> list[str]:
    """`command` in a network namespace of its own: no network at all (as root, or as a user with
    user namespaces)."""
    for unshare in (["unshare", "-n"], ["unshare", "-rn"]):
        if subprocess.run([*unshare, "true"], capture_output=True).returncode == 0:
            return [*unshare, *command]
    pytest.skip("cannot take the network away here (unshare -n and unshare -rn both fail)")


def drawn_marks(page: Path) -> dict[str, int]:
    """Per chart (its div id): the marks the browser drew, after its scripts ran, network off."""
    dom = subprocess.run(_offline([BROWSER, "--headless", "--no-sandbox", "--disable-gpu",
                                   "--virtual-time-budget=20000", "--dump-dom", page.as_uri()]),
                         capture_output=True, text=True, timeout=300).stdout
    body = dom[dom.index("<body"):]
    parts = re.split(r'<div id="([^"]+)"', body)
    marks = {}
    for name, chart in zip(parts[1::2], parts[2::2]):
        groups = re.findall(r'<g class="mark-\w+ role-mark[^"]*"[^>]*>(.*?)</g>', chart, re.S)
        marks[name] = sum(len(re.findall(r"<(?:path|line)\b", group)) for group in groups)
    return marks


@pytest.mark.skipif(BROWSER is None, reason="chromium is not installed (apt-get install chromium; .ci/run does)")
def test_plots_show_and_diff_pages_draw_every_chart_offline(tmp_path):
    from synthsmith.stages.charts import PAGE_PATH, page

    project = copy_project(tmp_path / "project")  # with the committed report tables and training curves
    (project / PAGE_PATH).write_text(page())  # what the report stage writes
    for command in (("git", "init", "-q"), ("git", "add", "-A"),
                    ("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "project")):
        _run(project, *command)
    funnel = project / "reports/plots/funnel.csv"
    funnel.write_text(funnel.read_text().replace(",14\n", ",13\n"))  # a second version to compare with
    charts = [name for entry in yaml.safe_load((project / "dvc.yaml").read_text())["plots"] for name in entry]

    _run(project, "dvc", "plots", "show", "-o", "shown")
    _run(project, "dvc", "plots", "diff", "HEAD", "-o", "diffed")
    for output in ("shown", "diffed"):
        index = project / output / "index.html"
        assert "<script src=" not in index.read_text()
        marks = drawn_marks(index)
        assert sorted(marks) == sorted(charts), output
        assert all(marks[name] > 0 for name in charts), (output, marks)
    diffed = (project / "diffed" / "index.html").read_text()
    assert '"rev": "HEAD"' in diffed and '"rev": "workspace"' in diffed  # both versions in the charts' data
