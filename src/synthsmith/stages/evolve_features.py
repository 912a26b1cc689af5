"""Stage `evolve_features`: widen (new siblings) and deepen (finer children) the feature tree.

The tree is the set of pool paths "category/sub-category/leaf[/child...]"; a leaf is a path
with nothing under it. Each round sends one request per category.
"""

from __future__ import annotations

import random
from collections import Counter

import polars as pl

from synthsmith.contract import tables
from synthsmith.contract.params import EvolveFeaturesParams
from synthsmith.contract.values import BREADTH, DEPTH
from synthsmith.llm.answers import json_object, parse_answers
from synthsmith.llm.prompts import render
from synthsmith.llm.requests import make_request
from synthsmith.stages.feature_tree import leaf_paths
from synthsmith.stages.names import normalise


def check_evolution(content: str) -> dict:
    """The format check the gateway re-asks on."""
    return json_object(content, '{"breadth": [{"node": "...", "siblings": [...]}], '
                                '"depth": [{"leaf": "...", "children": [...]}]}')


# LLM_REQUESTS plus what each request asked about (an empty pool still gives these columns)
EVOLUTION_REQUESTS = {**tables.LLM_REQUESTS.columns, "category": pl.String, "widen": pl.List(pl.String),
                      "deepen": pl.List(pl.String)}


def evolution_requests(pool: pl.DataFrame, params: EvolveFeaturesParams, round_no: int) -> pl.DataFrame:
    """Per category: a seeded sample of nodes to widen and leaves to deepen."""
    leaves, rows = leaf_paths(pool), []
    for category in sorted(set(pool["category"])):
        paths = sorted(pool.filter(pl.col("category") == category)["path"])
        nodes = sorted({"/".join(p.split("/")[:depth]) for p in paths for depth in range(2, p.count("/") + 2)})
        rng = random.Random(f"{params.seed}:{round_no}:{category}")
        widen = sorted(rng.sample(nodes, min(params.nodes_per_category, len(nodes))))
        deepen_from = [p for p in paths if p in leaves]
        deepen = sorted(rng.sample(deepen_from, min(params.leaves_per_category, len(deepen_from))))
        messages = render("evolve_features", category=category, tree=paths, widen=widen, deepen=deepen,
                          min_new=params.min_new_siblings)
        rows.append(make_request(params.model, messages, temperature=params.temperature,
                                 max_tokens=params.max_tokens) | {"category": category, "widen": widen,
                                                                  "deepen": deepen})
    return pl.DataFrame(rows, schema=EVOLUTION_REQUESTS)


def merge_evolution(pool: pl.DataFrame, asked: pl.DataFrame, responses: pl.DataFrame,
                    round_no: int) -> tuple[pl.DataFrame, Counter]:
    """Add the proposed names under their parents; dedup by normalised path. Returns (pool, counts)."""
    existing, new_rows, counts = set(pool["path"]), [], Counter()
    for ask, answer in parse_answers(asked, responses, lambda _, content: json_object(content), counts, "answer_"):
        proposals = [(item.get("node"), "/".join(str(item.get("node", "")).split("/")[:-1]), item.get("siblings"),
                      set(ask["widen"]), BREADTH) for item in _items(answer, "breadth")]
        proposals += [(item.get("leaf"), item.get("leaf"), item.get("children"), set(ask["deepen"]), DEPTH)
                      for item in _items(answer, "depth")]
        for node, parent, names, allowed, origin in proposals:
            if not isinstance(node, str) or node not in allowed or not isinstance(names, list):
                counts["unknown_node"] += 1
                continue
            fresh = {normalise(n) for n in names if isinstance(n, str) and normalise(n)}
            if len(fresh) < (1 if origin == DEPTH else 2):
                counts["too_few_proposals"] += 1
            for name in sorted(fresh):
                path = f"{parent}/{name}"
                if path in existing:
                    counts["merged_duplicate"] += 1
                    continue
                existing.add(path)
                counts[f"added_{origin}"] += 1
                parts = path.split("/")
                new_rows.append({"category": parts[0], "subcategory": parts[1], "leaf": parts[-1], "path": path,
                                 "count": 0, "origin": origin, "round": round_no})
    grown = pl.concat([pool, pl.DataFrame(new_rows, schema=tables.FEATURE_POOL.columns)])
    return tables.conform(grown.sort("path"), tables.FEATURE_POOL), counts


def _items(answer: dict, key: str) -> list[dict]:
    value = answer.get(key, [])
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def growth(before: pl.DataFrame, after: pl.DataFrame) -> pl.DataFrame:
    """Per category leaf and sub-category counts before and after (the paper's Table 8)."""
    def per_category(pool: pl.DataFrame) -> dict[str, tuple[int, int]]:
        leaves = leaf_paths(pool)
        return {c: (sum(1 for p in leaves if p.startswith(c + "/")),
                    pool.filter(pl.col("category") == c)["subcategory"].n_unique())
                for c in set(pool["category"])}
    b, a = per_category(before), per_category(after)
    rows = [{"category": c, "leaves_before": b.get(c, (0, 0))[0], "leaves_after": a[c][0],
             "subcategories_before": b.get(c, (0, 0))[1], "subcategories_after": a[c][1]} for c in sorted(a)]
    return tables.conform(pl.DataFrame(rows, schema=tables.FEATURE_GROWTH.columns), tables.FEATURE_GROWTH)
