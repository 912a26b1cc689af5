"""The funnel's balance (nothing lost without a counted reason) and the line that says where a run's
funnel reached zero."""

from __future__ import annotations

import polars as pl
import pytest

from synthsmith.contract.funnel import UnbalancedFunnel, balanced, first_zero, funnel, zero_line


def test_a_funnel_that_loses_rows_without_a_reason_is_refused():
    with pytest.raises(UnbalancedFunnel, match=r"verify: 4 in \+ 0 added != 2 out \+ 1 dropped"):
        funnel("verify", 4, 2, {"weak_consensus": 1})
    grown = funnel("evolve_features", 10, 15, {"duplicate": 1}, added={"breadth": 4, "depth": 2}, **{"rejected:x": 7})
    assert dict(grown.select("metric", "value").iter_rows()) == {
        "in": 10, "dropped:duplicate": 1, "added:breadth": 4, "added:depth": 2, "rejected:x": 7, "out": 15}
    assert balanced(grown)
    assert not balanced(grown.with_columns(value=pl.when(pl.col("metric") == "out").then(14).otherwise("value")))


def test_zero_line_names_the_stage_the_count_and_the_biggest_reasons():
    assert zero_line("extract_features", funnel("extract_features", 3, 1, {"missing_markers": 2})) is None
    line = zero_line("extract_features", funnel("extract_features", 3, 0, {"missing_markers": 2, "llm_error": 1}))
    assert line == "extract_features: 0 of 3 seeds gave features (2 missing_markers, 1 llm_error); nothing to evolve"
    many = funnel("generate_tasks", 10, 0, {f"r{i}": 2 for i in range(5)})
    assert zero_line("generate_tasks", many).endswith("(2 r4, 2 r3, 2 r2, 2 r1, ...); nothing to test or solve")
    assert zero_line("verify", funnel("verify", 0, 0)) == "verify: no tasks came in; nothing to export"


def test_first_zero_follows_pipeline_order_not_table_order():
    funnels = pl.concat([funnel("verify", 0, 0), funnel("seeds", 4, 4),
                         funnel("generate_tasks", 6, 0, {"plan_invalid_json": 6}), funnel("extract_features", 4, 2,
                                                                                           {"llm_error": 2})])
    assert first_zero(funnels) == ("generate_tasks: 0 of 6 sampled feature subtrees gave a task "
                                   "(6 plan_invalid_json); nothing to test or solve")
    assert first_zero(funnel("seeds", 4, 4)) is None
