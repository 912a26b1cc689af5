"""The calibrated verification method (stages/verify_calibrated.py)."""

import math
import random
from collections import Counter, defaultdict

import polars as pl
import pytest

from synthsmith.contract import tables
from synthsmith.contract.values import DISCARD_REASONS, LOW_CONFIDENCE
from synthsmith.stages.verify import verify
from synthsmith.stages.verify_calibrated import (
    COEFFICIENTS,
    DEFAULT_THRESHOLD,
    FEATURES,
    ROUNDS_THRESHOLD,
    UNDECIDED_REASONS,
    assess,
)

FAIL = None  # a run that did not finish cleanly
RIGHT = {f"x{i}": str(7 * i) for i in range(1, 7)}


def make_runs(task_id: str, outputs: dict[str, dict[str, str | None]]) -> pl.DataFrame:
    """outputs[solution_id][test_id] = what it printed, or FAIL."""
    rows = [(task_id, sol, test, "runtime_error" if out is FAIL else "ok", out or "")
            for sol, by_test in outputs.items() for test, out in by_test.items()]
    return pl.DataFrame(rows, schema=list(tables.RUNS.columns), orient="row")


def make_tests(task_id: str, test_ids) -> pl.DataFrame:
    return pl.DataFrame({"task_id": [task_id] * len(test_ids), "test_id": list(test_ids),
                         "input": [f"in {t}" for t in test_ids], "weight": [1] * len(test_ids)})


def wrong_on(test_id: str, value: str = "-1") -> dict[str, str]:
    return RIGHT | {test_id: value}


def one(verdicts: pl.DataFrame, task_id: str = "t") -> dict:
    return verdicts.filter(pl.col("task_id") == task_id).to_dicts()[0]


def conformed(runs: pl.DataFrame, tests: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    return tables.conform(runs, tables.RUNS), tables.conform(tests, tables.VERIFY_TESTS)


TESTS = make_tests("t", list(RIGHT))
# Six candidates agree on every test; two others are each wrong somewhere else.
MAJORITY = make_runs("t", {f"r{i}": RIGHT for i in range(6)} | {"w0": wrong_on("x1"), "w1": wrong_on("x2", "9")})
# Two candidates agree; six others are each wrong on a test of their own, and agree with each other
# (and with the right answers) everywhere else: the pair is the odd one out.
PAIR = make_runs("t", {"a": wrong_on("x3", "0"), "b": wrong_on("x3", "0")}
                 | {f"o{i}": wrong_on(f"x{i % 6 + 1}", f"-{i}") for i in range(6)})


def test_a_clear_majority_is_kept_with_strict_golden_solution_and_tests():
    v = one(verify(MAJORITY, TESTS, method="calibrated")[0])
    strict = one(verify(MAJORITY, TESTS, method="strict")[0])
    assert (v["kept"], v["reason"], v["golden_solution_id"], v["outcome"]) == (True, None, "r0", "kept")
    assert v["golden_tests"] == strict["golden_tests"]
    assert all(g["expected_output"] == RIGHT[g["test_id"]] for g in v["golden_tests"])
    assert one(assess(*conformed(MAJORITY, TESTS)))["p_wrong"] < 0.01


def test_a_contested_pair_is_discarded_with_low_confidence_and_undecided_while_more_can_come():
    p = one(assess(*conformed(PAIR, TESTS)))
    assert p["gate"] is None and p["p_wrong"] > DEFAULT_THRESHOLD
    v = one(verify(PAIR, TESTS, method="calibrated")[0])
    assert (v["kept"], v["reason"], v["golden_solution_id"], v["golden_tests"]) == (False, LOW_CONFIDENCE, None, [])
    assert v["outcome"] == "discarded"
    assert one(verify(PAIR, TESTS, method="calibrated", more_possible=["t"])[0])["outcome"] == "undecided"
    assert LOW_CONFIDENCE in UNDECIDED_REASONS and LOW_CONFIDENCE in DISCARD_REASONS
    # P(wrong) <= 1 always: threshold 1 keeps whatever reaches the model, with the pair as golden.
    kept = one(verify(PAIR, TESTS, method="calibrated", threshold=1.0)[0])
    assert (kept["kept"], kept["golden_solution_id"]) == (True, "a")


@pytest.mark.parametrize("sizes, reason", [
    ((3, 3), "contested_consensus"),  # a tie between two behaviours is never kept
    ((1, 1), "weak_consensus"),  # no two candidates agree
    ((4, 3), None),  # a lead of one can be kept (strict needs two) ...
])
def test_gate_reasons_before_the_model(sizes, reason):
    other = {k: str(int(v) + 100) for k, v in RIGHT.items()}
    runs = make_runs("t", {f"r{i}": RIGHT for i in range(sizes[0])} | {f"s{i}": other for i in range(sizes[1])})
    assert one(assess(*conformed(runs, TESTS)))["gate"] == reason
    v = one(verify(runs, TESTS, method="calibrated", threshold=1.0)[0])
    assert v["reason"] == reason and v["kept"] == (reason is None)
    assert one(verify(runs, TESTS, method="strict")[0])["kept"] is False  # ... where strict discards all three


def random_tasks(count: int, seed: int = 0) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Tasks with 2-10 candidates drawn from a few behaviours (some repeated, some failing)."""
    rng = random.Random(seed)
    runs, tests = [], []
    for k in range(count):
        task = f"task{k:03d}"
        test_ids = [f"x{i}" for i in range(rng.randint(2, 6))]
        truth = {t: str(rng.randint(0, 9)) for t in test_ids}
        behaviours = [truth] + [{t: rng.choice([truth[t], truth[t], str(rng.randint(0, 3)), FAIL]) for t in test_ids}
                                for _ in range(rng.randint(1, 5))]
        weights = [rng.random() * 3] + [rng.random() for _ in behaviours[1:]]
        for c in range(rng.randint(2, 10)):
            for t, out in rng.choices(behaviours, weights)[0].items():
                runs.append((task, f"s{c}", t, "ok" if out is not FAIL else "timeout", out or ""))
        tests += [(task, t, "", 1) for t in test_ids]
    return (pl.DataFrame(runs, schema=list(tables.RUNS.columns), orient="row"),
            pl.DataFrame(tests, schema=["task_id", "test_id", "input", "weight"], orient="row"))


def reference(runs: pl.DataFrame, tests: pl.DataFrame) -> dict[str, dict]:
    """The golden cluster and FEATURES with dicts and loops (outputs here are their own vote keys)."""
    test_ids = defaultdict(set)
    for task, test, *_ in tests.iter_rows():
        test_ids[task].add(test)
    sols = defaultdict(lambda: defaultdict(dict))
    for task, sol, test, status, output in runs.iter_rows():
        sols[task][sol][test] = output if status == "ok" else None
    found = {}
    for task, candidates in sols.items():
        clusters = defaultdict(list)
        for sol, outs in candidates.items():
            if vector := tuple(sorted((t, o) for t, o in outs.items() if o is not None)):
                clusters[vector].append(sol)
        eligible = {v: len(v) >= 2 and len({o for _, o in v}) >= 2 for v in clusters}
        if not any(eligible.values()):
            continue
        ranked = sorted(clusters.items(), key=lambda kv: (-eligible[kv[0]], -len(kv[1]), min(kv[1])))
        (vector, members), *others = ranked
        g, r, c = len(members), max((len(m) for _, m in others), default=0), len(candidates)
        golden = dict(vector)
        agreeing = outside = same = pairs = 0
        dissent = -math.inf
        for test, out in golden.items():
            votes = Counter(o for outs in candidates.values() if (o := outs.get(test)) is not None)
            agree, rest = votes[out] - g, sum(votes.values()) - g
            agreeing, outside = agreeing + agree, outside + rest
            same += sum(v * (v - 1) // 2 for o, v in votes.items() if o != out) + agree * (agree - 1) // 2
            pairs += rest * (rest - 1) // 2
            dissent = max(dissent, max((v for o, v in votes.items() if o != out), default=0) - agree)
        voted = sum(any(outs.get(t) is not None for outs in candidates.values()) for t in test_ids[task])
        found[task] = {
            "golden": min(members), "members": set(members), "g": g, "r": r,
            "log_golden_size": math.log(g), "log_candidates": math.log(c), "golden_share": g / c, "runner_up_size": r,
            "clear_lead": int(g >= r + 2), "dissent": dissent / (c - g) if c > g else 0.0,
            "centrality": (agreeing / outside if outside else 1.0) - (same / pairs if pairs else 1.0),
            "missed_tests": voted - len(golden), "few_values": int(len(set(golden.values())) <= 2),
        }
    return found


def test_features_and_golden_solution_match_a_plain_reference():
    runs, tests = random_tasks(300)
    expected = reference(runs, tests)
    got = {row["task_id"]: row for row in assess(*conformed(runs, tests)).iter_rows(named=True)}
    reasons = Counter(row["gate"] for row in got.values())
    assert reasons[None] > 50 and reasons["contested_consensus"] > 5 and reasons["weak_consensus"] > 5
    for task, row in got.items():
        if row["gate"] in (None, "weak_consensus", "contested_consensus"):
            want = expected[task]
            assert row["golden_solution_id"] == want["golden"], task
            assert row["gate"] == ("weak_consensus" if want["g"] < 2 else
                                   "contested_consensus" if want["g"] <= want["r"] else None), task
        if row["gate"] is None:
            for f in FEATURES:
                assert row[f] == pytest.approx(want[f], abs=1e-12), (task, f)
            score = COEFFICIENTS["intercept"] + sum(COEFFICIENTS[f] * want[f] for f in FEATURES)
            assert row["score"] == pytest.approx(score, abs=1e-9)
            assert row["p_wrong"] == pytest.approx(1 / (1 + math.exp(-score)))


def test_the_golden_solution_is_a_member_of_the_leading_cluster():
    runs, tests = random_tasks(300, seed=1)
    expected = reference(runs, tests)
    verdicts = verify(runs, tests, method="calibrated", threshold=1.0)[0].filter("kept")
    assert verdicts.height > 50
    for task, golden in verdicts.select("task_id", "golden_solution_id").iter_rows():
        assert golden in expected[task]["members"] and golden == min(expected[task]["members"])
        assert expected[task]["g"] > expected[task]["r"]


def test_a_lower_threshold_never_keeps_more():
    runs, tests = random_tasks(300, seed=2)
    kept = [set(verify(runs, tests, method="calibrated", threshold=t)[0].filter("kept")["task_id"])
            for t in (1.0, 0.5, DEFAULT_THRESHOLD, ROUNDS_THRESHOLD, 0.01, 0.0)]
    assert all(lower <= higher for higher, lower in zip(kept, kept[1:]))
    assert len(kept[0]) > len(kept[2]) > 0 and kept[-1] == set()
    with pytest.raises(ValueError, match="threshold"):
        verify(runs, tests, method="calibrated", threshold=1.5)


def test_duplicate_runs_raise():
    with pytest.raises(ValueError, match="more than one row"):
        verify(pl.concat([MAJORITY, MAJORITY.head(1)]), TESTS, method="calibrated")


def test_empty_inputs_and_tasks_without_runs_or_tests():
    empty_runs = pl.DataFrame(schema=tables.RUNS.columns)
    empty_tests = pl.DataFrame(schema={"task_id": pl.String, "test_id": pl.String, "input": pl.String,
                                       "weight": pl.Int64})
    verdicts, agreement = verify(empty_runs, empty_tests, method="calibrated")
    assert verdicts.height == 0 and agreement.height == 0
    assert assess(*conformed(empty_runs, empty_tests)).height == 0
    runs = pl.concat([MAJORITY, make_runs("no_tests", {"a": RIGHT, "b": RIGHT})])
    tests = pl.concat([TESTS, make_tests("no_runs", list(RIGHT))])
    verdicts = verify(runs, tests, method="calibrated")[0]
    assert dict(verdicts.select("task_id", "reason").iter_rows()) == {
        "no_runs": "no_candidates", "no_tests": "no_tests", "t": None}


def test_coefficients_cover_exactly_the_features():
    assert set(COEFFICIENTS) == {"intercept", *FEATURES}
    assert 0 < ROUNDS_THRESHOLD < DEFAULT_THRESHOLD < 1
