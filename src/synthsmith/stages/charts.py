"""The report's charts, offline: static SVG images, and the page `dvc plots show/diff` writes.

The bar charts use the project's DVC plot templates (`.dvc/plots/*.json`: bars from zero, in the
table's row order, so a funnel reads top to bottom in pipeline order). The SVG images are rendered
from the same templates by DVC's own renderer (dvc_render) and vl-convert, so an image shows what
the DVC page shows. DVC's default page loads Vega from a CDN and stays blank offline; `page()` is
an HTML template (`.dvc/config`: plots.html_template) with the Vega, Vega-Lite and Vega-Embed
scripts that vl-convert ships inlined, drawing every chart as SVG.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

TEMPLATE_DIR = Path(".dvc/plots")
# The report's charts as dvc.yaml's `plots:` declares them (tests/test_charts.py keeps the two equal).
CHARTS = {
    "funnel": {"template": "bars", "title": "Tasks through the pipeline", "x": "tasks",
               "y": {"reports/plots/funnel.csv": "step"}},
    "style_mix": {"template": "bars", "title": "Generated tasks per statement style", "x": "generated",
                  "y": {"reports/plots/style_mix.csv": "style"}},
    "feature_growth": {"template": "bars", "title": "Feature-pool leaves per category after evolution",
                       "x": "leaves_after", "y": {"reports/plots/feature_growth.csv": "category"}},
    "agreement_histogram": {"template": "verified_histogram",
                            "title": "Tasks by candidates' agreement (mean top-answer share per labelled test)",
                            "x": "tasks", "y": {"reports/plots/agreement_histogram.csv": "agreement"}},
}
PAGE_PATH = Path("reports/plots_page.html")  # .dvc/config points plots.html_template here

# Wraps vegaEmbed: SVG (whose marks a test can count in the DOM, unlike canvas pixels), no menu.
_SVG_EMBED = """
const embedChart = window.vegaEmbed;
window.vegaEmbed = (element, spec, options) =>
  embedChart(element, spec, Object.assign({renderer: "svg", actions: false}, options));
"""


def page() -> str:
    """An HTML template for dvc_render: its `{plot_divs}` placeholder, and the scripts inline."""
    import vl_convert

    bundle = vl_convert.javascript_bundle()
    if "</script" in bundle:  # would end the inline script early; never seen in vl-convert's bundle
        raise ValueError("the Vega bundle contains '</script': it cannot be inlined as is")
    return ("<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n<title>SynthSmith plots</title>\n"
            f"<script>\n{bundle}\n</script>\n<script>{_SVG_EMBED}</script>\n"
            "<style>body { font-family: sans-serif; } div { margin: 1em; }</style>\n"
            "</head>\n<body>\n{plot_divs}\n</body>\n</html>\n")


def svg(name: str, table: pl.DataFrame) -> str:
    """The report's chart `name` (CHARTS) drawn from `table`, as SVG."""
    import vl_convert
    from dvc_render import VegaRenderer

    definition = CHARTS[name]
    if table.is_empty():  # dvc_render fills no template without rows; the image says so instead of failing
        return vl_convert.vegalite_to_svg({
            "title": definition["title"], "data": {"values": [{"text": "no rows in this run"}]},
            "mark": {"type": "text", "fontSize": 14}, "encoding": {"text": {"field": "text"}}})
    ((_, y_field),) = definition["y"].items()
    rows = [row | {"rev": "workspace"} for row in table.to_dicts()]  # DVC adds the revision to each row
    renderer = VegaRenderer(rows, name, template=definition["template"], template_dir=str(TEMPLATE_DIR),
                            x=definition["x"], y=y_field, title=definition["title"])
    return vl_convert.vegalite_to_svg(renderer.get_filled_template())
