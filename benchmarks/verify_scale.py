"""Speed and memory of `synthsmith verify` at the paper's scale, against a plain-Python
implementation of the same algorithm on the same data, measured in one run.

    python benchmarks/verify_scale.py [--tasks 100000] [--method strict|calibrated|paper] [--plain-rows 0]

(from the project root, in the project's venv). It synthesises a RUNS table of tasks x 10
candidates x 10 inputs (10M rows by default) and its TESTS table, writes both as Parquet to a
temporary directory, and runs, each in its own process under /usr/bin/time (wall time, peak
resident memory, CPU time):
  ours:  the real command, `synthsmith verify --runs ... --tests ... --out ... --method M`;
  plain: the same algorithm written with dicts and loops (`plain_strict`, `plain_calibrated` at
         its default threshold, `plain_paper` below), reading the same files; by default on the
         whole table (about 30 s and 3.4 GiB for strict), or on the first `--plain-rows` rows
         with time and memory extrapolated linearly.
Both write their verdicts and the benchmark checks they agree on every task the plain one saw.
Goal for the default method: <= 10 s and <= 3 GiB on 2 cores. The machine's load average is
printed first: other processes on the 2 cores stretch the wall times.

The synthetic runs: per task a kind (55% one integer, 20% a line of three integers, 10% YES/NO,
10% a float with 6 decimals, 5% a word), per input a true answer; each task has a share of
correct candidates ~ Beta(3, 1); a wrong candidate is wrong on 35% of the inputs, a third of those
times with the shared answer "0" (or "NO"/"0.000000"/"none"), else a near miss; 4% of runs fail
(runtime_error / timeout, empty output); 3% of outputs of correct candidates carry trailing
spaces or a CRLF. Test inputs have no weight (the paper's method computes size weights).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import polars as pl

CANDIDATES = 10
INPUTS = 10
ROOT = Path(__file__).resolve().parent.parent


def synthesise(tasks: int, seed: int = 0) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    rows = tasks * CANDIDATES * INPUTS
    task = np.repeat(np.arange(tasks, dtype=np.int64), CANDIDATES * INPUTS)
    cand = np.tile(np.repeat(np.arange(CANDIDATES, dtype=np.int64), INPUTS), tasks)
    test = np.tile(np.arange(INPUTS, dtype=np.int64), tasks * CANDIDATES)
    kind = rng.choice(5, size=tasks, p=[0.55, 0.20, 0.10, 0.10, 0.05])[task]
    truth = rng.integers(0, 10**9, size=(tasks, INPUTS))[task, test]
    share = rng.beta(3, 1, size=tasks)
    correct = (rng.random((tasks, CANDIDATES)) < share[:, None])[task, cand]
    wrong_here = ~correct & (rng.random(rows) < 0.35)
    shared = wrong_here & (rng.random(rows) < 1 / 3)
    near = wrong_here & ~shared
    delta = rng.choice(np.array([-2, -1, 1, 2, 3]), size=rows)
    value = np.where(near, truth + delta * (1 + cand), truth)
    failed = rng.random(rows) < 0.04
    status = np.where(failed, np.where(rng.random(rows) < 0.5, "runtime_error", "timeout"), "ok")
    sloppy = correct & (rng.random(rows) < 0.03)
    df = pl.DataFrame({"t": task, "c": cand, "x": test, "kind": kind, "v": value, "shared": shared,
                       "failed": failed, "status": status, "sloppy": sloppy})
    v = pl.col("v")
    text = (
        pl.when(pl.col("kind") == 0).then(v.cast(pl.String))
        .when(pl.col("kind") == 1).then(pl.concat_str([v % 1000, v // 7 % 100000, v % 97], separator=" "))
        .when(pl.col("kind") == 2).then(pl.when(v % 2 == 0).then(pl.lit("YES")).otherwise(pl.lit("NO")))
        .when(pl.col("kind") == 3).then(pl.format("{}.{}", v // 10**6, (v % 10**6).cast(pl.String).str.zfill(6)))
        .otherwise(pl.concat_str([pl.lit("w"), (v % 5000).cast(pl.String)]))
    )
    degenerate = (pl.when(pl.col("kind") == 2).then(pl.lit("NO")).when(pl.col("kind") == 3).then(pl.lit("0.000000"))
                  .when(pl.col("kind") == 4).then(pl.lit("none")).otherwise(pl.lit("0")))
    output = (
        pl.when("failed").then(pl.lit(""))
        .when("shared").then(degenerate)
        .otherwise(text)
    )
    output = pl.when(pl.col("sloppy")).then(pl.concat_str([output, pl.lit(" \r\n")])).otherwise(
        pl.concat_str([output, pl.lit("\n")]))
    runs = df.select(
        task_id=pl.format("task-{}", pl.col("t").cast(pl.String).str.zfill(6)),
        solution_id=pl.format("m{}s{}", pl.col("c") // 4, pl.col("c") % 4),
        test_id=pl.format("in{}", pl.col("x")),
        status=pl.col("status"),
        output=pl.when(pl.col("failed")).then(pl.lit("")).otherwise(output),
    )
    tests = pl.DataFrame({"t": np.repeat(np.arange(tasks), INPUTS), "x": np.tile(np.arange(INPUTS), tasks),
                          "n": rng.integers(1, 2 * 10**5, size=tasks * INPUTS)}).select(
        task_id=pl.format("task-{}", pl.col("t").cast(pl.String).str.zfill(6)),
        test_id=pl.format("in{}", pl.col("x")),
        input=pl.format("{}\n{}\n", pl.col("n"), pl.col("n") % 1000),
        weight=pl.lit(None, dtype=pl.Int64),
    )
    return runs, tests


# ----- the plain-Python implementations ---------------------------------------------------------

def _read(runs_path: str, tests_path: str, max_rows: int):
    from synthsmith.stages.compare import vote_key

    runs = pl.read_parquet(runs_path, n_rows=max_rows or None)
    tasks = set(runs["task_id"].unique())
    tests = pl.read_parquet(tests_path).filter(pl.col("task_id").is_in(list(tasks)))
    by_task: dict = defaultdict(dict)
    for task, test, inp, weight in tests.iter_rows():
        by_task[task][test] = [inp, weight]
    for task, tt in by_task.items():  # size weights: 1 + 4 * (inputs strictly shorter) // n
        lengths = sorted(len(i) for i, _ in tt.values())
        for entry in tt.values():
            if entry[1] is None:
                shorter = next(k for k, n in enumerate(lengths) if n == len(entry[0]))
                entry[1] = 1 + 4 * shorter // len(lengths)
    sols: dict = defaultdict(lambda: defaultdict(dict))
    keys: dict = {}
    for task, sol, test, status, output in runs.iter_rows():
        if test not in by_task.get(task, {}):
            continue
        out = sols[task][sol]
        if status == "ok":
            output = output or ""
            key = keys.get(output)
            if key is None:
                key = keys[output] = vote_key(output)
            out[test] = (output, key)
        else:
            out[test] = None
    return by_task, sols


def _split(task: str, test_ids, seed: int) -> set:
    """The paper's split: shuffle the sorted test_ids with random.Random(f"{seed}:{task}")."""
    test_ids = sorted(test_ids)
    random.Random(f"{seed}:{task}").shuffle(test_ids)
    return set(test_ids[:math.ceil(len(test_ids) / 2)])


