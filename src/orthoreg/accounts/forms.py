from django import forms

from .models import AuditEvent


class TokenForm(forms.Form):
    token = forms.RegexField(label="6-digit code", regex=r"^\s*\d{3}\s?\d{3}\s*$", max_length=8,
                             error_messages={"invalid": "Enter the 6 digits your authenticator app shows."},
                             widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric",
                                                           "autofocus": True}))


class EnrolmentForm(TokenForm):
    """Setting up the authenticator app: its first code and, where two-factor is required, the enrolment code."""

    field_order = ["enrolment_code", "token"]

    def __init__(self, *args, needs_code: bool, **kwargs):
        super().__init__(*args, **kwargs)
        if needs_code:
            self.fields["enrolment_code"] = forms.CharField(
                label="Enrolment code", max_length=20, strip=True,
                help_text="The one-time code your administrator gave you (e.g. ABCD-EFGH-JKLM).",
                widget=forms.TextInput(attrs={"autocomplete": "off", "autocapitalize": "characters",
                                              "spellcheck": "false"}))
            self.order_fields(self.field_order)
            self.fields["token"].widget.attrs.pop("autofocus", None)
            self.fields["enrolment_code"].widget.attrs["autofocus"] = True


class AuditFilterForm(forms.Form):
    username = forms.CharField(required=False)
    action = forms.ChoiceField(required=False, choices=[("", "Any")] + AuditEvent.Action.choices)
    # A record id is a 64-bit integer: a larger number cannot name a patient (and would overflow the query).
    patient = forms.IntegerField(required=False, min_value=1, max_value=2**63 - 1, label="Patient id",
                                 error_messages={"max_value": "No patient has an id this large; check the number."})
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
