"""The project code a module can run, read from source: what shard cache keys hash and what a
stage's `dvc.yaml` deps must cover (tests/test_dvc_deps.py).

The closure of a module is the project files reached by following, from its source:
- every import statement at any depth (also inside functions), with the packages on the way;
- every string naming a function as "module:function" (validators, loaded by name at run time);
- the files a module lists in `CODE_FILES` (code it runs without importing it: the sandbox's
  worker script, a template rendered inside a shard).
Modules outside the project (the standard library, site-packages) are not followed.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import synthsmith

PACKAGE_DIR = Path(synthsmith.__file__).resolve().parent
FUNCTION_SPEC = re.compile(r"^([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):[A-Za-z_]\w*$")  # "package.module:function"


def code_closure(modules: Iterable[str], stop: Iterable[str] = ()) -> set[Path]:
    """The project files `modules` can run. Modules in `stop` (and their imports) are left out,
    unless something else reaches them."""
    stopped = set(stop)
    seen: set[str] = set()
    files: set[Path] = set()
    todo = [name for module in modules for name in _with_parents(module)]
    while todo:
        name = todo.pop()
        if name in seen or name in stopped:
            continue
        seen.add(name)
        path = _source_of(name)
        if path is None:
            continue
        files.add(path)
        found, declared = references(path, name)
        files.update(declared)
        todo.extend(child for module in found for child in _with_parents(module))
    return files


def closure_digest(modules: Iterable[str]) -> str:
    """sha256 over the closure's files (path and bytes), in path order."""
    digest = hashlib.sha256()
    for path in sorted(code_closure(modules)):
        digest.update(str(_relative(path)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def function_specs(value: object) -> list[str]:
    """The modules of every "module:function" string inside `value` (nested dicts and lists too)."""
    if isinstance(value, str):
        match = FUNCTION_SPEC.match(value)
        return [match.group(1)] if match else []
    if isinstance(value, dict):
        return [module for item in value.values() for module in function_specs(item)]
    if isinstance(value, list | tuple):
        return [module for item in value for module in function_specs(item)]
    return []


def _with_parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _source_of(module: str) -> Path | None:
    """The module's .py file if it is project code, else None."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError, AttributeError):  # `from a.b import function`: a.b.function is no module
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    path = Path(spec.origin).resolve()
    return path if _is_project(path) else None


def _is_project(path: Path) -> bool:
    if "site-packages" in path.parts:
        return path.is_relative_to(PACKAGE_DIR)  # a non-editable install of synthsmith itself
    return path.is_relative_to(PACKAGE_DIR) or path.is_relative_to(Path.cwd().resolve())


@cache
def _parsed(path: Path, mtime_ns: int) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def references(path: Path, module: str) -> tuple[list[str], set[Path]]:
    """(modules the source of `module`, at `path`, names, files its CODE_FILES lists)."""
    tree = _parsed(path, path.stat().st_mtime_ns)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[str] = []
    declares_code_files = False
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, package)
            found.append(base)
            found += [f"{base}.{alias.name}" for alias in node.names if alias.name != "*"]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            found += function_specs(node.value)
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "CODE_FILES"
                                                  for t in node.targets):
            declares_code_files = True
    declared = {Path(p).resolve() for p in importlib.import_module(module).CODE_FILES} if declares_code_files \
        else set()
    return found, declared


def _absolute(node: ast.ImportFrom, package: str) -> str:
    if not node.level:
        return node.module or ""
    parts = package.split(".")
    base = ".".join(parts[:len(parts) - node.level + 1])
    return f"{base}.{node.module}" if node.module else base


def _relative(path: Path) -> Path:
    return path.relative_to(PACKAGE_DIR.parent) if path.is_relative_to(PACKAGE_DIR.parent) else path
