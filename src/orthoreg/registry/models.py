"""Clinics, patients, episodes, grades, procedures, exams and adverse events.

Models hold invariants (clean) and small derived properties; every write goes through services.py.
Every clinical record keeps its change history (django-simple-history).
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.urls import reverse
from django.utils import timezone
from simple_history.models import HistoricalRecords

from orthoreg.formats import format_date

from . import coding
from .coding import (
    BodySite,
    Condition,
    ImageGuidance,
    ProcedureCategory,
    ProcedureKind,
    Side,
    TargetStructure,
)


def _range(low, high):
    return [MinValueValidator(low), MaxValueValidator(high)]


# A clinic's name goes into email subjects and page titles: one line, no control characters (a newline in a
# mail header is refused by the mail library, so every invitation would fail).
no_control_characters = RegexValidator(
    r"\A[^\x00-\x1f\x7f-\x9f\u2028\u2029]*\Z",
    "Use one line of text: no line breaks, tabs or other control characters.", code="control_characters")
# Initials go into file names of downloads (case report PDFs): letters and digits, with a dot or hyphen between.
initials_validator = RegexValidator(
    r"\A[^\W_]+(?:[.\-][^\W_]+)*\.?\Z",
    "Initials are letters (a dot or hyphen may separate them), e.g. DF, J.P. or A-M; no spaces, quotes or "
    "line breaks.", code="initials")


class Clinic(models.Model):
    clinic_path = "id"  # where each model's clinic and patient are: orthoreg.accounts.access

    code = models.SlugField(max_length=32, unique=True, help_text="Short code, e.g. DEMO-EAST")
    name = models.CharField(max_length=200, validators=[no_control_characters])
    timezone = models.CharField(max_length=64, default="UTC")
    invitations_require_consent = models.BooleanField(
        default=True, help_text="Send follow-up invitations only to patients with registry consent.")
    public_outcomes = models.BooleanField(
        default=False, help_text="Opt in to the public aggregated outcomes page.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, help_text="Last change (the API's updated_since)")
    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        import zoneinfo

        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValidationError({"timezone": f"{self.timezone!r} is not a time zone (e.g. Europe/Berlin, "
                                               "America/Denver, UTC)."}) from None


class Patient(models.Model):
    patient_path = ""  # itself

    class Sex(models.TextChoices):
        FEMALE = "female", "Female"
        MALE = "male", "Male"
        OTHER = "other", "Other"
        UNKNOWN = "unknown", "Unknown"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        WITHDRAWN = "withdrawn", "Withdrawn"
        DECEASED = "deceased", "Deceased"

    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="patients")
    mrn = models.CharField("MRN", max_length=64, help_text="Medical record number, unique within the clinic")
    given_name = models.CharField(max_length=100)
    family_name = models.CharField(max_length=100)
    initials = models.CharField(max_length=8, blank=True, validators=[initials_validator],
                                help_text="Derived from the names when left blank")
    birth_date = models.DateField()
    sex = models.CharField(max_length=10, choices=Sex.choices, default=Sex.UNKNOWN)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=40, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.ACTIVE)
    status_date = models.DateField(null=True, blank=True, help_text="Date of withdrawal or death")
    consent_registry = models.BooleanField("registry consent", default=False)
    consent_date = models.DateField(null=True, blank=True)
    consent_version = models.CharField(max_length=32, blank=True)
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["family_name", "given_name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["clinic", "mrn"], name="patient_mrn_unique_per_clinic"),
        ]
        indexes = [
            models.Index(fields=["clinic", "family_name"]),
            models.Index(fields=["initials"]),
            # the patient list's order: a page is read off the index, never by sorting every patient
            models.Index(fields=["family_name", "given_name", "id"], name="patient_list_order"),
        ]

    def __str__(self) -> str:
        return f"{self.family_name}, {self.given_name} ({self.mrn})"

    def get_absolute_url(self) -> str:
        return reverse("registry:patient_detail", args=[self.pk])

    @property
    def full_name(self) -> str:
        return f"{self.given_name} {self.family_name}"

    def age_on(self, day: dt.date) -> int:
        b = self.birth_date
        return day.year - b.year - ((day.month, day.day) < (b.month, b.day))

    @property
    def age(self) -> int:
        return self.age_on(timezone.localdate())

    @staticmethod
    def initials_from(given: str, family: str) -> str:
        # The first letter or digit of each word ("O'Brien" gives O, "(Jo)" gives J): always valid initials.
        firsts = (next((c for c in part if c.isalnum()), "") for part in f"{given} {family}".split())
        return "".join(firsts).upper()[:8]

    def clean(self) -> None:
        errors: dict[str, str] = {}
        today = timezone.localdate()
        if self.birth_date and self.birth_date > today:
            errors["birth_date"] = "Birth date cannot be in the future."
        if self.birth_date and self.birth_date < dt.date(1900, 1, 1):
            errors["birth_date"] = "Birth date must be after 1900."
        if self.status in (self.Status.WITHDRAWN, self.Status.DECEASED) and not self.status_date:
            errors["status_date"] = f"Give the date the patient was {self.get_status_display().lower()}."
        if self.status == self.Status.ACTIVE and self.status_date:
            errors["status_date"] = "An active patient has no withdrawal or death date."
        if self.status_date and self.status_date > today:
            errors["status_date"] = "This date cannot be in the future."
        if self.status_date and self.birth_date and self.status_date < self.birth_date:
            errors["status_date"] = "This date is before the birth date."
        if self.consent_registry and not self.consent_date:
            errors["consent_date"] = "Give the date consent was given."
        if self.consent_registry and not self.consent_version:
            errors["consent_version"] = "Give the version of the consent form."
        if self.consent_date and self.consent_date > today:
            errors["consent_date"] = "Consent date cannot be in the future."
        if self.clinic_id and self.mrn and \
                Patient.objects.filter(clinic_id=self.clinic_id, mrn=self.mrn).exclude(pk=self.pk).exists():
            errors["mrn"] = f"MRN {self.mrn} is already used by another patient of this clinic."
        if errors:
            raise ValidationError(errors)

    def derive_fields(self) -> None:
        """What is derived before the record is stored (save, and a bulk insert: registry.services.records_store)."""
        if not self.initials:
            self.initials = self.initials_from(self.given_name, self.family_name)

    def save(self, *args, **kwargs):
        self.derive_fields()
        super().save(*args, **kwargs)


class Episode(models.Model):
    """One condition at one body site and side: the unit outcomes are reported on."""

    patient_path = "patient"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        RESOLVED = "resolved", "Resolved"
        CLOSED = "closed", "Closed"

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="episodes")
    body_site = models.CharField(max_length=20, choices=BodySite.choices)
    side = models.CharField(max_length=10, choices=Side.choices)
    condition = models.CharField(max_length=30, choices=Condition.choices)
    icd10_code = models.CharField("ICD-10-CM", max_length=40, blank=True,
                                  help_text="Derived from condition, site and side; a bilateral condition that "
                                            "ICD-10-CM codes side by side gets both codes, e.g. M20.21, M20.22")
    onset_date = models.DateField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, help_text="Last change (the API's updated_since)")
    history = HistoricalRecords()

    class Meta:
        ordering = ["patient", "id"]
        indexes = [models.Index(fields=["condition", "body_site"])]

    def __str__(self) -> str:
        side = "" if self.side == Side.NOT_APPLICABLE else f"{self.get_side_display().lower()} "
        return f"{self.get_condition_display()}, {side}{self.site_phrase}"

    @property
    def site_phrase(self) -> str:
        """The body site inside a sentence: "first MTP joint", "knee"."""
        site = self.get_body_site_display()
        return f"{site[:1].lower()}{site[1:]}"

    def get_absolute_url(self) -> str:
        return reverse("registry:episode_detail", args=[self.pk])

    @property
    def derived_icd10(self) -> str:
        return coding.icd10_for(self.condition, self.body_site, self.side)

    @property
    def icd10_codes(self) -> list[str]:
        """The episode's ICD-10-CM codes as a list (two for a bilateral condition coded side by side)."""
        return coding.split_codes(self.icd10_code)

    @property
    def icd10_label(self) -> str:
        return coding.icd10_labels(self.icd10_code)

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if self.body_site in coding.LATERAL_SITES and self.side == Side.NOT_APPLICABLE:
            errors["side"] = f"Choose left, right or bilateral for the {self.get_body_site_display().lower()}."
        if self.body_site in coding.SPINE_SITES and self.side not in (Side.NOT_APPLICABLE, ""):
            errors["side"] = "The spine has no side: choose “Not applicable”."
        if self.condition == Condition.HALLUX_RIGIDUS and self.body_site and self.body_site != BodySite.FIRST_MTP:
            errors["body_site"] = "Hallux rigidus is a condition of the first MTP joint."
        derived = self.derived_icd10
        self.icd10_code = coding.join_codes(coding.split_codes(self.icd10_code))
        if self.icd10_code and derived and self.icd10_code != derived:
            sides = {coding.icd10_side(code) for code in self.icd10_codes}
            implied = sides.pop() if len(sides) == 1 else None
            if implied and implied != self.side:
                errors["icd10_code"] = (
                    f"{self.icd10_code} is a {implied} code but this episode is {self.get_side_display().lower()}; "
                    f"the code for it is {derived}.")
            else:
                errors["icd10_code"] = f"{self.icd10_code} does not match this condition, site and side ({derived})."
        if self.icd10_code and not derived:
            problem = coding.icd10_problem(self.icd10_code, self.condition, self.body_site, self.side)
            if problem:
                errors["icd10_code"] = problem
        if self.onset_date and self.onset_date > timezone.localdate():
            errors["onset_date"] = "Onset cannot be in the future."
        if self.onset_date and self.patient_id and self.onset_date < self.patient.birth_date:
            errors["onset_date"] = "Onset is before the patient's birth date."
        if errors:
            raise ValidationError(errors)

    def derive_fields(self) -> None:
        """What is derived before the record is stored (save, and a bulk insert: registry.services.records_store)."""
        derived = self.derived_icd10
        if derived:
            self.icd10_code = derived

    def save(self, *args, **kwargs):
        self.derive_fields()
        super().save(*args, **kwargs)


