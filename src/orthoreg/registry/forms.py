"""Forms of the registry. Field rules live on the models (clean); forms only shape the input."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from django import forms
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from . import grading
from .models import AdverseEvent, Episode, Exam, Grade, Note, Patient, Procedure, validate_clinical_date


def error_messages(error: ValidationError) -> dict[str, list[str]]:
    """A service's ValidationError as {field or "__all__": [messages]} (for a form, a JSON answer, a message)."""
    if hasattr(error, "error_dict"):
        return {field: [str(m) for e in items for m in e.messages] for field, items in error.error_dict.items()}
    return {"__all__": [str(m) for m in error.messages]}


def apply_errors(form: forms.BaseForm, error: ValidationError, *, rename: Mapping[str, str] | None = None,
                 reword: Callable[[str], str] | None = None) -> None:
    """The one mapping of a service's ValidationError onto a form: each message on the form field it names (after
    `rename`: a service field the form calls otherwise), reworded by `reword` there; the rest on top of the form."""
    for name, messages in error_messages(error).items():
        field = (rename or {}).get(name, name)
        on_field = field in form.fields
        for message in messages:
            form.add_error(field if on_field else None, reword(message) if reword and on_field else message)


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, attrs=None):
        super().__init__(attrs=attrs, format="%Y-%m-%d")


class RegistryModelForm(forms.ModelForm):
    """Date fields become native date pickers; textareas are short."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            if isinstance(field, forms.DateField):
                field.widget = DateInput()
            elif isinstance(field.widget, forms.Textarea):
                field.widget.attrs.setdefault("rows", 3)
            if isinstance(field, forms.NullBooleanField) and isinstance(field.widget, forms.NullBooleanSelect):
                field.widget.choices = [("unknown", "Unknown"), ("true", "Yes"), ("false", "No")]


class PatientForm(RegistryModelForm):
    class Meta:
        model = Patient
        fields = ["mrn", "given_name", "family_name", "initials", "birth_date", "sex", "email", "phone",
                  "status", "status_date", "consent_registry", "consent_date", "consent_version", "notes"]


class EpisodeForm(RegistryModelForm):
    class Meta:
        model = Episode
        fields = ["body_site", "side", "condition", "icd10_code", "onset_date", "status", "notes"]
        help_texts = {"icd10_code": "Leave blank: it is derived from condition, site and side."}


def _bounded(label: str, low: float, high: float, unit: str, **kwargs) -> forms.FloatField:
    """A number field whose refusal says the possible range in words (used live and on save)."""
    message = f"Enter a number from {low:g} to {high:g} {unit}."
    return forms.FloatField(label=label, required=False, min_value=low, max_value=high,
                            error_messages={"min_value": message, "max_value": message, "invalid": message},
                            **kwargs)


class GradeForm(forms.Form):
    """Grade inputs per domain, the live suggestion, and the clinician's grade of record."""

    date = forms.DateField(widget=DateInput(), initial=timezone.localdate)
    system = forms.ChoiceField(choices=Grade.System.choices)
    dorsiflexion = _bounded("Dorsiflexion (°)", -30, 120, "degrees")
    other_side_dorsiflexion = _bounded("Other side dorsiflexion (°)", -30, 120, "degrees",
                                       help_text="Gives the % loss versus the other foot")
    plantar_flexion = _bounded("Plantar flexion (°)", -30, 90, "degrees", help_text="Grade 3 often has 10° or less")
    loss = _bounded("Loss vs other side (%)", 0, 100, "percent",
                    help_text="Only when the other side's degrees are not known")
    radiograph = forms.TypedChoiceField(
        label="Radiograph findings", required=False, coerce=int, empty_value=None,
        choices=[("", "—")] + [(k, f"{k}: {v}") for k, v in grading.RADIOGRAPH_FINDINGS.items()])
    clinical = forms.TypedChoiceField(
        label="Clinical findings", required=False, coerce=int, empty_value=None,
        choices=[("", "—")] + [(k, f"{k}: {v}") for k, v in grading.CLINICAL_FINDINGS.items()])
    midrange_pain = forms.BooleanField(label="Pain at mid-range of passive motion", required=False)
    prior_cheilectomy = forms.BooleanField(label="Joint after cheilectomy", required=False)
    kl_grade = forms.TypedChoiceField(label="Kellgren-Lawrence reading", required=False, coerce=int,
                                      empty_value=None, choices=[("", "—")] + [(k, str(k)) for k in range(5)])
    grade = forms.TypedChoiceField(label="Grade of record", required=False, coerce=int, empty_value=None,
                                   choices=[("", "Use the suggestion")] + [(k, str(k)) for k in range(5)],
                                   help_text="The clinician's grade is the one of record")
    notes = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)

    CS_INPUTS = ("dorsiflexion", "other_side_dorsiflexion", "loss", "plantar_flexion", "radiograph", "clinical",
                 "midrange_pain", "prior_cheilectomy")
    KL_INPUTS = ("kl_grade",)

    def __init__(self, *args, episode: Episode, **kwargs):
        self.episode = episode
        super().__init__(*args, **kwargs)

    @classmethod
    def initial_for(cls, episode: Episode) -> dict:
        """A new grade starts from the motion measured at the episode's latest exam (dorsiflexion, plantar
        flexion), which the clinician can change."""
        exam = episode.exams.filter(models.Q(dorsiflexion_deg__isnull=False) |
                                    models.Q(plantarflexion_deg__isnull=False)).order_by("-date", "-id").first()
        if exam is None:
            return {}
        return {name: value for name, value in (("dorsiflexion", exam.dorsiflexion_deg),
                                                ("plantar_flexion", exam.plantarflexion_deg)) if value is not None}

    @classmethod
    def initial_from(cls, grade: Grade) -> dict:
        return {"date": grade.date, "system": grade.system, "grade": grade.grade, "notes": grade.notes,
                **grade.inputs}

    def clean(self):
        data = super().clean()
        system = data.get("system")
        day = data.get("date")
        for name, message in validate_clinical_date(None, "date", day, self.episode.patient).items():
            self.add_error(name, message)
        if system == Grade.System.COUGHLIN_SHURNAS and self.episode.body_site != "first_mtp":
            self.add_error("system", "Coughlin-Shurnas grades the first MTP joint only.")
        return data

    def inputs(self) -> dict:
        data = self.cleaned_data
        names = self.CS_INPUTS if data.get("system") == Grade.System.COUGHLIN_SHURNAS else self.KL_INPUTS
        # 0 is a finding (0 degrees of dorsiflexion, radiograph grade 0); only an empty field or an unticked box
        # is left out. `0 == False` in Python, so the test is on identity, never on membership.
        return {name: value for name in names
                if (value := data.get(name)) is not None and value != "" and value is not False}

    def suggestion(self) -> grading.GradeSuggestion | None:
        try:
            return grading.suggest(self.cleaned_data.get("system", ""), self.inputs())
        except grading.GradeInputError:
            return None

    def partial_suggestion(self) -> grading.GradeSuggestion | None:
        """The suggestion from the inputs that are valid so far (live while typing, and again after a failed
        save, so it never blanks because another field is wrong)."""
        if not self.is_bound:
            return None
        self.is_valid()
        return self.suggestion() if "system" in self.cleaned_data else None

    def input_errors(self) -> list[tuple[str, list[str]]]:
        """(input name, its messages) for every calculator input, empty where it is fine: the live errors under
        each field. A refused value is named so the user sees what was not used."""
        self.is_valid()
        rows = []
        for name in (*self.CS_INPUTS, *self.KL_INPUTS):
            raw = (self.data.get(self.add_prefix(name)) or "").strip()
            errors = [f"{raw}: {e}" if raw else str(e) for e in self.errors.get(name, [])]
            rows.append((name, errors))
        return rows


