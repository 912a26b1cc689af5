"""The package layout keeps its promises: no import cycles, nothing happens at import time."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import synthsmith
from synthsmith.runtime.code import references

PACKAGE = Path(synthsmith.__file__).resolve().parent
ROOT = PACKAGE.parents[1]


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _import_graph() -> dict[str, set[str]]:
    """module -> the project modules it imports, at any depth (inside functions too)."""
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        named, _ = references(path, name)
        graph[name] = {m for m in named if m in modules and m != name}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for child in sorted(graph[node]):
            if state.get(child) == "open":
                return stack[stack.index(child):] + [child]
            if child not in state and (found := visit(child)):
                return found
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_module_imports_its_own_importer():
    assert _cycle(_import_graph()) is None, f"import cycle: {' -> '.join(_cycle(_import_graph()))}"


def test_a_cycle_is_found_when_there_is_one():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_the_library_does_not_import_test_or_benchmark_helpers():
    graph = _import_graph()
    for name, path in _modules().items():
        named, _ = references(path, name)
        assert not [m for m in named if m.split(".")[0] in {"tests", "tools", "benchmarks"}], name
    assert graph  # the walk saw the package


def test_importing_every_module_changes_no_environment_variable_and_starts_nothing():
    names = sorted(n for n in _modules() if n != "synthsmith.runtime.ray_runner")  # prefect-ray is optional
    names += [f"flows.{p.stem}" for p in sorted((ROOT / "flows").glob("*.py"))]
    # Third-party imports first: polars sets its allocator's variable when imported; only ours count.
    code = ("import json, os, sys, threading, importlib, polars, prefect\n"
            "before = dict(os.environ)\n"
            f"for name in {names!r}:\n"
            "    importlib.import_module(name)\n"
            "changed = sorted(k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k))\n"
            "print(json.dumps({'changed': changed, 'threads': threading.active_count()}))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["changed"] == []
    assert report["threads"] == 1
