"""The paper's size-based test weight, shared by test generation and the paper's verification."""

from __future__ import annotations

import polars as pl


def size_quartile_weight(size: pl.Expr) -> pl.Expr:
    """Quartile of the input's size within its task -> 1..4: 1 + floor(4 r / n), r = inputs of the
    task strictly smaller, n = inputs of the task. Equal sizes share a weight, whatever the order."""
    shorter = size.rank("min").over("task_id") - 1
    return (1 + (4 * shorter) // pl.len().over("task_id")).cast(pl.Int64)
