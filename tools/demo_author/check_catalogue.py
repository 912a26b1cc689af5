#!/usr/bin/env python3
"""Check hand-written demo task files (tools/demo_author/tasks/*.yaml).

Hand-written demo content for the SynthSmith offline cassette; not model output.

For every non-short task, each candidate's single ```python block is run on every
test input (stdio tasks: the code reads stdin; leetcode tasks: each input line is one
JSON positional argument of `entry_point`, and the json.dumps of the return value is
the output), with a 1 s time limit and a 512 MB address-space limit, and the candidate kinds are checked:

  correct       all finish OK in time and agree with each other on every test
  wrong         finishes OK and differs from the correct output on >= 1 test
  timeout       times out on 1-2 tests, finishes OK on all others
  crash         exits non-zero (not by timeout) on >= 1 test
  memory        exits non-zero (not by timeout) on >= 1 test, under the address-space
                limit (a note if none of its failures is a MemoryError)
  no_code       no ```python block
  two_blocks    exactly two ```python blocks
  syntax_error  exactly one ```python block, which ast.parse rejects
  no_reasoning  exactly one ```python block and nothing before it

It also simulates the majority vote of the pipeline's labelling step (among candidates
whose response would pass the format filter and that ran OK) and checks it against
`expect_verified`: true -> every labelled test carries the correct output;
false -> most tests carry a label different from the correct output (or none).

Usage: check_catalogue.py [--batch] [--show] [--jobs N] FILE.yaml ...
  --batch  also enforce the per-writer batch rules over the given files (exactly one
           tests_malformed, exactly one expect_verified false, every format kind used
           at least once); without it those are printed as notes only.
Exit status is non-zero when any check fails.
"""
from __future__ import annotations

import argparse
import ast
import collections
import concurrent.futures as cf
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

TIME_LIMIT = 1.0   # seconds of CPU time per run
WALL_LIMIT = 4.0   # seconds of wall-clock time per run
MEMORY_LIMIT = 512 * 1024 * 1024  # bytes of address space per candidate run
FENCE_RE = re.compile(r"```python[ \t]*\n(.*?)```", re.S)
OPEN_FENCE_RE = re.compile(r"```python")
RUN_KINDS = {"correct", "wrong", "timeout", "crash", "memory"}
FORMAT_KINDS = {"no_code", "two_blocks", "syntax_error", "no_reasoning"}
ALL_KINDS = RUN_KINDS | FORMAT_KINDS
STYLES = {"codeforces", "atcoder", "leetcode"}

# Sets the address-space limit, then execs the real command (limits survive exec, so the
# candidate runs exactly as `python file.py`, with no extra frames).
LIMIT_LAUNCHER = r'''
import os, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[1]), int(sys.argv[1])))
os.execv(sys.argv[2], sys.argv[2:])
'''

LEETCODE_HARNESS = r'''
import json, sys
from typing import *
_src = open(sys.argv[1]).read()
_entry = sys.argv[2]
_ns = {"__name__": "__candidate__"}
exec(compile("from typing import *\n" + _src, "candidate.py", "exec"), _ns)
_args = [json.loads(line) for line in sys.stdin.read().splitlines() if line.strip()]
if "." in _entry:
    _cls, _meth = _entry.split(".", 1)
    _fn = getattr(_ns[_cls](), _meth)
else:
    _fn = _ns[_entry]
print(json.dumps(_fn(*_args)))
'''


