#!/usr/bin/env python3
"""Check the hand-written tool-based test generators and validators of the demo tasks.

Hand-written demo content for the SynthSmith offline cassette; not model output.

Every task in tools/demo_author/tasks/*.yaml carries a `generator` (a CYaRon program that
takes `--seed N` and writes 4-6 `<characteristic>.in` files into its working directory) and a
`validator` (a standard-library program that reads one input on stdin and exits 0 when it
satisfies the statement's constraints, else exits 1 with a reason on stderr). For each task
this script:

  * checks both programs parse, the generator uses cyaron and `--seed`, and both import only
    the standard library (+ cyaron, colorful, xeger for the generator);
  * runs the generator as the pipeline does (exec'd as __main__ with argv
    ["generator.py", "--seed", N], in an empty working directory) for every seed, twice, with
    different PYTHONHASHSEED values, and checks the two runs write identical files; checks 4-6
    files, snake_case names, none empty or over 200 KB, and JSON lines for function-style tasks;
  * runs the validator on every generated file, on the task's existing `tests` inputs (all must
    pass) and on a few mutations of them (empty input, an extra line, an extra token on the last
    line; all must be rejected), without a traceback and within 2 s;
  * runs every runnable candidate (```python block of the `response`; function-style tasks call
    the entry point with the JSON lines as positional arguments) on every valid generated input
    with a 1 s CPU limit and 512 MB of address space, exactly as check_catalogue.py does: the
    `correct` candidates must all finish OK in under 1 s and agree token-wise. The other kinds are
    run too: where the timeout candidates time out is reported, and the labelling step's majority
    vote on the generated inputs (those not equal to an existing test) must keep the task's
    designed outcome, with check_catalogue.py's rules: expect_verified true -> no input labelled
    wrongly and at least half labelled right; false -> fewer than half labelled right.

Two deliberate failures are expected, each announced by a top-level YAML comment above the
`generator:` key:
  "# Deliberately broken generator ..."          the generator must exit non-zero, writing no file
  "# Deliberately writes one invalid input, NAME.in ..."
                                                the validator must reject NAME.in (every seed) and
                                                accept every other file
Exactly one task (of codeforces style) has the first, exactly one other task the second. An
existing test may fail validation only if a top-level comment says "# Deliberately invalid test:
DESCRIPTION" for it (none does today).

Usage: check_generators.py [--seeds 1 2] [--jobs N] [--verbose] [--batch] [FILE.yaml ...]
With no files, all of tools/demo_author/tasks/*.yaml, and the catalogue-wide rules above are
enforced (with files given, only with --batch). Exit status is non-zero when any check fails.
"""
from __future__ import annotations

import argparse
import ast
import collections
import concurrent.futures as cf
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml
from check_catalogue import tally_votes  # run as a script from this directory, like check_catalogue

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from check_catalogue import FORMAT_KINDS, LEETCODE_HARNESS, LIMIT_LAUNCHER, MEMORY_LIMIT, RUN_KINDS, code_blocks  # noqa: E402

TIME_LIMIT = 1.0            # CPU seconds per candidate run (as check_catalogue.py)
WALL_LIMIT = 4.0            # wall seconds per candidate run
GENERATOR_WALL_LIMIT = 10.0  # the pipeline's generate_tests.tool.time_limit_s
VALIDATOR_WALL_LIMIT = 2.0   # tool_inputs.VALIDATOR_TIME_LIMIT_S
MAX_FILE_BYTES = 200 * 1024
MIN_FILES, MAX_FILES = 4, 6
GENERATOR_PACKAGES = {"cyaron", "colorful", "xeger"}
NAME_RE = re.compile(r"[a-z0-9]+(_[a-z0-9]+)*")
BROKEN_RE = re.compile(r"^#\s*Deliberately broken generator", re.M | re.I)
INVALID_RE = re.compile(r"^#\s*Deliberately writes one invalid input,?\s+([A-Za-z0-9_]+)\.in", re.M | re.I)
INVALID_TEST_RE = re.compile(r"^#\s*Deliberately invalid test:\s*(.+?)\s*$", re.M | re.I)
# The semantic weights of generate_tests (synthsmith.stages.generate_tests.SEMANTIC), for the summary.
SEMANTIC = ((4, re.compile(r"\b(stress|large|max(imum)?|huge|performance|worst)\b", re.I)),
            (3, re.compile(r"\b(boundary|edge|corner|min(imum)?|extreme|limit)\b", re.I)),
            (2, re.compile(r"\b(complex|tricky|special|random|mixed)\b", re.I)))
ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "PYTHONIOENCODING": "utf-8",
       "PYTHONINTMAXSTRDIGITS": "0", "MALLOC_ARENA_MAX": "1"}

