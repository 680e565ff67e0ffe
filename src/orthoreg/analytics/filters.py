"""Cohort filters: one definition of what a cohort may be filtered on, parsed the same way for the web form, the
REST API and the command line (`parse_filters`), with one error message per bad value.

Parameters (the web form and the API use these names; the command line the same with dashes, e.g. --grade-min):

    clinic        clinic code, repeatable (only clinics the user may analyse)
    condition     e.g. hallux_rigidus           site   e.g. first_mtp        side   left/right/bilateral/na
    grade_min     grade_max  0-4 (the grade of record at the index procedure)
    procedure     kind of the index procedure; repeated = a combination: the episode also had each further kind
                  (not the index procedure itself) within `within_days` days of the index date, before or after
    also          further kinds of a combination (the web form's checkboxes), appended to `procedure`
    within_days   0-3650, default 30
    age_min       age_max   completed years at the index date
    sex           female/male/other/unknown
    index_from    index_to  ISO dates (inclusive) of the index procedure

A comparison cohort takes the same names prefixed with "vs_" (--vs-procedure on the command line); it starts from
the first cohort's filters and replaces those given.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from django import forms

from orthoreg.formats import format_date
from orthoreg.registry import rules
from orthoreg.registry.coding import BodySite, Condition, ProcedureKind, Side
from orthoreg.registry.models import Patient

DEFAULT_WITHIN_DAYS = rules.COMBINATION_WINDOW_DAYS
VS_PREFIX = "vs_"
LIST_FIELDS = ("clinic", "procedure", "also")


class CohortFilterError(ValueError):
    """Bad filter values. `.errors` maps each parameter name to its messages."""

    def __init__(self, errors: dict[str, list[str]]):
        self.errors = errors
        super().__init__("; ".join(f"{name}: {' '.join(msgs)}" for name, msgs in errors.items()))


@dataclass(frozen=True)
class CohortFilter:
    clinics: tuple[str, ...] = ()
    condition: str = ""
    site: str = ""
    side: str = ""
    grade_min: int | None = None
    grade_max: int | None = None
    procedures: tuple[str, ...] = ()  # index kind first, then the kinds of a combination
    within_days: int = DEFAULT_WITHIN_DAYS
    age_min: int | None = None
    age_max: int | None = None
    sex: str = ""
    index_from: dt.date | None = None
    index_to: dt.date | None = None
    exclude_episodes: tuple[int, ...] = ()  # not a public parameter: a case report leaves its own patient out
    consented_only: bool = False  # not a public parameter: public figures count consented patients only
    whole_months: bool = False  # not a public parameter: index dates were rounded to whole months (month_bounds)

    @property
    def index_kind(self) -> str:
        return self.procedures[0] if self.procedures else ""

    @property
    def combined_kinds(self) -> tuple[str, ...]:
        return self.procedures[1:]

    def replace(self, **changes) -> CohortFilter:
        return dataclasses.replace(self, **changes)

    def to_params(self) -> list[tuple[str, str]]:
        """Query-string pairs that parse back to this filter (for links, caching and the API)."""
        pairs: list[tuple[str, str]] = [("clinic", c) for c in self.clinics]
        for name in ("condition", "site", "side", "grade_min", "grade_max"):
            value = getattr(self, name)
            if value not in ("", None):
                pairs.append((name, str(value)))
        pairs += [("procedure", p) for p in self.procedures]
        if len(self.procedures) > 1:
            pairs.append(("within_days", str(self.within_days)))
        for name in ("age_min", "age_max", "sex", "index_from", "index_to"):
            value = getattr(self, name)
            if value not in ("", None):
                pairs.append((name, value.isoformat() if isinstance(value, dt.date) else str(value)))
        return pairs

    def as_dict(self) -> dict:
        data = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, dt.date):
                value = value.isoformat()
            data[f.name] = value
        return data

    def describe(self) -> str:
        """The cohort in words, e.g. "Hallux rigidus · first MTP joint · grade 2-3 · Bone marrow concentrate
        injection + Prolotherapy within 30 days"."""
        parts = []
        if self.condition:
            parts.append(Condition(self.condition).label)
        if self.site:
            parts.append(BodySite(self.site).label)
        if self.side:
            parts.append(f"{Side(self.side).label.lower()} side")
        if self.grade_min is not None or self.grade_max is not None:
            low, high = self.grade_min, self.grade_max
            parts.append(f"grade {low}" if low == high else
                         f"grade {low}–{high}" if low is not None and high is not None else
                         f"grade ≥ {low}" if low is not None else f"grade ≤ {high}")
        if self.procedures:
            text = " + ".join(ProcedureKind(k).label for k in self.procedures)
            if self.combined_kinds:
                text += f" within {self.within_days} days"
            parts.append(text)
        if self.age_min is not None and self.age_max is not None:
            parts.append(f"age {self.age_min}–{self.age_max}")
        elif self.age_min is not None:
            parts.append(f"age ≥ {self.age_min}")
        elif self.age_max is not None:
            parts.append(f"age ≤ {self.age_max}")
        if self.sex:
            parts.append(Patient.Sex(self.sex).label.lower())
        if self.index_from or self.index_to:
            day = (lambda d: d.strftime("%b %Y")) if self.whole_months else format_date
            since = day(self.index_from) if self.index_from else "…"
            until = day(self.index_to) if self.index_to else "today"
            parts.append(f"treated {since} – {until}")
        if self.clinics:
            parts.append("clinic " + ", ".join(self.clinics))
        if self.consented_only:
            parts.append("patients with registry consent")
        return " · ".join(parts) or "All treated episodes"


