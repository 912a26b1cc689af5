"""Votes on outputs, shared by both verification methods: which runs count, and the vote key of
each output as an integer id (`compare.vote_key`, vectorised)."""

from __future__ import annotations

import polars as pl

from synthsmith.contract import tables
from synthsmith.contract.values import OK
from synthsmith.stages.compare import key_digits, token_key

TASK, TEST, SOL = "task_id", "test_id", "solution_id"
GOLDEN_LIST = pl.List(tables.GOLDEN_TEST)


def clean_runs(runs: pl.DataFrame, float_tol: float = 1e-6) -> pl.DataFrame:
    """The runs with status "ok" (a null output read as ""), plus `key_id` (`with_key_ids`)."""
    clean = runs.filter(pl.col("status") == OK).with_columns(pl.col("output").fill_null(""))
    return with_key_ids(clean, float_tol)


# Python's str.split() separators among ASCII characters.
_ASCII_SPACE = "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f "
# A stripped output is its own vote key unless it may hold a float token (a '.', a digit before
# an 'e'/'E', a non-ASCII character: other digits or spaces) or whitespace other than single spaces.
MAYBE_FLOAT = r"[^\x00-\x7F]|\.|[0-9][eE]"
_INNER_SPACE = [*_ASCII_SPACE[:-1], "  "]


def with_key_ids(frame: pl.DataFrame, float_tol: float = 1e-6) -> pl.DataFrame:
    """`frame` (with a non-null `output` column) plus `key_id`, the UInt64 hash of the output's
    `vote_key`.

    Equal keys get equal ids; two distinct keys share one with probability 2^-64, and ids are
    only ever compared within one task. Most outputs are their own key once stripped, which
    polars computes; the others are keyed once per distinct output, by polars when only their
    whitespace needs normalising, else by `compare`'s token keys in Python."""
    stripped = frame.select(pl.col("output").str.strip_chars(_ASCII_SPACE))["output"]
    # A superset of "not its own key" that is cheap to test ("e"/"E" for a digit before one).
    hard = (stripped.str.contains_any([".", "e", "E", *_INNER_SPACE])
            | (stripped.str.len_bytes() != stripped.str.len_chars()))
    frame = frame.with_columns(key_id=stripped.hash())
    if not hard.any():
        return frame
    rows = hard.arg_true()
    distinct = frame["output"].gather(rows).unique().to_frame("output")
    floaty = distinct.filter(pl.col("output").str.contains(MAYBE_FLOAT))["output"]
    digits = key_digits(float_tol)
    keys = pl.concat([
        distinct.filter(~pl.col("output").str.contains(MAYBE_FLOAT)).select(
            "output", key=pl.col("output").str.replace_all(f"[{_ASCII_SPACE}]+", " ").str.strip_chars(" ")),
        pl.DataFrame({"output": floaty, "key": [" ".join([token_key(t, digits) for t in o.split()])
                                                for o in floaty]}, schema={"output": pl.String, "key": pl.String}),
    ]).select("output", key_id=pl.col("key").hash())
    found = frame["output"].gather(rows).to_frame("output").with_columns(row=rows).join(keys, on="output")
    return frame.with_columns(frame["key_id"].scatter(found["row"], found["key_id"]))


def check_unique_runs(runs: pl.DataFrame) -> None:
    check_unique(runs, [TASK, SOL, TEST], "runs")


def duplicate_error(columns: list[str], name: str) -> ValueError:
    return ValueError(f"{name}: more than one row per ({', '.join(columns)})")


def check_unique(df: pl.DataFrame, columns: list[str], name: str) -> None:
    # Combined column hashes all distinct proves it at once; otherwise check exactly.
    combined = pl.lit(0, dtype=pl.UInt64)
    for k, column in enumerate(columns):
        combined = combined * 0x9E3779B97F4A7C15 + pl.col(column).hash(seed=k)
    if df.select(combined.n_unique()).item() == df.height:
        return
    if df.select(columns).is_duplicated().any():
        raise duplicate_error(columns, name)
