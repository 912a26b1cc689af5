"""Shard tasks are cached on content: an interrupted stage resumes from its finished shards."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from synthsmith.runtime.shards import frame_hash, map_shards


def double_unless_flagged(shard: pl.DataFrame, flag: str, log: str) -> pl.DataFrame:
    """Fails on the shard holding 4 while `flag` exists: a transient fault, like a killed worker."""
    with open(log, "a") as calls:
        calls.write(f"{shard['x'][0]}\n")
    if 4 in shard["x"].to_list() and Path(flag).exists():
        raise RuntimeError("interrupted")
    return shard.with_columns(y=pl.col("x") * 2)


@pytest.mark.slow
def test_interrupted_stage_resumes_from_finished_shards(prefect_server, tmp_path):
    from prefect import flow

    flag, log = tmp_path / "fail", tmp_path / "calls.txt"
    flag.touch()
    frame = pl.DataFrame({"x": list(range(6))})

    @flow
    def stage() -> pl.DataFrame:
        return map_shards(double_unless_flagged, frame, 2, "double", flag=str(flag), log=str(log))

    with pytest.raises(RuntimeError, match="interrupted"):
        stage()
    assert log.read_text().split() == ["0", "2", "4"]

    flag.unlink()
    log.write_text("")
    result = stage()
    assert log.read_text().split() == ["4"]  # the two finished shards came from the cache
    assert result["y"].to_list() == [0, 2, 4, 6, 8, 10]

    log.write_text("")
    stage()
    assert log.read_text() == ""  # a full rerun is all cache hits


def test_frame_hash_is_content_based():
    a = pl.DataFrame({"x": [1, 2], "s": ["a", "b"]})
    assert frame_hash(a) == frame_hash(pl.DataFrame({"x": [1, 2], "s": ["a", "b"]}))
    assert frame_hash(a) != frame_hash(a.reverse())
