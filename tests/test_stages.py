"""The pure stage functions, called directly on tiny literal frames (Kedro style)."""

from __future__ import annotations

import json
import os
from collections import Counter

import polars as pl
import pytest

from synthsmith.contract import tables
from synthsmith.contract.funnel import funnel as make_funnel
from synthsmith.contract.params import (
    EvolveFeaturesParams,
    ExecuteParams,
    ExportParams,
    GenerateSolutionsParams,
    GenerateTasksParams,
    SeedsParams,
    UserError,
)
from synthsmith.llm.answers import reasoning_and_code
from synthsmith.stages import (
    evolve_features,
    execute,
    export,
    extract_features,
    feature_tree,
    generate_solutions,
    generate_tasks,
    generate_tests,
    report,
    seeds,
    tool_inputs,
)
from synthsmith.stages.sources import humaneval, load_seed_source, table_file


def _responses(*answers: str | Exception | None) -> pl.DataFrame:
    """LLM_RESPONSES rows: a string is content, an exception an error."""
    rows = [{"request_id": f"r{i}", "content": None if isinstance(a, Exception) else a,
             "error": f"{type(a).__name__}: {a}" if isinstance(a, Exception) else None}
            for i, a in enumerate(answers)]
    return tables.conform(pl.DataFrame(rows, schema=tables.LLM_RESPONSES.columns), tables.LLM_RESPONSES)


def _funnel(frame: pl.DataFrame) -> dict[str, int]:
    return dict(zip(frame["metric"], frame["value"], strict=True))


# seeds

def _seed(seed_id, statement="Read n, print n.", solution="print(input())", io="stdio", entry_point=None):
    return {"seed_id": seed_id, "title": seed_id, "statement": statement, "solution": solution, "io": io,
            "entry_point": entry_point, "source": "test"}


def _seeds(*rows: dict) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=tables.SEEDS.columns)


def test_prepare_seeds_drops_blank_and_duplicate_problems_and_counts_them():
    raw = _seeds(_seed("a", "Sum two numbers."), _seed("b", "   "), _seed("c", "Sum two numbers."),
                 _seed("d", "Reverse a list.", "def rev(xs):\n    return xs[::-1]", "function", "rev"),
                 _seed("e", "Sort it.", None), _seed("f", "Sort it.", "\n"))
    kept, funnel = seeds.prepare_seeds(raw, SeedsParams(), origin="seeds.jsonl")
    assert kept["seed_id"].to_list() == ["a", "d"]
    assert kept.columns == list(tables.SEEDS.columns)
    assert _funnel(funnel) == {"in": 6, "dropped:blank": 3, "dropped:duplicate_statement": 1, "out": 2}
    assert set(funnel["stage"]) == {"seeds"}


def test_prepare_seeds_applies_the_limit_after_dropping():
    raw = _seeds(_seed("a", ""), *[_seed(f"s{i}", f"Problem {i}") for i in range(5)])
    kept, funnel = seeds.prepare_seeds(raw, SeedsParams(limit=3), origin="x")
    assert kept["seed_id"].to_list() == ["s0", "s1", "s2"]
    assert _funnel(funnel) == {"in": 6, "dropped:blank": 1, "dropped:over_limit": 2, "out": 3}


@pytest.mark.parametrize("bad, message", [
    (_seed("bad-io", io="interactive"), "io must be 'stdio' or 'function'"),
    (_seed("no-entry", io="function"), "need an entry_point"),
])
def test_prepare_seeds_names_origin_and_seed_of_a_bad_row(bad, message):
    with pytest.raises(UserError) as caught:
        seeds.prepare_seeds(_seeds(_seed("fine"), bad), SeedsParams(), origin="data/my_seeds.jsonl")
    text = str(caught.value)
    assert text.startswith("data/my_seeds.jsonl: ") and repr(bad["seed_id"]) in text and message in text


def test_prepare_seeds_rejects_duplicate_seed_ids():
    with pytest.raises(UserError, match="seed 'x': seed_id appears more than once"):
        seeds.prepare_seeds(_seeds(_seed("x", "One."), _seed("x", "Two.")), SeedsParams(), origin="o")


# sources

def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_table_file_reads_taco_style_jsonl_with_a_column_mapping(tmp_path):
    path = _write_jsonl(tmp_path / "taco.jsonl", [
        {"question": "Print the sum of a and b.", "solutions": json.dumps(["print(sum(map(int, input().split())))",
                                                                          "a, b = map(int, input().split())"]),
         "difficulty": "EASY"},
        {"question": "Print n squared.", "solutions": json.dumps(["n = int(input())\nprint(n * n)"]),
         "difficulty": "MEDIUM"},
        {"question": "A question nobody solved.", "solutions": "[]", "difficulty": "HARD"},
    ])
    frame = table_file(path, {"statement": "question", "solution": "solutions"}, source="file")
    assert frame.columns == list(tables.SEEDS.columns)
    assert frame["seed_id"].to_list() == ["taco-0", "taco-1", "taco-2"]
    assert frame["statement"][:2].to_list() == ["Print the sum of a and b.", "Print n squared."]
    assert frame["solution"].to_list() == ["print(sum(map(int, input().split())))", "n = int(input())\nprint(n * n)",
                                           None]
    assert set(frame["io"]) == {"stdio"} and set(frame["source"]) == {"file"}
    assert frame["entry_point"].null_count() == 3
    kept, funnel = seeds.prepare_seeds(frame, SeedsParams(), origin=str(path))
    assert kept["seed_id"].to_list() == ["taco-0", "taco-1"] and _funnel(funnel)["dropped:blank"] == 1


def test_table_file_takes_the_first_of_a_real_list_and_keeps_given_ids(tmp_path):
    path = _write_jsonl(tmp_path / "mine.jsonl", [
        {"id": "p1", "statement": "A.", "solution": ["print(1)", "print(2)"]},
        {"id": "p2", "statement": "B.", "solution": ["print(3)"]},
    ])
    params = SeedsParams(source="file", path=str(path), columns={"seed_id": "id"})
    frame = load_seed_source(params)
    assert frame["seed_id"].to_list() == ["p1", "p2"]
    assert frame["solution"].to_list() == ["print(1)", "print(3)"]


def test_table_file_reads_parquet(tmp_path):
    path = tmp_path / "seeds.parquet"
    pl.DataFrame({"statement": ["A."], "solution": ["print(1)"]}).write_parquet(path)
    assert table_file(path, {}, source="file")["solution"].to_list() == ["print(1)"]


def test_table_file_without_a_statement_column_names_the_fix(tmp_path):
    path = _write_jsonl(tmp_path / "taco.jsonl", [{"question": "Q", "solutions": "[\"print(1)\"]"}])
    with pytest.raises(UserError) as caught:
        table_file(path, {"solution": "solutions"}, source="file")
    message = str(caught.value)
    assert str(path) in message and "'statement'" in message and "seeds.columns" in message


