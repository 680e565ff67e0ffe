"""Self-contained HTML files of the reports (the command line's --format html): the same templates as the pages,
with the stylesheets inlined and the charts and radiographs embedded as data: URIs, so one file opens anywhere."""

from __future__ import annotations

import base64
from typing import Any

from django.contrib.staticfiles import finders
from django.template.loader import render_to_string

from orthoreg.analytics import definitions as defs
from orthoreg.analytics.report_types import CohortReport, ComparisonReport
from orthoreg.instruments.charts import render, trajectory_chart

from . import plots
from .case import comparison_png


def data_uri(data: bytes, content_type: str) -> str:
    return f"data:{content_type};base64,{base64.b64encode(data).decode()}"


def _css() -> str:
    return "\n".join(open(finders.find(p), encoding="utf-8").read()
                     for p in ("orthoreg/app.css", "reports/reports.css"))


def cohort_html(report: CohortReport | ComparisonReport) -> str:
    cohorts = plots.cohorts_of(report)
    charts = {name: data_uri(render(plots.chart(name, cohorts, **({"report": report} if name == "overlap" else {})),
                                    "svg"), "image/svg+xml") for name in plots.CHARTS}
    distributions = [(code, title, data_uri(render(plots.chart(plots.DISTRIBUTION + code, cohorts), "svg"),
                                            "image/svg+xml"))
                     for code, title in plots.distribution_instruments(cohorts)]
    return render_to_string("reports/cohort_static.html", {
        "report": report, "cohorts": cohorts, "sections": plots.sections_of(report), "chart_src": charts,
        "distributions": distributions,
        "css": _css(),
        "definitions": list(defs.DEFINITIONS.values())})


def case_html(case) -> str:
    srcs: dict[str, Any] = {"trajectories": {t.code: data_uri(trajectory_chart(t, "svg"), "image/svg+xml") for t in case.trajectories}}
    if case.images:
        png = comparison_png(case.episode)
        srcs["images"] = data_uri(png, "image/png") if png else ""
    return render_to_string("reports/case_static.html", {"case": case, "srcs": srcs, "css": _css()})


def options_html(page: dict) -> str:
    return render_to_string("reports/options_static.html", {"page": page, "css": _css()})
