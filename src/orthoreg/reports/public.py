"""The public outcomes pages: per body part and condition, the aggregated outcomes of the clinics that opted in
(Clinic.public_outcomes), patients with registry consent only, no login, no patient-level data, counts below 5
shown as "<5" and rates hidden when their successes or failures are fewer than 5. `export_static` writes the same
pages as plain files.
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

from django.contrib.staticfiles import finders
from django.db.models import Count
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from orthoreg.analytics import cohorts, selectors
from orthoreg.analytics import definitions as defs
from orthoreg.analytics.filters import CohortFilter
from orthoreg.instruments.charts import render
from orthoreg.registry.coding import BodySite, Condition, ProcedureKind
from orthoreg.registry.models import Clinic

from .templatetags.report_tags import SMALL_CELL, publishable

TIME_POINTS = ("6m", "12m")


def public_clinics() -> list[Clinic]:
    return list(Clinic.objects.filter(public_outcomes=True).order_by("name"))


def _label(enum, value: str) -> str:
    try:
        return enum(value).label
    except ValueError:
        return value


def public_index() -> list[dict]:
    """Every (body site, condition) with treated episodes in the opted-in clinics, with its number treated."""
    ids = [c.pk for c in public_clinics()]
    if not ids:
        return []
    rows = (cohorts.treated_episodes(ids).filter(consent=True)
            .values("body_site", "condition").annotate(n=Count("pk"))
            .order_by("body_site", "condition"))
    return [{"site": r["body_site"], "condition": r["condition"], "site_label": _label(BodySite, r["body_site"]),
             "condition_label": _label(Condition, r["condition"]), "treated": r["n"],
             "url": reverse("reports:public_outcomes", args=[r["body_site"], r["condition"]]),
             "file": page_file(r["body_site"], r["condition"])} for r in rows]


def page_file(site: str, condition: str) -> str:
    return f"{site}--{condition}.html"


def public_page(site: str, condition: str) -> dict | None:
    """The page of one body site and condition: a row per index procedure of the opted-in clinics (no rows when
    none has treated it). None for an unknown body site or condition."""
    if site not in BodySite.values or condition not in Condition.values:
        return None
    clinics = public_clinics()
    ids = [c.pk for c in clinics]
    base = CohortFilter(site=site, condition=condition, consented_only=True)
    kinds = (cohorts.cohort_episodes(base, clinic_ids=ids).values("index_kind").annotate(n=Count("pk"))
             .order_by("-n", "index_kind")) if ids else []
    rows = []
    for kind in [k["index_kind"] for k in kinds]:
        report = selectors.cohort_report(base.replace(procedures=(kind,)), clinic_ids=ids)
        rows.append(_row(kind, report))
    return {"site": site, "condition": condition, "site_label": _label(BodySite, site),
            "condition_label": _label(Condition, condition), "clinics": [c.name for c in clinics], "rows": rows,
            "treated": sum(r["treated"] for r in rows), "small_cell": SMALL_CELL,
            "definitions": {d.code: d for d in (defs.PAIN_50, defs.MCID, defs.NO_CONVERSION)},
            "as_of": rows[0]["as_of"] if rows else timezone.localdate().isoformat(),
            "file": page_file(site, condition)}


def _row(kind: str, report: dict) -> dict:
    by_tp = {tp["time_point"]: tp for tp in report["time_points"]}
    points = {}
    for label in TIME_POINTS:
        tp = by_tp.get(label)
        pain = next((i for i in tp["instruments"] if i["instrument"] == defs.PAIN_INSTRUMENT), None) if tp else None
        points[label] = None if pain is None else {
            "eligible": pain["eligible"], "responded": pain["responded"],
            "pain_50": pain["responders"].get(defs.PAIN_50.code), "mcid": pain["responders"].get(defs.MCID.code)}
    survival = {a["months"]: a for a in report["survival"]["at"]}
    return {"kind": kind, "kind_label": _label(ProcedureKind, kind), "treated": report["cohort"]["episodes"],
            "points": points, "survival_12": survival.get(12), "survival_24": survival.get(24),
            "conversions": report["survival"]["events"], "adverse_any": report["adverse_events"]["any"],
            "adverse_serious": report["adverse_events"]["serious"], "as_of": report["as_of"]}


def public_chart_svg(page: dict) -> bytes:
    """≥ 50% less pain at 6 months per procedure (95% CI), only for rates that may be shown publicly."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter

    from .plots import ACCENT, BANDS, INK, MUTED, style_axes

    shown = [(textwrap.fill(r["kind_label"], 22), r["points"]["6m"]["pain_50"]) for r in page["rows"]
             if r["points"].get("6m") and publishable(r["points"]["6m"]["pain_50"])]
    fig = Figure(figsize=(6.4, 0.9 + 0.45 * max(1, len(shown))), dpi=100, facecolor="white")
    ax = fig.add_subplot()
    if not shown:
        message = "too few patients to show" if page["rows"] else "no patients treated yet"
        ax.text(0.5, 0.5, message, transform=ax.transAxes, ha="center", va="center", color=MUTED)
        ax.set_xticks([])
        ax.set_yticks([])
    for y, (label, r) in enumerate(shown):
        ax.barh(y, r["rate"], color=BANDS[0], edgecolor=ACCENT, height=0.6)
        ax.errorbar(r["rate"], y, xerr=[[r["rate"] - r["ci_low"]], [r["ci_high"] - r["rate"]]], fmt="none",
                    ecolor=INK, capsize=3)
        ax.text(1.01, y, f"{r['numerator']}/{r['denominator']}", va="center", fontsize=7.5, color=MUTED,
                transform=ax.get_yaxis_transform())
    if shown:
        ax.set_yticks(range(len(shown)), [s[0] for s in shown], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    style_axes(ax, "At least 50% less pain at 6 months (95% CI)")
    fig.subplots_adjust(left=0.3, right=0.9, top=1 - 0.45 / fig.get_figheight(), bottom=0.4 / fig.get_figheight())
    return render(fig, "svg")


def export_static(out_dir: Path) -> list[Path]:
    """Write the public pages as static files: index.html, one page and one chart per body part and condition,
    and the stylesheets. Written to a temporary folder first, then moved in place, so a failure leaves nothing
    half-written."""
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(f".{out_dir.name}.partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "static").mkdir(parents=True)
    written = []
    try:
        for name, path in (("app.css", "orthoreg/app.css"), ("reports.css", "reports/reports.css")):
            shutil.copyfile(finders.find(path), tmp / "static" / name)
        index = public_index()
        (tmp / "index.html").write_text(render_to_string("reports/public_index.html", {
            "index": index, "static_export": True}), encoding="utf-8")
        for entry in index:
            page = public_page(entry["site"], entry["condition"])
            chart = f"{entry['site']}--{entry['condition']}.svg"
            (tmp / chart).write_bytes(public_chart_svg(page))
            (tmp / page["file"]).write_text(render_to_string("reports/public_outcomes.html", {
                "page": page, "static_export": True, "chart_url": chart}), encoding="utf-8")
        if out_dir.exists():
            for child in tmp.iterdir():
                target = out_dir / child.name
                if target.is_dir():
                    shutil.rmtree(target)
                child.replace(target)
            tmp.rmdir()
        else:
            tmp.replace(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    written = sorted(p for p in out_dir.rglob("*") if p.is_file())
    return written
