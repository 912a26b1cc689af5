"""The lineage of one task: `synthsmith explain TASK_ID [--rev REV] [--json]`.

Read from the versioned tables of one version (the workspace, a project directory, a git revision
or a DVC experiment: `diff.open_files`), stage by stage: the feature subtree sampled for the task and
the seeds its features come from -> the plan (the features it selected) -> statement and style ->
hygiene -> test inputs, each with its generator, characteristic, weight and validator verdict ->
candidates and how each ran on each test, clustered as `verify_strict` clusters them -> the
first-round and final verdicts -> the export rows. A dropped task says at which stage and step and
why (generate_tasks lists every task it dropped: plan or statement rejected, or hygiene).

Only what the tables record is shown; what they do not (the plan's feature roles, a dropped task's
plan and statement beyond their reason and title) is named under `not_recorded` instead, and so is
what an older version's tables did not keep yet (the sampled subtree, the validator's verdicts, the
planning and writing drops).

Derived, not stored: a candidate's round (from `rounds.samples_per_model`: round r asks each model
for samples up to that count), the output classes and clusters (vote keys at the default float
tolerance, `VerifyParams.float_tol`), and a feature's seeds (the seeds whose extracted features,
normalised as `build_pool` does, hold the path or the pool node it grew from).
"""

from __future__ import annotations

import difflib
import json
import re
import string
import textwrap
from pathlib import Path

import polars as pl

from synthsmith.contract import tables
from synthsmith.contract.values import (DISCARDED, EXTRACTED, HYGIENE, INVALID, KEPT, OK, PLAN, SANDBOX_STATUSES,
                                        UNDECIDED, WRITE)
from synthsmith.stages.names import normalise
from synthsmith.stages.votes import with_key_ids
from synthsmith.versions.diff import DirectoryFiles, RevisionFiles, open_files

FLOAT_TOL = 1e-6  # VerifyParams.float_tol's default: the tolerance output classes and clusters use
# The (stage, file) tables a lineage reads, in stage order.
LINEAGE_TABLES = (
    ("seeds", "seeds"), ("extract_features", "answers"), ("evolve_features", "pool"),
    ("generate_tasks", "tasks"), ("generate_tasks", "task_features"), ("generate_tasks", "dropped"),
    ("generate_tasks", "funnel"), ("generate_tests", "tests"),
    ("generate_solutions", "solutions"), ("execute", "executions"),
    ("verify", "verdicts"), ("verify_rounds", "solutions"), ("verify_rounds", "executions"),
    ("verify_rounds", "verdicts"), ("verify_rounds", "rounds"), ("export", "sft"), ("export", "rl"),
)
# generate_tasks.sample_subtrees names the i-th sampled subtree's task like this.
PLANNED_TASK_FORMAT = "task-{:05d}"
PLANNED_TASK_ID = re.compile(r"task-(\d{5})")
# A run's symbol in the candidates table: a clean run shows its output class (a, b, ...).
STATUS_SYMBOLS = {"timeout": "T", "runtime_error": "E", "syntax_error": "S", "memory_limit": "M",
                  "output_limit": "O", "killed": "K"}
NOT_RUN = "."
assert set(STATUS_SYMBOLS) == set(SANDBOX_STATUSES) - {OK}


class ExplainError(Exception):
    """The task or its data cannot be found; the message is one line for the user."""


# ---------------------------------------------------------------------------------------------
# Reading one version


def open_version(rev: str | None, repo: Path = Path(".")) -> tuple[DirectoryFiles | RevisionFiles, dict]:
    """REV's files (the workspace of REPO when None) and a description of the version."""
    if rev is None:
        return DirectoryFiles(repo, "workspace"), {"spec": None, "kind": "workspace",
                                                   "label": f"workspace ({repo.resolve()})", "rev": None}
    files = open_files(rev, repo)
    if isinstance(files, DirectoryFiles):
        return files, {"spec": rev, "kind": "directory", "label": files.label, "rev": None}
    return files, {"spec": rev, "kind": files.kind, "label": files.label, "rev": files.sha}


