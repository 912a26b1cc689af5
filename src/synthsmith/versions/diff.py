"""Compare two dataset versions: `synthsmith diff A B`.

A side is, tried in this order:
- an existing directory holding `sft.parquet` and/or `rl.parquet` (an export directory; its
  metrics are `metrics.json` beside them, else `../../reports/metrics.json`), or a project
  checkout holding `data/export/` (metrics: `reports/metrics.json`);
- a git revision of the repository (`HEAD~1`, a branch, a tag, a sha, a full `refs/...` name);
- a DVC experiment name (`dvc exp show`): DVC 3 keeps every experiment as a git ref
  `refs/exps/<baseline sha[:2]>/<baseline sha[2:]>/<name>`.

A revision's export tables come through `dvc.api.DVCFileSystem` at that commit: from the local
DVC cache, else streamed from the default DVC remote of the workspace's DVC config (nothing is
written to the cache; `dvc fetch` to keep a copy); its metrics are
`reports/metrics.json` as committed (DVC metrics are git-tracked here, `cache: false`).

Tasks are matched by `task_id`. A task's content hash is the sha256 of the canonical JSON
(sorted keys, no whitespace) of all its rows in the export tables, `{"rl": [...], "sft": [...]}`,
each table's rows sorted by their own canonical JSON: added/removed by id, changed = same id,
different hash. Left out of the hash: `extra_info.index` of the RL table (the row's position,
which shifts whenever a task is added or removed before it). Metrics are compared leaf by leaf as {a, b, delta}; within a group present on
both sides a missing count is 0 (a drop reason, a style that no longer occurs).
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import polars as pl

from synthsmith.contract import metrics as metrics_contract

EXPORT_DIR = "data/export"
EXPORT_TABLES = ("sft", "rl")
METRICS_PATH = "reports/metrics.json"

# Which parts of reports/metrics.json a diff compares, in display order (absent ones are skipped).
# Left out: `hygiene.dropped` (one entry per dropped task) and `llm.by_stage_and_model`.
METRIC_SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("tasks", ("tasks",)),
    ("funnel", ("funnel",)),
    ("rounds", ("rounds",)),
    ("discard_reasons", ("discard_reasons",)),
    ("style_mix", ("style_mix",)),
    ("features", ("features",)),
    ("feature_coverage", ("feature_coverage",)),
    ("diversity", ("diversity",)),
    ("labeling", ("labeling",)),
    ("golden_tests_per_task", ("golden_tests_per_task",)),
    ("execution", ("execution",)),
    ("hygiene", ("hygiene", "dropped_by_reason")),
    ("llm", ("llm", "total")),
)
# The rows a readable diff always shows, changed or not (dotted paths; `*` = any key).
HEADLINE = ("tasks.*", "funnel.*.in", "funnel.*.out", "style_mix.*.*", "labeling.*")


class DiffError(Exception):
    """A side could not be resolved or read; the message is one line for the user."""


@dataclass
class Side:
    spec: str  # what the user typed
    kind: str  # "directory" | "git" | "experiment"
    label: str  # what the user is shown
    tables: dict[str, pl.DataFrame] = field(default_factory=dict)
    metrics: dict | None = None
    rev: str | None = None  # the commit, for git revisions and experiments

    def describe(self) -> dict:
        return {"spec": self.spec, "kind": self.kind, "label": self.label, "rev": self.rev,
                "tables": sorted(self.tables), "metrics": self.metrics is not None}


# ---------------------------------------------------------------------------------------------
# Resolving a side


def resolve_side(spec: str, repo: Path = Path(".")) -> tuple:
    """Where SPEC's data lives, without reading it: ("directory", path) or ("rev", root, sha, kind, label).
    Cheap, so both sides of a diff are checked before either is read."""
    path = Path(spec)
    if path.is_dir():
        return ("directory", path)
    root = _git_root(repo, spec)
    return ("rev", root, *_resolve_rev(root, spec))


def load_side(spec: str, repo: Path = Path("."), resolved: tuple | None = None) -> Side:
    """Resolve SPEC (directory, git revision or experiment name) and read its tables and metrics."""
    resolved = resolved or resolve_side(spec, repo)
    if resolved[0] == "directory":
        return _load_directory(spec, resolved[1])
    _, root, sha, kind, label = resolved
    return _load_rev(spec, root, sha, kind, label)


def _load_directory(spec: str, path: Path) -> Side:
    export = path
    metrics_candidates = [path / "metrics.json", path.parent.parent / METRICS_PATH]
    if not any((path / f"{t}.parquet").is_file() for t in EXPORT_TABLES) and (path / EXPORT_DIR).is_dir():
        export = path / EXPORT_DIR  # a project checkout
        metrics_candidates = [path / METRICS_PATH]
    files = DirectoryFiles(export, spec)
    tables = {table: files.read_parquet(f"{table}.parquet") for table in EXPORT_TABLES
              if f"{table}.parquet" in files.names(".")}
    if not tables:
        raise DiffError(f"{spec}: directory holds no sft.parquet or rl.parquet (nor {EXPORT_DIR}/)")
    metrics = None
    for candidate in metrics_candidates:
        if candidate.is_file():
            metrics = _parse_metrics(candidate.read_bytes(), f"{spec}: {candidate}")
            break
    return Side(spec, "directory", f"{spec} (directory)", tables, metrics)


def _git(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)


def _git_root(repo: Path, spec: str) -> Path:
    result = _git(repo, "rev-parse", "--show-toplevel")
    if result.returncode:
        raise DiffError(f"{spec}: not a directory, and {repo.resolve()} is not in a git repository "
                        "to look it up as a revision or experiment")
    return Path(result.stdout.strip())


def experiment_refs(root: Path) -> dict[str, list[tuple[str, str]]]:
    """Experiment name -> [(commit, ref)]: DVC 3 refs `refs/exps/<sha[:2]>/<sha[2:]>/<name>`
    (the baseline commit split in two); `refs/exps/exec/...` and other bookkeeping refs skipped."""
    result = _git(root, "for-each-ref", "--format=%(objectname) %(refname)", "refs/exps/")
    names: dict[str, list[tuple[str, str]]] = {}
    for line in result.stdout.splitlines():
        sha, ref = line.split(" ", 1)
        parts = ref.split("/")
        if len(parts) >= 5 and len(parts[2]) == 2 and len(parts[2] + parts[3]) in (40, 64):
            names.setdefault("/".join(parts[4:]), []).append((sha, ref))
    return names


def _resolve_rev(root: Path, spec: str) -> tuple[str, str, str]:
    """(commit sha, kind, label) for a git revision or a DVC experiment name."""
    result = _git(root, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{spec}^{{commit}}")
    if result.returncode == 0 and spec:
        sha = result.stdout.strip()
        if spec.startswith("refs/exps/"):
            return sha, "experiment", f"{spec.rsplit('/', 1)[-1]} (experiment, commit {sha[:7]})"
        return sha, "git", f"{spec} (commit {sha[:7]})"
    candidates = experiment_refs(root).get(spec, [])
    if len(candidates) > 1:  # the same name on several baselines: prefer HEAD's, as DVC does
        head = _git(root, "rev-parse", "HEAD").stdout.strip()
        on_head = [(sha, ref) for sha, ref in candidates if "".join(ref.split("/")[2:4]) == head]
        if len(on_head) != 1:
            refs = ", ".join(ref for _, ref in candidates)
            raise DiffError(f"{spec}: ambiguous experiment name ({refs}); pass the full ref")
        candidates = on_head
    if candidates:
        sha, ref = candidates[0]
        baseline = "".join(ref.split("/")[2:4])
        return sha, "experiment", f"{spec} (experiment, commit {sha[:7]}, baseline {baseline[:7]})"
    raise DiffError(f"{spec}: no such directory, git revision or DVC experiment in {root}")


# ---------------------------------------------------------------------------------------------
# Reading a version's files (shared with `explain`)


class DirectoryFiles:
    """A version's files in a directory on disk; `label` starts its error messages."""

    def __init__(self, root: Path, label: str):
        self.root = root
        self.label = label

    def names(self, directory: str) -> set[str]:
        """The file names in DIRECTORY (relative to the root); none when it does not exist."""
        path = self.root / directory
        return {p.name for p in path.iterdir() if p.is_file()} if path.is_dir() else set()

    def read_parquet(self, path: str) -> pl.DataFrame:
        file = self.root / path
        try:
            return pl.read_parquet(file)
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise DiffError(f"{self.label}: cannot read {file}: {exc}") from exc