def _blank(choices) -> list[tuple[str, str]]:
    return [("", "Any")] + list(choices)


class FirstOfSelect(forms.Select):
    """A single select for a repeatable parameter: the page offers one index procedure, the API and the command
    line may repeat it (a combination); the list reaches the field either way."""

    def value_from_datadict(self, data, files, name):
        getlist = getattr(data, "getlist", None)
        values = getlist(name) if getlist else data.get(name)
        if values is None:
            return []
        return [v for v in (values if isinstance(values, (list, tuple)) else [values]) if v not in ("", None)]


class CohortForm(forms.Form):
    """The filter fields with their validation; the web page renders it, the API and CLI feed it dictionaries."""

    clinic = forms.MultipleChoiceField(required=False, label="Clinics", choices=())
    condition = forms.ChoiceField(required=False, choices=_blank(Condition.choices))
    site = forms.ChoiceField(required=False, label="Body site", choices=_blank(BodySite.choices))
    side = forms.ChoiceField(required=False, choices=_blank(Side.choices))
    grade_min = forms.IntegerField(required=False, min_value=0, max_value=4, label="Grade from")
    grade_max = forms.IntegerField(required=False, min_value=0, max_value=4, label="Grade to")
    procedure = forms.MultipleChoiceField(required=False, label="Index procedure",
                                          choices=_blank(ProcedureKind.choices), widget=FirstOfSelect)
    also = forms.MultipleChoiceField(required=False, label="Also had", choices=ProcedureKind.choices,
                                     widget=forms.CheckboxSelectMultiple)
    within_days = forms.IntegerField(required=False, min_value=0, max_value=3650, label="Within (days)",
                                     help_text=f"of the index date; default {DEFAULT_WITHIN_DAYS}")
    age_min = forms.IntegerField(required=False, min_value=0, max_value=120, label="Age from")
    age_max = forms.IntegerField(required=False, min_value=0, max_value=120, label="Age to")
    sex = forms.ChoiceField(required=False, choices=_blank(Patient.Sex.choices))
    index_from = forms.DateField(required=False, label="Treated from", input_formats=["%Y-%m-%d"],
                                 widget=forms.DateInput(attrs={"type": "date"}))
    index_to = forms.DateField(required=False, label="Treated until", input_formats=["%Y-%m-%d"],
                               widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, clinic_choices=(), name_prefix: str = "", **kwargs):
        self.name_prefix = name_prefix
        super().__init__(*args, **kwargs)
        self.fields["clinic"].choices = list(clinic_choices)  # type: ignore[attr-defined]
        self.fields["clinic"].error_messages["invalid_choice"] = "Unknown clinic %(value)s."
        for name in ("procedure", "also"):
            self.fields[name].error_messages["invalid_choice"] = (
                "Unknown procedure kind %(value)s; choose from " + ", ".join(ProcedureKind.values) + ".")
        for name, enum in (("condition", Condition), ("site", BodySite), ("side", Side), ("sex", Patient.Sex)):
            self.fields[name].error_messages["invalid_choice"] = (
                f"Unknown {name} %(value)s; choose from {', '.join(enum.values)}.")
        self.fields["index_from"].error_messages["invalid"] = "Give the date as YYYY-MM-DD."
        self.fields["index_to"].error_messages["invalid"] = "Give the date as YYYY-MM-DD."

    def add_prefix(self, field_name: str) -> str:
        return f"{self.name_prefix}{field_name}"

    def clean(self):
        data = super().clean()
        data["procedure"] = [p for p in data.get("procedure") or [] if p]
        for low, high, what in (("grade_min", "grade_max", "grade"), ("age_min", "age_max", "age"),
                                ("index_from", "index_to", "date")):
            a, b = data.get(low), data.get(high)
            if a is not None and b is not None and a > b:
                self.add_error(high, f"The upper {what} is below the lower one ({b} < {a}).")
        kinds = list(data.get("procedure") or []) + list(data.get("also") or [])
        if len(set(kinds)) != len(kinds):
            self.add_error("procedure", "A procedure kind is listed twice.")
        if data.get("also") and not data.get("procedure"):
            self.add_error("procedure", "Choose the index procedure of the combination.")
        if len(kinds) > 4:
            self.add_error("procedure", "At most four procedure kinds in a combination.")
        return data

    def to_filter(self) -> CohortFilter:
        d = self.cleaned_data
        within = d.get("within_days")
        return CohortFilter(
            clinics=tuple(d.get("clinic") or ()), condition=d.get("condition") or "", site=d.get("site") or "",
            side=d.get("side") or "", grade_min=d.get("grade_min"), grade_max=d.get("grade_max"),
            procedures=tuple(d.get("procedure") or ()) + tuple(d.get("also") or ()),
            within_days=DEFAULT_WITHIN_DAYS if within is None else within,
            age_min=d.get("age_min"), age_max=d.get("age_max"), sex=d.get("sex") or "",
            index_from=d.get("index_from"), index_to=d.get("index_to"))