def gather(files: DirectoryFiles | RevisionFiles, task_id: str) -> dict[str, pl.DataFrame]:
    """"stage/file" -> the table, conformed to its contract; the per-task tables filtered to TASK_ID.
    A table this version does not have is left out."""
    found: dict[str, pl.DataFrame] = {}
    listed: dict[str, set[str]] = {}
    for stage, name in LINEAGE_TABLES:
        directory = f"data/{stage}"
        if directory not in listed:
            listed[directory] = files.names(directory)
        if f"{name}.parquet" not in listed[directory]:
            continue
        path = f"{directory}/{name}.parquet"
        try:
            frame = tables.conform(files.read_parquet(path), tables.STAGE_OUTPUTS[stage][name])
        except tables.ContractError as exc:
            raise ExplainError(f"{files.label}: {path} does not match the table contract: {exc}") from exc
        if "task_id" in frame.columns and name not in ("tasks", "dropped"):  # those two list every task id
            frame = frame.filter(pl.col("task_id") == task_id)
        found[f"{stage}/{name}"] = frame
    if "generate_tasks/tasks" not in found:
        raise ExplainError(f"{files.label}: no data/generate_tasks/tasks.parquet in this version")
    return found


# ---------------------------------------------------------------------------------------------
# The lineage


def explain(task_id: str, rev: str | None = None, repo: Path = Path(".")) -> dict:
    files, version = open_version(rev, repo)
    return build_lineage(task_id, gather(files, task_id), version)


def build_lineage(task_id: str, found: dict[str, pl.DataFrame], version: dict) -> dict:
    """The task's lineage as a JSON-ready dict: version, fate (where it ended and why), one entry
    per stage. Raises ExplainError for a task id this version never had."""
    task = found["generate_tasks/tasks"].filter(pl.col("task_id") == task_id).to_dicts()
    dropped = found.get("generate_tasks/dropped", tables.DROPPED_TASKS.empty()).filter(
        pl.col("task_id") == task_id).to_dicts()
    lineage: dict = {"task_id": task_id, "version": version}
    if not task and not dropped:
        planned = _planned_not_listed(task_id, found)
        if planned is None:
            raise ExplainError(_unknown_task(task_id, found, version["label"]))
        lineage["fate"] = planned
        lineage["stages"] = {}
        return lineage

    features = _features(found)
    stages: dict = {"features": features, "generate_tasks": _generate_tasks(task, dropped, features)}
    if dropped:
        lineage["fate"] = _dropped_fate(dropped[0])
        lineage["stages"] = stages
        return lineage
    stages["generate_tests"] = _tests(found)
    candidates = _candidates(found, stages["generate_tests"]["tests"])
    stages["candidates"] = candidates
    stages["verify"] = _verdicts(found, candidates)
    stages["export"] = _export(found)
    lineage["fate"] = _fate(stages)
    lineage["stages"] = stages
    return lineage


# What each generate_tasks step that drops a task did to it.
DROP_STEPS = {PLAN: "while planning: the plan was rejected", WRITE: "while writing: the statement was rejected",
              HYGIENE: "by hygiene"}


def _dropped_fate(row: dict) -> dict:
    if row["step"] == HYGIENE:
        detail = (f"hygiene: {row['reason']} against {row['against']} item {row['matched']} "
                  f"(score {row['score']:.3f})")
    else:
        detail = f"dropped {DROP_STEPS[row['step']]} ({row['reason']})"
    return {"status": "dropped", "stage": "generate_tasks", "step": row["step"], "reason": row["reason"],
            "detail": detail}


