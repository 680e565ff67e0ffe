"""Forms of the instruments app: choosing an instrument and entering a paper or phone response."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone

from orthoreg.registry.forms import apply_errors
from orthoreg.registry.rules import TIME_POINT_RE

from .definitions import all_definitions
from .services import TIME_POINTS
from .types import Definition, Item, format_number

NOT_ANSWERED = ""
NOT_APPLICABLE = "na"


def _episode_field(patient) -> forms.ModelChoiceField:
    return forms.ModelChoiceField(queryset=patient.episodes.all(), required=False, empty_label="— no episode —",
                                  help_text="The condition this questionnaire is about.")


def _time_point_field() -> forms.ChoiceField:
    return forms.ChoiceField(choices=[("", "— none —"), *TIME_POINTS], required=False, label="Time point")


class InstrumentPickForm(forms.Form):
    """Step one (GET): which instrument, for which episode and time point."""

    instrument = forms.ChoiceField(label="Instrument")

    def __init__(self, *args, patient, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["instrument"].choices = [
            (d.code, f"{d.title} ({d.short_title})" + ("" if d.text_installed else " — licensed text not installed"))
            for d in all_definitions()]
        self.fields["episode"] = _episode_field(patient)
        self.fields["time_point"] = _time_point_field()


class ResponseForm(forms.Form):
    """Step two: the answers, one field per item, named item_<n> (1-based) like the service's errors."""

    completed_on = forms.DateField(label="Completed on", widget=forms.DateInput(attrs={"type": "date"}),
                                   help_text="The date the patient answered.")

    def __init__(self, *args, definition: Definition, patient, **kwargs):
        super().__init__(*args, **kwargs)
        self.definition = definition
        self.patient = patient
        self.fields["episode"] = _episode_field(patient)
        self.fields["time_point"] = _time_point_field()
        self.fields["completed_on"].initial = timezone.localdate()
        self.order_fields(["episode", "time_point", "completed_on"])
        for item in definition.items:
            self.fields[self.item_field(item)] = self._item_field(item)

    @staticmethod
    def item_field(item: Item) -> str:
        return f"item_{item.number}"

    def _item_field(self, item: Item) -> forms.Field:
        label = f"{item.number}. {item.text}"
        if item.type == "choice":
            choices = [(NOT_ANSWERED, "— not answered —")]
            choices += [(format_number(o.value), o.label) for o in item.scored_options]
            if item.has_not_applicable:
                choices.append((NOT_APPLICABLE, "Not applicable"))
            return forms.ChoiceField(label=label, choices=choices, required=False)
        step = "1" if item.type == "integer" else "any"
        return forms.CharField(
            label=label, required=False, max_length=20,
            help_text=f"{format_number(item.minimum)} to {format_number(item.maximum)}; leave empty if unanswered.",
            widget=forms.NumberInput(attrs={"min": format_number(item.minimum), "max": format_number(item.maximum),
                                            "step": step,
                                            "inputmode": "numeric" if item.type == "integer" else "decimal"}))

    def item_rows(self):
        """(item, bound field) pairs for the template."""
        return [(item, self[self.item_field(item)]) for item in self.definition.items]

    def meta_fields(self):
        return [self["episode"], self["time_point"], self["completed_on"]]

    def clean(self):
        cleaned = super().clean()
        for item in self.definition.items:
            name = self.item_field(item)
            if name in self.errors:
                continue
            raw = (self.data.get(self.add_prefix(name)) or "").strip()
            if raw in (NOT_ANSWERED, NOT_APPLICABLE):
                cleaned[name] = None
                continue
            try:
                value = float(raw.replace(",", "."))
            except ValueError:
                self.add_error(name, "Enter a number, or leave it empty if unanswered.")
                continue
            if item.type == "integer" and not value.is_integer():
                self.add_error(name, f"Enter a whole number from {format_number(item.minimum)} to "
                                     f"{format_number(item.maximum)}: {raw} has a fraction.")
                continue
            cleaned[name] = int(value) if value.is_integer() else value
        day = cleaned.get("completed_on")
        if day and day > timezone.localdate():
            self.add_error("completed_on", "This date is in the future.")
        time_point = cleaned.get("time_point") or ""
        if time_point and not TIME_POINT_RE.match(time_point):
            self.add_error("time_point", "Choose a time point from the list.")
        return cleaned

    @property
    def answers(self) -> list:
        return [self.cleaned_data.get(self.item_field(item)) for item in self.definition.items]

    @property
    def completed_at(self) -> dt.datetime:
        """Noon local time on the day given (so the date never shifts across time zones); now, for today."""
        noon = timezone.make_aware(dt.datetime.combine(self.cleaned_data["completed_on"], dt.time(12)))
        return min(noon, timezone.now())

    def apply_errors(self, error: ValidationError) -> None:
        """Put a service ValidationError on the matching fields (item_<n>, episode, ...), the rest on the form."""
        apply_errors(self, error, rename={"completed_at": "completed_on"})