def normalise(out: str) -> str:
    lines = [ln.rstrip() for ln in out.replace("\r\n", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


def code_blocks(response: str) -> list[str]:
    return FENCE_RE.findall(response or "")


def _limit_cpu() -> None:
    # The 1 s limit is CPU time, so a loaded machine does not turn slow starts into
    # timeouts; WALL_LIMIT only catches processes that sleep or block.
    resource.setrlimit(resource.RLIMIT_CPU, (int(TIME_LIMIT), int(TIME_LIMIT) + 1))


def run_one(code_path: str, style: str, entry_point, stdin: str):
    """Return (status, output): status in ok / timeout / error."""
    if style == "leetcode":
        cmd = [sys.executable, "-c", LEETCODE_HARNESS, code_path, str(entry_point)]
    else:
        cmd = [sys.executable, code_path]
    cmd = [sys.executable, "-c", LIMIT_LAUNCHER, str(MEMORY_LIMIT)] + cmd
    try:
        proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True,
                              timeout=WALL_LIMIT, start_new_session=True,
                              preexec_fn=_limit_cpu)
    except subprocess.TimeoutExpired:
        return "timeout", ""
    if proc.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        return "timeout", ""
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return "error", last[:200]
    return "ok", normalise(proc.stdout)


def check_task(path: Path, jobs: int, tmpdir: str):
    """Return (failures, notes, info) for one task file."""
    fails: list[str] = []
    notes: list[str] = []
    info: dict = {}
    try:
        task = yaml.safe_load(path.read_text())
    except Exception as exc:  # noqa: BLE001
        return [f"cannot parse YAML: {exc}"], notes, info
    if not isinstance(task, dict):
        return ["top level is not a mapping"], notes, info

    for key in ("slug", "style", "short", "title", "statement", "tests", "candidates"):
        if key not in task:
            fails.append(f"missing key {key!r}")
    if fails:
        return fails, notes, info
    if task["slug"] != path.stem:
        fails.append(f"slug {task['slug']!r} does not match file name {path.stem!r}")
    style = task["style"]
    if style not in STYLES:
        fails.append(f"unknown style {style!r}")
    entry = task.get("entry_point")
    if style == "leetcode" and not entry:
        fails.append("leetcode task without entry_point")
    if style != "leetcode" and entry is not None:
        fails.append("stdio task must have entry_point: null")
    if not path.read_text().lstrip().startswith("# Hand-written demo content"):
        notes.append("file does not start with the hand-written-content comment")

    words = len(str(task["statement"]).split())
    info["words"] = words
    info["tests_malformed"] = bool(task.get("tests_malformed", False))
    info["expect_verified"] = task.get("expect_verified", True)
    if task["short"]:
        if words >= 80:
            fails.append(f"short task statement has {words} words (must be < 80)")
        info["kinds"] = [c.get("kind") for c in task.get("candidates") or []]
        return fails, notes, info

    if not 250 <= words <= 500:
        fails.append(f"statement has {words} words (want 250-500)")
    feats = task.get("features") or []
    if not 2 <= len(feats) <= 4 or any(f != str(f).lower() for f in feats):
        fails.append(f"features must be 2-4 lowercase leaves, got {feats!r}")
    if "expect_verified" not in task:
        notes.append("no expect_verified key (assuming true)")

    tests = task["tests"] or []
    cands = task["candidates"] or []
    if not 8 <= len(tests) <= 12:
        fails.append(f"{len(tests)} tests (want 8-12)")
    if len(cands) != 8:
        fails.append(f"{len(cands)} candidates (want exactly 8)")
    for i, t in enumerate(tests):
        if not t.get("description") or "input" not in t:
            fails.append(f"test {i}: needs description and input")
        elif len(str(t["input"])) > 2500:
            fails.append(f"test {i}: input has {len(str(t['input']))} chars (keep under ~2000)")
    kinds = [c.get("kind") for c in cands]
    info["kinds"] = kinds
    for i, k in enumerate(kinds):
        if k not in ALL_KINDS:
            fails.append(f"candidate {i}: unknown kind {k!r}")
    fmt_here = [k for k in kinds if k in FORMAT_KINDS]
    if len(fmt_here) > 1:
        notes.append(f"more than one format-defect candidate: {fmt_here}")
    if kinds.count("timeout") > 1 or kinds.count("crash") > 1:
        notes.append("more than one timeout/crash candidate")
    n_correct = kinds.count("correct")
    if info["expect_verified"] is not False and not 3 <= n_correct <= 5:
        fails.append(f"{n_correct} correct candidates (want 3-5)")
    if n_correct < 1:
        fails.append("no correct candidate")
        return fails, notes, info

    # ---- format checks -------------------------------------------------------------
    runnable: dict[int, str] = {}
    passes_filter: set[int] = set()
    for i, c in enumerate(cands):
        k, resp = c.get("kind"), str(c.get("response") or "")
        blocks = code_blocks(resp)
        n_open = len(OPEN_FENCE_RE.findall(resp))
        before = resp.split("```", 1)[0].strip() if "```" in resp else resp.strip()
        parses = None
        if len(blocks) == 1:
            try:
                ast.parse(blocks[0])
                parses = True
            except SyntaxError:
                parses = False
        tag = f"candidate {i} ({k})"
        if k == "no_code":
            if n_open != 0 or not before:
                fails.append(f"{tag}: must have reasoning and no ```python block")
        elif k == "two_blocks":
            if len(blocks) != 2 or n_open != 2:
                fails.append(f"{tag}: has {len(blocks)} python blocks, want 2")
        elif k == "syntax_error":
            if len(blocks) != 1 or parses is not False:
                fails.append(f"{tag}: want one block that fails ast.parse")
            if not before:
                fails.append(f"{tag}: should still have reasoning")
        elif k == "no_reasoning":
            if len(blocks) != 1 or before:
                fails.append(f"{tag}: want exactly one block and nothing before it")
            elif parses:
                runnable[i] = blocks[0]      # runs, but the pipeline filters it out
        elif k in RUN_KINDS:
            if len(blocks) != 1 or n_open != 1:
                fails.append(f"{tag}: has {len(blocks)} python blocks, want exactly 1")
                continue
            if not before:
                fails.append(f"{tag}: no reasoning before the code block")
            if not parses:
                fails.append(f"{tag}: code does not parse")
                continue
            if "import random" in blocks[0] or "random." in blocks[0]:
                notes.append(f"{tag}: uses random (output must be deterministic)")
            runnable[i] = blocks[0]
            passes_filter.add(i)
    if fails:
        return fails, notes, info

    # ---- execution -----------------------------------------------------------------
    paths = {}
    for i, code in runnable.items():
        p = os.path.join(tmpdir, f"{path.stem}_c{i}.py")
        Path(p).write_text(code)
        paths[i] = p
    results: dict[tuple[int, int], tuple[str, str]] = {}
    with cf.ThreadPoolExecutor(max_workers=jobs) as ex:
        futs = {ex.submit(run_one, paths[i], style, entry, str(t["input"])): (i, j)
                for i in runnable for j, t in enumerate(tests)}
        for f in cf.as_completed(futs):
            results[futs[f]] = f.result()

    correct_ids = [i for i, k in enumerate(kinds) if k == "correct"]
    expected: list[str | None] = []
    for j in range(len(tests)):
        outs = {}
        for i in correct_ids:
            st, out = results[(i, j)]
            if st != "ok":
                fails.append(f"candidate {i} (correct): {st} on test {j} {out}".rstrip())
            else:
                outs[i] = out
        if len(set(outs.values())) > 1:
            fails.append(f"correct candidates disagree on test {j}: "
                         + ", ".join(f"c{i}={o[:40]!r}" for i, o in outs.items()))
        expected.append(next(iter(outs.values())) if outs else None)
    if fails:
        return fails, notes, info

    for i, k in enumerate(kinds):
        if i not in runnable or k == "correct":
            continue
        st = [results[(i, j)][0] for j in range(len(tests))]
        diff = [j for j in range(len(tests))
                if st[j] == "ok" and results[(i, j)][1] != expected[j]]
        tag = f"candidate {i} ({k})"
        if k == "wrong":
            bad = [j for j in range(len(tests)) if st[j] != "ok"]
            if bad:
                fails.append(f"{tag}: does not finish OK on tests {bad}")
            if not diff:
                fails.append(f"{tag}: agrees with correct on every test")
            if len(diff) == len(tests):
                notes.append(f"{tag}: differs on every test (not very subtle)")
        elif k == "timeout":
            to = [j for j in range(len(tests)) if st[j] == "timeout"]
            err = [j for j in range(len(tests)) if st[j] == "error"]
            if not 1 <= len(to) <= 2:
                fails.append(f"{tag}: times out on {len(to)} tests {to} (want 1-2)")
            if err:
                fails.append(f"{tag}: errors on tests {err}")
        elif k == "crash":
            err = [j for j in range(len(tests)) if st[j] == "error"]
            if not err:
                fails.append(f"{tag}: never exits non-zero")
        elif k == "memory":
            err = [j for j in range(len(tests)) if st[j] == "error"]
            if not err:
                fails.append(f"{tag}: never exits non-zero under the "
                             f"{MEMORY_LIMIT >> 20} MB limit")
            elif not any("MemoryError" in results[(i, j)][1] for j in err):
                notes.append(f"{tag}: fails on {err} but never with a MemoryError")
        info.setdefault("detail", []).append(
            f"c{i} {k}: " + "".join("." if st[j] == "ok" and j not in diff else
                                    ("x" if st[j] == "ok" else st[j][0].upper())
                                    for j in range(len(tests))))

    # ---- majority vote as in the labelling step ----------------------------------------
    right, wrong_lab, dropped = tally_votes(
        ((collections.Counter(results[(i, j)][1] for i in passes_filter if results[(i, j)][0] == "ok"),
          expected[j]) for j in range(len(tests))))
    info["expected"] = expected
    info["vote"] = f"labels right={right} wrong={wrong_lab} dropped={dropped}"
    if info["expect_verified"] is False:
        if right * 2 >= len(tests):
            fails.append(f"expect_verified false but majority vote is right on "
                         f"{right}/{len(tests)} tests")
    else:
        if wrong_lab:
            fails.append(f"majority vote gives a wrong label on {wrong_lab} tests")
        if right * 2 < len(tests):
            fails.append(f"majority vote labels only {right}/{len(tests)} tests")
    return fails, notes, info


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--batch", action="store_true")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--show", action="store_true",
                    help="print the correct output of every test (first 60 chars)")
    args = ap.parse_args()
    total_fail = 0
    infos = {}
    with tempfile.TemporaryDirectory(prefix="check_catalogue_") as tmp:
        for path in args.files:
            fails, notes, info = check_task(path, args.jobs, tmp)
            infos[path.name] = info
            status = "FAIL" if fails else "ok"
            extra = []
            if "words" in info:
                extra.append(f"{info['words']} words")
            if "vote" in info:
                extra.append(info["vote"])
            print(f"[{status}] {path.name}  ({'; '.join(extra)})")
            print(f"       kinds: {info.get('kinds')}")
            for d in info.get("detail", []):
                print(f"       {d}")
            if args.show:
                for j, e in enumerate(info.get("expected") or []):
                    print(f"       test {j}: {(e or '')[:60]!r}")
            for n in notes:
                print(f"   note: {n}")
            for f in fails:
                print(f"   FAIL: {f}")
            total_fail += len(fails)

    # batch rules (over the files given)
    full = {k: v for k, v in infos.items() if "kinds" in v}
    long_ = {k: v for k, v in full.items() if "vote" in v or "detail" in v}
    batch = []
    n_mal = sum(v.get("tests_malformed", False) for v in long_.values())
    n_unv = sum(v.get("expect_verified") is False for v in long_.values())
    used = {k for v in long_.values() for k in v["kinds"]}
    if n_mal != 1:
        batch.append(f"{n_mal} tasks with tests_malformed: true (want exactly 1)")
    if n_unv != 1:
        batch.append(f"{n_unv} tasks with expect_verified: false (want exactly 1)")
    for k in sorted(FORMAT_KINDS - used):
        batch.append(f"format kind {k!r} not used")
    for b in batch:
        print(("BATCH FAIL: " if args.batch else "batch note: ") + b)
    if args.batch:
        total_fail += len(batch)
    print(f"{len(args.files)} files, {total_fail} failures")
    return 1 if total_fail else 0


def tally_votes(votes_and_expected) -> tuple[int, int, int]:
    """(right, wrong, dropped) over (Counter of clean outputs, expected output) per input: the
    plurality output labels the input, a tie at the top drops it."""
    right = wrong = dropped = 0
    for votes, expected in votes_and_expected:
        top = votes.most_common(2)
        if not top or (len(top) == 2 and top[0][1] == top[1][1]):
            dropped += 1
        elif top[0][0] == expected:
            right += 1
        else:
            wrong += 1
    return right, wrong, dropped


if __name__ == "__main__":
    sys.exit(main())