def _planned_not_listed(task_id: str, found: dict[str, pl.DataFrame]) -> dict | None:
    """A fate for an id generate_tasks sampled a subtree for but neither wrote nor listed as dropped:
    a version from before dropped.parquet listed planning and writing drops (it only counted them).
    None when the id was never sampled."""
    match = PLANNED_TASK_ID.fullmatch(task_id)
    if match is None or int(match.group(1)) >= _sampled(found):
        return None
    counts = dict(found["generate_tasks/funnel"].select("metric", "value").iter_rows())
    hygiene = found.get("generate_tasks/dropped", tables.DROPPED_TASKS.empty())["reason"].value_counts()
    hygiene_counts = dict(hygiene.iter_rows())  # hygiene drops are listed in dropped.parquet, so not this task's
    reasons = {metric.removeprefix("dropped:"): n - hygiene_counts.get(metric.removeprefix("dropped:"), 0)
               for metric, n in counts.items() if metric.startswith("dropped:")}
    reasons = {reason: n for reason, n in sorted(reasons.items()) if n > 0}
    return {"status": "dropped", "stage": "generate_tasks", "reason": None,
            "detail": f"generate_tasks sampled a subtree for it ({counts['in']} sampled) but wrote no task: it was "
                      "dropped while planning or writing, which this version only counts ("
                      + ", ".join(f"{reason} {n}" for reason, n in reasons.items()) + ")",
            "not_recorded": ["which planning or writing check dropped this task (this version's dropped.parquet "
                             "lists hygiene drops only)"]}


def _sampled(found: dict[str, pl.DataFrame]) -> int:
    """How many subtrees generate_tasks sampled (its funnel's "in"): task ids task-00000 up to it."""
    funnel = found.get("generate_tasks/funnel", tables.FUNNEL.empty())
    return int(funnel.filter(pl.col("metric") == "in")["value"].sum())


def _unknown_task(task_id: str, found: dict[str, pl.DataFrame], label: str) -> str:
    known = sorted(set(found["generate_tasks/tasks"]["task_id"])
                   | set(found.get("generate_tasks/dropped", tables.DROPPED_TASKS.empty())["task_id"])
                   | {PLANNED_TASK_FORMAT.format(i) for i in range(_sampled(found))})
    similar = difflib.get_close_matches(task_id, known, n=3, cutoff=0.6)
    hint = f"; similar: {', '.join(similar)}" if similar else f"; it has {len(known)} task ids"
    return f"{task_id}: no such task in {label}{hint}"


def _features(found: dict[str, pl.DataFrame]) -> dict:
    """The pool paths of the task's sampled subtree and of its plan's selection, each flagged, with
    its origin and the seeds it comes from. `subtree_recorded`: false for a version whose
    task_features.parquet kept the selected paths of written tasks only."""
    rows = found.get("generate_tasks/task_features", tables.TASK_FEATURES.empty()).to_dicts()
    subtree_recorded = any(row["sampled"] is not None for row in rows)
    pool = found.get("evolve_features/pool", tables.FEATURE_POOL.empty())
    origins = {row["path"]: row for row in pool.iter_rows(named=True)}
    seeds_of = _seeds_by_path(found.get("extract_features/answers", tables.FEATURE_ANSWERS.empty()))
    titles = dict(found.get("seeds/seeds", tables.SEEDS.empty()).select("seed_id", "title").iter_rows())
    features = []
    for row in rows:
        path = row["path"]
        node = origins.get(path)
        grew_from = _nearest_extracted(path, seeds_of)
        features.append({"path": path, "sampled": row["sampled"], "selected": row["selected"],
                         "origin": node["origin"] if node else None,
                         "evolution_round": node["round"] if node else None,
                         "grew_from": grew_from if grew_from != path else None,
                         "seeds": sorted(seeds_of.get(grew_from, set()))})
    used = sorted({seed for feature in features for seed in feature["seeds"]})
    section = {"subtree_recorded": subtree_recorded, "features": features,
               "seeds": [{"seed_id": s, "title": titles.get(s)} for s in used]}
    if not subtree_recorded:
        section["not_recorded"] = ["the feature subtree sampled for this task (this version keeps only the plan's "
                                   "selected features of written tasks)"]
    return section


def _seeds_by_path(answers: pl.DataFrame) -> dict[str, set[str]]:
    """Pool path -> the seeds whose extracted features hold it (normalised as build_pool does),
    and every path prefix below the category -> the seeds holding a feature under it."""
    seeds: dict[str, set[str]] = {}
    answered = answers.filter(pl.col("status") == "ok").select("seed_id", "features_json")
    for seed_id, features_json in answered.iter_rows():
        for category, groups in json.loads(features_json).items():
            for subcategory, leaves in groups.items():
                for leaf in leaves:
                    sub, name = normalise(subcategory), normalise(leaf)
                    if sub and name:
                        seeds.setdefault(f"{category}/{sub}/{name}", set()).add(seed_id)
                        seeds.setdefault(f"{category}/{sub}", set()).add(seed_id)
    return seeds