def test_table_file_that_is_not_jsonl_is_a_user_error(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text("this is not json\n")
    with pytest.raises(UserError, match="cannot read as JSONL"):
        table_file(path, {}, source="file")


def test_load_seed_source_with_a_missing_path(tmp_path):
    with pytest.raises(UserError, match="seeds.path"):
        load_seed_source(SeedsParams(source="file", path=str(tmp_path / "absent.jsonl")))


def test_humaneval_gives_164_function_style_seeds():
    frame = humaneval()
    assert frame.height == 164
    assert set(frame["io"]) == {"function"} and frame["entry_point"].null_count() == 0
    assert frame["seed_id"].n_unique() == 164
    first = frame.row(0, named=True)
    assert first["seed_id"] == "HumanEval/0" and first["entry_point"] == "has_close_elements"
    assert first["solution"].startswith(first["statement"]) and f"def {first['entry_point']}(" in first["statement"]
    kept, funnel = seeds.prepare_seeds(frame, SeedsParams(source="humaneval"), origin="humaneval")
    assert kept.height == 164 and _funnel(funnel) == {"in": 164, "out": 164}


# extract_features

def _answer(**overrides) -> dict:
    answer = {c: {} for c in extract_features.CATEGORIES}
    answer.update(programming_language={"language": ["Python"]},
                  algorithm={"Graph Algorithms": ["BFS", "bfs"]}, data_structures={"Queues": ["Deque"]})
    answer.update(overrides)
    return answer


def _wrapped(answer: dict) -> str:
    return f"Here are the features.\n<begin>\n{json.dumps(answer)}\n<end>"


def test_parse_extractions_statuses():
    seed_frame = _seeds(*[_seed(f"s{i}", f"P{i}") for i in range(8)])
    wrong = {k: v for k, v in _answer().items() if k != "optimization_techniques"}
    responses = _responses(_wrapped(_answer()), f"<begin>\n{json.dumps(_answer())}", _wrapped(wrong),
                           RuntimeError("rate limited"), _wrapped(_answer(algorithm={"graph": "BFS"})),
                           _wrapped(_answer(algorithm={"graph": ["  "]})),
                           f"```json\n{json.dumps(_answer())}\n```",  # no markers, but one JSON object: kept
                           f"Features: {json.dumps(_answer())}")  # no markers, and more than the object
    answers = extract_features.parse_extractions(seed_frame, responses)
    assert answers["seed_id"].to_list() == [f"s{i}" for i in range(8)]
    assert answers["status"].to_list() == ["ok", "missing_markers", "wrong_categories", "llm_error",
                                           "schema_invalid", "schema_invalid", "ok", "missing_markers"]
    assert json.loads(answers["features_json"][0]) == json.loads(answers["features_json"][6]) == _answer()
    assert answers["features_json"].null_count() == 6


def test_parse_extractions_needs_one_response_per_seed():
    with pytest.raises(ValueError):
        extract_features.parse_extractions(_seeds(_seed("a"), _seed("b", "B")), _responses(_wrapped(_answer())))


def test_build_pool_merges_synonyms_and_counts_seeds_not_mentions():
    rows = [{"seed_id": "a", "status": "ok", "features_json": json.dumps(_answer())},
            {"seed_id": "b", "status": "ok", "features_json": json.dumps(_answer(
                algorithm={"graph algorithm": ["Breadth First Search", "Dijkstra"]}))},
            {"seed_id": "c", "status": "missing_markers", "features_json": None}]
    answers = pl.DataFrame(rows, schema=tables.FEATURE_ANSWERS.columns)
    pool = extract_features.build_pool(answers)
    by_path = dict(zip(pool["path"], pool["count"], strict=True))
    assert by_path == {"algorithm/graph algorithm/breadth-first search": 2,
                       "algorithm/graph algorithm/dijkstra": 1,
                       "data_structures/queue/deque": 2,
                       "programming_language/language/python": 2}
    assert set(pool["origin"]) == {"extracted"} and set(pool["round"]) == {0}
    bfs = pool.filter(pl.col("leaf") == "breadth-first search").row(0, named=True)
    assert (bfs["category"], bfs["subcategory"]) == ("algorithm", "graph algorithm")
    funnel = _funnel(extract_features.extraction_funnel(answers, pool))
    assert funnel == {"in": 3, "dropped:missing_markers": 1, "pool_leaves": 4, "out": 2}


def test_build_pool_skips_names_that_normalise_to_nothing():
    answers = pl.DataFrame([{"seed_id": "a", "status": "ok", "features_json": json.dumps(
        _answer(algorithm={"graph": ["...", "BFS"], "!!!": ["DFS"]}))}], schema=tables.FEATURE_ANSWERS.columns)
    paths = extract_features.build_pool(answers)["path"].to_list()
    assert "algorithm/graph/breadth-first search" in paths
    assert all(part for path in paths for part in path.split("/"))


def test_extraction_requests_one_per_seed_with_the_statement():
    from synthsmith.contract.params import ExtractFeaturesParams

    params = ExtractFeaturesParams(model="m/x", temperature=0.2)
    asks = extract_features.extraction_requests(_seeds(_seed("a", "Count the islands."), _seed("b", "Sum it.")), params)
    assert asks["model"].to_list() == ["m/x", "m/x"] and asks["request_id"].n_unique() == 2
    assert "Count the islands." in asks["messages"][0][0]["content"]
    assert json.loads(asks["sampling"][0]) == {"temperature": 0.2, "max_tokens": params.max_tokens}


# evolve_features

def _pool(*paths: str) -> pl.DataFrame:
    rows = [{"category": p.split("/")[0], "subcategory": p.split("/")[1], "leaf": p.split("/")[-1], "path": p,
             "count": 1, "origin": "extracted", "round": 0} for p in paths]
    return tables.conform(pl.DataFrame(rows, schema=tables.FEATURE_POOL.columns), tables.FEATURE_POOL)


BFS, DFS = "algorithm/graph/breadth-first search", "algorithm/graph/depth-first search"
POOL = _pool(BFS, DFS, "data_structures/tree/segment tree")
EVOLVE = EvolveFeaturesParams(model="m/evolver", nodes_per_category=2, leaves_per_category=2, seed=3)


def test_leaf_paths_are_paths_with_nothing_under_them():
    assert feature_tree.leaf_paths(_pool(BFS, DFS, DFS + "/tarjan")) == {BFS, DFS + "/tarjan"}


def test_evolution_requests_are_seeded_and_one_per_category():
    pool = _pool(*[f"algorithm/group{g}/leaf{i}" for g in range(3) for i in range(4)], "data_structures/tree/trie")
    first = evolve_features.evolution_requests(pool, EVOLVE, round_no=1)
    assert first.equals(evolve_features.evolution_requests(pool, EVOLVE, round_no=1))
    assert first["category"].to_list() == ["algorithm", "data_structures"]
    algorithm = first.row(0, named=True)
    assert len(algorithm["widen"]) == 2 and len(algorithm["deepen"]) == 2
    assert set(algorithm["deepen"]) <= feature_tree.leaf_paths(pool)
    nodes = set(pool["path"]) | {p.rsplit("/", 1)[0] for p in pool["path"]}
    assert set(algorithm["widen"]) <= nodes
    assert first.row(1, named=True)["deepen"] == ["data_structures/tree/trie"]  # fewer leaves than asked

    def sample(seed: int, round_no: int) -> tuple:
        row = evolve_features.evolution_requests(pool, EVOLVE.model_copy(update={"seed": seed}), round_no).row(0, named=True)
        return tuple(row["widen"]), tuple(row["deepen"])

    assert len({sample(seed, 1) for seed in range(8)}) > 1  # the seed matters
    assert len({sample(3, round_no) for round_no in range(8)}) > 1  # so does the round


def _asked(*rows: tuple[list[str], list[str]]) -> pl.DataFrame:
    return pl.DataFrame([{"category": "algorithm", "widen": w, "deepen": d} for w, d in rows],
                        schema={"category": pl.String, "widen": pl.List(pl.String), "deepen": pl.List(pl.String)})


def test_merge_evolution_adds_siblings_and_children_and_counts_the_rest():
    answer = {"breadth": [{"node": BFS, "siblings": ["Dijkstra", "Topological Sorts", "DFS"]},
                          {"node": "algorithm/graph/not asked", "siblings": ["a thing", "b thing"]},
                          {"node": BFS, "siblings": "Dijkstra"}],
              "depth": [{"leaf": DFS, "children": ["Tarjan SCC", "Bridges"]},
                        {"leaf": BFS, "children": ["0-1 BFS"]}]}
    asked = _asked(([BFS], [DFS]), ([BFS], [DFS]), ([BFS], [DFS]))
    responses = _responses(json.dumps(answer), RuntimeError("down"), "I cannot answer that.")
    grown, counts = evolve_features.merge_evolution(POOL, asked, responses, round_no=1)
    new = grown.filter(pl.col("round") == 1)
    assert dict(zip(new["path"], new["origin"], strict=True)) == {
        "algorithm/graph/dijkstra": "breadth", "algorithm/graph/topological sort": "breadth",
        DFS + "/bridge": "depth", DFS + "/tarjan scc": "depth"}
    assert set(new["subcategory"]) == {"graph"} and set(new["count"]) == {0}
    assert new.filter(pl.col("origin") == "depth")["leaf"].sort().to_list() == ["bridge", "tarjan scc"]
    assert counts == Counter(added_breadth=2, added_depth=2, merged_duplicate=1, unknown_node=3,
                             answer_llm_error=1, answer_invalid_json=1)
    assert grown["path"].to_list() == sorted(grown["path"])
    assert POOL.height + 4 == grown.height


def test_merge_evolution_counts_malformed_items_instead_of_crashing():
    answer = json.dumps({"breadth": [{"node": [BFS], "siblings": ["a thing", "b thing"]}, "not an item"],
                         "depth": [{"leaf": {"path": DFS}, "children": ["c thing"]}, {"children": ["d thing"]}]})
    grown, counts = evolve_features.merge_evolution(POOL, _asked(([BFS], [DFS])), _responses(answer), 1)
    assert counts == Counter(unknown_node=3) and grown.equals(POOL)


def test_merge_evolution_dedups_across_answers_and_flags_too_few():
    answer = json.dumps({"breadth": [{"node": BFS, "siblings": ["Dijkstra", "Floyd Warshall"]}]})
    answer_two = json.dumps({"breadth": [{"node": BFS, "siblings": ["dijkstra", "A* Search"]}]})
    grown, counts = evolve_features.merge_evolution(POOL, _asked(([BFS], []), ([BFS], [])), _responses(answer, answer_two), 2)
    assert counts == Counter(added_breadth=3, merged_duplicate=1)
    assert grown.filter(pl.col("round") == 2)["leaf"].to_list() == ["a* search", "dijkstra", "floyd warshall"]
    one = json.dumps({"breadth": [{"node": BFS, "siblings": ["Dijkstra", "DIJKSTRA"]}]})
    _, counts = evolve_features.merge_evolution(POOL, _asked(([BFS], [])), _responses(one), 2)
    assert counts == Counter(added_breadth=1, too_few_proposals=1)


def test_widening_a_subcategory_adds_a_new_subcategory():
    answer = json.dumps({"breadth": [{"node": "algorithm/graph", "siblings": ["Strings", "Number Theory"]}]})
    grown, counts = evolve_features.merge_evolution(POOL, _asked((["algorithm/graph"], [])), _responses(answer), 1)
    assert counts == Counter(added_breadth=2)
    new = grown.filter(pl.col("round") == 1)
    assert new["path"].to_list() == ["algorithm/number theory", "algorithm/string"]
    assert new["subcategory"].to_list() == ["number theory", "string"]
    table = evolve_features.growth(POOL, grown).filter(pl.col("category") == "algorithm").row(0, named=True)
    assert (table["subcategories_before"], table["subcategories_after"]) == (1, 3)


def test_growth_counts_leaves_before_and_after():
    answer = json.dumps({"breadth": [{"node": BFS, "siblings": ["Dijkstra", "Topological Sort"]}],
                         "depth": [{"leaf": DFS, "children": ["Tarjan SCC", "Bridges"]}]})
    grown, _ = evolve_features.merge_evolution(POOL, _asked(([BFS], [DFS])), _responses(answer), 1)
    table = evolve_features.growth(POOL, grown)
    assert table.to_dicts() == [
        # DFS stops being a leaf once it has children: 2 -> 2 + 2 siblings + 2 children - 1
        {"category": "algorithm", "leaves_before": 2, "leaves_after": 5, "subcategories_before": 1,
         "subcategories_after": 1},
        {"category": "data_structures", "leaves_before": 1, "leaves_after": 1, "subcategories_before": 1,
         "subcategories_after": 1}]
    assert evolve_features.growth(POOL, POOL)["leaves_after"].to_list() == [2, 1]


def test_growth_of_a_category_new_after_evolution_starts_from_zero():
    table = evolve_features.growth(_pool(BFS), _pool(BFS, "problem_type/graph/shortest path"))
    assert table.filter(pl.col("category") == "problem_type").row(0) == ("problem_type", 0, 1, 0, 1)


# generate_tasks

TASK_POOL = _pool(*[f"algorithm/a{i}/leaf{i}" for i in range(5)], *[f"data_structures/d/ds{i}" for i in range(4)],
                  *[f"problem_type/p/pt{i}" for i in range(3)], "programming_language/language/python")
MIX = {"codeforces": 0.7, "atcoder": 0.15, "leetcode": 0.15}


def _task_params(**overrides) -> GenerateTasksParams:
    values = {"planner_model": "m/planner", "writer_model": "m/writer", "style_mix": MIX, "num_tasks": 20,
              "leaves_per_subtree": 4, "seed": 5, "min_tokens": 50} | overrides
    return GenerateTasksParams(**values)


def _leaves(subtree_json: str) -> list[str]:
    return [f"{c}/{s}/{leaf}" for c, groups in json.loads(subtree_json).items() for s, leaves in groups.items()
            for leaf in leaves]


def test_sample_subtrees_is_deterministic_and_anchored():
    subtrees = generate_tasks.sample_subtrees(TASK_POOL, _task_params())
    assert subtrees.equals(generate_tasks.sample_subtrees(TASK_POOL, _task_params()))
    assert subtrees["task_id"].to_list() == [f"task-{i:05d}" for i in range(20)]
    for subtree in subtrees["subtree_json"]:
        leaves = _leaves(subtree)
        assert len(leaves) == len(set(leaves)) == 4 and set(leaves) <= set(TASK_POOL["path"])
        categories = Counter(leaf.split("/")[0] for leaf in leaves)
        assert categories["algorithm"] >= 1 and categories["data_structures"] >= 1
        assert "programming_language" not in categories
    assert subtrees["subtree_json"].n_unique() > 10
    assert not subtrees.equals(generate_tasks.sample_subtrees(TASK_POOL, _task_params(seed=6)))


def test_sample_subtrees_keeps_a_prefix_when_num_tasks_shrinks():
    many = generate_tasks.sample_subtrees(TASK_POOL, _task_params(num_tasks=20))
    assert generate_tasks.sample_subtrees(TASK_POOL, _task_params(num_tasks=7)).equals(many.head(7))


def test_style_draws_do_not_depend_on_subtree_sampling():
    styles = generate_tasks.sample_subtrees(TASK_POOL, _task_params())["style"]
    other_pool = _pool("algorithm/x/only", "data_structures/y/only")
    other = generate_tasks.sample_subtrees(other_pool, _task_params(leaves_per_subtree=2))
    assert other["style"].equals(styles)


def test_style_frequencies_follow_style_mix():
    styles = generate_tasks.sample_subtrees(TASK_POOL, _task_params(num_tasks=2000))["style"]
    shares = {style: n / 2000 for style, n in Counter(styles).items()}
    assert set(shares) == set(MIX)
    for style, weight in MIX.items():
        assert shares[style] == pytest.approx(weight, abs=0.035)


def test_a_zero_weight_style_is_never_drawn():
    mix = {"codeforces": 0.5, "atcoder": 0.0, "leetcode": 0.5}
    styles = set(generate_tasks.sample_subtrees(TASK_POOL, _task_params(num_tasks=300, style_mix=mix))["style"])
    assert styles == {"codeforces", "leetcode"}


def _plan(selected: dict, **overrides) -> str:
    plan = {"feature_roles_tree": {"algorithm": {"a0": {"leaf0": {"potential_use": "core"}}}},
            "selected_features_tree": selected, "integration_strategy": "Use a deque inside the search."}
    plan.update(overrides)
    return json.dumps({k: v for k, v in plan.items() if v is not None})


def test_parse_plans_keeps_complete_plans_and_counts_the_rest():
    subtrees = generate_tasks.sample_subtrees(TASK_POOL, _task_params(num_tasks=6))
    two = {"algorithm": {"a0": ["leaf0"]}, "data_structures": {"d": ["ds1", "ds0"]}}
    responses = _responses(_plan(two), _plan(two, integration_strategy=None), _plan({"algorithm": {"a0": ["leaf0"]}}),
                           RuntimeError("timeout"), _plan(["leaf0", "ds1"]), "```json\n" + _plan(two) + ",\n```")
    plans, dropped = generate_tasks.parse_plans(subtrees, responses)
    assert plans["task_id"].to_list() == ["task-00000", "task-00005"]
    assert plans["features"].to_list() == [["ds0", "ds1", "leaf0"]] * 2
    assert plans["integration_strategy"][0] == "Use a deque inside the search."
    assert plans["style"].to_list() == subtrees["style"].gather([0, 5]).to_list()
    assert dropped.columns == list(tables.DROPPED_TASKS.columns)
    assert dropped.select("task_id", "reason").rows() == [
        ("task-00001", "plan_missing_keys"), ("task-00002", "plan_too_few_selected"), ("task-00003", "plan_llm_error"),
        ("task-00004", "plan_schema_invalid")]
    assert set(dropped["step"]) == {"plan"} and dropped.select("title", "against", "matched", "score").null_count(
    ).row(0) == (4, 4, 4, 4)


def test_parse_plans_rejects_non_string_selected_leaves():
    subtrees = generate_tasks.sample_subtrees(TASK_POOL, _task_params(num_tasks=2))
    responses = _responses(_plan({"algorithm": {"a0": [{"name": "leaf0"}, {"name": "leaf1"}]}}),
                           _plan({"algorithm": {"a0": ["leaf0", 3]}}))
    plans, dropped = generate_tasks.parse_plans(subtrees, responses)
    assert plans.height == 0 and dropped["reason"].to_list() == ["plan_schema_invalid"] * 2


FILLER = " ".join(f"word{i}" for i in range(80))


def _plans(*rows: tuple[str, list[str]]) -> pl.DataFrame:
    return pl.DataFrame([{"task_id": f"t{i}", "style": style, "features": feats, "integration_strategy": "mix"}
                         for i, (style, feats) in enumerate(rows)])


def test_parse_tasks_checks_title_signature_hints_and_length():
    leetcode = (f"# Pair Count\nGiven nums, count pairs. {FILLER}\n\n```python\nclass Solution:\n"
                "    def countPairs(self, nums: List[int]) -> int:\n        pass\n```")
    plans = _plans(("codeforces", ["breadth-first search", "greedy"]), ("leetcode", ["deque"]),
                   ("leetcode", ["deque"]), ("atcoder", []), ("atcoder", []),
                   ("codeforces", ["breadth-first search"]), ("atcoder", []))
    responses = _responses(f"# Grid Escape\nA greedy traveller crosses a grid. {FILLER}", leetcode,
                           f"# No Starter\nWrite a function. {FILLER}", "# Tiny\nToo short to be a task.",
                           f"A statement with no title line. {FILLER}",
                           f"# Hinted\nUse breadth-first search here. {FILLER}", ValueError("boom"))
    found, dropped = generate_tasks.parse_tasks(plans, responses, _task_params())
    assert found["task_id"].to_list() == ["t0", "t1"]
    assert found["title"].to_list() == ["Grid Escape", "Pair Count"]
    assert found["entry_point"].to_list() == [None, "Solution.countPairs"]
    assert found["tokens"][0] >= 80 and found["statement"][0].startswith("# Grid Escape")
    assert found["features"][0].to_list() == ["breadth-first search", "greedy"]
    assert dropped.select("task_id", "title", "reason").rows() == [
        ("t2", "No Starter", "missing_signature"), ("t3", "Tiny", "too_short"), ("t4", None, "no_title"),
        ("t5", "Hinted", "names_its_technique"), ("t6", None, "llm_error")]
    assert set(dropped["step"]) == {"write"}


def test_parse_tasks_min_tokens_is_the_threshold():
    statement = "# T\n" + " ".join(["w"] * 60)  # "#", "T" and 60 words: 62 tokens
    for min_tokens, kept in ((62, 1), (63, 0)):
        found, _ = generate_tasks.parse_tasks(_plans(("atcoder", [])), _responses(statement),
                                     _task_params(min_tokens=min_tokens))
        assert found.height == kept


# generate_tests

def _tasks_io(**entry_points) -> pl.DataFrame:
    return pl.DataFrame({"task_id": list(entry_points), "entry_point": list(entry_points.values())},
                        schema={"task_id": pl.String, "entry_point": pl.String})


def _cases(*cases) -> str:
    return json.dumps({"test_cases": list(cases)})


def test_parse_prompt_inputs_keeps_valid_inputs_and_counts_the_rest():
    task_frame = _tasks_io(A=None, B="Solution.f", C=None, D=None)
    responses = _responses(
        _cases({"idx": 1, "description": "small example", "input_string": "3\n1 2 3"},
               {"idx": 2, "description": "maximum n", "input_string": "5\n1 2 3 4 5\n"},
               {"idx": 3, "input_string": "  "}, {"idx": 4, "description": "no input"}, "just a string"),
        _cases({"description": "two args", "input_string": "[1, 2, 3]\n4"},
               {"description": "python, not JSON", "input_string": "nums = [1, 2]"},
               {"description": "a string", "input_string": '"abc"'}),
        json.dumps({"inputs": ["1"]}), RuntimeError("down"))
    inputs, dropped = generate_tests.parse_prompt_inputs(task_frame, responses)
    assert inputs.rows() == [("A", "3\n1 2 3\n", "small example"), ("A", "5\n1 2 3 4 5\n", "maximum n"),
                             ("B", "[1, 2, 3]\n4\n", "two args"), ("B", '"abc"\n', "a string")]
    assert dropped == Counter(input_missing=3, input_not_json_args=1, answer_no_test_cases=1, answer_llm_error=1)


def _inputs(*rows: tuple[str, str, str]) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema={"task_id": pl.String, "input": pl.String, "description": pl.String},
                        orient="row")