class RevisionFiles:
    """A git revision's or experiment's files through `dvc.api.DVCFileSystem` at its commit: DVC-tracked
    data from the local DVC cache, else streamed from the default DVC remote (nothing is cached)."""

    def __init__(self, spec: str, root: Path, sha: str, kind: str, label: str):
        from dvc.api import DVCFileSystem

        self.kind, self.label, self.sha = kind, label, sha
        try:
            self.fs = DVCFileSystem(repo=str(root), rev=sha)
        except Exception as exc:  # noqa: BLE001 - no DVC repo at that commit, unreadable config...
            raise DiffError(f"{label}: cannot open the DVC repository at this revision: {_one_line(exc)}") from exc
        if kind == "experiment":
            self._hint = (f"fetch it with `dvc exp pull <git-remote> {spec}`, or rebuild it "
                          f"(`dvc exp apply {spec}`, `dvc repro`)")
        else:
            self._hint = (f"fetch it with `dvc fetch --all-commits` (or `dvc pull` with {spec} checked out), "
                          f"or rebuild it (`git checkout {spec}`, `dvc repro`)")

    def _missing(self, path: str, exc: BaseException) -> DiffError:
        return DiffError(f"{self.label}: {path} is tracked by DVC at this revision, but its data is neither in the "
                         f"local DVC cache nor in the default DVC remote ({_one_line(exc)}); {self._hint}")

    def names(self, directory: str) -> set[str]:
        """The file names in DIRECTORY at this revision; none when it is not tracked there."""
        try:  # listing the directory loads its manifest (the .dir object): cache first, then the remote
            return {PurePosixPath(p).name for p in self.fs.ls(directory, detail=False)}
        except FileNotFoundError:
            return set()
        except Exception as exc:  # noqa: BLE001 - DataIndexDirError and friends: the manifest is missing
            raise self._missing(directory, exc) from exc

    def read_parquet(self, path: str) -> pl.DataFrame:
        try:
            data = self.fs.read_bytes(path)
        except Exception as exc:  # noqa: BLE001 - DVC raises several types for a missing object
            raise self._missing(path, exc) from exc
        try:
            return pl.read_parquet(io.BytesIO(data))
        except pl.exceptions.PolarsError as exc:
            raise DiffError(f"{self.label}: cannot read {path}: {_one_line(exc)}") from exc