def _nearest_extracted(path: str, seeds_of: dict[str, set[str]]) -> str | None:
    """PATH itself when a seed holds it, else its nearest ancestor below the category that some seed
    holds (an evolved node's parent); None for a node evolution added directly under a category."""
    parts = path.split("/")
    for end in range(len(parts), 1, -1):
        prefix = "/".join(parts[:end])
        if prefix in seeds_of:
            return prefix
    return None


def _generate_tasks(task: list[dict], dropped: list[dict], features: dict) -> dict:
    """Plan, statement and hygiene; for a dropped task, None from the step that dropped it on (its
    `rejected`: the reason), and the plan's selected paths from task_features instead of the plan."""
    if not dropped:
        row = task[0]
        return {"plan": {"features": row["features"], "integration_strategy": row["integration_strategy"]},
                "statement": {k: row[k] for k in ("title", "style", "entry_point", "tokens", "statement")},
                "hygiene": {"passed": True},
                "not_recorded": ["the plan's feature roles (feature_roles_tree)"]}
    row = dropped[0]
    selected = [f["path"] for f in features["features"] if f["selected"]]
    if row["step"] == PLAN:
        return {"plan": {"rejected": row["reason"]}, "statement": None, "hygiene": None,
                "not_recorded": ["the rejected plan (dropped.parquet keeps the reason)"]}
    plan = {"selected_paths": selected}
    if row["step"] == WRITE:
        return {"plan": plan, "statement": {"title": row["title"], "rejected": row["reason"]}, "hygiene": None,
                "not_recorded": ["the plan's integration strategy and feature roles, and the rejected statement "
                                 "(dropped.parquet keeps its title, if it had one, and the reason)"]}
    return {"plan": plan, "statement": {"title": row["title"]},
            "hygiene": {"passed": False, **{k: row[k] for k in ("reason", "against", "matched", "score")}},
            "not_recorded": ["the plan's integration strategy and feature roles, and the statement "
                             "(dropped.parquet keeps its title)"]
            + ([] if selected or features["subtree_recorded"] else ["its selected features"])}


def _tests(found: dict[str, pl.DataFrame]) -> dict:
    tests = found.get("generate_tests/tests")
    if tests is None:
        return {"present": False, "tests": []}
    section = {"present": True, "tests": tests.sort("test_id").drop("task_id").to_dicts()}
    if tests["validation"].null_count() == tests.height > 0:
        section["not_recorded"] = ["the input validator's verdict per input (this version's tests.parquet keeps the "
                                   "inputs it accepted or could not judge, and all of a task whose every input it "
                                   "rejected)"]
    return section


def _candidates(found: dict[str, pl.DataFrame], tests: list[dict]) -> dict:
    """Each candidate with its round, its run on each test (status, output class) and its cluster."""
    first = found.get("generate_solutions/solutions", tables.SOLUTIONS.empty()).with_columns(round=pl.lit(0))
    later = _with_rounds(found.get("verify_rounds/solutions", tables.SOLUTIONS.empty()),
                         found.get("verify_rounds/rounds"))
    solutions = pl.concat([first, later]).sort("round", "solution_id")
    runs = pl.concat([found.get(f"{stage}/executions", tables.EXECUTIONS.empty())
                      for stage in ("execute", "verify_rounds")]).select("solution_id", "test_id", "status", "output")
    test_ids = [t["test_id"] for t in tests]
    clean = with_key_ids(runs.filter((pl.col("status") == OK) & pl.col("test_id").is_in(test_ids))
                         .with_columns(pl.col("output").fill_null("")), FLOAT_TOL)
    classes = _output_classes(clean)
    clusters = _clusters(clean)
    cells = {(sol, test): (status, None) for sol, test, status, _ in runs.iter_rows()}
    cells.update({(row["solution_id"], row["test_id"]): (OK, row["class"])
                  for row in clean.join(classes, on=["test_id", "key_id"]).iter_rows(named=True)})
    candidates = []
    for row in solutions.iter_rows(named=True):
        sol = row["solution_id"]
        candidates.append({"solution_id": sol, "model": row["model"], "sample": row["sample"], "round": row["round"],
                           "cluster": clusters.get(sol),
                           "runs": [{"test_id": t, "status": cells.get((sol, t), (None, None))[0],
                                     "class": cells.get((sol, t), (None, None))[1]} for t in test_ids]})
    outputs = {t: {} for t in test_ids}
    for row in classes.iter_rows(named=True):
        outputs[row["test_id"]][row["class"]] = {"output": row["output"], "candidates": row["count"]}
    sizes = pl.Series([c["cluster"] for c in candidates if c["cluster"] is not None], dtype=pl.Int64)
    return {"candidates": candidates, "output_classes": outputs,
            "clusters": {int(k): int(n) for k, n in sizes.value_counts().sort(sizes.name).iter_rows()}}


