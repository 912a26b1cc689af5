"""Parquet and JSON I/O of the stage flows: tables conformed on read, directories swapped in whole."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import polars as pl

from synthsmith.contract import tables


def read_table(path: str | Path, table: tables.Table) -> pl.DataFrame:
    return tables.conform(pl.read_parquet(path), table)


def write_tables(directory: str | Path, frames: dict[str, pl.DataFrame]) -> None:
    """Write every table of a stage into a fresh directory, then swap it in: never half-written."""
    directory = Path(directory)
    staging = directory.with_name(f".{directory.name}.{uuid.uuid4().hex[:8]}.tmp")
    staging.mkdir(parents=True)
    try:
        for name, frame in frames.items():
            frame.write_parquet(staging / f"{name}.parquet")
        if directory.exists():
            shutil.rmtree(directory)
        staging.rename(directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_json(path: str | Path, value: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")
    temporary.replace(path)