def test_weigh_dedups_and_numbers_tests_per_task():
    tests, duplicates = generate_tests.weigh(_inputs(("A", "1\n", ""), ("A", "22\n", ""), ("A", "1\n", "again"),
                                                  ("B", "1\n", ""), ("A", "333\n", "")), "prompt", "size")
    assert duplicates == 1
    assert tests.columns == list(tables.TEST_INPUTS.columns)
    assert tests["test_id"].to_list() == ["A-p000", "A-p001", "B-p000", "A-p002"]
    assert tests["input"].to_list() == ["1\n", "22\n", "1\n", "333\n"]
    assert set(tests["generator"]) == {"prompt"}


def test_size_weights_are_quartiles_within_each_task():
    sizes_a = [5, 1, 3, 2, 8, 4, 7, 6]  # 8 inputs: two per quartile
    sizes_b = [100, 300, 200, 400]  # all bigger than A's, but ranked within B
    rows = [("A", "x" * n, "") for n in sizes_a] + [("B", "y" * n, "") for n in sizes_b] + [("C", "z", "")]
    tests, _ = generate_tests.weigh(_inputs(*rows), "prompt", "size")
    weight = {(r["task_id"], len(r["input"])): r["weight"] for r in tests.iter_rows(named=True)}
    assert [weight["A", n] for n in range(1, 9)] == [1, 1, 2, 2, 3, 3, 4, 4]
    assert [weight["B", n] for n in (100, 200, 300, 400)] == [1, 2, 3, 4]
    assert weight["C", 1] == 1
    assert tests["weight"].equals(tests["size_weight"])