FIELD_NAMES = tuple(CohortForm.base_fields)


def _as_lists(params: Mapping, prefix: str = "") -> dict[str, list[str] | str]:
    """Plain values of one cohort's parameters from a QueryDict or a dict (lists for the repeatable ones)."""
    data: dict[str, list[str] | str] = {}
    getlist = getattr(params, "getlist", None)
    for name in FIELD_NAMES:
        key = prefix + name
        if getlist is not None:
            values = [v for v in getlist(key) if v not in ("", None)]
        else:
            raw = params.get(key)
            values = [] if raw in (None, "") else list(raw) if isinstance(raw, (list, tuple)) else [raw]
            values = [str(v) for v in values if v not in ("", None)]
        if not values:
            continue
        if name in LIST_FIELDS:
            data[name] = values
        elif len(values) > 1:
            data[name] = values  # the form reports "more than one value"
        else:
            data[name] = values[0]
    return data


def unknown_parameters(params: Mapping, allowed_extra=()) -> list[str]:
    known = set(FIELD_NAMES) | {VS_PREFIX + n for n in FIELD_NAMES} | set(allowed_extra)
    return sorted(k for k in params.keys() if k not in known)


def _validate(data: dict, clinic_choices, prefix: str) -> CohortFilter:
    for name, value in data.items():
        if isinstance(value, list) and name not in LIST_FIELDS:
            raise CohortFilterError({prefix + name: ["Give one value only."]})
    form = CohortForm(_querydict(data), clinic_choices=clinic_choices)
    if not form.is_valid():
        raise CohortFilterError({prefix + name: [str(m) for m in msgs] for name, msgs in form.errors.items()})
    return form.to_filter()