def validate_clinical_date(obj, field_name: str, day: dt.date | None, patient: Patient | None) -> dict[str, str]:
    """A clinical event cannot be in the future or before the patient's birth."""
    errors: dict[str, str] = {}
    if day is None:
        return errors
    if day > timezone.localdate():
        errors[field_name] = "This date is in the future."
    elif patient is not None and day < patient.birth_date:
        errors[field_name] = f"This date is before the patient's birth date ({format_date(patient.birth_date)})."
    return errors


class Grade(models.Model):
    patient_path = "episode__patient"

    class System(models.TextChoices):
        COUGHLIN_SHURNAS = "coughlin_shurnas", "Coughlin-Shurnas (hallux rigidus)"
        KELLGREN_LAWRENCE = "kellgren_lawrence", "Kellgren-Lawrence"

    episode = models.ForeignKey(Episode, on_delete=models.CASCADE, related_name="grades")
    date = models.DateField()
    system = models.CharField(max_length=24, choices=System.choices)
    inputs = models.JSONField(default=dict, blank=True)
    suggested_grade = models.PositiveSmallIntegerField(null=True, blank=True)
    discordant = models.BooleanField(default=False)
    flags = models.JSONField(default=list, blank=True)
    grade = models.PositiveSmallIntegerField("grade of record", validators=_range(0, 4))
    graded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="+")
    notes = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True, help_text="Last change (the API's updated_since)")
    history = HistoricalRecords()

    class Meta:
        ordering = ["episode", "date", "id"]

    def __str__(self) -> str:
        return f"{self.get_system_display()} grade {self.grade} on {self.date}"

    def clean(self) -> None:
        errors = validate_clinical_date(self, "date", self.date, self.episode.patient if self.episode_id else None)
        if self.system == self.System.COUGHLIN_SHURNAS and self.episode_id and \
                self.episode.body_site != BodySite.FIRST_MTP:
            errors["system"] = "Coughlin-Shurnas grades the first MTP joint only."
        if errors:
            raise ValidationError(errors)


