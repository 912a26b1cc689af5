import polars as pl
import pytest
from typer.testing import CliRunner

from synthsmith import schemas
from synthsmith.cli import app
from synthsmith.stages.verify import METHODS, REASONS, size_weights, split_tests, verify

FAIL = None  # a run that did not finish cleanly


def make_runs(task_id: str, outputs: dict[str, dict[str, str | None]]) -> pl.DataFrame:
    """outputs[solution_id][test_id] = what it printed, or FAIL."""
    rows = [
        (task_id, sol, test, "error" if out is FAIL else "ok", out or "")
        for sol, by_test in outputs.items() for test, out in by_test.items()
    ]
    return pl.DataFrame(rows, schema=list(schemas.RUNS.columns), orient="row")


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
    verdicts, agreement = verify(MAJORITY, TESTS)
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
    assert one(verify(near, TESTS)[0])["golden_solution_id"] == "a"
    assert one(verify(near, TESTS, float_tol=1e-9)[0])["golden_solution_id"] == "b"


def test_a_tie_drops_that_input():
    runs = MAJORITY.with_columns(
        output=pl.when((pl.col("test_id") == "x3") & pl.col("solution_id").is_in(["c", "d"]))
        .then(pl.lit("7")).otherwise("output"))  # x3: a, b say 3; c, d say 7
    verdicts, agreement = verify(runs, TESTS)
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
    v = one(verify(runs, make_tests("t", ["x1", "x2"]))[0])
    assert (v["kept"], v["golden_solution_id"], v["reason"]) == (False, None, "golden_validation_disagree")


def test_too_few_labelled_tests_no_candidates_and_no_tests():
    runs = pl.concat([
        make_runs("one_test", {"a": {"x1": "1"}, "b": {"x1": "1"}}),
        make_runs("tied", {"a": {"x1": "1", "x2": "1"}, "b": {"x1": "1", "x2": "2"}}),
        make_runs("no_tests", {"a": {"x1": "1"}}),
    ])
    tests = pl.concat([make_tests("one_test", ["x1"]), make_tests("tied", ["x1", "x2"]),
                       make_tests("no_runs", ["x1", "x2"])])
    verdicts, agreement = verify(runs, tests)
    assert dict(verdicts.select("task_id", "reason").iter_rows()) == {
        "no_runs": "no_candidates", "no_tests": "no_tests",
        "one_test": "too_few_labelled_tests", "tied": "too_few_labelled_tests",
    }
    assert agreement["task_id"].to_list() == ["no_runs", "no_tests", "one_test", "tied"]
    assert set(verdicts["reason"]) <= set(REASONS)


def test_zero_best_golden_score_is_discarded():
    v = one(verify(MAJORITY, TESTS.with_columns(weight=pl.lit(0)))[0])
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
    assert one(verify(runs, g1_heavy)[0])["golden_solution_id"] == "a"
    assert one(verify(runs, g2_heavy)[0])["golden_solution_id"] == "b"
    # Without a weight column, g2's longer input makes it the heavier test.
    by_size = g2_heavy.drop("weight").with_columns(
        input=pl.when(pl.col("test_id") == g2).then(pl.lit("x" * 100)).otherwise(pl.lit("x")))
    assert one(verify(runs, by_size)[0])["golden_solution_id"] == "b"


def test_deterministic_across_row_order_and_repeats():
    runs = pl.concat([MAJORITY, MAJORITY.with_columns(task_id=pl.lit("u"))])
    tests = pl.concat([TESTS, TESTS.with_columns(task_id=pl.lit("u"))])
    first = verify(runs, tests, seed=3)
    for shuffle_seed in range(5):
        again = verify(runs.sample(fraction=1.0, shuffle=True, seed=shuffle_seed),
                       tests.sample(fraction=1.0, shuffle=True, seed=shuffle_seed), seed=3)
        assert again[0].equals(first[0]) and again[1].equals(first[1])


def test_different_seeds_can_change_the_split():
    ids = [f"x{i:02d}" for i in range(10)]
    runs = make_runs("t", {s: {t: t for t in ids} for s in "abc"})
    tests = make_tests("t", ids)
    splits = {tuple(t["test_id"] for t in one(verify(runs, tests, seed=s)[0])["golden_tests"])
              for s in range(5)}
    assert len(splits) > 1
    assert all(len(s) == 5 for s in splits)


def test_ids_are_strings_compared_as_strings():
    # "007" stays "007", and among equals the lowest solution_id is "10" < "9" as strings.
    runs = make_runs("007", {"9": {"01": "1", "2": "2"}, "10": {"01": "1", "2": "2"}})
    verdicts, agreement = verify(runs, make_tests("007", ["01", "2"]))
    assert verdicts.row(0)[:3] == ("007", True, "10")
    assert verdicts.schema == pl.Schema(schemas.VERDICTS.columns)
    assert agreement.schema == pl.Schema(schemas.AGREEMENT.columns)


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


def test_unknown_method_and_bad_inputs_raise():
    assert "paper" in METHODS
    with pytest.raises(ValueError, match="known: \\['paper'\\]"):
        verify(MAJORITY, TESTS, method="nope")
    with pytest.raises(ValueError, match="more than one row"):
        verify(pl.concat([MAJORITY, MAJORITY.head(1)]), TESTS)
    with pytest.raises(schemas.ContractError, match="runs"):
        verify(MAJORITY.drop("status"), TESTS)


def test_cli_writes_verdicts(tmp_path):
    MAJORITY.write_parquet(tmp_path / "runs.parquet")
    TESTS.drop("weight").write_parquet(tmp_path / "tests.parquet")
    out = tmp_path / "out" / "verdicts.parquet"
    result = CliRunner().invoke(app, ["verify", "--runs", str(tmp_path / "runs.parquet"), "--tests",
                                      str(tmp_path / "tests.parquet"), "--out", str(out), "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"verify: kept 1/1 tasks -> {out}"
    assert pl.read_parquet(out).equals(verify(MAJORITY, TESTS.drop("weight"), seed=1)[0])
    assert [p.name for p in out.parent.iterdir()] == ["verdicts.parquet"]


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
                                      "--method", "strict"])
    assert result.exit_code == 2
    assert "unknown verify method 'strict'; known: ['paper']" in result.stderr