def test_equal_sizes_share_a_size_weight():
    tests, _ = generate_tests.weigh(_inputs(("A", "aa", ""), ("A", "bb", ""), ("A", "c", ""), ("A", "dddd", "")),
                                 "prompt", "size")
    assert tests["size_weight"].to_list() == [2, 2, 1, 4]


def test_weigh_of_no_inputs_is_an_empty_table():
    tests, duplicates = generate_tests.weigh(_inputs(), "prompt", "size")
    assert tests.height == 0 and duplicates == 0 and tests.columns == list(tables.TEST_INPUTS.columns)


def test_semantic_weights_come_from_descriptions():
    descriptions = ["a simple case", "edge case: empty array", "random mixed values", "stress test at maximum n",
                    "boundary but also large", "", "minimal sample"]
    rows = [("A", f"{i}\n", d) for i, d in enumerate(descriptions)]
    tests, _ = generate_tests.weigh(_inputs(*rows), "prompt", "semantic")
    assert tests["semantic_weight"].to_list() == [1, 3, 2, 4, 4, 1, 1]
    assert tests["weight"].equals(tests["semantic_weight"])


def test_validation_keeps_each_kept_input_with_the_validators_verdict():
    # A: accepted, rejected (dropped), crashed; X: every input rejected (distrusted: kept); Y: no validator
    inputs = _inputs(("A", "1\n", ""), ("A", "9\n", ""), ("A", "oops\n", ""), ("X", "1\n", ""), ("X", "2\n", ""),
                     ("Y", "5\n", "")).with_columns(generator=pl.lit("tool"))
    rejected = ("runtime_error", 1, "bad n\n")
    runs = [("ok", 0, ""), rejected, ("runtime_error", 1, "Traceback (most recent call last):\n"), rejected, rejected]
    results = pl.DataFrame([{"job_id": str(i), "status": status, "exit_code": code, "stderr": stderr}
                            for i, (status, code, stderr) in enumerate(runs)])
    kept, dropped = tool_inputs.apply_validation(inputs, results)
    assert kept.select("task_id", "input", "validation").rows() == [
        ("A", "1\n", "valid"), ("A", "oops\n", "validator_failed"), ("X", "1\n", "invalid"), ("X", "2\n", "invalid"),
        ("Y", "5\n", "unvalidated")]
    assert dict(dropped) == {"input_rejected_by_validator": 1, "validator_rejected_every_input": 1,
                             "validator_failed_on_input": 1}
    tests, _ = generate_tests.weigh_all(kept, "size")
    assert tests["validation"].to_list() == kept["validation"].to_list()
    assert set(generate_tests.weigh_all(generate_tests.unvalidated(inputs), "size")[0]["validation"]) == {"unvalidated"}


