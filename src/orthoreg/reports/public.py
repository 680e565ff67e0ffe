"""The public outcomes pages: per body part and condition, the aggregated outcomes of the clinics that opted in
(Clinic.public_outcomes), patients with registry consent only, no login, no patient-level data. `export_static`
writes the same pages as plain files.

Small cells: a count below 5 is shown as "<5", and nothing published may give it away by adding or subtracting
(complementary suppression):

* a total whose parts include a "<5" is shown as the range the parts allow ("41 to 44"), on the page and the index;
* a count that is part of a shown whole (conversions of the treated, serious adverse events of the treated) is not
  shown when the rest is below 5;
* answered / due are shown only when both, and the number who did not answer, are at least 5 (otherwise "<5" or
  "not shown" for each), and the worst case (responders / due) only then;
* a rate only when its successes and failures are both at least 5 AND the answered / due of its time point are
  shown (`rate_shown`): a rate with its Wilson interval gives its numerator and denominator away (46%, 95% CI
  23-71% can only be 6/13), so a rate is published only where its counts could be published too; when its
  denominator counts more patients than answered (conversions without an answer), only beside a shown number of
  conversions. A survival percentage only when at least 5 are still followed, at least 5 converted by then and at
  least 5 did not.

Every number the templates print is made here as text (`count_text` and friends), so a template cannot print a
raw count by mistake.
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
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from orthoreg.analytics import cohorts, selectors
from orthoreg.analytics import definitions as defs
from orthoreg.analytics.filters import CohortFilter
from orthoreg.analytics.report_types import CohortReport, ResponderRate, SurvivalAt
from orthoreg.instruments.charts import render
from orthoreg.registry.coding import BodySite, Condition, ProcedureKind
from orthoreg.registry.models import Clinic

from .plots import ACCENT, BANDS, INK, MUTED, style_axes
from .templatetags.report_tags import SMALL_CELL, publishable

TIME_POINTS = ("6m", "12m")


def public_clinics() -> list[Clinic]:
    return list(Clinic.objects.filter(public_outcomes=True).order_by("name"))


def _label(enum, value: str) -> str:
    try:
        return enum(value).label
    except ValueError:
        return value


NOT_SHOWN = "not shown"
HIDDEN = f"<{SMALL_CELL}"  # a count below the small-cell limit


def count_text(n: int) -> str:
    """A count on its own: "<5" below five."""
    return HIDDEN if n < SMALL_CELL else str(n)


def part_text(part: int, whole: int) -> str:
    """A count published next to the whole it is part of (conversions of the treated): "<5" below five, and not
    shown when the rest (whole - part) is below five, since subtracting would give the rest away."""
    if part < SMALL_CELL:
        return HIDDEN
    if whole - part < SMALL_CELL:
        return NOT_SHOWN
    return str(part)


def total_text(parts: list[int]) -> str:
    """The total of parts published one by one (patients treated per index procedure): exact when every part is
    shown, else the range the shown parts and the "<5" ones allow, which tells nothing the parts do not."""
    hidden = [n for n in parts if n < SMALL_CELL]
    if not hidden:
        return str(sum(parts))
    if len(parts) == 1:
        return HIDDEN
    shown = sum(n for n in parts if n >= SMALL_CELL)
    return f"{shown + len(hidden)} to {shown + (SMALL_CELL - 1) * len(hidden)}"


def pair_text(answered: int, due: int) -> tuple[str, str, bool]:
    """(answered, due, shown) of a time point: both exact only when both and the number who did not answer are at
    least five; otherwise each is "<5" or "not shown"."""
    if answered >= SMALL_CELL and due - answered >= SMALL_CELL:
        return str(answered), str(due), True
    return (HIDDEN if answered < SMALL_CELL else NOT_SHOWN, HIDDEN if due < SMALL_CELL else NOT_SHOWN, False)


def survival_shown(at: SurvivalAt | None, treated: int) -> float | None:
    """The survival free of surgery at a time, when it may be shown: at least five still followed, and at least
    five converted and five not by then (else 1 - survival x treated would give a small number of conversions)."""
    if not at or at.survival is None or at.events is None:
        return None
    if at.at_risk < SMALL_CELL or at.events < SMALL_CELL or treated - at.events < SMALL_CELL:
        return None
    return at.survival


def _treated_by_page() -> dict[tuple[str, str], list[int]]:
    """Patients treated per (body site, condition), one count per index procedure: the rows of its page."""
    ids = [c.pk for c in public_clinics()]
    if not ids:
        return {}
    rows = (cohorts.treated_episodes(ids).filter(consent=True)
            .values("body_site", "condition", "index_kind").annotate(n=Count("pk"))
            .order_by("body_site", "condition", "index_kind"))
    out: dict[tuple[str, str], list[int]] = {}
    for r in rows:
        out.setdefault((r["body_site"], r["condition"]), []).append(r["n"])
    return out


def public_index() -> list[dict]:
    """Every (body site, condition) with treated episodes in the opted-in clinics, with its number treated (as its
    page shows it)."""
    return [{"site": site, "condition": condition, "site_label": _label(BodySite, site),
             "condition_label": _label(Condition, condition), "treated": total_text(parts),
             "url": reverse("reports:public_outcomes", args=[site, condition]),
             "file": page_file(site, condition)} for (site, condition), parts in _treated_by_page().items()]


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
    rows, treated = [], []
    for kind in [k["index_kind"] for k in kinds]:
        report = selectors.cohort_report(base.replace(procedures=(kind,)), clinic_ids=ids)
        rows.append(_row(kind, report))
        treated.append(report.cohort.episodes)
    return {"site": site, "condition": condition, "site_label": _label(BodySite, site),
            "condition_label": _label(Condition, condition), "clinics": [c.name for c in clinics], "rows": rows,
            "treated": total_text(treated), "small_cell": SMALL_CELL,
            "definitions": {d.code: d for d in (defs.PAIN_50, defs.MCID, defs.NO_CONVERSION)},
            "as_of": rows[0]["as_of"] if rows else timezone.localdate().isoformat(),
            "file": page_file(site, condition)}


def rate_shown(r: ResponderRate | None, *, counts_shown: bool, answered: int, conversions: str) -> bool:
    """Whether a rate (with its interval) may be published: neither its successes nor its failures a small cell,
    and nothing hidden to be had from its numerator and denominator, which rate and interval together pin down:
    the answered / due of its time point are shown, and a denominator larger than the number who answered (the
    difference being conversions without an answer) only beside a shown number of conversions."""
    if r is None or not publishable(r) or not counts_shown:
        return False
    return r.denominator <= answered or conversions not in (HIDDEN, NOT_SHOWN)


def _rate(r: ResponderRate | None, **context) -> dict | None:
    """A rate as the public page may show it (rate_shown), else None."""
    if r is None or not rate_shown(r, **context):
        return None
    return r.model_dump(include={"numerator", "denominator", "rate", "ci_low", "ci_high", "worst_case_rate"})


def _row(kind: str, report: CohortReport) -> dict:
    """One index procedure's row, every number already as the page prints it (see the module's rules)."""
    by_tp = {tp.time_point: tp for tp in report.time_points}
    treated = report.cohort.episodes
    conversions = part_text(report.survival.events, treated)
    points: dict[str, dict] = {}
    for label in TIME_POINTS:
        tp = by_tp.get(label)
        pain = next((i for i in tp.instruments if i.instrument == defs.PAIN_INSTRUMENT), None) if tp else None
        if pain is None:
            points[label] = None
            continue
        answered, due, shown = pair_text(pain.responded, pain.eligible)
        context = {"counts_shown": shown, "answered": pain.responded, "conversions": conversions}
        points[label] = {"answered": answered, "due": due, "counts_shown": shown,
                         "pain_50": _rate(pain.responders.get(defs.PAIN_50.code), **context),
                         "mcid": _rate(pain.responders.get(defs.MCID.code), **context)}
    survival = {a.months: a for a in report.survival.at}
    serious = report.adverse_events.serious
    return {"kind": kind, "kind_label": _label(ProcedureKind, kind), "treated": count_text(treated),
            "points": points, "survival_12": survival_shown(survival.get(12), treated),
            "survival_24": survival_shown(survival.get(24), treated),
            "conversions": conversions,
            "adverse_serious": f"{HIDDEN if serious.too_few else part_text(serious.numerator, treated)} of "
                               f"{count_text(treated)}",
            "as_of": report.as_of}


def public_chart_svg(page: dict) -> bytes:
    """≥ 50% less pain at 6 months per procedure (95% CI), only for rates that may be shown publicly."""
    shown = [(textwrap.fill(r["kind_label"], 22), r["points"]["6m"]["pain_50"], r["points"]["6m"]["counts_shown"])
             for r in page["rows"] if r["points"].get("6m") and r["points"]["6m"]["pain_50"]]
    fig = Figure(figsize=(6.4, 0.9 + 0.45 * max(1, len(shown))), dpi=100, facecolor="white")
    ax = fig.add_subplot()
    if not shown:
        message = "too few patients to show" if page["rows"] else "no patients treated yet"
        ax.text(0.5, 0.5, message, transform=ax.transAxes, ha="center", va="center", color=MUTED)
        ax.set_xticks([])
        ax.set_yticks([])
    for y, (_label, r, counts_shown) in enumerate(shown):
        ax.barh(y, r["rate"], color=BANDS[0], edgecolor=ACCENT, height=0.6)
        ax.errorbar(r["rate"], y, xerr=[[r["rate"] - r["ci_low"]], [r["ci_high"] - r["rate"]]], fmt="none",
                    ecolor=INK, capsize=3)
        if counts_shown:  # else the denominator next to the number treated would tell how many did not answer
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