def _with_rounds(solutions: pl.DataFrame, rounds: pl.DataFrame | None) -> pl.DataFrame:
    """Later candidates' round: the first round whose samples_per_model exceeds their sample index."""
    limits = [] if rounds is None else rounds.filter(pl.col("round") > 0).sort("round").select(
        "round", "samples_per_model").rows()
    return solutions.with_columns(round=pl.col("sample").map_elements(
        lambda sample: next((r for r, limit in limits if sample < limit), None), return_dtype=pl.Int32))


def _output_classes(clean: pl.DataFrame) -> pl.DataFrame:
    """Per test, its distinct clean outputs (vote keys) lettered a, b, ... from the most common
    (ties: the one whose first candidate sorts first); one output shown per class."""
    return (
        clean.sort("solution_id")
        .group_by("test_id", "key_id", maintain_order=True)
        .agg(count=pl.len(), output=pl.col("output").first(), first=pl.col("solution_id").first())
        .sort("test_id", "count", "first", descending=[False, True, False])
        .with_columns(rank=pl.int_range(pl.len()).over("test_id"))
        .with_columns(pl.col("rank").map_elements(_letter, return_dtype=pl.String).alias("class"))
        .select("test_id", "key_id", "class", "count", "output")
    )


def _letter(rank: int) -> str:
    return string.ascii_lowercase[rank] if rank < len(string.ascii_lowercase) else "+"


def _clusters(clean: pl.DataFrame) -> dict[str, int]:
    """solution_id -> cluster number, as verify_strict clusters: identical clean output vectors
    (the same tests run cleanly, with the same vote key on each). 1 is the largest (ties: the
    cluster whose first candidate sorts first); candidates with no clean run are in none."""
    vectors = (
        clean.sort("test_id")
        .group_by("solution_id")
        .agg(vector=pl.concat_str(pl.col("test_id"), pl.col("key_id").cast(pl.String), separator="=").sort())
    )
    groups = (
        vectors.group_by("vector")
        .agg(members=pl.col("solution_id").sort(), size=pl.len())
        .with_columns(first=pl.col("members").list.first())
        .sort("size", "first", descending=[True, False])
    )
    return {member: number for number, members in enumerate(groups["members"], 1) for member in members}


def _verdicts(found: dict[str, pl.DataFrame], candidates: dict) -> dict:
    first = found.get("verify/verdicts", tables.VERDICTS.empty()).to_dicts()
    final = found.get("verify_rounds/verdicts", tables.VERDICTS.empty()).to_dicts()
    section: dict = {"first_round": _verdict(first[0]) if first else None,
                     "final": _verdict(final[0]) if final else None}
    decided = section["final"] or section["first_round"]
    rounds = [c["round"] for c in candidates["candidates"] if c["round"] is not None]
    section["rounds"] = max(rounds) + 1 if rounds else 0
    if decided and decided["golden_solution_id"]:
        golden = next((c for c in candidates["candidates"] if c["solution_id"] == decided["golden_solution_id"]), None)
        section["golden_cluster"] = golden["cluster"] if golden else None
        solutions = pl.concat([found.get(f"{stage}/solutions", tables.SOLUTIONS.empty())
                               for stage in ("generate_solutions", "verify_rounds")])
        code = solutions.filter(pl.col("solution_id") == decided["golden_solution_id"]).to_dicts()
        section["golden_solution"] = ({k: code[0][k] for k in ("solution_id", "model", "sample", "reasoning", "code")}
                                      if code else None)
    return section


def _verdict(row: dict) -> dict:
    return {k: row[k] for k in ("outcome", "reason", "candidates", "golden_solution_id", "golden_tests")}


def _export(found: dict[str, pl.DataFrame]) -> dict:
    sft = found.get("export/sft")
    rl = found.get("export/rl")
    return {"present": sft is not None or rl is not None,
            "sft": sft.to_dicts() if sft is not None else [],
            "rl": [{**row, "tests": len(json.loads(row["reward_model"]["ground_truth"])["tests"])}
                   for row in rl.to_dicts()] if rl is not None else []}


def _fate(stages: dict) -> dict:
    verify, export = stages["verify"], stages["export"]
    decided = verify["final"] or verify["first_round"]
    if decided is None:
        return {"status": "not verified", "stage": "verify", "reason": None, "detail": "no verdict in this version"}
    stage = "verify_rounds" if verify["final"] else "verify"
    where = f"{stage} after round {verify['rounds'] - 1}, with {decided['candidates']} candidates"
    if decided["outcome"] == KEPT:
        exported = bool(export["sft"] or export["rl"])
        return {"status": "exported" if exported else "kept", "stage": "export" if exported else stage,
                "reason": None, "detail": f"kept by {where}" + ("" if exported else "; not in the export tables")}
    status = {DISCARDED: "dropped", UNDECIDED: "undecided"}[decided["outcome"]]
    no_tests = "" if stages["generate_tests"]["tests"] else " (generate_tests kept no input for it)"
    return {"status": status, "stage": stage, "reason": decided["reason"],
            "detail": f"{decided['outcome']} by {where}: {decided['reason']}{no_tests}"}


# ---------------------------------------------------------------------------------------------
# Text


def render_text(lineage: dict, width: int = 100) -> str:
    """One section per stage; the candidates as a compact table (one symbol per test)."""
    fate = lineage["fate"]
    stages = lineage["stages"]
    lines = [f"{lineage['task_id']}  [{lineage['version']['label']}]",
             f"fate: {fate['status']} at {fate['stage']}: {fate['detail']}"]
    if "generate_tasks" in stages:
        _seeds_section(lines, stages["features"])
        _task_sections(lines, stages["generate_tasks"], width)
    else:
        _section(lines, "generate_tasks")
        lines.append("  no table holds this task: nothing more is recorded")
    if "generate_tests" in stages:
        _tests_section(lines, stages["generate_tests"], stages["verify"], stages["candidates"])
        _candidates_section(lines, stages["candidates"], stages["verify"])
        _verify_section(lines, stages["verify"], stages["generate_tests"]["tests"])
        _export_section(lines, stages["export"])
    elif "generate_tasks" in stages:
        lines.append("")
        lines.append("(dropped at generate_tasks: later stages never saw it)")
    for item in fate.get("not_recorded", []):
        lines.append(f"  not recorded: {item}")
    return "\n".join(lines)


def _section(lines: list[str], title: str) -> None:
    lines.append("")
    lines.append(f"== {title}")


def _not_recorded(lines: list[str], section: dict) -> None:
    lines.extend(f"  not recorded: {item}" for item in section.get("not_recorded", []))


# A feature's mark: in the sampled subtree and selected by the plan, sampled only, selected only.
FEATURE_MARKS = {(True, True): "[x]", (True, False): "[ ]", (False, True): "[+]"}