# generate_solutions

SOLVE = GenerateSolutionsParams(models=["m/a", "m/b"], samples_per_model=3, max_tokens=60)


def _statements(*rows: tuple[str, str | None]) -> pl.DataFrame:
    return pl.DataFrame([{"task_id": t, "statement": f"Statement of {t}.", "entry_point": e} for t, e in rows],
                        schema={"task_id": pl.String, "statement": pl.String, "entry_point": pl.String})


def test_solution_requests_one_per_task_model_and_sample():
    asked = generate_solutions.solution_requests(_statements(("T1", None), ("T2", "Solution.f")), SOLVE)
    assert asked.height == 2 * 2 * 3
    assert asked["request_id"].n_unique() == 12 and asked["solution_id"].n_unique() == 12
    assert asked["solution_id"].to_list()[:6] == ["T1-m0s0", "T1-m0s1", "T1-m0s2", "T1-m1s0", "T1-m1s1", "T1-m1s2"]
    assert [json.loads(s)["seed"] for s in asked["sampling"][:6]] == [0, 1, 2, 0, 1, 2]
    assert asked["model"].to_list()[:6] == ["m/a"] * 3 + ["m/b"] * 3
    assert "Statement of T2." in asked["messages"][6][0]["content"]
    assert "Solution.f" in asked["messages"][6][0]["content"]
    assert "standard input" in asked["messages"][0][0]["content"]