def open_files(spec: str, repo: Path = Path(".")) -> DirectoryFiles | RevisionFiles:
    """SPEC's files: a directory as it is on disk, or a git revision or DVC experiment of REPO."""
    resolved = resolve_side(spec, repo)
    if resolved[0] == "directory":
        return DirectoryFiles(resolved[1], f"{spec} (directory)")
    return RevisionFiles(spec, *resolved[1:])


def _load_rev(spec: str, root: Path, sha: str, kind: str, label: str) -> Side:
    files = RevisionFiles(spec, root, sha, kind, label)
    listed = files.names(EXPORT_DIR)
    tables = {table: files.read_parquet(f"{EXPORT_DIR}/{table}.parquet") for table in EXPORT_TABLES
              if f"{table}.parquet" in listed}  # a table not listed is not part of this version
    if not tables:
        raise DiffError(f"{label}: no {EXPORT_DIR}/sft.parquet or rl.parquet is tracked at this revision")
    metrics = None
    shown = _git(root, "show", f"{sha}:{METRICS_PATH}")
    if shown.returncode == 0:
        metrics = _parse_metrics(shown.stdout.encode(), f"{label}: {METRICS_PATH}")
    elif files.fs.exists(METRICS_PATH):  # metrics kept in the DVC cache instead of git
        metrics = _parse_metrics(files.fs.read_bytes(METRICS_PATH), f"{label}: {METRICS_PATH}")
    return Side(spec, kind, label, tables, metrics, rev=sha)


def _parse_metrics(raw: bytes, where: str) -> dict:
    """A side's metrics.json as a JSON tree, checked against the contract's declaration first."""
    try:
        return metrics_contract.as_json(metrics_contract.parse(raw))
    except metrics_contract.MetricsError as exc:
        raise DiffError(f"{where}: {exc}") from None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


# ---------------------------------------------------------------------------------------------
# Tasks


