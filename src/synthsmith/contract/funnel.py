"""Counts of what came in, went out and was dropped why: one FUNNEL table per stage, read by the report."""

from __future__ import annotations

from collections import Counter

import polars as pl

from synthsmith.contract import tables


def funnel(stage: str, count_in: int, count_out: int, dropped: Counter | dict | None = None,
           **extra: int) -> pl.DataFrame:
    rows = [("in", count_in)]
    rows += [(f"dropped:{reason}", n) for reason, n in sorted((dropped or {}).items()) if n]
    rows += [(name, n) for name, n in extra.items()]
    rows.append(("out", count_out))
    return tables.conform(pl.DataFrame({"stage": stage, "metric": [m for m, _ in rows],
                                         "value": [int(n) for _, n in rows]}), tables.FUNNEL)