def test_parse_solutions_keeps_well_formed_answers_and_counts_each_reason():
    asked = generate_solutions.solution_requests(_statements(("T1", None)), SOLVE.model_copy(update={"samples_per_model": 4}))
    good = "Double it.\n```python\nprint(2 * int(input()))\n```"
    responses = _responses(good, RuntimeError("overloaded"), "word " * 61, "No code, sorry.",
                           "A\n```python\nx = 1\n```\nB\n```python\ny = 2\n```", "```python\nprint(1)\n```",
                           "Broken:\n```python\nprint(\n```", "Also fine.\n```py\nprint(3)\n```")
    kept, rejected = generate_solutions.parse_solutions(asked, responses, SOLVE)
    assert kept["solution_id"].to_list() == ["T1-m0s0", "T1-m1s3"]
    assert kept["model"].to_list() == ["m/a", "m/b"] and kept["sample"].to_list() == [0, 3]
    assert kept.row(0, named=True)["reasoning"] == "Double it."
    assert kept.row(0, named=True)["code"] == "print(2 * int(input()))\n"
    assert rejected == Counter(llm_error=1, too_long=1, no_code_block=1, multiple_code_blocks=1, no_reasoning=1,
                               syntax_error=1)


# execute

def test_build_jobs_pairs_each_solution_with_its_own_tasks_tests():
    sols = pl.DataFrame({"task_id": ["T1", "T1", "T2"], "solution_id": ["T1-m0s1", "T1-m0s0", "T2-m0s0"],
                         "code": ["print(1)", "print(0)", "class Solution:\n    def f(self, x): return x"]})
    tests = pl.DataFrame({"task_id": ["T1", "T2", "T1"], "test_id": ["T1-p001", "T2-p000", "T1-p000"],
                          "input": ["b\n", "[1]\n", "a\n"]})
    task_frame = _tasks_io(T1=None, T2="Solution.f")
    jobs = execute.build_jobs(sols, tests, task_frame, ExecuteParams(time_limit_s=2.5, memory_mb=256))
    assert jobs.columns == list(tables.SANDBOX_JOBS.columns)
    assert jobs["job_id"].to_list() == ["T1-m0s0|T1-p000", "T1-m0s0|T1-p001", "T1-m0s1|T1-p000", "T1-m0s1|T1-p001",
                                        "T2-m0s0|T2-p000"]
    assert jobs["mode"].to_list() == ["stdio"] * 4 + ["function"]
    assert jobs["entry"].to_list() == [None] * 4 + ["Solution.f"]
    assert jobs["input"].to_list() == ["a\n", "b\n", "a\n", "b\n", "[1]\n"]
    assert jobs["code"][0] == "print(0)"
    assert set(jobs["time_limit_s"]) == {2.5} and set(jobs["memory_mb"]) == {256}

    results = pl.DataFrame({"job_id": jobs["job_id"], "status": ["ok", "ok", "runtime_error", "timeout", "ok"],
                            "output": ["1", "2", "3", None, "[1]"], "stderr": "", "exit_code": 0, "wall_ms": 1.0,
                            "cpu_ms": 1.0})
    table = execute.executions(jobs, results, sols)
    assert table.columns == list(tables.EXECUTIONS.columns)
    assert table.select("task_id", "solution_id", "test_id").row(4) == ("T2", "T2-m0s0", "T2-p000")
    assert execute.status_counts(table) == {"ok": 3, "runtime_error": 1, "timeout": 1}
    with pytest.raises(RuntimeError, match="lost a job"):
        execute.executions(jobs, results.head(4), sols)


# export

def _export_inputs():
    task_frame = tables.conform(pl.DataFrame([
        {"task_id": "T2", "style": "leetcode", "title": "F", "statement": "Implement f.", "entry_point": "Solution.f",
         "features": ["x"], "integration_strategy": "s", "tokens": 3},
        {"task_id": "T1", "style": "codeforces", "title": "Echo", "statement": "Echo the input.",
         "entry_point": None, "features": ["y"], "integration_strategy": "s", "tokens": 3},
        {"task_id": "T3", "style": "atcoder", "title": "Z", "statement": "Z.", "entry_point": None,
         "features": [], "integration_strategy": "s", "tokens": 1},
    ], schema=tables.TASKS.columns), tables.TASKS)
    sols = tables.conform(pl.DataFrame([
        {"task_id": "T1", "solution_id": "T1-m0s0", "model": "m/a", "sample": 0, "reasoning": "Wrong idea.",
         "code": "print(0)\n"},
        {"task_id": "T1", "solution_id": "T1-m1s0", "model": "m/b", "sample": 0, "reasoning": "Just echo.",
         "code": "print(input())\n"},
        {"task_id": "T2", "solution_id": "T2-m0s0", "model": "m/a", "sample": 0, "reasoning": "Identity.",
         "code": "class Solution:\n    def f(self, x):\n        return x\n"},
        {"task_id": "T3", "solution_id": "T3-m0s0", "model": "m/a", "sample": 0, "reasoning": "?", "code": "pass\n"},
    ], schema=tables.SOLUTIONS.columns), tables.SOLUTIONS)
    tests = tables.conform(pl.DataFrame([
        {"task_id": "T1", "test_id": "T1-p000", "input": "hi\n", "description": "", "generator": "prompt",
         "size_weight": 1, "semantic_weight": 1, "weight": 1},
        {"task_id": "T1", "test_id": "T1-p001", "input": "hello\n", "description": "", "generator": "prompt",
         "size_weight": 4, "semantic_weight": 1, "weight": 4},
        {"task_id": "T1", "test_id": "T1-p002", "input": "hey\n", "description": "", "generator": "prompt",
         "size_weight": 2, "semantic_weight": 1, "weight": 2},
        {"task_id": "T2", "test_id": "T2-p000", "input": "[1]\n", "description": "", "generator": "prompt",
         "size_weight": 3, "semantic_weight": 1, "weight": 3},
    ], schema=tables.TEST_INPUTS.columns), tables.TEST_INPUTS)
    verdicts = tables.conform(pl.DataFrame([
        {"task_id": "T1", "kept": True, "golden_solution_id": "T1-m1s0", "reason": "kept",
         "golden_tests": [{"test_id": "T1-p001", "expected_output": "hello"},
                          {"test_id": "T1-p000", "expected_output": "hi"}]},
        {"task_id": "T2", "kept": True, "golden_solution_id": "T2-m0s0", "reason": "kept",
         "golden_tests": [{"test_id": "T2-p000", "expected_output": "1"}]},
        {"task_id": "T3", "kept": False, "golden_solution_id": None, "reason": "disagreement", "golden_tests": []},
    ], schema=tables.VERDICTS.columns), tables.VERDICTS)
    return task_frame, sols, tests, verdicts


