"""One instrument as a form: radio buttons for choices (large tap targets), a number box for numbers."""

from __future__ import annotations

import re

from django import forms

from orthoreg.instruments.definitions import all_definitions
from orthoreg.instruments.scoring import check_answer
from orthoreg.instruments.types import Definition, Item, format_number
from orthoreg.registry.forms import apply_errors

from .models import Protocol, TimePoint

NOT_APPLICABLE = "na"
# The words at the two ends of a short numbered scale, by (instrument code, item linkId), as the patient sees them
# under the row of buttons. The definitions carry no end labels (yet); a scale not listed shows numbers only.
SCALE_ENDS = {("nprs", "pain"): ("No pain", "Worst pain imaginable")}


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
    """Answers to one instrument. `complete=False` (save and continue later) lets required items stay empty.
    `scales=True` (the patient's page) shows a short numeric range as a row of numbered buttons; staff keep the
    number box, which also takes a decimal from a paper form."""

    def __init__(self, *args, definition: Definition, complete: bool = True, scales: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.definition = definition
        self.complete = complete
        for item in definition.items:
            self.fields[field_name(item)] = field = self._field(item, scales)
            if isinstance(field, ScaleField):
                field.ends = SCALE_ENDS.get((definition.code, item.link_id))

    @staticmethod
    def _field(item: Item, scales: bool) -> forms.Field:
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
        step = "1" if item.type == "integer" else "0.1"
        return forms.CharField(
            label=item.text, required=False, max_length=12,
            help_text=f"A {'whole ' if item.type == 'integer' else ''}number from {format_number(item.minimum)} to "
                      f"{format_number(item.maximum)}",
            widget=forms.NumberInput(attrs={"min": format_number(item.minimum), "max": format_number(item.maximum),
                                            "step": step, "inputmode": "decimal", "class": "big-number"}))

    @classmethod
    def initial_from(cls, answers: dict) -> dict:
        return {k: v for k, v in (answers or {}).items() if k.startswith("item_")}

    def clean(self):
        cleaned = super().clean()
        for item in self.definition.items:
            name = field_name(item)
            raw = (self.data.get(self.add_prefix(name)) or "").strip()
            if raw in ("", NOT_APPLICABLE):
                if raw == "" and item.required and self.complete:
                    self.add_error(name, "Please answer this question.")
                cleaned[name] = None
                continue
            try:
                number = float(raw.replace(",", "."))
            except ValueError:
                self.add_error(name, self.what_to_enter(item))
                continue
            value, reason = check_answer(item, number)
            if reason:
                self.add_error(name, self.what_to_enter(item))
            else:
                cleaned[name] = value
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

    def apply_errors(self, error) -> None:
        """The scoring rules' messages, under the question they are about (without their "Item 2: " prefix, and
        "item 1" is "question 1": the questions of a page with several are numbered)."""
        apply_errors(self, error, reword=_as_question)


class CancelForm(forms.Form):
    reason = forms.CharField(max_length=200, help_text="Why this questionnaire will not be asked")


class RevokeForm(forms.Form):
    reason = forms.CharField(max_length=200, help_text="Why this invitation is stopped")


class ProtocolForm(forms.ModelForm):
    class Meta:
        model = Protocol
        fields = ["name", "condition", "body_site", "procedure_kind", "active", "stop_on_conversion",
                  "reminder_after_days", "max_reminders"]


class TimePointForm(forms.ModelForm):
    instruments = forms.MultipleChoiceField(choices=(), widget=forms.CheckboxSelectMultiple,
                                            help_text="Licensed instruments are sent only once their text is "
                                                      "installed; staff can always enter them.")

    class Meta:
        model = TimePoint
        fields = ["label", "offset_months", "offset_days", "window_before_days", "window_after_days", "instruments",
                  "order"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["instruments"].choices = [(d.code, d.short_title or d.code) for d in all_definitions()
                                              if d.subscales]


def time_point_formset(*args, **kwargs):
    formset = forms.inlineformset_factory(Protocol, TimePoint, form=TimePointForm, extra=1, can_delete=True)
    return formset(*args, **kwargs)
