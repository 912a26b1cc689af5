"""Stage `seeds`: validate and normalise seed problems (statement + reference solution)."""

from __future__ import annotations

from collections import Counter

import polars as pl

from synthsmith.contract import tables
from synthsmith.contract.funnel import funnel
from synthsmith.contract.params import SeedsParams, UserError
from synthsmith.contract.values import FUNCTION, IO_MODES


def prepare_seeds(raw: pl.DataFrame, params: SeedsParams, origin: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Drop blank or duplicate problems (counted), check io/entry points, apply the limit."""
    seeds = tables.conform(raw, tables.SEEDS)
    _check(seeds, origin)
    blank = (pl.col("statement").str.strip_chars().fill_null("") == "") | \
        (pl.col("solution").str.strip_chars().fill_null("") == "")
    non_blank = seeds.filter(~blank)
    unique = non_blank.unique("statement", keep="first", maintain_order=True)
    kept = unique.head(params.limit) if params.limit is not None else unique
    dropped = Counter(blank=seeds.height - non_blank.height, duplicate_statement=non_blank.height - unique.height,
                      over_limit=unique.height - kept.height)
    return kept, funnel("seeds", seeds.height, kept.height, dropped)


def _check(seeds: pl.DataFrame, origin: str) -> None:
    problems = [
        (~pl.col("io").is_in(IO_MODES), "io must be " + " or ".join(f"'{mode}'" for mode in IO_MODES)),
        ((pl.col("io") == FUNCTION) & pl.col("entry_point").is_null(), "function-style seeds need an entry_point"),
        (pl.col("seed_id").is_duplicated(), "seed_id appears more than once"),
        (pl.col("seed_id").is_null(), "seed_id is missing"),
    ]
    for condition, message in problems:
        bad = seeds.filter(condition)
        if bad.height:
            raise UserError(f"{origin}: seed {bad['seed_id'][0]!r}: {message}")
