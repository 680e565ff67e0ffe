"""Questionnaire responses. Definitions are data files (data/, read by definitions.py), not tables.

A Response keeps the answers as given and the scores computed from them when it was recorded, so a
later change of a scoring rule never rewrites history silently. Every write goes through services.py;
save() holds no logic, so the model can be bulk-created (the synthetic-data generator does).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse
from simple_history.models import HistoricalRecords

from orthoreg.formats import format_date

from .definitions import UnknownInstrument, get_definition
from .types import DefinitionError, format_number


class Response(models.Model):
    class Source(models.TextChoices):
        PATIENT_LINK = "patient_link", "Patient (survey link)"
        STAFF = "staff", "Staff entry (paper or phone)"
        IMPORT = "import", "Import"

    patient_path = "patient"  # where its patient (and clinic) are: orthoreg.accounts.access

    patient = models.ForeignKey("registry.Patient", on_delete=models.CASCADE, related_name="responses")
    episode = models.ForeignKey("registry.Episode", on_delete=models.CASCADE, null=True, blank=True,
                                related_name="responses")
    time_point = models.CharField(max_length=16, blank=True, help_text="e.g. baseline, 6w, 3m, 6m, 12m, 24m")
    instrument = models.CharField(max_length=40, help_text="Instrument code, e.g. nprs")
    instrument_version = models.CharField(max_length=16)
    answers = models.JSONField(default=list, help_text="In item order; null = not applicable or unanswered")
    scores = models.JSONField(default=dict, blank=True, help_text="Subscale code -> score")
    score = models.FloatField(null=True, blank=True, help_text="The primary subscale's score")
    valid = models.BooleanField(default=False)
    invalid_reason = models.CharField(max_length=500, blank=True)
    completed_at = models.DateTimeField()
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.STAFF)
    entered_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, help_text="Last change (the API's updated_since)")
    history = HistoricalRecords()

    class Meta:
        ordering = ["patient", "instrument", "completed_at", "id"]
        indexes = [
            models.Index(fields=["instrument", "time_point"]),
            models.Index(fields=["episode", "instrument"]),
            models.Index(fields=["patient", "completed_at"]),
        ]

    def __str__(self) -> str:
        when = f" at {self.time_point}" if self.time_point else ""
        return f"{self.instrument}{when} on {format_date(self.completed_at)}"

    def get_absolute_url(self) -> str:
        return reverse("instruments:response_detail", args=[self.pk])

    @property
    def definition(self):
        """The instrument's definition, or None when the instrument is no longer installed."""
        try:
            return get_definition(self.instrument)
        except (UnknownInstrument, DefinitionError):
            return None

    @property
    def score_display(self) -> str:
        return format_number(self.score) if self.score is not None else "—"
