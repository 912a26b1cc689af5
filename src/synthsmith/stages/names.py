"""Feature-name normalisation, so "BFS", "Breadth First Search" and "breadth-first searches" merge."""

from __future__ import annotations

import re

SYNONYMS = {
    "bfs": "breadth-first search", "breadth first search": "breadth-first search",
    "dfs": "depth-first search", "depth first search": "depth-first search",
    "dp": "dynamic programming", "dsu": "disjoint set union", "union find": "disjoint set union",
    "union-find": "disjoint set union", "disjoint set": "disjoint set union",
    "lca": "lowest common ancestor", "bit": "fenwick tree", "binary indexed tree": "fenwick tree",
    "two pointer": "two pointers", "two-pointer": "two pointers", "two-pointers": "two pointers",
    "prefix sum": "prefix sums", "prefix-sum": "prefix sums",
}
# Words whose trailing "s" is not a plural.
KEEP_S = {"analysis", "basis", "bounds", "class", "glass", "process", "access", "ones", "pointers",
          "sums", "series", "news", "physics", "mathematics", "graphics", "bitmasks", "less", "progress"}


def normalise(name: str) -> str:
    text = re.sub(r"[_\s]+", " ", name.strip().lower())
    text = re.sub(r"[^\w\s\-+()/*^.,']", "", text).strip(" .,")
    text = SYNONYMS.get(text, text)
    words = text.split(" ")
    if words and words[-1] not in KEEP_S:
        words[-1] = _singular(words[-1])
    text = " ".join(words)
    return SYNONYMS.get(text, text)


def _singular(word: str) -> str:
    if len(word) <= 3 or not word.endswith("s") or word.endswith(("ss", "us", "is", "'s")):
        return word
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "xes", "sses")):
        return word[:-2]
    return word[:-1]
