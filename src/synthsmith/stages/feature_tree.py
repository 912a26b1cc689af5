"""The feature pool as a tree of `/`-separated paths: which of its nodes are leaves."""

from __future__ import annotations

import polars as pl


def leaf_paths(pool: pl.DataFrame) -> set[str]:
    """Paths of the pool that are no other path's parent."""
    paths = set(pool["path"])
    parents = {p.rsplit("/", 1)[0] for p in paths}
    return paths - parents


def sampleable_leaves(pool: pl.DataFrame) -> set[str]:
    """The pool leaves subtrees are drawn from (what the report's feature coverage counts)."""
    return {p for p in leaf_paths(pool) if not p.startswith("programming_language/")}