GAMMA, MASK = 0x9E3779B97F4A7C15, 2**64 - 1


def _splitmix64(z: int) -> int:
    z = (z + GAMMA) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def _strict_split(task: str, test_ids, seed: int) -> set:
    """verify_strict.golden_split: rank the sorted test_ids by splitmix64(task seed + i * gamma)."""
    test_ids = sorted(test_ids)
    task_seed = int.from_bytes(hashlib.blake2b(f"{seed}:{task}".encode(), digest_size=8).digest(), "little")
    order = sorted(range(len(test_ids)), key=lambda i: (_splitmix64((task_seed + i * GAMMA) & MASK), i))
    return {test_ids[i] for i in order[:math.ceil(len(test_ids) / 2)]}


def _plain_clusters(candidates: dict) -> tuple[dict, list]:
    """Candidates grouped by output vector, and the groups ranked as strict ranks them."""
    clusters: dict = defaultdict(list)
    for sol, outs in candidates.items():
        vector = tuple(sorted((t, o[1]) for t, o in outs.items() if o is not None))
        if vector:
            clusters[vector].append(sol)
    eligible = {v: len(v) >= 2 and len({k for _, k in v}) >= 2 for v in clusters}
    return eligible, sorted(clusters.items(), key=lambda kv: (-eligible[kv[0]], -len(kv[1]), min(kv[1])))


