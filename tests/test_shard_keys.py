"""Shard cache keys cover all the code a shard runs: its module's imports and the validators its
settings name as "module:function" strings, so a changed validator recomputes the shard."""

from __future__ import annotations

import sys
import textwrap

import polars as pl
import pytest

from synthsmith.contract.params import LLMParams
from synthsmith.llm.gateway import shard_settings
from synthsmith.runtime.code import function_specs


def _write_project(root, verdict: str) -> None:
    package = root / "toyproject"
    package.mkdir(exist_ok=True)
    (package / "__init__.py").write_text("")
    (package / "checks.py").write_text(f"def check(value):\n    return {verdict!r}\n")
    (package / "shard.py").write_text(textwrap.dedent("""
        import importlib

        import polars as pl


        def judge(shard, validator, log):
            module, _, name = validator.partition(":")
            check = getattr(importlib.import_module(module), name)
            with open(log, "a") as calls:
                calls.write("ran\\n")
            return shard.with_columns(verdict=pl.lit(check(None)))
    """))


@pytest.mark.slow
def test_a_changed_validator_recomputes_the_shard(prefect_server, tmp_path, monkeypatch):
    from prefect import flow

    from synthsmith.runtime.shards import map_shards

    _write_project(tmp_path, "ok")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    from toyproject.shard import judge

    log = tmp_path / "calls.txt"
    frame = pl.DataFrame({"x": [1, 2]})

    @flow
    def stage() -> pl.DataFrame:
        return map_shards(judge, frame, 2, "judge", validator="toyproject.checks:check", log=str(log))

    stage()
    stage()
    assert log.read_text().splitlines() == ["ran"]  # the second run was a cache hit

    _write_project(tmp_path, "rejected")  # only the validator's module changes, not the shard's
    for name in [m for m in sys.modules if m.startswith("toyproject.checks")]:
        monkeypatch.delitem(sys.modules, name)
    assert stage()["verdict"].to_list() == ["rejected", "rejected"]
    assert log.read_text().splitlines() == ["ran", "ran"]


def test_the_gateways_shard_settings_name_the_stage_validator():
    settings = shard_settings(LLMParams(), what="plans", reask=1,
                              validator="synthsmith.stages.generate_tasks:check_plan")
    assert function_specs(settings) == ["synthsmith.stages.generate_tasks"]
