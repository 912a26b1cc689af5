"""Stage `extract_features`: ask for each seed's features, validate them, merge into one pool."""

from __future__ import annotations

import json
from collections import Counter

import polars as pl

from synthsmith.contract import tables
from synthsmith.contract.funnel import funnel
from synthsmith.contract.params import ExtractFeaturesParams
from synthsmith.contract.values import EXTRACTED
from synthsmith.llm.answers import Rejected, marked_json_object
from synthsmith.llm.prompts import render
from synthsmith.llm.requests import make_request
from synthsmith.stages.names import normalise

CATEGORIES = ("programming_language", "problem_type", "algorithm", "data_structures",
              "implementation_logic", "complexity_analysis", "optimization_techniques")
SHAPE = '{"algorithm": {"searching": ["binary search"]}, ...} with all seven categories'


def extraction_requests(seeds: pl.DataFrame, params: ExtractFeaturesParams) -> pl.DataFrame:
    rows = [make_request(params.model, render("extract_features", categories=CATEGORIES, statement=s["statement"],
                                              solution=s["solution"]),
                         temperature=params.temperature, max_tokens=params.max_tokens)
            for s in seeds.iter_rows(named=True)]
    return tables.conform(pl.DataFrame(rows, schema=tables.LLM_REQUESTS.columns), tables.LLM_REQUESTS)


def parse_extractions(seeds: pl.DataFrame, responses: pl.DataFrame) -> pl.DataFrame:
    """One FEATURE_ANSWERS row per seed; status is "ok" or the rejection reason."""
    rows = []
    for seed_id, content, error in zip(seeds["seed_id"], responses["content"], responses["error"], strict=True):
        try:
            if error is not None:
                raise Rejected("llm_error")
            features = check_extraction(content)
            rows.append({"seed_id": seed_id, "status": "ok", "features_json": json.dumps(features)})
        except Rejected as rejected:
            rows.append({"seed_id": seed_id, "status": rejected.reason, "features_json": None})
    return tables.conform(pl.DataFrame(rows, schema=tables.FEATURE_ANSWERS.columns), tables.FEATURE_ANSWERS)


def check_extraction(content: str) -> dict:
    """The format check the gateway re-asks on (content only). The markers may be left out when
    the whole answer is the JSON object."""
    return validate_features(marked_json_object(content, expected=SHAPE))


def validate_features(answer: dict) -> dict[str, dict[str, list[str]]]:
    """All seven categories, each {sub-category: [leaf, ...]} of non-empty strings."""
    if set(answer) != set(CATEGORIES):
        missing, extra = [c for c in CATEGORIES if c not in answer], sorted(set(answer) - set(CATEGORIES))
        found = "; ".join(part for part in (missing and f"it lacks {', '.join(missing)}",
                                            extra and f"it has the unknown keys {', '.join(map(str, extra))}") if part)
        raise Rejected("wrong_categories", f"the JSON object must have exactly the seven category keys "
                                           f"{', '.join(CATEGORIES)}; {found}")
    for category, groups in answer.items():
        if not isinstance(groups, dict) or not all(
                isinstance(leaves, list) and all(isinstance(leaf, str) and leaf.strip() for leaf in leaves)
                for leaves in groups.values()):
            raise Rejected("schema_invalid", f"each category must map sub-category names to lists of non-empty "
                                             f'strings, like "algorithm": {{"searching": ["binary search"]}}; '
                                             f'"{category}" does not')
    return answer


def build_pool(answers: pl.DataFrame) -> pl.DataFrame:
    """Merge every valid answer into (category, sub-category, leaf) nodes with counts."""
    counts: Counter[tuple[str, str, str]] = Counter()
    for features_json in answers.filter(pl.col("status") == "ok")["features_json"]:
        seen = set()
        for category, groups in json.loads(features_json).items():
            for subcategory, leaves in groups.items():
                names = ((normalise(subcategory), normalise(leaf)) for leaf in leaves)
                seen.update((category, sub, leaf) for sub, leaf in names if sub and leaf)  # "..." normalises to ""
        counts.update(seen)  # count seeds, not mentions
    rows = [{"category": c, "subcategory": s, "leaf": leaf, "path": f"{c}/{s}/{leaf}", "count": n,
             "origin": EXTRACTED, "round": 0} for (c, s, leaf), n in sorted(counts.items())]
    return tables.conform(pl.DataFrame(rows, schema=tables.FEATURE_POOL.columns), tables.FEATURE_POOL)


def extraction_funnel(answers: pl.DataFrame, pool: pl.DataFrame) -> pl.DataFrame:
    dropped = Counter(answers.filter(pl.col("status") != "ok")["status"].to_list())
    ok = answers.height - sum(dropped.values())
    return funnel("extract_features", answers.height, ok, dropped, pool_leaves=pool.height)