def _plain_gate(tests, candidates: dict, eligible: dict) -> str | None:
    """The discard reasons before the golden cluster's size is weighed."""
    if not tests:
        return "no_tests"
    if not candidates:
        return "no_candidates"
    if not eligible:
        return "no_passing_candidate"
    if all(len(v) < 2 for v in eligible):
        return "too_few_labelled_tests"
    if not any(eligible.values()):
        return "degenerate_outputs"
    return None


def _plain_verdicts(by_task, sols, seed: int, decide) -> dict:
    """task -> (kept, golden, golden tests, reason); `decide(task, candidates, ranked)` gives the
    reason past the gate (None: keep), the golden cluster being ranked[0]."""
    verdicts = {}
    for task in sorted(set(by_task) | set(sols)):
        candidates = sols.get(task, {})
        eligible, ranked = _plain_clusters(candidates)
        reason = _plain_gate(by_task.get(task), candidates, eligible) or decide(task, candidates, ranked)
        if reason:
            verdicts[task] = (False, None, [], reason)
            continue
        golden = min(ranked[0][1])
        outs = candidates[golden]
        labelled = [t for t, o in outs.items() if o is not None]
        half = _strict_split(task, labelled, seed)
        verdicts[task] = (True, golden, [(t, outs[t][0]) for t in sorted(half)], None)
    return verdicts


def plain_strict(by_task, sols, seed: int) -> dict:
    """stages/verify_strict.py with dicts and loops: task -> (kept, golden, golden tests, reason)."""
    def decide(task, candidates, ranked) -> str | None:
        if len(ranked[0][1]) < 2:
            return "weak_consensus"
        if len(ranked[0][1]) < max((len(s) for _, s in ranked[1:]), default=0) + 2:
            return "contested_consensus"
        return None

    return _plain_verdicts(by_task, sols, seed, decide)


