import polars as pl
import pytest
from typer.testing import CliRunner

from synthsmith.cli import app
from synthsmith.contract import tables
from synthsmith.contract.values import DISCARD_REASONS
from synthsmith.stages.compare import vote_key
from synthsmith.stages.verify import METHODS, verify
from synthsmith.stages.verify_paper import label_tests, size_weights, split_tests
from synthsmith.stages.verify_strict import MARGIN, MIN_SUPPORT
from synthsmith.stages.verify_strict import golden_split as strict_golden_split
from synthsmith.stages.votes import with_key_ids

FAIL = None  # a run that did not finish cleanly


def make_runs(task_id: str, outputs: dict[str, dict[str, str | None]]) -> pl.DataFrame:
    """outputs[solution_id][test_id] = what it printed, or FAIL."""
    rows = [
        (task_id, sol, test, "error" if out is FAIL else "ok", out or "")
        for sol, by_test in outputs.items() for test, out in by_test.items()
    ]
    return pl.DataFrame(rows, schema=list(tables.RUNS.columns), orient="row")


def make_tests(task_id: str, test_ids, weights=None) -> pl.DataFrame:
    return pl.DataFrame({
        "task_id": [task_id] * len(test_ids), "test_id": list(test_ids),
        "input": [f"in {t}" for t in test_ids],
        "weight": weights or [1] * len(test_ids),
    })


def golden_split(task_id: str, test_ids, seed: int = 0) -> tuple[list[str], list[str]]:
    split = split_tests(pl.DataFrame({"task_id": [task_id] * len(test_ids), "test_id": list(test_ids)}), seed)
    golden = split.filter("golden")["test_id"].sort().to_list()
    return golden, sorted(set(test_ids) - set(golden))


def one(verdicts: pl.DataFrame, task_id: str = "t") -> dict:
    return verdicts.filter(pl.col("task_id") == task_id).to_dicts()[0]


RIGHT = {"x1": "1", "x2": "2", "x3": "3", "x4": "4"}
# b and c are right everywhere; a is wrong on x1; d is always wrong. So the labels are
# RIGHT and b is the golden solution whichever way the tests are split.
MAJORITY = make_runs("t", {
    "a": RIGHT | {"x1": "9"},
    "b": RIGHT,
    "c": {k: v + " \n" for k, v in RIGHT.items()},
    "d": {k: "0" for k in RIGHT},
})
TESTS = make_tests("t", list(RIGHT))


def test_clear_majority_is_kept_with_the_right_golden_solution_and_tests():
    verdicts, agreement = verify(MAJORITY, TESTS, method="paper")
    v = one(verdicts)
    golden, _ = golden_split("t", list(RIGHT))
    assert v["kept"] and v["reason"] is None and v["golden_solution_id"] == "b"
    assert v["golden_tests"] == [{"test_id": t, "expected_output": RIGHT[t]} for t in golden]
    assert agreement.to_dicts() == [
        {"task_id": "t", "labelled_tests": 4, "tied_tests": 0, "mean_top_share": (3 + 3 + 3 + 2) / 4 / 4},
    ]


def test_a_run_within_the_float_tolerance_passes_even_across_a_rounding_bucket():
    # 1.0000049 and 1.0000051 fall in different vote buckets at 1e-6 but match within 1e-6:
    # "a" passes every test, ties b/c/d on score and wins on the lowest id. At 1e-9 they differ.
    near = make_runs("t", {"a": {k: "1.0000051" for k in RIGHT}, **{s: {k: "1.0000049" for k in RIGHT} for s in "bcd"}})
    assert one(verify(near, TESTS, method="paper")[0])["golden_solution_id"] == "a"
    assert one(verify(near, TESTS, method="paper", float_tol=1e-9)[0])["golden_solution_id"] == "b"


def test_a_tie_drops_that_input():
    runs = MAJORITY.with_columns(
        output=pl.when((pl.col("test_id") == "x3") & pl.col("solution_id").is_in(["c", "d"]))
        .then(pl.lit("7")).otherwise("output"))  # x3: a, b say 3; c, d say 7
    verdicts, agreement = verify(runs, TESTS, method="paper")
    v = one(verdicts)
    assert v["kept"] and v["golden_solution_id"] == "b"
    assert "x3" not in [t["test_id"] for t in v["golden_tests"]]
    assert len(v["golden_tests"]) == 2  # ceil(3 / 2) of the three labelled tests
    assert agreement.select("labelled_tests", "tied_tests").row(0) == (3, 1)