def _querydict(data: dict):
    """A QueryDict of plain values, so list parameters reach the form's widgets the same way from every caller."""
    from django.http import QueryDict

    query = QueryDict(mutable=True)
    for name, value in data.items():
        query.setlist(name, value if isinstance(value, list) else [value])
    return query


def display_forms(params: Mapping | None, *, clinic_codes) -> tuple[CohortForm, CohortForm]:
    """The web page's two forms (the cohort and the "vs_" comparison), bound to the request's parameters so they
    show what was asked and where it was wrong."""
    choices = [(c, c) for c in clinic_codes]
    if not params:
        return CohortForm(clinic_choices=choices), CohortForm(clinic_choices=choices, name_prefix=VS_PREFIX)
    first = CohortForm(_querydict(_as_lists(params)), clinic_choices=choices)
    second = CohortForm(_querydict({VS_PREFIX + k: v for k, v in _as_lists(params, VS_PREFIX).items()}),
                        clinic_choices=choices, name_prefix=VS_PREFIX)
    first.is_valid()
    second.is_valid()
    return first, second


def parse_filters(params: Mapping, *, clinic_codes, consented_only: bool = False) -> tuple[CohortFilter, CohortFilter | None]:
    """The cohort (and the comparison cohort when any vs_ parameter is given) from request-like parameters.
    `clinic_codes` are the clinics the caller may analyse; `consented_only` (a caller who is not the patients'
    clinician, see access.research_needs_consent) keeps patients without registry consent out of both.
    Raises CohortFilterError listing every bad value."""
    choices = [(c, c) for c in clinic_codes]
    errors: dict[str, list[str]] = {}
    cohort = versus = None
    first = _as_lists(params)
    try:
        cohort = _validate(first, choices, "")
    except CohortFilterError as exc:
        errors.update(exc.errors)
    second = _as_lists(params, VS_PREFIX)
    if second:
        try:
            merged = {**first, **second}
            if "procedure" in second and "also" not in second:
                merged.pop("also", None)  # a new index procedure starts a new combination
            versus = _validate(merged, choices, VS_PREFIX)
        except CohortFilterError as exc:
            own = {k.removeprefix(VS_PREFIX): v for k, v in exc.errors.items()}
            # A value taken from the first cohort is reported once, under its own name.
            errors.update({VS_PREFIX + k: v for k, v in own.items() if k not in errors or k in second})
    if errors:
        raise CohortFilterError(errors)
    if consented_only:
        cohort = month_bounds(cohort.replace(consented_only=True))
        versus = month_bounds(versus.replace(consented_only=True)) if versus is not None else None
    return cohort, versus


MONTHS_NOTE = ("For your role, treatment dates are counted in whole months: a date filter runs from the first day "
               "of its month to the last day of its month.")


def month_bounds(f: CohortFilter) -> CohortFilter:
    """The filter with its index dates widened to whole months (from the 1st of the first month to the last day of
    the last one), for roles without clinical access: a single day could single out one patient
    (analytics.disclosure)."""
    if not (f.index_from or f.index_to):
        return f
    low = f.index_from.replace(day=1) if f.index_from else None
    high = None
    if f.index_to:
        next_month = (f.index_to.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
        high = next_month - dt.timedelta(days=1)
    return f.replace(index_from=low, index_to=high, whole_months=True)
