"""dvc.yaml cannot drift from the code: every project file a stage's process can run is a dep of
that stage, so `dvc repro` reruns a stage whenever its code changes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from synthsmith.runtime.code import code_closure

ROOT = Path(__file__).resolve().parents[1]
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
# Decide only where and how a stage runs, never what it writes: allowed to be left out.
PLUMBING = ("synthsmith.runtime.stage", "synthsmith.runtime.runners", "synthsmith.runtime.ray_runner",
            "synthsmith.runtime.server", "synthsmith.runtime.deployment")


def _covered(path: Path, deps: list[str]) -> bool:
    return any(path == (ROOT / dep).resolve() or path.is_relative_to((ROOT / dep).resolve()) for dep in deps)


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_file_a_stage_runs_is_one_of_its_deps(stage, monkeypatch):
    monkeypatch.chdir(ROOT)
    module = STAGES[stage]["cmd"].removeprefix("python -m ")
    deps = STAGES[stage]["deps"]
    missing = sorted(str(path.relative_to(ROOT)) for path in code_closure([module], stop=PLUMBING)
                     if not _covered(path, deps))
    assert not missing, f"dvc.yaml: stage {stage} runs {missing} but does not list them under its deps"


def test_no_stage_depends_on_test_or_benchmark_helpers():
    helpers = [f"{stage}: {dep}" for stage, spec in STAGES.items() for dep in spec["deps"]
               if dep.split("/")[0] in {"tests", "tools", "benchmarks"}]
    assert not helpers


def test_the_verify_stage_runs_no_llm_code(monkeypatch):
    monkeypatch.chdir(ROOT)
    files = code_closure(["flows.verify"], stop=PLUMBING)
    assert ROOT / "src/synthsmith/stages/verify_strict.py" in files
    assert not [f for f in files if "llm" in f.parts]


def test_the_closure_follows_nested_imports_function_strings_and_code_files(tmp_path, monkeypatch):
    package = tmp_path / "toy"
    package.mkdir()
    files = {
        "__init__.py": "",
        "entry.py": "def run():\n    from toy import nested\n    return 'toy.checks:check'\n",
        "nested.py": "from . import relative\n",
        "relative.py": "import json\n",
        "checks.py": "from pathlib import Path\nCODE_FILES = (Path(__file__).with_name('script.txt'),)\n",
        "script.txt": "run me",
        "unused.py": "",
    }
    for name, text in files.items():
        (package / name).write_text(text)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [m for m in sys.modules if m == "toy" or m.startswith("toy.")]:
        monkeypatch.delitem(sys.modules, name)
    found = {path.name for path in code_closure(["toy.entry"])}
    assert found == {"__init__.py", "entry.py", "nested.py", "relative.py", "checks.py", "script.txt"}
    assert "nested.py" not in {path.name for path in code_closure(["toy.entry"], stop=["toy.nested"])}
