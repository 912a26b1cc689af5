"""Counts of what came in, went out and was dropped why: one FUNNEL table per stage, read by the report.

Every stage's funnel balances: in + added:* == out + dropped:*, checked when it is built, so no
row is ever lost without a counted reason. Other metrics count other units (answers, inputs,
sandbox statuses) and are not part of the balance.
"""

from __future__ import annotations

from collections import Counter

import polars as pl

from synthsmith.contract import tables

DROPPED, ADDED, REJECTED = "dropped:", "added:", "rejected:"

# Per stage, in pipeline order: what its `in` counts, what reaching `out` means, and what a zero
# leaves the stages after it. Words for the one line that says where a run's funnel reached zero.
STAGE_UNITS = {
    "seeds": ("seeds", "passed the seed checks", "nothing to extract features from"),
    "extract_features": ("seeds", "gave features", "nothing to evolve"),
    "evolve_features": ("feature nodes", "are in the evolved tree", "no subtree to draw tasks from"),
    "generate_tasks": ("sampled feature subtrees", "gave a task", "nothing to test or solve"),
    "generate_tests": ("tasks", "got test inputs", "nothing to run candidates on"),
    "generate_solutions": ("candidate requests", "gave a usable program", "nothing to execute"),
    "execute": ("sandbox jobs", "ran", "nothing to verify"),
    "verify": ("tasks", "were verified or left for more candidates", "nothing to export"),
    "verify_rounds": ("tasks", "were verified", "nothing to export"),
    "export": ("verified tasks", "were exported", "nothing to train on"),
}


class UnbalancedFunnel(RuntimeError):
    """A stage lost or invented rows without counting why: a bug in that stage."""


def funnel(stage: str, count_in: int, count_out: int, dropped: Counter | dict | None = None,
           added: Counter | dict | None = None, rejected: Counter | dict | None = None,
           **extra: int) -> pl.DataFrame:
    """`rejected`: counts in other units than `in` (answers, programs, inputs), outside the balance."""
    rows = [("in", count_in)]
    for prefix, counts in ((DROPPED, dropped), (ADDED, added), (REJECTED, rejected)):
        rows += [(prefix + name, int(n)) for name, n in sorted((counts or {}).items()) if n]
    rows += [(name, n) for name, n in extra.items()]
    rows.append(("out", count_out))
    frame = tables.conform(pl.DataFrame({"stage": stage, "metric": [m for m, _ in rows],
                                          "value": [int(n) for _, n in rows]}), tables.FUNNEL)
    if not balanced(frame):
        dropped = {m.removeprefix(DROPPED): n for m, n in rows if m.startswith(DROPPED)}
        added = sum(n for m, n in rows if m.startswith(ADDED))
        raise UnbalancedFunnel(f"{stage}: {count_in} in + {added} added != {count_out} out + "
                               f"{sum(dropped.values())} dropped ({dropped})")
    return frame


def balanced(frame: pl.DataFrame) -> bool:
    """One stage's FUNNEL rows keep in + added == out + dropped."""
    counts = _counts(frame)
    moved = sum(n if m.startswith(ADDED) else -n for m, n in counts.items() if m.startswith((ADDED, DROPPED)))
    return counts["in"] + moved == counts["out"]


def zero_line(stage: str, frame: pl.DataFrame) -> str | None:
    """Where this stage's funnel is zero, one line saying why (None when something came out)."""
    counts = _counts(frame)
    if counts["out"]:
        return None
    noun, reached, consequence = STAGE_UNITS.get(stage, ("rows", "came out", "nothing for the next stage"))
    if not counts["in"]:
        return f"{stage}: no {noun} came in; {consequence}"
    drops = sorted(((n, m.removeprefix(DROPPED)) for m, n in counts.items() if m.startswith(DROPPED)), reverse=True)
    why = ", ".join(f"{n} {reason}" for n, reason in drops[:4]) + (", ..." if len(drops) > 4 else "")
    return f"{stage}: 0 of {counts['in']} {noun} {reached}" + (f" ({why})" if why else "") + f"; {consequence}"


def _counts(frame: pl.DataFrame) -> dict[str, int]:
    return dict(frame.select("metric", "value").iter_rows())


def first_zero(funnels: pl.DataFrame) -> str | None:
    """The first stage, in pipeline order, where the funnel reached zero, and why."""
    for stage in (*STAGE_UNITS, *sorted(set(funnels["stage"]) - set(STAGE_UNITS))):
        rows = funnels.filter(pl.col("stage") == stage)
        if rows.height and (line := zero_line(stage, rows)):
            return line
    return None