class Procedure(models.Model):
    patient_path = "episode__patient"

    class Smoking(models.TextChoices):
        NEVER = "never", "Never"
        FORMER = "former", "Former"
        CURRENT = "current", "Current"

    class HarvestSite(models.TextChoices):
        POSTERIOR_ILIAC_CREST = "pic", "Posterior iliac crest"
        ANTERIOR_ILIAC_CREST = "aic", "Anterior iliac crest"
        TIBIA = "tibia", "Proximal tibia"
        CALCANEUS = "calcaneus", "Calcaneus"
        PERIPHERAL_BLOOD = "blood", "Peripheral blood"
        OTHER = "other", "Other"

    class Anticoagulant(models.TextChoices):
        NONE = "none", "None"
        HEPARIN = "heparin", "Heparin"
        ACD_A = "acd_a", "ACD-A (citrate)"
        OTHER = "other", "Other"

    class Activation(models.TextChoices):
        NONE = "none", "None"
        CALCIUM_CHLORIDE = "cacl2", "Calcium chloride"
        THROMBIN = "thrombin", "Thrombin"
        OTHER = "other", "Other"

    episode = models.ForeignKey(Episode, on_delete=models.CASCADE, related_name="procedures")
    date = models.DateField()
    kind = models.CharField(max_length=24, choices=ProcedureKind.choices)
    category = models.CharField(max_length=16, choices=ProcedureCategory.choices, blank=True,
                                help_text="Derived from the kind when left blank")
    target_structure = models.CharField(max_length=16, choices=TargetStructure.choices, default=TargetStructure.JOINT)
    target_detail = models.CharField(max_length=120, blank=True, help_text="Name the structure when “Other”")
    image_guidance = models.CharField(max_length=12, choices=ImageGuidance.choices, default=ImageGuidance.NONE)
    cpt_code = models.CharField("CPT / HCPCS", max_length=8, blank=True, choices=coding.CPT_CHOICES)
    is_index = models.BooleanField("index procedure", default=False,
                                   help_text="The procedure this episode's follow-up schedule is anchored on")
    performed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    performer_name = models.CharField(max_length=120, blank=True)
    notes = models.TextField(blank=True)

    # Recipient at the time of the procedure (MIBO; age and sex come from the patient)
    bmi = models.DecimalField("BMI (kg/m²)", max_digits=4, decimal_places=1, null=True, blank=True,
                              validators=_range(10, 80))
    nsaid_use = models.BooleanField("NSAID use", null=True, blank=True)
    anticoagulant_use = models.BooleanField(null=True, blank=True)
    steroid_use = models.BooleanField("systemic steroid use", null=True, blank=True)
    smoking = models.CharField(max_length=8, choices=Smoking.choices, blank=True)
    # Harvest
    harvest_site = models.CharField(max_length=10, choices=HarvestSite.choices, blank=True)
    harvest_volume_ml = models.DecimalField("harvest volume (mL)", max_digits=6, decimal_places=1, null=True,
                                            blank=True, validators=_range(0.1, 500))
    harvest_anticoagulant = models.CharField(max_length=8, choices=Anticoagulant.choices, blank=True)
    # Processing
    processing_system = models.CharField(max_length=120, blank=True, help_text="Device or system")
    spins = models.PositiveSmallIntegerField(null=True, blank=True, validators=_range(0, 5))
    g_force = models.PositiveIntegerField("g-force (× g)", null=True, blank=True, validators=_range(1, 10000))
    spin_minutes = models.DecimalField("spin time (min)", max_digits=5, decimal_places=1, null=True, blank=True,
                                       validators=_range(0.5, 120))
    final_volume_ml = models.DecimalField("final product volume (mL)", max_digits=6, decimal_places=1, null=True,
                                          blank=True, validators=_range(0.1, 200))
    # Characterisation
    total_nucleated_cells = models.FloatField("total nucleated cells", null=True, blank=True,
                                              validators=_range(1e3, 1e11), help_text="Cells in the injectate, e.g. 4e8")
    cfu_f_per_ml = models.FloatField("CFU-F per mL", null=True, blank=True, validators=_range(0, 1e6))
    platelets_per_ul = models.FloatField("platelets (×10³/µL)", null=True, blank=True, validators=_range(0, 10000))
    leukocytes_per_ul = models.FloatField("leukocytes (×10³/µL)", null=True, blank=True, validators=_range(0, 500))
    platelet_fold = models.DecimalField("platelet fold over baseline", max_digits=4, decimal_places=1, null=True,
                                        blank=True, validators=_range(0, 30))
    activation = models.CharField(max_length=10, choices=Activation.choices, blank=True)
    # Delivery
    delivered_volume_ml = models.DecimalField("volume delivered per site (mL)", max_digits=5, decimal_places=1,
                                              null=True, blank=True, validators=_range(0.1, 100))
    anaesthetic = models.CharField(max_length=120, blank=True)
    # Prolotherapy
    dextrose_percent = models.DecimalField("dextrose (%)", max_digits=4, decimal_places=1, null=True, blank=True,
                                           validators=_range(1, 50))
    injection_sites = models.PositiveSmallIntegerField("injection sites", null=True, blank=True,
                                                       validators=_range(1, 60))
    post_protocol = models.TextField("post-procedure protocol", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, help_text="Last change (the API's updated_since)")
    history = HistoricalRecords()

    BIOLOGIC_ONLY_FIELDS = ("harvest_site", "harvest_volume_ml", "harvest_anticoagulant", "processing_system",
                            "spins", "g_force", "spin_minutes", "final_volume_ml", "activation")
    BMC_ONLY_FIELDS = ("total_nucleated_cells", "cfu_f_per_ml")
    PRP_ONLY_FIELDS = ("platelets_per_ul", "leukocytes_per_ul", "platelet_fold")
    PROLO_ONLY_FIELDS = ("dextrose_percent",)

    class Meta:
        ordering = ["episode", "date", "id"]
        constraints = [
            models.UniqueConstraint(fields=["episode"], condition=models.Q(is_index=True),
                                    name="one_index_procedure_per_episode"),
        ]
        indexes = [models.Index(fields=["kind", "date"]), models.Index(fields=["episode", "date"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} on {format_date(self.date)}"

    def get_absolute_url(self) -> str:
        return reverse("registry:procedure_edit", args=[self.pk])

    @property
    def cpt_label(self) -> str:
        return coding.CPT_LABELS.get(self.cpt_code, "")

    @property
    def is_surgical(self) -> bool:
        return self.kind in coding.SURGICAL_KINDS

    def clean(self) -> None:
        patient = self.episode.patient if self.episode_id else None
        errors = validate_clinical_date(self, "date", self.date, patient)
        if self.category and self.kind and self.category != coding.KIND_CATEGORY[self.kind] \
                and self.kind not in (ProcedureKind.OTHER,):
            errors["category"] = (f"{self.get_kind_display()} is {coding.KIND_CATEGORY[self.kind].label.lower()}, "
                                  f"not {self.get_category_display().lower()}.")
        if self.target_structure == TargetStructure.OTHER and not self.target_detail.strip():
            errors["target_detail"] = "Name the target structure."
        biologic = self.kind in coding.BIOLOGIC_KINDS
        if not biologic:
            for name in self.BIOLOGIC_ONLY_FIELDS:
                if getattr(self, name) not in (None, ""):
                    errors[name] = "Only for bone marrow concentrate or PRP."
        if self.kind != ProcedureKind.BMC:
            for name in self.BMC_ONLY_FIELDS:
                if getattr(self, name) is not None:
                    errors[name] = "Only for bone marrow concentrate."
        if self.kind != ProcedureKind.PRP:
            for name in self.PRP_ONLY_FIELDS:
                if getattr(self, name) is not None:
                    errors[name] = "Only for PRP."
        if self.kind != ProcedureKind.PROLOTHERAPY:
            for name in self.PROLO_ONLY_FIELDS:
                if getattr(self, name) is not None:
                    errors[name] = "Only for prolotherapy."
        if self.harvest_volume_ml is not None and self.final_volume_ml is not None \
                and self.final_volume_ml > self.harvest_volume_ml:
            errors["final_volume_ml"] = "The final product cannot be larger than the harvest."
        if self.cpt_code and self.cpt_code not in coding.CPT_LABELS:
            errors["cpt_code"] = "Unknown CPT / HCPCS code."
        elif problem := coding.cpt_guidance_problem(self.cpt_code, self.image_guidance):
            errors["cpt_code"] = problem
        if self.is_index and self.episode_id:
            # (by id: the episode has one index procedure at most; the default order joins the patient to sort)
            other = (Procedure.objects.filter(episode_id=self.episode_id, is_index=True).exclude(pk=self.pk)
                     .order_by("pk").only("kind", "date").first())  # (what its name shows)
            if other is not None:
                errors["is_index"] = (f"This episode already has an index procedure ({other}); "
                                      "unmark it first.")
        if errors:
            raise ValidationError(errors)

    def derive_fields(self) -> None:
        """What is derived before the record is stored (save, and a bulk insert: registry.services.records_store)."""
        if not self.category and self.kind:
            self.category = coding.KIND_CATEGORY[self.kind]

    def save(self, *args, **kwargs):
        self.derive_fields()
        super().save(*args, **kwargs)


class Exam(models.Model):
    patient_path = "episode__patient"

    episode = models.ForeignKey(Episode, on_delete=models.CASCADE, related_name="exams")
    date = models.DateField()
    dorsiflexion_deg = models.SmallIntegerField("dorsiflexion (°)", null=True, blank=True, validators=_range(-30, 120))
    plantarflexion_deg = models.SmallIntegerField("plantar flexion (°)", null=True, blank=True,
                                                  validators=_range(-30, 90))
    stability_findings = models.CharField(max_length=200, blank=True,
                                          help_text="e.g. medial laxity on valgus stress")
    other_findings = models.TextField(blank=True)
    examined_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    updated_at = models.DateTimeField(auto_now=True, help_text="Last change (the API's updated_since)")
    history = HistoricalRecords()

    class Meta:
        ordering = ["episode", "date", "id"]

    def __str__(self) -> str:
        return f"Exam on {format_date(self.date)}"

    def clean(self) -> None:
        errors = validate_clinical_date(self, "date", self.date, self.episode.patient if self.episode_id else None)
        if errors:
            raise ValidationError(errors)


class AdverseEvent(models.Model):
    patient_path = "procedure__episode__patient"

    class Severity(models.TextChoices):
        MILD = "mild", "Mild"
        MODERATE = "moderate", "Moderate"
        SEVERE = "severe", "Severe"

    procedure = models.ForeignKey(Procedure, on_delete=models.CASCADE, related_name="adverse_events")
    date = models.DateField()
    severity = models.CharField(max_length=10, choices=Severity.choices)
    serious = models.BooleanField(default=False, help_text="Death, hospitalisation, disability or life-threatening")
    description = models.TextField()
    resolved_date = models.DateField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True, help_text="Last change (the API's updated_since)")
    history = HistoricalRecords()

    class Meta:
        ordering = ["procedure", "date", "id"]

    def __str__(self) -> str:
        return f"{self.get_severity_display()} adverse event on {format_date(self.date)}"

    def clean(self) -> None:
        patient = self.procedure.episode.patient if self.procedure_id else None
        errors = validate_clinical_date(self, "date", self.date, patient)
        if self.procedure_id and self.date and self.date < self.procedure.date:
            errors["date"] = f"An adverse event of this procedure cannot precede it ({format_date(self.procedure.date)})."
        if self.resolved_date and self.date and self.resolved_date < self.date:
            errors["resolved_date"] = "Resolution cannot precede the event."
        if self.serious and self.severity == self.Severity.MILD:
            errors["severity"] = "A serious adverse event is not mild."
        if errors:
            raise ValidationError(errors)


class Note(models.Model):
    """A dated free-text entry on an episode's timeline (e.g. "completed an obstacle race")."""

    patient_path = "episode__patient"

    episode = models.ForeignKey(Episode, on_delete=models.CASCADE, related_name="timeline_notes")
    date = models.DateField()
    text = models.TextField()
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="+")
    history = HistoricalRecords()

    class Meta:
        ordering = ["episode", "date", "id"]

    def __str__(self) -> str:
        return f"Note on {format_date(self.date)}"

    def clean(self) -> None:
        errors = validate_clinical_date(self, "date", self.date, self.episode.patient if self.episode_id else None)
        if errors:
            raise ValidationError(errors)
