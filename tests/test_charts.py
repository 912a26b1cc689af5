"""The report's charts: what dvc.yaml declares, the tasks funnel, the SVG images, the offline page."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
import yaml

from synthsmith.contract.funnel import funnel
from synthsmith.stages import charts
from synthsmith.stages.report import TASK_STEPS, task_funnel

ROOT = Path(__file__).resolve().parent.parent


def test_the_report_draws_its_charts_as_dvc_yaml_declares_them():
    declared = {name: definition for entry in yaml.safe_load((ROOT / "dvc.yaml").read_text())["plots"]
                for name, definition in entry.items()}
    assert {name: declared[name] for name in charts.CHARTS} == charts.CHARTS
    for definition in declared.values():  # every template is one DVC ships or one of ours
        template = definition["template"]
        assert template == "linear" or (ROOT / charts.TEMPLATE_DIR / f"{template}.json").is_file(), template


def test_the_funnel_chart_counts_tasks_in_pipeline_order():
    frames = pl.concat([funnel("generate_tasks", 18, 16, {"too_short": 2}), funnel("generate_tests", 16, 16),
                        funnel("verify", 16, 16, kept=5, undecided=11), funnel("verify_rounds", 16, 15, {"x": 1}),
                        funnel("export", 15, 15), funnel("execute", 900, 900)])
    table = task_funnel(frames.reverse())
    assert table["step"].to_list() == [label for _, _, label in TASK_STEPS]
    assert table["tasks"].to_list() == [16, 16, 5, 15, 15]
    assert task_funnel(frames.filter(pl.col("stage") != "export"))["tasks"][-1] == 0  # a stage that wrote nothing


@pytest.mark.slow  # vl-convert starts its JavaScript engine (about a second)
def test_every_report_chart_is_drawn_as_an_svg_with_its_bars(monkeypatch):
    monkeypatch.chdir(ROOT)  # the templates are in .dvc/plots
    tables = {
        "funnel": pl.DataFrame({"step": ["a", "b"], "tasks": [16, 15]}),
        "style_mix": pl.DataFrame({"style": ["codeforces", "leetcode"], "generated": [3, 1], "verified": [2, 1]}),
        "feature_growth": pl.DataFrame({"category": ["algorithm"], "leaves_before": [3], "leaves_after": [5]}),
        "agreement_histogram": pl.DataFrame({"agreement": ["0.8-0.9", "0.9-1.0"], "tasks": [2, 3], "verified": [1, 3]}),
    }
    for name, table in tables.items():
        image = charts.svg(name, table)
        assert image.startswith("<svg") and charts.CHARTS[name]["title"].split("(")[0].strip() in image, name
        assert image.count('role-mark') >= 1 and image.count("<path") >= table.height, name
        empty = charts.svg(name, table.clear())  # a run whose funnel stopped early still gets its images
        assert empty.startswith("<svg") and "no rows in this run" in empty, name


@pytest.mark.slow  # builds vl-convert's bundle (about a second)
def test_the_page_template_carries_its_scripts_and_dvc_s_placeholder():
    page = charts.page()
    assert page.count("{plot_divs}") == 1
    assert "<script src=" not in page  # nothing to fetch: the scripts are inline
    assert "window.vegaEmbed" in page and 'renderer: "svg"' in page
