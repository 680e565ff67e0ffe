"""Forms of the instruments app: choosing an instrument, and the one questionnaire form (InstrumentForm) that the
patient's survey page, the staff entry of a scheduled assessment and the staff entry of a paper or phone response
all use, with the one field template instruments/_questions.html."""

from __future__ import annotations

import datetime as dt
import re

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone

from orthoreg.registry.forms import apply_errors
from orthoreg.registry.rules import TIME_POINT_RE

from .definitions import all_definitions
from .scoring import check_answer
from .services import TIME_POINTS
from .types import Definition, Item, format_number

NOT_ANSWERED = ""
NOT_APPLICABLE = "na"
# The words at the two ends of a short numbered scale, by (instrument code, item linkId), as the patient sees them
# under the row of buttons. The definitions carry no end labels (yet); a scale not listed shows numbers only.
SCALE_ENDS = {("nprs", "pain"): ("No pain", "Worst pain imaginable")}


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


def field_name(item: Item) -> str:
    return f"item_{item.number}"


def _is_short_scale(item: Item) -> bool:
    """A numeric item with whole-number ends at most ten steps apart (the 0-10 pain rating)."""
    low, high = item.minimum, item.maximum
    return (low is not None and high is not None and float(low).is_integer() and float(high).is_integer()
            and 0 < high - low <= 10)


class ScaleField(forms.ChoiceField):
    """The numbered buttons of a short scale. The form's clean() checks the value against the item (one message,
    the same as for the number box), so a tampered value is not also refused here as an unknown choice."""

    ends: tuple[str, str] | None = None  # the words at the low and the high end

    def validate(self, value):
        pass


def _as_question(message: str) -> str:
    """A scoring rule's message under its question: without its "Item 2: " prefix, and "item 1" is "question 1"
    (the questions of a page with several are numbered)."""
    message = re.sub(r"\bitem (\d+)\b", r"question \1", re.sub(r"^Item \d+: ", "", message))
    return message[:1].upper() + message[1:]