def test_to_sft_pairs_each_kept_task_with_its_golden_solution():
    task_frame, sols, _, verdicts = _export_inputs()
    sft = export.to_sft(task_frame, sols, verdicts, ExportParams(data_source="demo"))
    assert sft.columns == list(tables.SFT.columns)
    assert sft["task_id"].to_list() == ["T1", "T2"]
    assert sft["style"].to_list() == ["codeforces", "leetcode"]
    assert sft["source"].to_list() == ["demo:m/b", "demo:m/a"]
    assert sft["split"].to_list() == ["heldout", "train"]  # ExportParams' defaults: 1 of 2 tasks held out
    user, assistant = sft["messages"][0].to_list()
    assert (user["role"], assistant["role"]) == ("user", "assistant")
    assert "Echo the input." in user["content"] and "standard input" in user["content"]
    assert reasoning_and_code(assistant["content"]) == ("Just echo.", "print(input())\n")
    assert "Solution.f" in sft["messages"][1][0]["content"]


def test_to_rl_carries_golden_tests_with_inputs_and_weights():
    task_frame, _, tests, verdicts = _export_inputs()
    rl = export.to_rl(task_frame, tests, verdicts, ExportParams(data_source="demo"))
    assert rl.columns == list(tables.RL.columns)
    assert rl["task_id"].to_list() == ["T1", "T2"]
    assert rl["data_source"].to_list() == ["demo", "demo"]
    assert rl["ability"].to_list() == ["code", "code"]
    truths = [json.loads(rm["ground_truth"]) for rm in rl["reward_model"].to_list()]
    assert [rm["style"] for rm in rl["reward_model"].to_list()] == ["rule", "rule"]
    assert truths[0] == {"io": "stdio", "entry_point": None,
                         "tests": [{"input": "hello\n", "output": "hello", "weight": 4},
                                   {"input": "hi\n", "output": "hi", "weight": 1}]}
    assert truths[1] == {"io": "function", "entry_point": "Solution.f",
                         "tests": [{"input": "[1]\n", "output": "1", "weight": 3}]}
    assert rl["extra_info"].to_list() == [{"task_id": "T1", "split": "heldout", "index": 0},
                                          {"task_id": "T2", "split": "train", "index": 1}]
    prompt = rl["prompt"][0].to_list()
    assert len(prompt) == 1 and prompt[0]["role"] == "user" and "Echo the input." in prompt[0]["content"]
    assert prompt[0]["content"] == export.task_prompt(task_frame.row(1, named=True))