GENERATOR_MEMORY = 1024 << 20  # the pipeline's generate_tests.tool.memory_mb
SANDBOX_RECURSION_LIMIT = 500_000  # synthsmith.sandbox.harness.RECURSION_LIMIT
# Runs the generator the way synthsmith.stages.tool_inputs.WRAPPER does in the sandbox: exec'd as
# __main__ from its source (no __file__), argv = ["generator.py", "--seed", N], in the working
# directory, with the sandbox's recursion limit (and, from generator_limits, its stack size).
GENERATOR_RUNNER = r'''
import sys
_source = open(sys.argv[1]).read()
sys.setrecursionlimit(int(sys.argv[3]))
sys.argv = ["generator.py", "--seed", sys.argv[2]]
exec(compile(_source, "generator.py", "exec"), {"__name__": "__main__"})
'''


def semantic_weight(name: str) -> int:
    text = name.replace("_", " ")
    return next((w for w, pattern in SEMANTIC if pattern.search(text)), 1)


# ---- running programs ------------------------------------------------------------------------

def generator_limits() -> None:
    """The sandbox's limits for a generator job (synthsmith.sandbox.harness._apply_limits)."""
    _, stack_hard = resource.getrlimit(resource.RLIMIT_STACK)
    stack = GENERATOR_MEMORY if stack_hard == resource.RLIM_INFINITY else min(GENERATOR_MEMORY, stack_hard)
    resource.setrlimit(resource.RLIMIT_STACK, (stack, stack_hard))
    resource.setrlimit(resource.RLIMIT_AS, (GENERATOR_MEMORY, GENERATOR_MEMORY))
    cpu = int(GENERATOR_WALL_LIMIT)
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))