class InstrumentForm(forms.Form):
    """Answers to one instrument, one field per item named item_<n> (1-based, like the services' errors).

    `complete=False` (save and continue later) lets required items stay empty. `scales=True` (the patient's page)
    shows a short numeric range as a row of numbered buttons; staff keep the number box, which also takes a decimal
    from a paper form. With `patient` (staff copying a paper or phone response that no schedule asked for) the form
    also asks for the episode, time point and day answered, shows a choice as a drop-down that may stay "not
    answered" (quicker when copying from paper), and leaves the range checks to the service, whose messages (naming
    the item) land on the fields."""

    def __init__(self, *args, definition: Definition, complete: bool = True, scales: bool = False, patient=None,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.definition = definition
        self.complete = complete
        self.patient = patient
        self.paper = patient is not None
        if self.paper:
            self.fields["episode"] = _episode_field(patient)
            self.fields["time_point"] = _time_point_field()
            self.fields["completed_on"] = forms.DateField(
                label="Completed on", widget=forms.DateInput(attrs={"type": "date"}), initial=timezone.localdate(),
                help_text="The date the patient answered.")
        for item in definition.items:
            self.fields[field_name(item)] = field = self._field(item, scales)
            if isinstance(field, ScaleField):
                field.ends = SCALE_ENDS.get((definition.code, item.link_id))

    def _field(self, item: Item, scales: bool) -> forms.Field:
        if item.type == "choice" and self.paper:
            choices = [(NOT_ANSWERED, "— not answered —")]
            choices += [(format_number(o.value), o.label) for o in item.scored_options]
            if item.has_not_applicable:
                choices.append((NOT_APPLICABLE, "Not applicable"))
            return forms.ChoiceField(label=item.text, choices=choices, required=False)
        if item.type == "choice":
            choices = [(format_number(o.value), o.display) for o in item.scored_options]
            if item.has_not_applicable:
                choices.append((NOT_APPLICABLE, next(o.display for o in item.options if o.not_applicable)))
            return forms.ChoiceField(label=item.text, choices=choices, required=False,
                                     widget=forms.RadioSelect(attrs={"class": "choice"}))
        if scales and _is_short_scale(item):  # 0 to 10: a row of numbered buttons, the way a patient expects to answer
            whole = range(int(item.minimum), int(item.maximum) + 1)
            return ScaleField(label=item.text, choices=[(str(n), str(n)) for n in whole], required=False,
                              widget=forms.RadioSelect(attrs={"class": "scale"}))
        step = "1" if item.type == "integer" else "any" if self.paper else "0.1"
        help_text = (f"{format_number(item.minimum)} to {format_number(item.maximum)}; leave empty if unanswered."
                     if self.paper else
                     f"A {'whole ' if item.type == 'integer' else ''}number from {format_number(item.minimum)} to "
                     f"{format_number(item.maximum)}")
        return forms.CharField(
            label=item.text, required=False, max_length=20 if self.paper else 12, help_text=help_text,
            widget=forms.NumberInput(attrs={"min": format_number(item.minimum), "max": format_number(item.maximum),
                                            "step": step, "class": "big-number",
                                            "inputmode": "numeric" if self.paper and item.type == "integer"
                                            else "decimal"}))

    @classmethod
    def initial_from(cls, answers: dict) -> dict:
        return {k: v for k, v in (answers or {}).items() if k.startswith("item_")}

    def item_fields(self):
        """The bound fields of the questions, in order (the template numbers them)."""
        return [self[field_name(item)] for item in self.definition.items]

    def meta_fields(self):
        """Episode, time point and day answered (staff entry of a paper or phone response); none otherwise."""
        return [self[name] for name in ("episode", "time_point", "completed_on") if name in self.fields]

    def clean(self):
        cleaned = super().clean()
        for item in self.definition.items:
            name = field_name(item)
            if self.paper and name in self.errors:
                continue
            raw = (self.data.get(self.add_prefix(name)) or "").strip()
            if raw in ("", NOT_APPLICABLE):
                if raw == "" and item.required and self.complete and not self.paper:
                    self.add_error(name, "Please answer this question.")
                cleaned[name] = None
                continue
            try:
                number = float(raw.replace(",", "."))
            except ValueError:
                self.add_error(name, "Enter a number, or leave it empty if unanswered." if self.paper
                               else self.what_to_enter(item))
                continue
            if self.paper:  # the service checks the range and says which item is wrong
                if item.type == "integer" and not number.is_integer():
                    self.add_error(name, f"Enter a whole number from {format_number(item.minimum)} to "
                                         f"{format_number(item.maximum)}: {raw} has a fraction.")
                    continue
                cleaned[name] = int(number) if number.is_integer() else number
                continue
            value, reason = check_answer(item, number)
            if reason:
                self.add_error(name, self.what_to_enter(item))
            else:
                cleaned[name] = value
        if self.paper:
            day = cleaned.get("completed_on")
            if day and day > timezone.localdate():
                self.add_error("completed_on", "This date is in the future.")
            time_point = cleaned.get("time_point") or ""
            if time_point and not TIME_POINT_RE.match(time_point):
                self.add_error("time_point", "Choose a time point from the list.")
        return cleaned

    def what_to_enter(self, item: Item) -> str:
        """What a good answer is, in plain words: the message for an answer that is not one."""
        if item.type == "choice":
            return "Choose one of the answers."
        ends = f"from {format_number(item.minimum)} to {format_number(item.maximum)}"
        if isinstance(self.fields[field_name(item)], ScaleField):
            return f"Choose one number {ends}."
        return f"Enter a {'whole ' if item.type == 'integer' else ''}number {ends}."

    def add_error(self, field, error):
        """Every field with a message says so to a screen reader: aria-invalid, and aria-describedby pointing at
        the message (the template gives it the id <field>-error)."""
        super().add_error(field, error)
        for name in self.errors:
            if name in self.fields:
                self.fields[name].widget.attrs.update({"aria-invalid": "true",
                                                       "aria-describedby": f"{self.add_prefix(name)}-error"})

    @property
    def answers(self) -> list:
        return [self.cleaned_data.get(field_name(item)) for item in self.definition.items]

    @property
    def draft(self) -> dict:
        """What was typed so far, as posted (kept even when not yet valid)."""
        return {field_name(item): self.data.get(self.add_prefix(field_name(item)), "")
                for item in self.definition.items}

    @property
    def completed_at(self) -> dt.datetime:
        """Noon local time on the day given (so the date never shifts across time zones); now, for today."""
        noon = timezone.make_aware(dt.datetime.combine(self.cleaned_data["completed_on"], dt.time(12)))
        return min(noon, timezone.now())

    def apply_errors(self, error: ValidationError) -> None:
        """A service's ValidationError on the matching fields (item_<n>, episode, ...), the rest on the form. On the
        patient's and the scheduled pages the scoring rules' messages stand under their question without their
        "Item 2: " prefix ("item 1" is "question 1": the questions of a page with several are numbered)."""
        if self.paper:
            apply_errors(self, error, rename={"completed_at": "completed_on"})
        else:
            apply_errors(self, error, reword=_as_question)