def canonical_json(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def task_digests(tables: dict[str, pl.DataFrame]) -> dict[str, tuple[str, dict[str, str]]]:
    """task_id -> (content hash, {"table.column": digest}) over every export table's rows."""
    rows: dict[str, dict[str, list[str]]] = {}
    columns: dict[str, list[str]] = {}
    for table, frame in sorted(tables.items()):
        if "task_id" not in frame.columns:
            raise DiffError(f"export table {table} has no task_id column (has {frame.columns})")
        columns[table] = sorted(frame.columns)
        for row in frame.iter_rows(named=True):
            rows.setdefault(str(row["task_id"]), {}).setdefault(table, []).append(canonical_json(_content(row)))
    digests = {}
    for task_id, per_table in rows.items():
        content = "{" + ",".join(f"{json.dumps(t)}:[{','.join(sorted(r))}]"
                                 for t, r in sorted(per_table.items())) + "}"
        fields = {}
        for table, texts in per_table.items():
            decoded = [json.loads(t) for t in sorted(texts)]
            for column in columns[table]:
                fields[f"{table}.{column}"] = _sha(canonical_json([row.get(column) for row in decoded]))
        digests[task_id] = (_sha(content), fields)
    return digests


def _content(row: dict) -> dict:
    """A row as its task's content: without the RL row's position (`extra_info.index`)."""
    extra = row.get("extra_info")
    if isinstance(extra, dict) and "index" in extra:
        row = {**row, "extra_info": {k: v for k, v in extra.items() if k != "index"}}
    return row


def diff_tasks(a: dict[str, pl.DataFrame], b: dict[str, pl.DataFrame]) -> dict:
    da, db = task_digests(a), task_digests(b)
    added = sorted(set(db) - set(da))
    removed = sorted(set(da) - set(db))
    changed = sorted(t for t in set(da) & set(db) if da[t][0] != db[t][0])
    changed_fields = {}
    for task_id in changed:
        fa, fb = da[task_id][1], db[task_id][1]
        changed_fields[task_id] = sorted(k for k in set(fa) | set(fb) if fa.get(k) != fb.get(k))
    return {"added": len(added), "removed": len(removed), "changed": len(changed),
            "unchanged": len(set(da) & set(db)) - len(changed), "a": len(da), "b": len(db),
            "added_ids": added, "removed_ids": removed, "changed_ids": changed,
            "changed_fields": changed_fields,
            "hashes": {"a": {t: h for t, (h, _) in sorted(da.items())},
                       "b": {t: h for t, (h, _) in sorted(db.items())}}}


def _export_summary(tables: dict[str, pl.DataFrame]) -> dict:
    """What the export tables themselves say (also when a side has no metrics.json)."""
    summary: dict = {"rows": {t: f.height for t, f in sorted(tables.items())}}
    for frame in tables.values():
        if "style" in frame.columns:
            ids = frame.unique("task_id") if "task_id" in frame.columns else frame
            summary["style"] = dict(sorted((str(k), int(v)) for k, v in ids["style"].value_counts().iter_rows()))
            break
    return summary


# ---------------------------------------------------------------------------------------------
# Metrics


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _delta(a, b):
    if _is_number(a) and _is_number(b):
        d = b - a
        return round(d, 6) if isinstance(d, float) else d
    return None


def compare(a, b):
    """Mirror the union of two JSON trees, each leaf as {"a", "b", "delta"}. Within a dict present
    on both sides, a missing numeric leaf counts as 0; a side without the whole tree gives None."""
    if isinstance(a, dict) or isinstance(b, dict):
        both = isinstance(a, dict) and isinstance(b, dict)
        tree_a, tree_b = (a if isinstance(a, dict) else {}), (b if isinstance(b, dict) else {})
        out = {}
        for key in dict.fromkeys([*tree_a, *tree_b]):
            va, vb = tree_a.get(key), tree_b.get(key)
            if both and key not in tree_a and _is_number(vb):
                va = 0 if isinstance(vb, int) else 0.0
            if both and key not in tree_b and _is_number(va):
                vb = 0 if isinstance(va, int) else 0.0
            out[key] = compare(va, vb)
        return out
    return {"a": a, "b": b, "delta": _delta(a, b)}


def diff_metrics(a: dict | None, b: dict | None) -> dict:
    out = {}
    for name, path in METRIC_SECTIONS:
        va, vb = a, b
        for key in path:
            va = va.get(key) if isinstance(va, dict) else None
            vb = vb.get(key) if isinstance(vb, dict) else None
        if va is None and vb is None:
            continue
        out[name] = compare(va, vb)
    return out


def _leaves(tree, prefix: str = ""):
    if isinstance(tree, dict) and set(tree) == {"a", "b", "delta"}:
        yield prefix, tree
    elif isinstance(tree, dict):
        for key, value in tree.items():
            yield from _leaves(value, f"{prefix}.{key}" if prefix else str(key))


def _differs(leaf: dict) -> bool:
    return leaf["a"] != leaf["b"]


# ---------------------------------------------------------------------------------------------
# The diff


def diff(a: Side, b: Side) -> dict:
    tasks = diff_tasks(a.tables, b.tables)
    metrics = diff_metrics(a.metrics, b.metrics)
    export = compare(_export_summary(a.tables), _export_summary(b.tables))
    identical = (tasks["added"] == tasks["removed"] == tasks["changed"] == 0
                 and not any(_differs(leaf) for _, leaf in _leaves(metrics))
                 and not any(_differs(leaf) for _, leaf in _leaves(export)))
    return {"a": a.describe(), "b": b.describe(), "identical": identical, "tasks": tasks,
            "export": export, "metrics": metrics}


def diff_specs(spec_a: str, spec_b: str, repo: Path = Path(".")) -> dict:
    resolved = [resolve_side(spec, repo) for spec in (spec_a, spec_b)]
    return diff(load_side(spec_a, repo, resolved[0]), load_side(spec_b, repo, resolved[1]))


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _fmt_delta(leaf: dict) -> str:
    d = leaf["delta"]
    if d is None:
        return "changed" if _differs(leaf) else ""
    if d == 0:
        return "0"
    return ("+" if d > 0 else "") + _fmt(d)


def _is_headline(path: str) -> bool:
    parts = path.split(".")
    for pattern in HEADLINE:
        want = pattern.split(".")
        if len(want) == len(parts) and all(w in ("*", p) for w, p in zip(want, parts, strict=True)):
            return True
    return False


def render_text(result: dict, show_all: bool = False, max_ids: int = 20) -> str:
    """A readable report: the task changes, then one aligned table of metrics (A, B, delta).
    By default the table holds the headline rows and every row that changed."""
    tasks = result["tasks"]
    lines = [f"A: {result['a']['label']}", f"B: {result['b']['label']}", ""]
    for side in ("a", "b"):
        if not result[side]["metrics"]:
            lines.append(f"note: {side.upper()} has no metrics.json; only its export tables are compared")
    lines.append(f"tasks: {tasks['added']} added, {tasks['removed']} removed, {tasks['changed']} changed, "
                 f"{tasks['unchanged']} unchanged (A {tasks['a']}, B {tasks['b']})")
    for mark, key in (("+", "added_ids"), ("-", "removed_ids"), ("~", "changed_ids")):
        ids = tasks[key]
        for task_id in ids[:max_ids]:
            detail = ", ".join(tasks["changed_fields"].get(task_id, [])) if mark == "~" else ""
            lines.append(f"  {mark} {task_id}" + (f"  ({detail})" if detail else ""))
        if len(ids) > max_ids:
            lines.append(f"  {mark} ... and {len(ids) - max_ids} more (--json lists all)")

    rows, hidden = [], 0
    groups = [("export", result["export"])] + list(result["metrics"].items())
    for section, tree in groups:
        for path, leaf in _leaves(tree, section):
            if show_all or _differs(leaf) or _is_headline(path):
                rows.append((path, _fmt(leaf["a"]), _fmt(leaf["b"]), _fmt_delta(leaf)))
            else:
                hidden += 1
    if rows:
        header = ("metric", "A", "B", "delta")
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
        lines.append("")
        lines.append(f"{header[0]:<{widths[0]}}  {header[1]:>{widths[1]}}  {header[2]:>{widths[2]}}  "
                     f"{header[3]:>{widths[3]}}")
        lines.append("  ".join("-" * w for w in widths))
        for path, va, vb, d in rows:
            lines.append(f"{path:<{widths[0]}}  {va:>{widths[1]}}  {vb:>{widths[2]}}  {d:>{widths[3]}}")
    if hidden:
        lines.append(f"({hidden} unchanged rows not shown; --all shows them)")
    lines.append("")
    lines.append("no change" if result["identical"] else "changed")
    return "\n".join(lines)
