"""Forms of the follow-up app: cancelling, revoking, protocols. The questionnaire itself is
instruments.forms.InstrumentForm."""

from __future__ import annotations

from django import forms

from orthoreg.instruments.definitions import all_definitions

from .models import Protocol, TimePoint


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