def test_all_candidates_failing_is_discarded():
    runs = make_runs("t", {s: {t: FAIL for t in RIGHT} for s in "abc"})
    verdicts, agreement = verify(runs, TESTS)
    v = one(verdicts)
    assert (v["kept"], v["golden_solution_id"], v["golden_tests"], v["reason"]) == (
        False, None, [], "no_passing_candidate")
    assert agreement.row(0) == ("t", 0, 0, None)


def test_golden_and_validation_disagreement_is_discarded():
    # x1 is passed only by a and b, x2 only by c and d: whichever is golden, j* and j+ are disjoint.
    runs = make_runs("t", {
        "a": {"x1": "1", "x2": "6"}, "b": {"x1": "1", "x2": "7"},
        "c": {"x1": "2", "x2": "5"}, "d": {"x1": "3", "x2": "5"}, "e": {"x1": "4", "x2": "8"},
    })
    v = one(verify(runs, make_tests("t", ["x1", "x2"]), method="paper")[0])
    assert (v["kept"], v["golden_solution_id"], v["reason"]) == (False, None, "golden_validation_disagree")


def test_too_few_labelled_tests_no_candidates_and_no_tests():
    runs = pl.concat([
        make_runs("one_test", {"a": {"x1": "1"}, "b": {"x1": "1"}}),
        make_runs("tied", {"a": {"x1": "1", "x2": "1"}, "b": {"x1": "1", "x2": "2"}}),
        make_runs("no_tests", {"a": {"x1": "1"}}),
    ])
    tests = pl.concat([make_tests("one_test", ["x1"]), make_tests("tied", ["x1", "x2"]),
                       make_tests("no_runs", ["x1", "x2"])])
    verdicts, agreement = verify(runs, tests, method="paper")
    assert dict(verdicts.select("task_id", "reason").iter_rows()) == {
        "no_runs": "no_candidates", "no_tests": "no_tests",
        "one_test": "too_few_labelled_tests", "tied": "too_few_labelled_tests",
    }
    assert agreement["task_id"].to_list() == ["no_runs", "no_tests", "one_test", "tied"]
    assert set(verdicts["reason"]) <= set(DISCARD_REASONS)


def test_zero_best_golden_score_is_discarded():
    v = one(verify(MAJORITY, TESTS.with_columns(weight=pl.lit(0)), method="paper")[0])
    assert (v["kept"], v["reason"]) == (False, "no_passing_candidate")


def test_weights_decide_the_golden_winner():
    ids = ["x1", "x2", "x3", "x4"]
    (g1, g2), (v1, v2) = golden_split("t", ids)
    # a and c pass g1 only, b and d g2 only; everybody passes validation.
    runs = make_runs("t", {
        "a": {g1: "1", g2: "a", v1: "v", v2: "v"}, "b": {g1: "b", g2: "2", v1: "v", v2: "v"},
        "c": {g1: "1", g2: "c", v1: "v", v2: "v"}, "d": {g1: "d", g2: "2", v1: "v", v2: "v"},
    })
    g1_heavy = make_tests("t", [g1, g2, v1, v2], [4, 1, 1, 1])
    g2_heavy = make_tests("t", [g1, g2, v1, v2], [1, 4, 1, 1])
    assert one(verify(runs, g1_heavy, method="paper")[0])["golden_solution_id"] == "a"
    assert one(verify(runs, g2_heavy, method="paper")[0])["golden_solution_id"] == "b"
    # Without a weight column, g2's longer input makes it the heavier test.
    by_size = g2_heavy.drop("weight").with_columns(
        input=pl.when(pl.col("test_id") == g2).then(pl.lit("x" * 100)).otherwise(pl.lit("x")))
    assert one(verify(runs, by_size, method="paper")[0])["golden_solution_id"] == "b"