def test_exported_parquet_loads_with_hugging_face_datasets(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    import datasets

    task_frame, sols, tests, verdicts = _export_inputs()
    params = ExportParams(data_source="demo")
    export.to_sft(task_frame, sols, verdicts, params).write_parquet(tmp_path / "sft.parquet")
    export.to_rl(task_frame, tests, verdicts, params).write_parquet(tmp_path / "rl.parquet")
    cache = str(tmp_path / "hf-cache")
    sft = datasets.load_dataset("parquet", data_files=str(tmp_path / "sft.parquet"), cache_dir=cache, split="train")
    rl = datasets.load_dataset("parquet", data_files=str(tmp_path / "rl.parquet"), cache_dir=cache, split="train")
    assert sft.num_rows == 2 and rl.num_rows == 2
    assert [m["role"] for m in sft[0]["messages"]] == ["user", "assistant"]
    assert json.loads(rl[0]["reward_model"]["ground_truth"])["tests"][0] == {"input": "hello\n", "output": "hello",
                                                                             "weight": 4}
    assert json.loads(rl[1]["reward_model"]["ground_truth"])["entry_point"] == "Solution.f"
    assert os.listdir(cache)


# report

def test_metrics_keep_rate_style_mix_and_counts():
    task_frame, _, _, verdicts = _export_inputs()
    task_frame = pl.concat([task_frame, task_frame.filter(pl.col("task_id") == "T3")
                            .with_columns(task_id=pl.lit("T4"), style=pl.lit("codeforces"))])
    verdicts = pl.concat([verdicts, verdicts.filter(pl.col("task_id") == "T3").with_columns(
        task_id=pl.lit("T4"), reason=pl.lit("no_majority"))])
    funnel = pl.concat([make_funnel("seeds", 5, 4, {"blank": 1}),
                        make_funnel("verify", 4, 2, {"disagreement": 1, "no_majority": 1})])
    growth = evolve_features.growth(POOL, _pool(BFS, DFS, "algorithm/graph/dijkstra", "data_structures/tree/segment tree"))
    agreement = pl.DataFrame({"task_id": ["T1", "T2"], "labelled_tests": [3, 1], "tied_tests": [1, 0],
                              "mean_top_share": [0.5, 1.0]})
    executions = pl.DataFrame({"status": ["ok", "ok", "timeout"]})
    usage = pl.DataFrame([
        {"stage": "generate_solutions", "model": "m/a", "requests": 8, "live_calls": 6, "retries": 2, "reasks": 1,
         "failed": 1, "prompt_tokens": 800, "completion_tokens": 4000, "cost_usd": 0.0084},
        {"stage": "extract_features", "model": "m/x", "requests": 2, "live_calls": 0, "retries": 0, "reasks": 0,
         "failed": 0, "prompt_tokens": 100, "completion_tokens": 50, "cost_usd": 0.0, "unpriced_calls": 2}],
        schema=tables.LLM_USAGE.columns).with_columns(pl.col("unpriced_calls").fill_null(0))
    result = report.metrics(funnel, task_frame, verdicts, growth, agreement, executions, usage)
    assert result["tasks"] == {"generated": 4, "verified": 2, "keep_rate": 0.5}
    assert result["style_mix"] == {
        "generated": {"atcoder": 0.25, "codeforces": 0.5, "leetcode": 0.25},
        "verified": {"codeforces": 0.5, "leetcode": 0.5}}
    assert result["discard_reasons"] == {"disagreement": 1, "no_majority": 1}
    assert result["funnel"] == {"seeds": {"in": 5, "dropped:blank": 1, "out": 4}, "verify": {
        "in": 4, "dropped:disagreement": 1, "dropped:no_majority": 1, "out": 2}}
    assert result["features"]["leaves_before"] == 3 and result["features"]["leaves_after"] == 4
    assert result["features"]["per_category"]["algorithm"] == {"before": 2, "after": 3}
    assert result["labeling"] == {"labelled_tests": 4, "tied_tests": 1, "mean_top_share": 0.75}
    assert result["execution"] == {"ok": 2, "timeout": 1}
    assert result["golden_tests_per_task"] == 1.5
    assert list(result["llm"]["by_stage_and_model"]) == ["extract_features/m/x", "generate_solutions/m/a"]
    assert result["llm"]["by_stage_and_model"]["generate_solutions/m/a"]["retries"] == 2
    assert result["llm"]["total"] == {"requests": 10, "live_calls": 6, "retries": 2, "reasks": 1, "failed": 1,
                                      "prompt_tokens": 900, "completion_tokens": 4050, "cost_usd": 0.0084,
                                      "unpriced_calls": 2}
    assert result["llm"]["unpriced_models"] == {"m/x": 2}  # listed once, by the report
    json.dumps(result)  # the report writes it as JSON


def test_agreement_histogram_bins_every_task_and_lists_every_bin():
    agreement = pl.DataFrame({"task_id": ["a", "b", "c", "d", "e", "f"], "labelled_tests": [10, 4, 5, 3, 0, 2],
                              "tied_tests": [0] * 6, "mean_top_share": [7 / 10, 1.0, 0.05, 0.75, None, 1 - 0.9]})
    verdicts = pl.DataFrame({"task_id": ["a", "b", "d"], "kept": [True, True, False]})
    histogram = report.agreement_histogram(agreement, verdicts)
    assert histogram["agreement"].to_list() == [f"0.{i}-{(i + 1) / 10:.1f}" for i in range(10)] + ["none"]
    counts = {row["agreement"]: (row["tasks"], row["verified"]) for row in histogram.iter_rows(named=True)
              if row["tasks"]}
    # 1 - 0.9 (0.0999...98 in floats) is a tenth, 1.0 belongs to the last bin, no labels to `none`
    assert counts == {"0.0-0.1": (1, 0), "0.1-0.2": (1, 0), "0.7-0.8": (2, 1), "0.9-1.0": (1, 1), "none": (1, 0)}
    assert histogram["tasks"].sum() == agreement.height
    empty = report.agreement_histogram(tables.AGREEMENT.empty(), tables.VERDICTS.empty())
    assert empty.height == 11 and empty["tasks"].sum() == 0


def test_metrics_with_nothing_generated():
    empty = report.metrics(tables.FUNNEL.empty(), tables.TASKS.empty(), tables.VERDICTS.empty(),
                           tables.FEATURE_GROWTH.empty(), tables.AGREEMENT.empty(), tables.EXECUTIONS.empty(),
                           tables.LLM_USAGE.empty())
    assert empty["tasks"] == {"generated": 0, "verified": 0, "keep_rate": 0.0}
    assert empty["style_mix"] == {"generated": {}, "verified": {}}
    assert empty["golden_tests_per_task"] == 0.0 and empty["labeling"]["mean_top_share"] == 0.0


def test_solvability_drops_a_kept_task_no_strong_candidate_solves():
    from synthsmith.contract.values import UNSOLVED_BY_STRONG_MODEL
    from synthsmith.stages.solvability import drop_unsolved

    golden = [{"test_id": "x1", "expected_output": "1"}, {"test_id": "x2", "expected_output": "2.0"}]
    verdicts = pl.DataFrame([
        {"task_id": "A", "kept": True, "golden_solution_id": "A-b", "golden_tests": golden, "reason": None,
         "outcome": "kept"},
        {"task_id": "B", "kept": True, "golden_solution_id": "B-b", "golden_tests": golden, "reason": None,
         "outcome": "kept"},
        {"task_id": "C", "kept": False, "golden_solution_id": None, "golden_tests": [], "reason": "no_tests",
         "outcome": "discarded"},
    ], schema=tables.VERDICTS.columns)
    solutions = pl.DataFrame([(t, f"{t}-{m}", f"model-{m}") for t in "ABC" for m in "ab"],
                             schema=["task_id", "solution_id", "model"], orient="row")
    runs = pl.DataFrame([
        ("A-a", "x1", "ok", "1"), ("A-a", "x2", "ok", "2.0000000001"),  # strong model solves A (within tolerance)
        ("B-a", "x1", "ok", "1"), ("B-a", "x2", "timeout", ""),  # ...but not B; only the weak model does
        ("B-b", "x1", "ok", "1"), ("B-b", "x2", "ok", "2.0"),
    ], schema=["solution_id", "test_id", "status", "output"], orient="row")
    out = drop_unsolved(verdicts, runs, solutions, "model-a").sort("task_id").to_dicts()
    assert [(v["task_id"], v["kept"], v["reason"], v["outcome"]) for v in out] == [
        ("A", True, None, "kept"), ("B", False, UNSOLVED_BY_STRONG_MODEL, "discarded"),
        ("C", False, "no_tests", "discarded")]
    assert out[1]["golden_solution_id"] is None and out[1]["golden_tests"] == []


def test_verify_rounds_shares_max_candidates_among_models_and_continues_each_sample_index():
    from synthsmith.contract.params import VerifyParams
    from synthsmith.stages.verify_rounds import first_round_open, next_samples, samples_cap

    solving = GenerateSolutionsParams(models=["m/a", "m/b", "m/c"], samples_per_model=2)
    assert samples_cap(VerifyParams(max_candidates=32), solving) == 10  # 32 shared by 3 models, rounded down
    assert samples_cap(VerifyParams(max_candidates=4), solving) == 2  # never fewer than the first round's
    assert samples_cap(VerifyParams(), solving) == 2  # null: no rounds
    ids = pl.Series(["t1", "t2"])
    assert first_round_open(VerifyParams(max_candidates=32), solving, ids).to_list() == ["t1", "t2"]
    assert first_round_open(VerifyParams(max_candidates=6), solving, ids).to_list() == []  # 3 x 2 already
    assert [next_samples(a, 3, 10) for a in (2, 5, 8)] == [range(2, 5), range(5, 8), range(8, 10)]
    asked = generate_solutions.solution_requests(_statements(("T1", None)), solving, range(2, 4))
    assert sorted(asked["solution_id"]) == sorted(f"T1-m{m}s{s}" for m in range(3) for s in (2, 3))
    first = generate_solutions.solution_requests(_statements(("T1", None)), solving)
    assert not set(asked["request_id"]) & set(first["request_id"])  # new samples are new requests


def test_verify_rounds_replaces_only_the_rows_of_the_tasks_it_verified_again():
    from synthsmith.stages.verify_rounds import replace_rows

    old = pl.DataFrame({"task_id": ["a", "b", "c"], "labelled_tests": [1, 2, 3], "tied_tests": [0, 0, 0],
                        "mean_top_share": [1.0, 0.5, 0.5]})
    new = pl.DataFrame({"task_id": ["c", "b"], "labelled_tests": [9, 8], "tied_tests": [1, 1],
                        "mean_top_share": [0.9, 0.8]})
    out = replace_rows(old, new, tables.AGREEMENT)
    assert out.rows() == [("a", 1, 0, 1.0), ("b", 8, 1, 0.8), ("c", 9, 1, 0.9)]


def test_calibrated_in_rounds_looks_with_the_rounds_threshold_unless_one_is_set():
    from synthsmith.contract.params import VerifyParams
    from synthsmith.stages.verify_calibrated import ROUNDS_THRESHOLD
    from synthsmith.stages.verify_rounds import rule_threshold

    solving = GenerateSolutionsParams(models=["m/a", "m/b"], samples_per_model=2)
    assert rule_threshold(VerifyParams(method="calibrated", max_candidates=32), solving) == ROUNDS_THRESHOLD
    assert rule_threshold(VerifyParams(method="calibrated"), solving) is None  # no rounds: the method's default
    assert rule_threshold(VerifyParams(method="calibrated", threshold=0.2, max_candidates=32), solving) == 0.2
    assert rule_threshold(VerifyParams(method="strict", max_candidates=32), solving) is None