class ProcedureForm(RegistryModelForm):
    FIELDSETS = [
        ("Procedure", ["date", "kind", "category", "target_structure", "target_detail", "image_guidance", "cpt_code",
                       "is_index", "performer_name"], ""),
        ("Recipient at the time of the procedure", ["bmi", "nsaid_use", "anticoagulant_use", "steroid_use",
                                                    "smoking"], ""),
        ("Harvest", ["harvest_site", "harvest_volume_ml", "harvest_anticoagulant"], "biologic"),
        ("Processing", ["processing_system", "spins", "g_force", "spin_minutes", "final_volume_ml"], "biologic"),
        ("Characterisation", ["total_nucleated_cells", "cfu_f_per_ml", "platelets_per_ul", "leukocytes_per_ul",
                              "platelet_fold", "activation"], "biologic"),
        ("Delivery", ["delivered_volume_ml", "anaesthetic"], ""),
        ("Prolotherapy", ["dextrose_percent", "injection_sites"], "prolotherapy"),
        ("After the procedure", ["post_protocol", "notes"], ""),
    ]

    class Meta:
        model = Procedure
        fields = ["date", "kind", "category", "target_structure", "target_detail", "image_guidance", "cpt_code",
                  "is_index", "performer_name", "bmi", "nsaid_use", "anticoagulant_use", "steroid_use", "smoking",
                  "harvest_site", "harvest_volume_ml", "harvest_anticoagulant", "processing_system", "spins",
                  "g_force", "spin_minutes", "final_volume_ml", "total_nucleated_cells", "cfu_f_per_ml",
                  "platelets_per_ul", "leukocytes_per_ul", "platelet_fold", "activation", "delivered_volume_ml",
                  "anaesthetic", "dextrose_percent", "injection_sites", "post_protocol", "notes"]

    def fieldsets(self):
        for title, names, group in self.FIELDSETS:
            yield {"title": title, "group": group, "fields": [self[name] for name in names]}


class ExamForm(RegistryModelForm):
    class Meta:
        model = Exam
        fields = ["date", "dorsiflexion_deg", "plantarflexion_deg", "stability_findings", "other_findings"]


class AdverseEventForm(RegistryModelForm):
    class Meta:
        model = AdverseEvent
        fields = ["date", "severity", "serious", "description", "resolved_date"]


class NoteForm(RegistryModelForm):
    class Meta:
        model = Note
        fields = ["date", "text"]