def _seeds_section(lines: list[str], features: dict) -> None:
    _section(lines, "seeds and features (seeds, extract_features, evolve_features, generate_tasks)")
    rows = features["features"]
    if not rows:
        lines.append("  no features recorded")
    elif features["subtree_recorded"]:
        sampled = sum(1 for f in rows if f["sampled"])
        chosen = sum(1 for f in rows if f["selected"])
        outside = sum(1 for f in rows if f["selected"] and not f["sampled"])
        selection = f"the plan selected {chosen}" if chosen else "no plan"
        lines.append(f"  sampled subtree: {sampled} features; {selection}"
                     + (f" ({outside} outside the subtree)" if outside else "")
                     + "  ([x] sampled and selected, [ ] sampled only, [+] selected outside the subtree)")
    for feature in rows:
        origin = feature["origin"] or "not in the pool"
        if feature["origin"] and feature["origin"] != EXTRACTED:
            origin += f" (evolution round {feature['evolution_round']})"
        if feature["seeds"]:
            source = (f"grew from {feature['grew_from']}, " if feature["grew_from"] else "") \
                     + "seeds " + ", ".join(feature["seeds"])
        else:
            source = "no seed: added by evolution under its category"
        mark = FEATURE_MARKS.get((feature["sampled"], feature["selected"]))
        lines.append(f"  {mark} {feature['path']}" if mark else f"  {feature['path']}")
        lines.append(f"      {origin}; {source}")
    for seed in features["seeds"]:
        lines.append(f"  seed {seed['seed_id']}: {seed['title']}")
    _not_recorded(lines, features)


def _task_sections(lines: list[str], task: dict, width: int) -> None:
    _section(lines, "plan (generate_tasks)")
    plan = task["plan"]
    if plan and "rejected" in plan:
        lines.append(f"  REJECTED: {plan['rejected']}")
    elif plan and "selected_paths" in plan:
        lines.append(f"  selected features: {', '.join(plan['selected_paths']) or 'not recorded'}")
    elif plan:
        lines.append(f"  selected features: {', '.join(plan['features'])}")
        lines.extend(textwrap.wrap(f"integration strategy: {plan['integration_strategy']}", width,
                                   initial_indent="  ", subsequent_indent="    "))
    _not_recorded(lines, task)
    _section(lines, "statement and style (generate_tasks)")
    statement = task["statement"]
    if statement is None:
        lines.append("  not written: the plan was rejected")
    else:
        lines.append(f"  title: {statement['title'] or 'none'}")
    if statement and "rejected" in statement:
        lines.append(f"  REJECTED: {statement['rejected']}")
    elif statement and "style" in statement:
        io = f"function {statement['entry_point']}" if statement["entry_point"] else "stdin/stdout"
        lines.append(f"  style: {statement['style']}; io: {io}; {statement['tokens']} tokens")
        body = [line for line in statement["statement"].splitlines() if line.strip()]
        lines.extend(f"  | {line[:width - 4]}" for line in body[:4])
        if len(body) > 4:
            lines.append(f"  | ... ({len(body) - 4} more lines; --json has the statement)")
    _section(lines, "hygiene (generate_tasks)")
    hygiene = task["hygiene"]
    if hygiene is None:
        lines.append("  not reached")
    elif hygiene["passed"]:
        lines.append("  passed: neither a near-duplicate of an earlier task nor contaminated by a benchmark")
    else:
        lines.append(f"  DROPPED: {hygiene['reason']} against {hygiene['against']} item {hygiene['matched']} "
                     f"(score {hygiene['score']:.3f})")


def _tests_section(lines: list[str], tests: dict, verify: dict, candidates: dict) -> None:
    rows = tests["tests"]
    by_generator = pl.Series([t["generator"] for t in rows], dtype=pl.String).value_counts().sort("")
    counts = ", ".join(f"{n} {g}" for g, n in by_generator.iter_rows())
    _section(lines, f"test inputs (generate_tests): {len(rows)}" + (f" ({counts})" if counts else ""))
    if not tests["present"]:
        lines.append("  not in this version")
        return
    golden = _golden_test_ids(verify)
    table = [("#", "test_id", "generator", "weight", "size,sem", "validator", "golden", "classes",
              "description / input")]
    for number, test in enumerate(rows, 1):
        classes = candidates["output_classes"].get(test["test_id"], {})
        spread = " ".join(f"{c}:{v['candidates']}" for c, v in classes.items()) or "-"
        text = test["description"] or ""
        table.append((str(number), test["test_id"], test["generator"], str(test["weight"]),
                      f"{test['size_weight']},{test['semantic_weight']}", test["validation"] or "?",
                      "g" if test["test_id"] in golden else "", spread,
                      f"{text[:40]}  [{_abridge(test['input'], 30)}]"))
    lines.extend(_aligned(table))
    if any(test["validation"] == INVALID for test in rows):
        lines.append(f"  validator {INVALID}: it rejected every input of this task, so it was distrusted and the "
                     "inputs kept")
    _not_recorded(lines, tests)


