from django import forms

from .models import AuditEvent


class TokenForm(forms.Form):
    token = forms.RegexField(label="6-digit code", regex=r"^\s*\d{3}\s?\d{3}\s*$", max_length=8,
                             error_messages={"invalid": "Enter the 6 digits your authenticator app shows."},
                             widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric",
                                                           "autofocus": True}))


class AuditFilterForm(forms.Form):
    username = forms.CharField(required=False)
    action = forms.ChoiceField(required=False, choices=[("", "Any")] + AuditEvent.Action.choices)
    patient = forms.IntegerField(required=False, min_value=1, label="Patient id")
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