def plain_calibrated(by_task, sols, seed: int) -> dict:
    """stages/verify_calibrated.py with dicts and loops, at its default threshold and coefficients."""
    from synthsmith.stages.verify_calibrated import COEFFICIENTS, DEFAULT_THRESHOLD, FEATURES, logit

    limit = logit(DEFAULT_THRESHOLD)

    def decide(task, candidates, ranked) -> str | None:
        reason = None
        golden_vector, members = ranked[0]
        others = sorted(ranked[1:], key=lambda kv: (-len(kv[1]), min(kv[1])))
        g, r = len(members), len(others[0][1]) if others else 0
        if g < 2:
            reason = "weak_consensus"
        elif g <= r:
            reason = "contested_consensus"
        else:
            golden = dict(golden_vector)
            c = len(candidates)
            agreeing = outside = same_pairs = all_pairs = 0
            max_dissent = None
            for test, key in golden.items():
                votes = Counter(o[1] for outs in candidates.values() if (o := outs.get(test)) is not None)
                agree, others = votes[key] - g, sum(votes.values()) - g
                other_best = max((v for k, v in votes.items() if k != key), default=0)
                agreeing, outside = agreeing + agree, outside + others
                same_pairs += sum(v * (v - 1) // 2 for k, v in votes.items() if k != key) + agree * (agree - 1) // 2
                all_pairs += others * (others - 1) // 2
                max_dissent = other_best - agree if max_dissent is None else max(max_dissent, other_best - agree)
            voted = sum(any(outs.get(t) is not None for outs in candidates.values()) for t in by_task[task])
            features = {
                "log_golden_size": math.log(g), "log_candidates": math.log(c), "golden_share": g / c,
                "runner_up_size": r, "clear_lead": int(g >= r + 2),
                "dissent": max_dissent / (c - g) if c > g else 0.0,
                "centrality": (agreeing / outside if outside > 0 else 1.0)
                - (same_pairs / all_pairs if all_pairs > 0 else 1.0),
                "missed_tests": voted - len(golden), "few_values": int(len(set(golden.values())) <= 2),
            }
            score = float(COEFFICIENTS["intercept"])
            for f in FEATURES:
                score = score + float(COEFFICIENTS[f]) * float(features[f])
            if score > limit:
                reason = "low_confidence"
        return reason

    return _plain_verdicts(by_task, sols, seed, decide)


def plain_paper(by_task, sols, seed: int) -> dict:
    """dual_verify (the paper's Algorithm 1) with dicts and loops."""
    from synthsmith.stages.compare import outputs_match

    verdicts = {}
    for task in sorted(set(by_task) | set(sols)):
        candidates = sols.get(task, {})
        labels = {}
        voted = 0
        for test in by_task.get(task, {}):
            votes = Counter(o[1] for outs in candidates.values() if (o := outs.get(test)) is not None)
            if not votes:
                continue
            voted += 1
            top = votes.most_common()
            if len(top) > 1 and top[0][1] == top[1][1]:
                continue
            key = top[0][0]
            labels[test] = next(candidates[s][test][0] for s in sorted(candidates)
                                if (o := candidates[s].get(test)) is not None and o[1] == key)
        golden_half = _split(task, labels, seed)
        scores = {}
        for sol, outs in candidates.items():
            g = v = 0
            for test, want in labels.items():
                o = outs.get(test)
                if o is not None and outputs_match(want, o[0]):
                    if test in golden_half:
                        g += by_task[task][test][1]
                    else:
                        v += 1
            scores[sol] = (g, v)
        reason = None
        if not by_task.get(task):
            reason = "no_tests"
        elif not candidates:
            reason = "no_candidates"
        elif voted == 0:
            reason = "no_passing_candidate"
        elif len(labels) < 2:
            reason = "too_few_labelled_tests"
        elif max(g for g, _ in scores.values()) == 0:
            reason = "no_passing_candidate"
        best_g = max((g for g, _ in scores.values()), default=0)
        best_v = max((v for _, v in scores.values()), default=0)
        both = sorted((s for s, (g, v) in scores.items() if g == best_g and v == best_v),
                      key=lambda s: (-(scores[s][0] + scores[s][1]), s))
        if reason is None and not both:
            reason = "golden_validation_disagree"
        if reason:
            verdicts[task] = (False, None, [], reason)
        else:
            verdicts[task] = (True, both[0], [(t, labels[t]) for t in sorted(golden_half)], None)
    return verdicts


def plain_main(runs_path: str, tests_path: str, out_path: str, method: str, max_rows: int) -> None:
    by_task, sols = _read(runs_path, tests_path, max_rows)
    plain = {"strict": plain_strict, "calibrated": plain_calibrated, "paper": plain_paper}[method]
    verdicts = plain(by_task, sols, 0)
    Path(out_path).write_text(json.dumps(verdicts))


# ----- measuring ----------------------------------------------------------------------------------

def timed(command: list[str]) -> tuple[float, float, float]:
    """(wall s, peak RSS GiB, user + system CPU s) of one process, from GNU time."""
    done = subprocess.run(["/usr/bin/time", "-v", *command], capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"{command[:3]} failed:\n{done.stdout}\n{done.stderr[-3000:]}")
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", done.stderr)
    hours, minutes, seconds = int(wall.group(1) or 0), int(wall.group(2)), float(wall.group(3))
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))
    cpu = sum(float(re.search(rf"{kind} time \(seconds\): ([\d.]+)", done.stderr).group(1))
              for kind in ("User", "System"))
    return hours * 3600 + minutes * 60 + seconds, peak_kb / 2**20, cpu


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--method", default="strict", choices=["strict", "calibrated", "paper"])
    parser.add_argument("--plain-rows", type=int, default=0,
                        help="rows the plain implementation runs on (0: all), extrapolated linearly")
    args = parser.parse_args(argv)
    print("load average before: " + " ".join(f"{x:.2f}" for x in os.getloadavg()) + " (1, 5, 15 min)")
    with tempfile.TemporaryDirectory(prefix="verify-scale-") as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        runs, tests = synthesise(args.tasks)
        runs.write_parquet(tmp / "runs.parquet")
        tests.write_parquet(tmp / "tests.parquet")
        rows = runs.height
        print(f"synthesised {rows:,} runs ({args.tasks:,} tasks x {CANDIDATES} candidates x {INPUTS} inputs) "
              f"in {time.perf_counter() - start:.1f} s; method {args.method}")
        del runs, tests
        ours = timed([str(Path(sys.executable).parent / "synthsmith"), "verify", "--runs", str(tmp / "runs.parquet"),
                      "--tests", str(tmp / "tests.parquet"), "--out", str(tmp / "verdicts.parquet"),
                      "--method", args.method])
        plain_rows = args.plain_rows if 0 < args.plain_rows < rows else rows
        plain = timed([sys.executable, __file__, "--plain", str(tmp / "runs.parquet"), str(tmp / "tests.parquet"),
                       str(tmp / "plain.json"), args.method, str(plain_rows if plain_rows < rows else 0)])
        scale = rows / plain_rows
        # The two must agree on every task the plain one saw (its last task may be cut short).
        theirs = json.loads((tmp / "plain.json").read_text())
        last = max(theirs)
        ours_v = {r["task_id"]: r for r in pl.read_parquet(tmp / "verdicts.parquet").filter(
            pl.col("task_id").is_in(list(theirs))).to_dicts()}
        mismatched = [t for t, (kept, golden, golden_tests, reason) in theirs.items() if t != last or plain_rows == rows
                      if (ours_v[t]["kept"], ours_v[t]["golden_solution_id"], ours_v[t]["reason"],
                          [(g["test_id"], g["expected_output"]) for g in ours_v[t]["golden_tests"]])
                      != (kept, golden, reason, [tuple(g) for g in golden_tests])]
        kept = pl.read_parquet(tmp / "verdicts.parquet")["kept"].mean()
    note = "" if scale == 1 else f" (ran on {plain_rows:,} rows, x{scale:.0f} linear extrapolation)"
    print(f"ours  (synthsmith verify --method {args.method}): {ours[0]:6.1f} s wall, {ours[1]:5.2f} GiB peak, "
          f"{ours[2]:5.1f} s CPU; kept {kept:.1%} of tasks")
    print(f"plain (dicts and loops, same algorithm)      : {plain[0] * scale:6.1f} s wall, "
          f"{plain[1] * scale:5.2f} GiB peak, {plain[2] * scale:5.1f} s CPU{note}")
    print(f"ratio plain/ours: {plain[0] * scale / ours[0]:.1f}x time, {plain[1] * scale / ours[1]:.1f}x memory; "
          f"verdicts agree on {len(theirs) - len(mismatched)}/{len(theirs)} tasks compared")
    goal = ours[0] <= 10 and ours[1] <= 3
    print(f"goal <= 10 s and <= 3 GiB: {'met' if goal else 'MISSED'}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--plain":
        plain_main(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6]))
    else:
        main()