def run_limited(cmd: list[str], stdin_text: str, cwd: str, wall: float, cpu: float | None = None,
                memory: int | None = None, env: dict | None = None, preexec=None) -> dict:
    """Run cmd with stdin from a file, stdout/stderr to files; returns status, rc, out, err, cpu.

    status: ok | error | timeout. CPU time is the child's own (wait4), not the parent's.
    """
    with tempfile.TemporaryFile() as fin, tempfile.TemporaryFile() as fout, tempfile.TemporaryFile() as ferr:
        fin.write(stdin_text.encode())
        fin.seek(0)
        if memory is not None:
            cmd = [sys.executable, "-c", LIMIT_LAUNCHER, str(memory)] + cmd

        def limits() -> None:
            if cpu is not None:
                resource.setrlimit(resource.RLIMIT_CPU, (int(cpu), int(cpu) + 1))
            if preexec is not None:
                preexec()

        start = time.monotonic()
        proc = subprocess.Popen(cmd, stdin=fin, stdout=fout, stderr=ferr, cwd=cwd, env=env or ENV,
                                start_new_session=True, preexec_fn=limits)
        killed = threading.Event()

        def kill() -> None:
            killed.set()
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        timer = threading.Timer(wall, kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        elapsed = time.monotonic() - start
        fout.seek(0)
        ferr.seek(0)
        out = fout.read().decode("utf-8", "replace")
        err = ferr.read().decode("utf-8", "replace")
    rc = proc.returncode
    used = usage.ru_utime + usage.ru_stime
    if killed.is_set() or rc in (-signal.SIGXCPU, -signal.SIGKILL):
        state = "timeout"
    elif rc != 0:
        state = "error"
    else:
        state = "ok"
    return {"status": state, "rc": rc, "out": out, "err": err, "cpu": used, "wall": elapsed}


def last_line(text: str) -> str:
    return ((text or "").strip().splitlines() or ["?"])[-1][:160]


def run_generator(gen_path: Path, seed: int, hashseed: str, workdir: Path) -> dict:
    """One generator run in a fresh, empty directory; returns the run plus the files it wrote."""
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    env = dict(ENV, PYTHONHASHSEED=hashseed)
    res = run_limited([sys.executable, "-c", GENERATOR_RUNNER, str(gen_path), str(seed),
                       str(SANDBOX_RECURSION_LIMIT)], "", str(workdir), GENERATOR_WALL_LIMIT + 2, env=env,
                      preexec=generator_limits)
    files, others = {}, []
    for entry in sorted(workdir.iterdir()):
        if entry.is_file() and entry.name.endswith(".in"):
            files[entry.name[:-3]] = entry.read_bytes()
        else:
            others.append(entry.name + ("/" if entry.is_dir() else ""))
    res["files"] = files
    res["others"] = others
    return res


def run_validator(val_path: Path, text: str, tmp: str) -> tuple[str, str, float]:
    """-> (verdict, reason, wall): valid | invalid | broken (traceback, other exit code, timeout)."""
    res = run_limited([sys.executable, str(val_path)], text, tmp, VALIDATOR_WALL_LIMIT + 2,
                      memory=MEMORY_LIMIT, env=dict(ENV, PYTHONHASHSEED="0"))
    if res["status"] == "timeout" or res["wall"] > VALIDATOR_WALL_LIMIT:
        return "broken", f"took {res['wall']:.2f}s (limit {VALIDATOR_WALL_LIMIT}s)", res["wall"]
    if res["rc"] == 0:
        return "valid", "", res["wall"]
    if res["rc"] == 1 and "Traceback" not in res["err"]:
        return "invalid", last_line(res["err"]), res["wall"]
    return "broken", f"exit {res['rc']}: {last_line(res['err'])}", res["wall"]


def run_candidate(code_path: str, style: str, entry, text: str, tmp: str) -> dict:
    if style == "leetcode":
        cmd = [sys.executable, "-c", LEETCODE_HARNESS, code_path, str(entry)]
    else:
        cmd = [sys.executable, code_path]
    res = run_limited(cmd, text, tmp, WALL_LIMIT, cpu=TIME_LIMIT, memory=MEMORY_LIMIT,
                      env=dict(ENV, PYTHONHASHSEED="0"))
    if res["status"] == "ok" and res["cpu"] > TIME_LIMIT:
        res["status"] = "timeout"
    if res["status"] == "error":
        res["out"] = last_line(res["err"])
    return res


# ---- static checks ---------------------------------------------------------------------------

def imported_modules(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def static_checks(task: dict, fails: list[str]) -> None:
    for field in ("generator", "validator"):
        src = task.get(field)
        if not isinstance(src, str) or not src.strip():
            fails.append(f"no {field} program")
            continue
        try:
            tree = ast.parse(src)
        except SyntaxError as exc:
            fails.append(f"{field} does not parse: {exc}")
            continue
        extra = imported_modules(tree) - set(sys.stdlib_module_names)
        if field == "generator":
            extra -= GENERATOR_PACKAGES
            if "cyaron" not in imported_modules(tree):
                fails.append("generator does not import cyaron")
            if "--seed" not in src or "argparse" not in imported_modules(tree):
                fails.append("generator does not read --seed with argparse")
        if extra:
            fails.append(f"{field} imports non-standard modules {sorted(extra)}")


def function_args_ok(text: str) -> bool:
    try:
        lines = [json.loads(line) for line in text.strip().splitlines()]
    except json.JSONDecodeError:
        return False
    return bool(lines)


def mutations(text: str) -> list[tuple[str, str]]:
    """Inputs a faithful validator must reject, derived from a valid one."""
    body = text if text.endswith("\n") else text + "\n"
    lines = body.rstrip("\n").split("\n")
    last = max(i for i, ln in enumerate(lines) if ln.strip()) if any(ln.strip() for ln in lines) else 0
    more = list(lines)
    more[last] = more[last] + " 7"
    return [("empty input", ""), ("an extra line", body + "1\n"),
            ("an extra token on the last line", "\n".join(more) + "\n")]


# ---- one task --------------------------------------------------------------------------------

def check_task(path: Path, seeds: list[int], pool: cf.Executor, tmp: Path, verbose: bool):
    """Return (fails, notes, info, lines) for one task file."""
    fails: list[str] = []
    notes: list[str] = []
    info: dict = {"broken": False, "invalid": None}
    lines: list[str] = []
    raw = path.read_text()
    task = yaml.safe_load(raw)
    slug, style, entry = task["slug"], task["style"], task.get("entry_point")
    info["style"] = style
    function_style = style == "leetcode"
    broken = bool(BROKEN_RE.search(raw))
    m = INVALID_RE.search(raw)
    invalid_name = m.group(1) if m else None
    allowed_bad_tests = [d.lower() for d in INVALID_TEST_RE.findall(raw)]
    info["broken"], info["invalid"] = broken, invalid_name
    if broken and invalid_name:
        fails.append("one task cannot be both the broken-generator and the invalid-input task")

    static_checks(task, fails)
    if fails:
        return fails, notes, info, lines
    work = tmp / slug
    work.mkdir()
    gen_path = work / "generator.py"
    val_path = work / "validator.py"
    gen_path.write_text(task["generator"])
    val_path.write_text(task["validator"])

    # ---- generator runs: every seed twice, with different hash seeds ----
    runs = {}
    futs = {pool.submit(run_generator, gen_path, seed, hs, work / f"gen_{seed}_{hs}"): (seed, hs)
            for seed in seeds for hs in ("0", "1")}
    for f in cf.as_completed(futs):
        runs[futs[f]] = f.result()
    generated: dict[int, dict[str, bytes]] = {}
    for seed in seeds:
        a, b = runs[(seed, "0")], runs[(seed, "1")]
        cpu = max(a["cpu"], b["cpu"])
        if broken:
            if a["status"] == "ok" or b["status"] == "ok":
                fails.append(f"seed {seed}: the deliberately broken generator ran OK")
            else:
                lines.append(f"seed {seed}: generator fails as expected ({a['status']}: {last_line(a['err'])}), "
                             f"{len(a['files'])} files written")
                if a["files"]:
                    notes.append(f"seed {seed}: the broken generator still wrote {sorted(a['files'])}")
            continue
        if a["status"] != "ok":
            fails.append(f"seed {seed}: generator {a['status']} (exit {a['rc']}): {last_line(a['err'])}")
            continue
        if cpu > GENERATOR_WALL_LIMIT / 2:
            notes.append(f"seed {seed}: generator used {cpu:.1f}s CPU (sandbox limit {GENERATOR_WALL_LIMIT}s)")
        if a["files"] != b["files"] or b["status"] != "ok":
            diff = sorted(n for n in set(a["files"]) | set(b["files"]) if a["files"].get(n) != b["files"].get(n))
            fails.append(f"seed {seed}: not deterministic (files differing between two runs: {diff})")
        if a["others"]:
            notes.append(f"seed {seed}: also wrote {a['others']} (ignored by the pipeline)")
        files = a["files"]
        if not MIN_FILES <= len(files) <= MAX_FILES:
            fails.append(f"seed {seed}: wrote {len(files)} .in files (want {MIN_FILES}-{MAX_FILES})")
        for name, data in files.items():
            if not NAME_RE.fullmatch(name):
                fails.append(f"seed {seed}: file name {name + '.in'!r} is not snake_case")
            if len(data) > MAX_FILE_BYTES:
                fails.append(f"seed {seed}: {name}.in has {len(data)} bytes (max {MAX_FILE_BYTES})")
            if not data.strip():
                fails.append(f"seed {seed}: {name}.in is empty")
            elif not data.endswith(b"\n"):
                notes.append(f"seed {seed}: {name}.in does not end with a newline")
            if function_style and name != invalid_name and not function_args_ok(data.decode("utf-8", "replace")):
                fails.append(f"seed {seed}: {name}.in is not one JSON value per line")
        generated[seed] = files
        lines.append(f"seed {seed}: {len(files)} files, generator {cpu:.2f}s CPU, largest "
                     f"{max((len(d) for d in files.values()), default=0) / 1024:.1f} KB")
    if broken or not generated:
        info["names"] = []
        return fails, notes, info, lines
    names = sorted({n for fs in generated.values() for n in fs})
    info["names"] = names
    if len(generated) > 1:
        first = next(iter(generated.values()))
        if any(set(fs) != set(first) for fs in generated.values()):
            notes.append("the seeds give different sets of file names")
        same = [n for n in first if all(fs.get(n) == first[n] for fs in generated.values())]
        if len(same) == len(first):
            notes.append("every seed writes exactly the same files: the seed has no effect")
        info["seed_fixed"] = same
    if invalid_name and invalid_name not in names:
        fails.append(f"the deliberately invalid input {invalid_name}.in is not written")

    # ---- validator ----
    vjobs = {}
    for seed, files in generated.items():
        for name, data in files.items():
            vjobs[("gen", seed, name)] = data.decode("utf-8", "replace")
    tests = task.get("tests") or []
    for j, t in enumerate(tests):
        text = str(t["input"])
        vjobs[("test", j, t["description"])] = text if text.endswith("\n") else text + "\n"
        if j < 4:
            for what, mutated in mutations(text):
                vjobs[("mutation", j, what)] = mutated
    if not tests:  # the short task: mutate a generated input instead
        seed0 = next(iter(generated))
        for name in sorted(generated[seed0])[:2]:
            if name != invalid_name:
                for what, mutated in mutations(generated[seed0][name].decode()):
                    vjobs[("mutation", name, what)] = mutated
    verdicts = {}
    vdir = work / "validate"
    vdir.mkdir()
    futs = {pool.submit(run_validator, val_path, text, str(vdir)): key for key, text in vjobs.items()}
    for f in cf.as_completed(futs):
        verdicts[futs[f]] = f.result()
    max_wall = max(v[2] for v in verdicts.values())
    valid_inputs: dict[str, tuple[str, str]] = {}  # content -> (label, text)
    rejected_expected = 0
    for key in sorted(verdicts, key=str):
        verdict, reason, _ = verdicts[key]
        kind = key[0]
        if verdict == "broken":
            fails.append(f"validator breaks on {kind} {key[1]} {key[2]!r}: {reason}")
            continue
        if kind == "gen":
            _, seed, name = key
            if name == invalid_name:
                if verdict == "valid":
                    fails.append(f"seed {seed}: the validator accepts the deliberately invalid {name}.in")
                else:
                    rejected_expected += 1
                    lines.append(f"seed {seed}: {name}.in rejected as expected: {reason}")
            elif verdict == "invalid":
                fails.append(f"seed {seed}: generated {name}.in rejected by the validator: {reason}")
            else:
                text = vjobs[key]
                valid_inputs.setdefault(text, (f"{name}@{seed}", text))
        elif kind == "test":
            _, j, desc = key
            if verdict == "invalid":
                if any(desc.lower().startswith(d) for d in allowed_bad_tests):
                    lines.append(f"test {j} rejected, deliberately invalid: {reason}")
                else:
                    fails.append(f"existing test {j} ({desc}) rejected by the validator: {reason}")
        elif kind == "mutation" and verdict == "valid":
            fails.append(f"validator accepts test {key[1]} with {key[2]}")
    n_tests_ok = sum(1 for k, v in verdicts.items() if k[0] == "test" and v[0] == "valid")
    n_mut = sum(1 for k in verdicts if k[0] == "mutation")
    lines.append(f"validator: {n_tests_ok}/{len(tests)} existing tests valid, "
                 f"{n_mut - sum(1 for k, v in verdicts.items() if k[0] == 'mutation' and v[0] == 'valid')}/{n_mut} "
                 f"mutations rejected, slowest {max_wall:.2f}s")
    info["invalid_rejected"] = rejected_expected

    # ---- candidates on the valid generated inputs ----
    cands = task.get("candidates") or []
    runnable = {}
    for i, c in enumerate(cands):
        if c.get("kind") in FORMAT_KINDS:
            continue
        blocks = code_blocks(str(c.get("response") or ""))
        if len(blocks) == 1:
            p = work / f"cand_{i}.py"
            p.write_text(blocks[0])
            runnable[i] = str(p)
    correct = [i for i, c in enumerate(cands) if c.get("kind") == "correct"]
    if not correct:
        lines.append("no correct candidates: nothing to run")
        return fails, notes, info, lines
    inputs = list(valid_inputs.values())
    cdir = work / "run"
    cdir.mkdir()
    results = {}
    futs = {pool.submit(run_candidate, runnable[i], style, entry, text, str(cdir)): (i, j)
            for i in runnable for j, (_, text) in enumerate(inputs)}
    for f in cf.as_completed(futs):
        results[futs[f]] = f.result()
    expected = []
    worst_cpu, worst_at = 0.0, ""
    for j, (label, _) in enumerate(inputs):
        outs = {}
        for i in correct:
            r = results[(i, j)]
            if r["cpu"] > worst_cpu:
                worst_cpu, worst_at = r["cpu"], f"c{i} on {label}"
            if r["status"] != "ok":
                fails.append(f"correct candidate {i}: {r['status']} on {label} "
                             f"({r['cpu']:.2f}s CPU) {r['out'] if r['status'] == 'error' else ''}".rstrip())
            else:
                outs[i] = r["out"].split()
        distinct = {tuple(o) for o in outs.values()}
        if len(distinct) > 1:
            fails.append(f"correct candidates disagree on {label}: "
                         + ", ".join(f"c{i}={' '.join(o)[:40]!r}" for i, o in outs.items()))
        expected.append(tuple(next(iter(outs.values()))) if outs else None)
        if verbose:
            slow = max(correct, key=lambda i: results[(i, j)]["cpu"])
            lines.append(f"   {label:34s} {len(inputs[j][1]) / 1024:7.1f} KB  correct max "
                         f"{results[(slow, j)]['cpu']:.2f}s (c{slow})  output {' '.join(outs.get(slow, ['?']))[:30]!r}")
    lines.append(f"correct candidates {correct}: {len(inputs)} valid inputs, slowest {worst_cpu:.2f}s CPU "
                 f"({worst_at})")
    if worst_cpu > 0.5:
        notes.append(f"a correct candidate needs {worst_cpu:.2f}s CPU ({worst_at}): not well under 1 s")

    # for information: the other kinds, and the majority vote of the labelling step
    kinds = [c.get("kind") for c in cands]
    for i in runnable:
        if kinds[i] == "correct":
            continue
        marks = []
        for j in range(len(inputs)):
            r = results[(i, j)]
            if r["status"] == "ok":
                marks.append("." if tuple(r["out"].split()) == expected[j] else "x")
            else:
                marks.append(r["status"][0].upper())
        lines.append(f"c{i} {kinds[i]:8s} " + "".join(marks)
                     + ("   (. agrees, x differs, T timeout, E error)" if verbose else ""))
        if kinds[i] == "timeout":
            to = [inputs[j][0] for j in range(len(inputs)) if results[(i, j)]["status"] == "timeout"]
            large = [inputs[j][0] for j in range(len(inputs)) if semantic_weight(inputs[j][0].split("@")[0]) == 4]
            if not to:
                notes.append(f"timeout candidate {i} times out on no generated input")
            elif large and not set(to) & set(large):
                notes.append(f"timeout candidate {i} times out only on {to}, on no large/max/stress input")
            elif verbose:
                lines.append(f"   times out on {to}")
    # The labelling step's majority vote, as check_catalogue.py simulates it, on the generated
    # inputs the pipeline would keep (an input equal to an existing test is deduplicated away).
    # Its rules, so that tool tests keep each task's designed outcome: expect_verified true ->
    # no wrong label and at least half labelled right; false -> fewer than half labelled right.
    existing = {(str(t["input"]) if str(t["input"]).endswith("\n") else str(t["input"]) + "\n") for t in tests}
    counted = [j for j, (_, text) in enumerate(inputs) if text not in existing]
    if len(counted) < len(inputs):
        lines.append(f"{len(inputs) - len(counted)} generated inputs equal an existing test (deduplicated)")
    passes_filter = [i for i in runnable if kinds[i] in RUN_KINDS]
    right, wrong, dropped = tally_votes(
        ((collections.Counter(tuple(results[(i, j)]["out"].split()) for i in passes_filter
                              if results[(i, j)]["status"] == "ok"), expected[j]) for j in counted))
    info["vote"] = f"vote on generated inputs: right={right} wrong={wrong} dropped={dropped}"
    if task.get("expect_verified", True) is False:
        if counted and right * 2 >= len(counted):
            fails.append(f"expect_verified false but the vote labels {right}/{len(counted)} generated inputs "
                         f"right: tool tests could make the task verify")
        elif right:
            notes.append(f"expect_verified false, yet {right} generated inputs are labelled right")
    else:
        if wrong:
            fails.append(f"the vote labels {wrong} generated inputs wrongly")
        if right * 2 < len(counted):
            fails.append(f"the vote labels only {right}/{len(counted)} generated inputs")
    return fails, notes, info, lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", type=Path)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--verbose", "-v", action="store_true")
    ap.add_argument("--batch", action="store_true",
                    help="enforce the catalogue-wide rules (the default when no files are given)")
    args = ap.parse_args()
    files = args.files or sorted((HERE / "tasks").glob("*.yaml"))
    total = 0
    infos = {}
    with tempfile.TemporaryDirectory(prefix="check_generators_") as tmp, \
            cf.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for path in files:
            try:
                fails, notes, info, lines = check_task(path, args.seeds, pool, Path(tmp), args.verbose)
            except Exception as exc:  # noqa: BLE001 - report and go on with the other tasks
                fails, notes, info, lines = [f"checker error: {exc!r}"], [], {}, []
            infos[path.name] = info
            tag = "FAIL" if fails else "ok"
            extra = []
            if info.get("broken"):
                extra.append("deliberately broken generator")
            if info.get("invalid"):
                extra.append(f"deliberately invalid {info['invalid']}.in")
            if "vote" in info:
                extra.append(info["vote"])
            print(f"[{tag}] {path.name}" + (f"  ({'; '.join(extra)})" if extra else ""))
            if info.get("names"):
                print("       inputs: " + ", ".join(f"{n}(w{semantic_weight(n)})" for n in info["names"]))
            for ln in lines:
                print(f"       {ln}")
            for n in notes:
                print(f"   note: {n}")
            for f in fails:
                print(f"   FAIL: {f}")
            total += len(fails)
            sys.stdout.flush()

    batch = []
    broken = [k for k, v in infos.items() if v.get("broken")]
    invalid = [k for k, v in infos.items() if v.get("invalid")]
    if len(broken) != 1:
        batch.append(f"{len(broken)} tasks with a deliberately broken generator (want exactly 1): {broken}")
    elif infos[broken[0]].get("style") != "codeforces":
        batch.append(f"the broken generator is in {broken[0]}, not a codeforces task")
    if len(invalid) != 1:
        batch.append(f"{len(invalid)} tasks with a deliberately invalid input (want exactly 1): {invalid}")
    enforce = args.batch or not args.files
    for b in batch:
        print(("BATCH FAIL: " if enforce else "batch note: ") + b)
    if enforce:
        total += len(batch)
    invalid_files = [f"{k}: {infos[k]['invalid']}.in" for k in invalid]
    print(f"{len(files)} files, seeds {args.seeds}: broken generator in {broken or 'none'}, "
          f"invalid input in {invalid_files or 'none'}; {total} failures")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
