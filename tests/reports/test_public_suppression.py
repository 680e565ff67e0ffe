"""The public pages never give a small cell away: whatever is shown as "<5" (or not shown) cannot be worked out by
adding or subtracting the numbers published next to it, on the page, the index or the static export.

The registry below is built so that the naive page leaks in every way a reader could try:

* 12 + 7 + 2 treated: an exact total minus the rows gives the "<5" row (2);
* bone marrow concentrate: 10 of 12 answered at 6 months, so "10 / 12" gives 2 who did not answer; 2 converted
  at 250 days and everyone else followed past 24 months, so 12 x (1 - 83%) gives the 2 conversions shown as "<5";
* platelet-rich plasma: 7 of 7 answered, none converted: "7 / 7" and 100% give the 0s away;
* bone marrow concentrate again: 5 of the 10 who answered have half the pain: "50% (95% CI 24–76%)" can only be
  5/10 (a rate and its Wilson interval pin numerator and denominator), so it gives away the 10 who answered that
  "not shown" hides, and with the 12 treated, that at most 2 did not answer.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from html.parser import HTMLParser

import pytest
from django.urls import reverse
from django.utils import timezone
from statsmodels.stats.proportion import proportion_confint

from orthoreg.analytics import facts
from orthoreg.analytics.report_types import Rate, SurvivalAt
from orthoreg.reports import public
from tests.analytics.builders import Builder

SMALL = 5
TRUTH = {"bmc": {"treated": 12, "answered": 10, "due": 12, "converted": 2},
         "prp": {"treated": 7, "answered": 7, "due": 7, "converted": 0},
         "prolotherapy": {"treated": 2, "answered": None, "due": None, "converted": 0}}
LABELS = {"bmc": "Bone marrow concentrate injection", "prp": "Platelet-rich plasma injection",
          "prolotherapy": "Prolotherapy"}


@pytest.fixture
def leaky_registry(clinic):
    clinic.public_outcomes = True
    clinic.save()
    b = Builder(clinic)
    index = timezone.localdate() - dt.timedelta(days=800)
    for n in range(12):
        e = b.episode(index_date=index, kind="bmc")
        b.assessment(e, "baseline", score=8)
        b.assessment(e, "6m", score=(2 if n < 5 else 7) if n < 10 else None)  # 2 never answer
        if n in (5, 6):
            b.procedure(e, date=index + dt.timedelta(days=250), kind="cheilectomy")
        else:
            b.exam(e, date=index + dt.timedelta(days=760))
    for _ in range(7):
        e = b.episode(index_date=index, kind="prp")
        b.assessment(e, "baseline", score=8)
        b.assessment(e, "6m", score=2)
        b.exam(e, date=index + dt.timedelta(days=760))
    for _ in range(2):
        e = b.episode(index_date=index, kind="prolotherapy")
        b.assessment(e, "baseline", score=8)


class Tables(HTMLParser):
    """The text of every table cell (rows of cells) and of every paragraph of a page."""

    def __init__(self, html: str):
        super().__init__()
        self.tables, self.paragraphs = [], []
        self._cell = self._para = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "p":
            self._para = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "p" and self._para is not None:
            self.paragraphs.append(" ".join("".join(self._para).split()))
            self._para = None

    def handle_data(self, data):
        for part in (self._cell, self._para):
            if part is not None:
                part.append(data)


def values(text: str, *, at_least: int = 0, most: int = 200) -> set[int]:
    """Every count a reader must allow for a published cell."""
    text = text.strip()
    if re.fullmatch(r"\d+", text):
        return {int(text)}
    if text == "<5":
        return set(range(at_least, SMALL))
    if text == "not shown":
        return set(range(SMALL, most + 1))
    if m := re.fullmatch(r"(\d+) to (\d+)", text):
        return set(range(int(m[1]), int(m[2]) + 1))
    raise AssertionError(f"unexpected published count {text!r}")


def pinned(options: set[int]) -> bool:
    """A small number a reader can be sure of."""
    return len(options) == 1 and next(iter(options)) < SMALL


def read_page(html: str) -> dict:
    page = Tables(html)
    note = next(p for p in page.paragraphs if "patients with registry consent treated" in p)
    rows = {}
    for cells in page.tables[0]:
        if len(cells) != 10 or cells[0] == "Treatment":
            continue
        kind = next(k for k, label in LABELS.items() if label == cells[0])
        survival, converted = cells[8].split(" · ")
        rows[kind] = {"treated": cells[1], "6m": cells[2], "12m": cells[5], "survival": survival.split(" / "),
                      "converted": converted.removesuffix(" converted"), "serious": cells[9],
                      "rates": {"6m": cells[3:5], "12m": cells[6:8]}}
    return {"total": note.split(" patients with")[0], "rows": rows}


def read_index(html: str) -> dict[str, str]:
    return {cells[1]: cells[2] for cells in Tables(html).tables[0] if len(cells) == 3 and cells[0] != "Body part"}


def percent(text: str) -> float | None:
    return float(text[:-1]) / 100 if text.endswith("%") else None


RATE = re.compile(r"(\d+)% \(95% CI (\d+)–(\d+)%\)")


def rate_candidates(text: str, most: int) -> set[tuple[int, int]] | None:
    """Every (k, n), n <= most, that prints as the published rate and Wilson interval (computed here with
    statsmodels, not with the registry's code); None when the cell shows no rate."""
    m = RATE.match(text)
    if not m:
        assert text.split(" ")[0] in ("too", "not", "—"), f"unexpected rate cell {text!r}"
        return None
    shown = tuple(int(x) for x in m.groups())
    out = set()
    for n in range(1, most + 1):
        for k in range(n + 1):
            low, high = proportion_confint(k, n, method="wilson")
            if (int(f"{k / n * 100:.0f}"), int(f"{low * 100:.0f}"), int(f"{high * 100:.0f}")) == shown:
                out.add((k, n))
    assert out, f"no (k, n) prints as {text!r}"
    return out


def assert_rates_pin_nothing_hidden(kind: str, row: dict, treated: set[int]) -> None:
    """Invert every published rate and interval: the reader learns its (k, n) candidates. A reader may take the
    denominator for the number who answered (it is, when nobody converted and everyone had a baseline), so for a
    time point whose answered / due are hidden, the answered, the due and the number who did not answer must each
    keep more than one possible value, and a small one more than one small value."""
    for point, cells in row["rates"].items():
        if row[point] == "—":
            continue
        answered_text, due_text = row[point].split(" / ")
        counts_hidden = not (answered_text.isdigit() and due_text.isdigit())
        for cell in cells:
            candidates = rate_candidates(cell, max(treated))
            if candidates is None or not counts_hidden:
                continue
            answered = values(answered_text, most=max(treated)) & {n for _, n in candidates}
            due = {d for d in values(due_text, most=max(treated)) if d <= max(treated)}
            lost = {d - a for a in answered for d in due if a <= d}
            for name, options in (("answered", answered), ("due", due), ("did not answer", lost)):
                small = {v for v in options if v < SMALL}
                assert len(options) > 1 and (not small or len(small) > 1), (
                    f"{kind} {point}: {cell} next to {row[point]} leaves {name} in {sorted(options)}")


def assert_nothing_recoverable(page: dict, index_total: str) -> None:
    rows = page["rows"]
    assert set(rows) == set(TRUTH)
    # 1. Totals and parts: every row shown as "<5" must keep more than one possible value given the total.
    total = values(page["total"], most=500) & values(index_total, most=500)
    treated = {k: values(r["treated"], at_least=1) for k, r in rows.items()}
    hidden = [k for k, v in treated.items() if len(v) > 1]
    shown = sum(next(iter(v)) for k, v in treated.items() if k not in hidden)
    for k in hidden:
        others = [treated[o] for o in hidden if o != k]
        possible = {v for v in treated[k]
                    if any(shown + v + sum(rest) in total for rest in itertools.product(*others))}
        assert TRUTH[k]["treated"] in possible, k
        assert not pinned(possible), f"{k}: treated {possible} worked out from the total {page['total']}"
    for kind, row in rows.items():
        truth = TRUTH[kind]
        n = treated[kind]
        assert truth["treated"] in n
        # 2. Answered vs due: neither, nor the number who did not answer, may be a small number worked out.
        if truth["due"] is not None:
            answered, due = (values(x) for x in row["6m"].split(" / "))
            assert truth["answered"] in answered and truth["due"] in due
            lost = {d - a for a in answered for d in due if a <= d and d <= max(n)}
            assert truth["due"] - truth["answered"] in lost
            assert not pinned(lost), f"{kind}: did not answer {lost} from {row['6m']}"
        else:
            assert row["6m"] == "—"
        # 3. Conversions vs survival: n x (1 - survival) (no censoring) must not give a small number, nor n x survival.
        converted = values(row["converted"], most=max(n))
        assert truth["converted"] in converted
        assert not pinned({max(n) - c for c in converted if c <= max(n)} if len(n) == 1 else set())
        for text in row["survival"]:
            s = percent(text)
            if s is None:
                assert text == "too few"
                continue
            assert len(n) == 1, f"{kind}: a survival percentage next to a hidden number treated"
            for derived in (max(n) * (1 - s), max(n) * s):
                close = abs(derived - round(derived)) <= max(n) * 0.005 + 1e-9
                assert not (close and round(derived) < SMALL), f"{kind}: {text} of {max(n)} gives {round(derived)}"
        # 4. Rates and their intervals: (k, n) inverted must not give a hidden count away.
        assert_rates_pin_nothing_hidden(kind, row, n)
        # 5. Serious adverse events "x of n": neither x nor n - x may be a small number worked out.
        x, of = row["serious"].split(" of ")
        events = values(x, most=max(values(of, at_least=1)))
        rest = {t - e for e in events for t in values(of, at_least=1) if e <= t}
        assert not pinned(events) and not pinned(rest), row["serious"]


def test_no_suppressed_number_can_be_worked_out(client, leaky_registry, tmp_path):
    index = read_index(client.get(reverse("reports:public_index")).content.decode())
    live = read_page(client.get(reverse("reports:public_outcomes", args=["first_mtp", "hallux_rigidus"]))
                     .content.decode())
    assert_nothing_recoverable(live, index["Hallux rigidus"])

    written = public.export_static(tmp_path / "public")
    assert written
    static_index = read_index((tmp_path / "public" / "index.html").read_text())
    static = read_page((tmp_path / "public" / "first_mtp--hallux_rigidus.html").read_text())
    assert_nothing_recoverable(static, static_index["Hallux rigidus"])
    assert static == live and static_index == index


def test_what_may_still_be_shown(client, leaky_registry):
    """Suppression is no more than it needs: the big cells stay. The bone marrow row's 50% (5 of 10) is not shown
    any more: its interval would give the hidden 10 who answered away."""
    facts.refresh()  # what the worker (or a page, once at its top) does before reading
    page = public.public_page("first_mtp", "hallux_rigidus")
    rows = {r["kind"]: r for r in page["rows"]}
    assert page["treated"] == "20 to 23"  # 12 + 7 + one "<5" row of 1 to 4
    assert [r["treated"] for r in page["rows"]] == ["12", "7", "<5"]
    bmc = rows["bmc"]
    assert (bmc["points"]["6m"]["answered"], bmc["points"]["6m"]["due"]) == ("not shown", "not shown")
    assert bmc["points"]["6m"]["pain_50"] is None  # 5 of 10 with 10 hidden: the rate and its CI would pin it
    assert bmc["survival_12"] is None and bmc["conversions"] == "<5"
    assert bmc["adverse_serious"] == "<5 of 12"
    html = Tables(client.get(reverse("reports:public_outcomes", args=["first_mtp", "hallux_rigidus"]))
                  .content.decode())
    bmc_cells = next(c for c in html.tables[0] if c and c[0] == LABELS["bmc"])
    assert bmc_cells[3] == "not shown" and "worst case" not in bmc_cells[3]


@pytest.mark.parametrize("counts_shown, answered, conversions, shown", [
    (True, 10, "<5", True),  # 5 of 10, answered and due shown: nothing more to learn from the interval
    (False, 10, "<5", False),  # answered hidden: 50% (24-76%) would give it away
    (True, 8, "<5", False),  # a denominator of 10 beside 8 answered: 2 converted without answering, "<5" pinned
    (True, 8, "12", True),  # ... unless the conversions are shown anyway
])
def test_a_rate_is_shown_only_where_its_counts_could_be(counts_shown, answered, conversions, shown):
    r = {"numerator": 5, "denominator": 10, "rate": 0.5, "ci_low": 0.237, "ci_high": 0.763}
    assert public.rate_shown(Rate.model_validate(r), counts_shown=counts_shown, answered=answered,
                             conversions=conversions) is shown
    assert public.rate_shown(Rate.model_validate({**r, "numerator": 4, "denominator": 10}), counts_shown=True,
                             answered=10, conversions="12") is False  # 4 successes: a small cell


def test_chart_labels_a_rate_with_its_counts_only_beside_answered_and_due(leaky_registry):
    import matplotlib

    facts.refresh()  # what the worker (or a page, once at its top) does before reading
    page = public.public_page("first_mtp", "hallux_rigidus")
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # text as text, to read it
        svg = public.public_chart_svg(page).decode()
        assert "too few patients to show" in svg and ">50%<" not in svg and "5/10" not in svg
        point = page["rows"][0]["points"]["6m"]
        point["pain_50"] = {"numerator": 5, "denominator": 10, "rate": 0.5, "ci_low": 0.237, "ci_high": 0.763,
                            "worst_case_rate": 5 / 12}
        assert "5/10" not in public.public_chart_svg(page).decode()
        point["counts_shown"] = True
        assert "5/10" in public.public_chart_svg(page).decode()


@pytest.mark.parametrize("answered, due, shown", [
    (10, 12, ("not shown", "not shown")), (3, 12, ("<5", "not shown")), (2, 3, ("<5", "<5")),
    (5, 10, ("5", "10")), (7, 7, ("not shown", "not shown"))])
def test_answered_and_due_are_shown_together_or_not_at_all(answered, due, shown):
    assert public.pair_text(answered, due)[:2] == shown


def test_totals_parts_and_survival_rules():
    assert public.total_text([16, 9, 9, 6, 3]) == "41 to 44"
    assert public.total_text([16, 9]) == "25" and public.total_text([3]) == "<5"
    assert public.part_text(7, 9) == "not shown" and public.part_text(2, 9) == "<5" and public.part_text(6, 12) == "6"
    twelve = {"months": 12, "days": 365, "ci_low": None, "ci_high": None, "survival": 10 / 12, "at_risk": 10,
              "events": 2}

    def at(**values):
        return SurvivalAt.model_validate({**twelve, **values})

    assert public.survival_shown(at(), 12) is None  # 2 conversions: 12 x 17% gives them
    assert public.survival_shown(at(events=5, survival=7 / 12), 12) == pytest.approx(7 / 12)
    assert public.survival_shown(at(events=8, survival=4 / 12), 12) is None  # 4 did not convert
    assert public.survival_shown(at(events=6, at_risk=4), 14) is None