@pytest.mark.parametrize("method", ["strict", "paper"])
def test_deterministic_across_row_order_and_repeats(method):
    runs = pl.concat([MAJORITY, MAJORITY.with_columns(task_id=pl.lit("u")),
                      CONSENSUS.with_columns(task_id=pl.lit("v"))])
    tests = pl.concat([TESTS, TESTS.with_columns(task_id=pl.lit("u")), TESTS.with_columns(task_id=pl.lit("v"))])
    first = verify(runs, tests, seed=3, method=method)
    assert first[0]["kept"].any()
    for shuffle_seed in range(5):
        again = verify(runs.sample(fraction=1.0, shuffle=True, seed=shuffle_seed),
                       tests.sample(fraction=1.0, shuffle=True, seed=shuffle_seed), seed=3, method=method)
        assert again[0].equals(first[0]) and again[1].equals(first[1])


@pytest.mark.parametrize("method", ["strict", "paper"])
def test_different_seeds_can_change_the_split(method):
    ids = [f"x{i:02d}" for i in range(10)]
    runs = make_runs("t", {s: {t: t for t in ids} for s in "abc"})
    tests = make_tests("t", ids)
    splits = {tuple(t["test_id"] for t in one(verify(runs, tests, seed=s, method=method)[0])["golden_tests"])
              for s in range(5)}
    assert len(splits) > 1
    assert all(len(s) == 5 for s in splits)


@pytest.mark.parametrize("method", ["strict", "paper"])
def test_ids_are_strings_compared_as_strings(method):
    # "007" stays "007", and among equals the lowest solution_id is "10" < "9" as strings.
    runs = make_runs("007", {"9": {"01": "1", "2": "2"}, "10": {"01": "1", "2": "2"}})
    verdicts, agreement = verify(runs, make_tests("007", ["01", "2"]), method=method)
    assert verdicts.row(0)[:3] == ("007", True, "10")
    assert verdicts.schema == pl.Schema(tables.VERDICTS.columns)
    assert agreement.schema == pl.Schema(tables.AGREEMENT.columns)


def test_size_weights_are_quartiles_of_input_length():
    tests = pl.DataFrame({
        "task_id": ["t"] * 8 + ["ties"] * 4 + ["single", "given", "given"],
        "test_id": [f"x{i}" for i in range(15)],
        "input": ["a" * n for n in [8, 1, 2, 3, 4, 5, 6, 7]] + ["a", "b", "c", "dddd"]
        + ["aaaa", "a", "aaaaa"],
        "weight": [None] * 13 + [3, None],
    }, schema={"task_id": pl.String, "test_id": pl.String, "input": pl.String, "weight": pl.Int64})
    weights = size_weights(tests)["weight"].to_list()
    assert weights[:8] == [4, 1, 1, 2, 2, 3, 3, 4]
    assert weights[8:12] == [1, 1, 1, 4]  # equal lengths share the lowest rank's weight
    assert weights[12] == 1  # a task with one test
    assert weights[13:] == [3, 3]  # a given weight is kept; the null one is 1 + 4 * 1 // 2
    assert size_weights(tests.reverse())["weight"].reverse().to_list() == weights


@pytest.mark.parametrize("method", ["strict", "calibrated", "paper"])
def test_unknown_method_and_bad_inputs_raise(method):
    assert set(METHODS) == {"paper", "strict", "calibrated"}
    with pytest.raises(ValueError, match="known: \\['calibrated', 'paper', 'strict'\\]"):
        verify(MAJORITY, TESTS, method="nope")
    with pytest.raises(ValueError, match="runs: more than one row"):
        verify(pl.concat([MAJORITY, MAJORITY.head(1)]), TESTS, method=method)
    with pytest.raises(ValueError, match="tests: more than one row"):
        verify(MAJORITY, pl.concat([TESTS, TESTS.head(1)]), method=method)
    with pytest.raises(ValueError, match="weight must be >= 0"):
        verify(MAJORITY, TESTS.with_columns(weight=pl.lit(-1)), method=method)
    with pytest.raises(tables.ContractError, match="runs"):
        verify(MAJORITY.drop("status"), TESTS, method=method)