def _candidates_section(lines: list[str], candidates: dict, verify: dict) -> None:
    rows = candidates["candidates"]
    _section(lines, f"candidates (generate_solutions, execute, verify_rounds): {len(rows)}")
    if not rows:
        lines.append("  none")
        return
    decided = verify["final"] or verify["first_round"]
    golden_id = decided["golden_solution_id"] if decided else None
    golden_cluster = verify.get("golden_cluster")
    tests = len(rows[0]["runs"])
    table = [("model", "sample", "round", "runs on tests 1.." + str(tests), "cluster", "golden")]
    for c in rows:
        symbols = "".join(_symbol(run) for run in c["runs"])
        cluster = "-" if c["cluster"] is None else str(c["cluster"]) + ("*" if c["cluster"] == golden_cluster else "")
        table.append((c["model"], str(c["sample"]), "?" if c["round"] is None else str(c["round"]), symbols, cluster,
                      "golden" if c["solution_id"] == golden_id else ""))
    lines.extend(_aligned(table))
    lines.append("  runs: a, b, ... the test's output classes, most common first; " + ", ".join(
        f"{s} {status}" for status, s in STATUS_SYMBOLS.items()) + f"; {NOT_RUN} no run")
    sizes = ", ".join(f"#{k}: {n}" for k, n in candidates["clusters"].items())
    lines.append(f"  clusters (identical clean output vectors; * golden): {sizes or 'none'}")


def _symbol(run: dict) -> str:
    if run["status"] is None:
        return NOT_RUN
    return run["class"] if run["status"] == OK else STATUS_SYMBOLS[run["status"]]


def _verify_section(lines: list[str], verify: dict, tests: list[dict]) -> None:
    _section(lines, "verdict (verify, verify_rounds)")
    for key, name in (("first_round", "first round (verify)"), ("final", "final (verify_rounds)")):
        verdict = verify[key]
        if verdict is None:
            lines.append(f"  {name}: not in this version")
            continue
        reason = f": {verdict['reason']}" if verdict["reason"] else ""
        lines.append(f"  {name}: {verdict['outcome']}{reason}, with {verdict['candidates']} candidates")
    decided = verify["final"] or verify["first_round"]
    if decided and decided["golden_solution_id"]:
        numbers = {t["test_id"]: n for n, t in enumerate(tests, 1)}
        golden_tests = ", ".join(f"#{numbers.get(g['test_id'], g['test_id'])}={_abridge(g['expected_output'], 12)}"
                                 for g in decided["golden_tests"])
        solution = verify.get("golden_solution") or {}
        lines.append(f"  golden solution: {decided['golden_solution_id']} ({solution.get('model')}, sample "
                     f"{solution.get('sample')}), cluster {verify.get('golden_cluster')}")
        lines.append(f"  golden tests ({len(decided['golden_tests'])}): {golden_tests}")


def _export_section(lines: list[str], export: dict) -> None:
    _section(lines, "export")
    if not export["present"]:
        lines.append("  not in this version")
        return
    for row in export["sft"]:
        lines.append(f"  sft: split {row['split']}, style {row['style']}, source {row['source']}, "
                     f"{len(row['messages'])} messages")
    for row in export["rl"]:
        lines.append(f"  rl: split {row['extra_info']['split']}, row {row['extra_info']['index']}, "
                     f"data_source {row['data_source']}, {row['tests']} tests in reward_model.ground_truth")
    if not export["sft"] and not export["rl"]:
        lines.append("  no row")


def _golden_test_ids(verify: dict) -> set[str]:
    decided = verify["final"] or verify["first_round"]
    return {g["test_id"] for g in decided["golden_tests"]} if decided else set()


def _abridge(text: str | None, limit: int) -> str:
    flat = " / ".join((text or "").strip().splitlines())
    return flat if len(flat) <= limit else flat[:limit - 3] + "..."


def _aligned(table: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return ["  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in table]