def test_cli_writes_verdicts_with_the_strict_method_by_default(tmp_path):
    runs = pl.concat([CONSENSUS, MAJORITY.with_columns(task_id=pl.lit("u"))])
    tests = pl.concat([TESTS, TESTS.with_columns(task_id=pl.lit("u"))]).drop("weight")
    runs.write_parquet(tmp_path / "runs.parquet")
    tests.write_parquet(tmp_path / "tests.parquet")
    out = tmp_path / "out" / "verdicts.parquet"
    args = ["verify", "--runs", str(tmp_path / "runs.parquet"), "--tests", str(tmp_path / "tests.parquet"),
            "--out", str(out), "--seed", "1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    # MAJORITY's b and c agree on every test but lead a and d by one: not a consensus.
    assert result.stdout.strip() == f"verify: kept 1/2 tasks (dropped: contested_consensus=1) -> {out}"
    assert pl.read_parquet(out).equals(verify(runs, tests, seed=1, method="strict")[0])
    assert [p.name for p in out.parent.iterdir()] == ["verdicts.parquet"]
    result = CliRunner().invoke(app, [*args, "--method", "paper"])
    assert result.stdout.strip() == f"verify: kept 2/2 tasks -> {out}"
    assert pl.read_parquet(out).equals(verify(runs, tests, seed=1, method="paper")[0])


def test_cli_max_candidates_writes_thin_evidence_as_undecided_with_its_reason(tmp_path):
    # t: 4 candidates, contested; u: the same runs, kept; v: no tests at all (a final discard).
    runs = pl.concat([MAJORITY, CONSENSUS.with_columns(task_id=pl.lit("u")),
                      MAJORITY.with_columns(task_id=pl.lit("v"))])
    tests = pl.concat([TESTS, TESTS.with_columns(task_id=pl.lit("u"))])
    runs.write_parquet(tmp_path / "runs.parquet")
    tests.write_parquet(tmp_path / "tests.parquet")
    out = tmp_path / "verdicts.parquet"
    args = ["verify", "--runs", str(tmp_path / "runs.parquet"), "--tests", str(tmp_path / "tests.parquet"),
            "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--max-candidates", "5"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (f"verify: kept 1/3 tasks (undecided: contested_consensus=1; dropped: "
                                     f"no_tests=1) -> {out}")
    written = pl.read_parquet(out).select("task_id", "kept", "outcome", "reason", "candidates").rows()
    assert written == [("t", False, "undecided", "contested_consensus", 4), ("u", True, "kept", None, 5),
                       ("v", False, "discarded", "no_tests", 4)]
    CliRunner().invoke(app, [*args, "--max-candidates", "4"])  # t has 4 already: no more can come, so final
    assert pl.read_parquet(out)["outcome"].to_list() == ["discarded", "kept", "discarded"]


@pytest.mark.parametrize("method", ["strict", "calibrated", "paper"])
def test_only_a_method_s_thin_evidence_reasons_are_undecided_and_only_where_more_can_come(method):
    from synthsmith.stages.verify import UNDECIDED_REASONS

    runs = pl.concat([MAJORITY.with_columns(task_id=pl.lit(t)) for t in "abc"]
                     + [CONSENSUS.with_columns(task_id=pl.lit("k"))])
    tests = pl.concat([TESTS.with_columns(task_id=pl.lit(t)) for t in "abk"])  # c has no tests
    final = verify(runs, tests, method=method)[0]
    assert (final["outcome"] != "undecided").all()
    assert final["outcome"].to_list() == ["kept" if kept else "discarded" for kept in final["kept"]]
    verdicts = verify(runs, tests, method=method, more_possible=["a", "c", "k"])[0]
    assert verdicts.drop("outcome").equals(final.drop("outcome"))  # the verdict is the same; only its finality moves
    for row in verdicts.iter_rows(named=True):
        thin = row["task_id"] in "ack" and row["reason"] in UNDECIDED_REASONS[method]
        assert row["outcome"] == ("kept" if row["kept"] else "undecided" if thin else "discarded"), row
    assert one(verdicts, "c")["outcome"] == "discarded"  # no_tests: more candidates cannot help
    if method == "paper":
        assert (verdicts["outcome"] != "undecided").all()
    if method == "strict":
        assert one(verdicts, "a")["outcome"] == "undecided" and one(verdicts, "b")["outcome"] == "discarded"


def test_a_threshold_is_refused_for_a_method_without_one():
    with pytest.raises(ValueError, match="threshold is for the calibrated method, not 'strict'"):
        verify(MAJORITY, TESTS, method="strict", threshold=0.01)


def test_cli_rejects_a_file_with_a_missing_column(tmp_path):
    MAJORITY.drop("output").write_parquet(tmp_path / "runs.parquet")
    TESTS.write_parquet(tmp_path / "tests.parquet")
    out = tmp_path / "verdicts.parquet"
    result = CliRunner().invoke(app, ["verify", "--runs", str(tmp_path / "runs.parquet"),
                                      "--tests", str(tmp_path / "tests.parquet"), "--out", str(out)])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert str(tmp_path / "runs.parquet") in result.stderr and "missing column(s) ['output']" in result.stderr
    assert not out.exists()


def test_cli_rejects_an_unknown_method(tmp_path):
    MAJORITY.write_parquet(tmp_path / "runs.parquet")
    TESTS.write_parquet(tmp_path / "tests.parquet")
    result = CliRunner().invoke(app, ["verify", "--runs", str(tmp_path / "runs.parquet"), "--tests",
                                      str(tmp_path / "tests.parquet"), "--out", str(tmp_path / "v.parquet"),
                                      "--method", "nope"])
    assert result.exit_code == 2
    assert "unknown verify method 'nope'; known: ['calibrated', 'paper', 'strict']" in result.stderr


# ----- the strict method (stages/verify_strict.py) -------------------------------------------------

def strict_golden(task_id: str, test_ids, seed: int = 0) -> list[str]:
    n = len(test_ids)
    labels = pl.DataFrame({"t": [0] * n, "x": list(range(n)), "task_id": [task_id] * n},
                          schema={"t": pl.UInt32, "x": pl.UInt32, "task_id": pl.String})
    split = strict_golden_split(labels, seed)
    return [sorted(test_ids)[x] for x in split.filter("golden")["x"]]


def reference_strict_golden(task_id: str, test_ids, seed: int = 0) -> list[str]:
    """The split's definition in plain Python: blake2b task seed, splitmix64 ranks."""
    import hashlib
    import math

    gamma, mask = 0x9E3779B97F4A7C15, 2**64 - 1

    def splitmix64(z: int) -> int:
        z = (z + gamma) & mask
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        return z ^ (z >> 31)

    ids = sorted(test_ids)
    task_seed = int.from_bytes(hashlib.blake2b(f"{seed}:{task_id}".encode(), digest_size=8).digest(), "little")
    order = sorted(range(len(ids)), key=lambda i: (splitmix64((task_seed + i * gamma) & mask), i))
    return sorted(ids[i] for i in order[:math.ceil(len(ids) / 2)])


# a, b, c agree on every test (c with sloppy whitespace); d is wrong on x1; e prints 0 everywhere.
CONSENSUS = make_runs("t", {
    "a": RIGHT, "b": RIGHT, "c": {k: v + " \r\n" for k, v in RIGHT.items()},
    "d": RIGHT | {"x1": "9"}, "e": {k: "0" for k in RIGHT},
})


def test_strict_keeps_a_dominant_consensus_with_its_outputs_as_labels():
    verdicts, agreement = verify(CONSENSUS, TESTS, method="strict")
    v = one(verdicts)
    assert (v["kept"], v["golden_solution_id"], v["reason"]) == (True, "a", None)
    golden = strict_golden("t", list(RIGHT))
    assert golden == reference_strict_golden("t", list(RIGHT)) and len(golden) == 2
    assert v["golden_tests"] == [{"test_id": t, "expected_output": RIGHT[t]} for t in golden]
    # AGREEMENT is the per-input plurality vote, whatever the method.
    assert agreement.equals(verify(CONSENSUS, TESTS, method="paper")[1])
    assert agreement.row(0) == ("t", 4, 0, (3 + 4 + 4 + 4) / 4 / 5)


def test_strict_labels_survive_a_shared_wrong_answer_that_outvotes_the_right_one():
    # Failure mode 1: four different wrong programs all answer "False" on x1 (each is wrong
    # somewhere else too), outvoting the three correct candidates there.
    right = {"x1": "True", "x2": "[1, 2]", "x3": "[3]", "x4": "[]", "x5": "7", "x6": "8"}
    wrong = {f"w{i}": right | {"x1": "False", f"x{i + 2}": "None"} for i in range(4)}
    runs = make_runs("t", {"c1": right, "c2": right, "c3": right} | wrong)
    tests = make_tests("t", list(right))
    votes = label_tests(with_key_ids(runs))
    assert votes.filter(pl.col("test_id") == "x1")["expected_output"].to_list() == ["False"]  # the vote is wrong
    v = one(verify(runs, tests, method="strict")[0])
    assert (v["kept"], v["golden_solution_id"]) == (True, "c1")
    assert all(g["expected_output"] == right[g["test_id"]] for g in v["golden_tests"])
    assert {g["test_id"] for g in v["golden_tests"]} == set(strict_golden("t", list(right)))


def test_strict_discards_a_task_without_a_correct_candidate_that_paper_keeps():
    # Failure mode 2: four different wrong programs, each wrong somewhere. w0 is wrong on one
    # golden test only, every other one on a golden and a validation test, so w0 is the best on
    # both halves and the paper's hold-out check keeps it. No two agree on every test.
    ids = [f"x{i}" for i in range(1, 7)]
    tests = make_tests("t", ids)
    truth = {t: str(10 * i) for i, t in enumerate(ids, 1)}
    g, v = golden_split("t", ids)
    errors = [[g[0]], [g[1], v[0]], [g[2], v[1]], [g[2], v[2]]]
    runs = make_runs("t", {f"w{i}": truth | {t: f"-{i}{k}" for k, t in enumerate(e)} for i, e in enumerate(errors)})
    paper = one(verify(runs, tests, method="paper")[0])
    assert (paper["kept"], paper["golden_solution_id"]) == (True, "w0")
    v = one(verify(runs, tests, method="strict")[0])
    assert (v["kept"], v["golden_solution_id"], v["golden_tests"], v["reason"]) == (False, None, [], "weak_consensus")


@pytest.mark.parametrize("sizes, reason", [
    ((3, 3), "contested_consensus"),  # a tie between two behaviours
    ((3, 2), "contested_consensus"),  # a lead of one
    ((4, 2), None),  # a lead of MARGIN
    ((2, 0), None),  # two agreeing candidates and nobody else
    ((1, 1), "weak_consensus"),
])
def test_strict_needs_min_support_and_a_lead_of_margin(sizes, reason):
    assert (MIN_SUPPORT, MARGIN) == (2, 2)
    other = {k: str(int(v) + 100) for k, v in RIGHT.items()}
    runs = make_runs("t", {f"r{i}": RIGHT for i in range(sizes[0])} | {f"s{i}": other for i in range(sizes[1])})
    v = one(verify(runs, TESTS, method="strict")[0])
    assert v["reason"] == reason and v["kept"] == (reason is None)
    assert v["golden_solution_id"] == ("r0" if reason is None else None)


def test_strict_reasons_for_failing_and_degenerate_candidates():
    runs = pl.concat([
        make_runs("all_fail", {s: {t: FAIL for t in RIGHT} for s in "abc"}),
        make_runs("one_clean_test", {s: {"x1": "1", "x2": FAIL, "x3": FAIL, "x4": FAIL} for s in "abc"}),
        make_runs("constant", {s: {t: "0" for t in RIGHT} for s in "abc"}),
        # the constant group is the largest, so the right pair does not lead it
        make_runs("constant_majority", {s: {t: "0" for t in RIGHT} for s in "abc"} | {s: RIGHT for s in "de"}),
        make_runs("no_tests", {"a": RIGHT}),
        make_runs("unknown_tests_only", {s: {"y1": "1", "y2": "2"} for s in "ab"}),
    ])
    task_ids = ("all_fail", "one_clean_test", "constant", "constant_majority", "no_runs", "unknown_tests_only")
    tests = pl.concat([make_tests(t, list(RIGHT)) for t in task_ids])
    verdicts, agreement = verify(runs, tests, method="strict")
    assert dict(verdicts.select("task_id", "reason").iter_rows()) == {
        "all_fail": "no_passing_candidate", "constant": "degenerate_outputs",
        "constant_majority": "contested_consensus", "no_runs": "no_candidates", "no_tests": "no_tests",
        "one_clean_test": "too_few_labelled_tests", "unknown_tests_only": "no_passing_candidate",
    }
    assert set(verdicts["reason"]) <= set(DISCARD_REASONS)
    assert not verdicts["kept"].any() and verdicts["golden_tests"].list.len().sum() == 0
    assert agreement.equals(verify(runs, tests, method="paper")[1])


def test_strict_clusters_whole_vectors_failures_included_and_drops_the_tests_its_golden_fails():
    # a, b, c fail on x4 alike; d agrees with them on x1-x3 but prints 4 on x4: a different
    # behaviour. The golden tests come from x1-x3 only.
    runs = make_runs("t", {s: RIGHT | {"x4": FAIL} for s in "abc"} | {"d": RIGHT, "e": RIGHT | {"x2": "7"}})
    v = one(verify(runs, TESTS, method="strict")[0])
    assert (v["kept"], v["golden_solution_id"]) == (True, "a")
    assert [g["test_id"] for g in v["golden_tests"]] == strict_golden("t", ["x1", "x2", "x3"])
    runs = runs.filter(pl.col("solution_id") != "c")  # now a, b lead d and e by one only
    assert one(verify(runs, TESTS, method="strict")[0])["reason"] == "contested_consensus"


def test_strict_float_outputs_cluster_by_vote_key_so_a_bucket_edge_only_shrinks_the_consensus():
    near = {k: "1.0000049" for k in RIGHT} | {"x1": "0.5"}
    far = {k: "1.0000051" for k in RIGHT} | {"x1": "0.5"}
    close = {k: "1.00000491" for k in RIGHT} | {"x1": "0.50000001"}  # same buckets as near
    runs = make_runs("t", {"a": near, "b": close, "c": near, "d": far})
    v = one(verify(runs, TESTS, method="strict")[0])
    assert (v["kept"], v["golden_solution_id"]) == (True, "a")
    assert one(verify(runs.filter(pl.col("solution_id") != "c"), TESTS, method="strict")[0])["reason"] == (
        "contested_consensus")


def test_key_ids_match_vote_keys():
    outputs = ["1", "1\n", " 1 ", "1 2", "1  2", "1\t2\n", "1\r\n2", "1\x1c2", "1\xa02", "1\u20032", "YES",
               "yes", "1.0", "1.00", "1.0000001", "1e0", "1E0", "10e-1", "1_0", "١", "1", "nan", "inf", "-0.0",
               "0.0", "", " ", "\n", "e", "1e", "x.y", "Hello.", "a b", "a  b", "a\u00a0b", "0.1 0.2", "0.10 0.20"]
    for tol in (1e-6, 1e-3):
        ids = with_key_ids(pl.DataFrame({"output": outputs}), tol)["key_id"].to_list()
        keys = [vote_key(o, tol) for o in outputs]
        for i in range(len(outputs)):
            for j in range(len(outputs)):
                assert (ids[i] == ids[j]) == (keys[i] == keys[j]), (outputs[i], outputs[j])


def test_strict_golden_split_is_seeded_order_free_and_half():
    ids = [f"x{i}" for i in range(7)]
    splits = {tuple(strict_golden("task", ids, seed)) for seed in range(6)}
    assert len(splits) > 1 and all(len(s) == 4 for s in splits)
    for seed in range(6):
        assert strict_golden("task", ids, seed) == reference_strict_golden("task", ids, seed)
        assert strict_golden("task", ids[::-1], seed) == strict_golden("task", ids, seed)


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_cli_out_file_follows_the_umask(tmp_path, umask):
    import os

    MAJORITY.write_parquet(tmp_path / "runs.parquet")
    TESTS.write_parquet(tmp_path / "tests.parquet")
    out = tmp_path / "verdicts.parquet"
    old = os.umask(umask)
    try:
        result = CliRunner().invoke(app, ["verify", "--runs", str(tmp_path / "runs.parquet"), "--tests",
                                          str(tmp_path / "tests.parquet"), "--out", str(out)])
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask
