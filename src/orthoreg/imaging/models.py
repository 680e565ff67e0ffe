"""Radiograph studies and images, their calibration, annotations and joint-space-width measurements.

Every write goes through services.py. Each model names the path to its patient (`patient_path`) so that
orthoreg.accounts.access can scope it. Files are never served from a public URL: only through the
access-checked views of this app.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.urls import reverse
from simple_history.models import HistoricalRecords

from orthoreg.formats import format_date
from orthoreg.registry.coding import Side
from orthoreg.registry.models import Episode, validate_clinical_date

from . import calibration
from . import geometry as geo
from .calibration import Spacing


class ImagingStudy(models.Model):
    """The radiographs of one episode taken on one date."""

    patient_path = "episode__patient"

    episode = models.ForeignKey(Episode, on_delete=models.CASCADE, related_name="imaging_studies")
    date = models.DateField(help_text="The date the radiographs were taken")
    description = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, help_text="Last change (the API's updated_since)")
    history = HistoricalRecords()

    class Meta:
        ordering = ["episode", "date", "id"]
        verbose_name_plural = "imaging studies"
        constraints = [models.UniqueConstraint(fields=["episode", "date"], name="one_imaging_study_per_episode_date")]

    def __str__(self) -> str:
        return f"Radiographs of {format_date(self.date)}"

    def clean(self) -> None:
        errors = validate_clinical_date(self, "date", self.date, self.episode.patient if self.episode_id else None)
        if errors:
            raise ValidationError(errors)


class Image(models.Model):
    """One radiograph: the original file unchanged, a display rendition, and its calibration."""

    patient_path = "study__episode__patient"

    class Format(models.TextChoices):
        DICOM = "dicom", "DICOM"
        PNG = "png", "PNG"
        JPEG = "jpeg", "JPEG"

    class View(models.TextChoices):
        AP_WEIGHT_BEARING = "ap_wb", "AP weight-bearing"
        LATERAL = "lateral", "Lateral"
        OBLIQUE = "oblique", "Oblique"
        OTHER = "other", "Other"

    class Calibration(models.TextChoices):
        DICOM_IMAGER = calibration.DICOM_IMAGER, "DICOM Imager Pixel Spacing"
        DICOM_PIXEL = calibration.DICOM_PIXEL, "DICOM Pixel Spacing"
        MANUAL = calibration.MANUAL, "Marker of known length"
        NONE = calibration.NONE, "Uncalibrated"

    study = models.ForeignKey(ImagingStudy, on_delete=models.CASCADE, related_name="images")
    original = models.FileField(max_length=255, help_text="The uploaded file, kept byte for byte")
    original_name = models.CharField(max_length=255, blank=True)
    original_size = models.PositiveBigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, db_index=True)
    rendition = models.FileField(max_length=255, help_text="8-bit PNG for display")
    thumbnail = models.FileField(max_length=255)
    format = models.CharField(max_length=8, choices=Format.choices)
    modality = models.CharField(max_length=16, blank=True)
    view = models.CharField(max_length=10, choices=View.choices, default=View.AP_WEIGHT_BEARING)
    side = models.CharField(max_length=10, choices=Side.choices)
    width = models.PositiveIntegerField(help_text="pixels")
    height = models.PositiveIntegerField(help_text="pixels")
    bits = models.PositiveSmallIntegerField(help_text="bits stored per pixel")
    photometric = models.CharField(max_length=16)
    window = models.CharField(max_length=80, blank=True, help_text="How the display rendition was windowed")
    spacing_row_mm = models.FloatField("pixel spacing between rows (mm)", null=True, blank=True)
    spacing_col_mm = models.FloatField("pixel spacing between columns (mm)", null=True, blank=True)
    calibration_source = models.CharField(max_length=16, choices=Calibration.choices, default=Calibration.NONE)
    calibration_detail = models.JSONField(default=dict, blank=True,
                                          help_text="Marker points and length, or the DICOM values and messages")
    header = models.JSONField(default=dict, blank=True, help_text="Facts read from the DICOM header")
    caption = models.CharField(max_length=300, blank=True)
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, help_text="Last change (the API's updated_since)")
    history = HistoricalRecords()

    class Meta:
        ordering = ["study__date", "id"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(calibration_source="none", spacing_row_mm__isnull=True, spacing_col_mm__isnull=True)
                    | (~models.Q(calibration_source="none") & models.Q(spacing_row_mm__gt=0, spacing_col_mm__gt=0))),
                name="image_spacing_matches_calibration"),
        ]

    def __str__(self) -> str:
        return f"{self.get_view_display()} {self.get_side_display().lower()}, {format_date(self.study.date)}"

    def get_absolute_url(self) -> str:
        return reverse("imaging:image_detail", args=[self.pk])

    @property
    def episode(self) -> Episode:
        return self.study.episode

    @property
    def patient(self):
        return self.study.episode.patient

    @property
    def date(self):
        return self.study.date

    @property
    def spacing(self) -> Spacing | None:
        if self.calibration_source == self.Calibration.NONE or not self.spacing_row_mm or not self.spacing_col_mm:
            return None
        return Spacing(self.spacing_row_mm, self.spacing_col_mm, self.calibration_source)

    @property
    def calibrated(self) -> bool:
        return self.spacing is not None

    @property
    def calibration_label(self) -> str:
        spacing = self.spacing
        return spacing.describe() if spacing else "uncalibrated: lengths in pixels"

    @property
    def accepted_measurement(self) -> Measurement | None:
        return self.measurements.filter(accepted=True).first()


class Annotation(models.Model):
    """A shape drawn over an image, stored as data in image pixel coordinates."""

    patient_path = "image__study__episode__patient"

    class Kind(models.TextChoices):
        ARROW = geo.ARROW, "Arrow"
        ELLIPSE = geo.ELLIPSE, "Ellipse"
        CIRCLE = geo.CIRCLE, "Circle"
        CALIPER = geo.CALIPER, "Caliper"
        TEXT = geo.TEXT, "Text"

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="annotations")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    geometry = models.JSONField(help_text="Image pixel coordinates")
    colour = models.CharField(max_length=7, default=geo.DEFAULT_COLOUR)
    dashed = models.BooleanField(default=False)
    label = models.CharField(max_length=geo.MAX_LABEL, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["image", "id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} on image {self.image_id}"

    @property
    def patient(self):
        return self.image.patient

    def length(self) -> tuple[float, str] | None:
        """A caliper's length: (value, "mm") when the image is calibrated, else (value, "px")."""
        if self.kind != self.Kind.CALIPER:
            return None
        g = self.geometry
        return calibration.distance((g["x1"], g["y1"]), (g["x2"], g["y2"]), self.image.spacing)

    def as_data(self) -> dict:
        data = {"id": self.pk, "kind": self.kind, "geometry": self.geometry, "colour": self.colour,
                "dashed": self.dashed, "label": self.label}
        length = self.length()
        if length is not None:
            data["length"] = {"value": round(length[0], 3), "unit": length[1],
                              "text": calibration.format_length(*length)}
        return data


class Measurement(models.Model):
    """A joint-space-width measurement on one image: semi-automatic (profiles) or manual (calipers)."""

    patient_path = "image__study__episode__patient"

    class Method(models.TextChoices):
        MANUAL = "manual", "Manual (calipers)"
        SEMI_AUTO = "semi_auto", "Semi-automatic (profiles)"

    class Unit(models.TextChoices):
        MM = "mm", "mm"
        PX = "px", "pixels (uncalibrated)"

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="measurements")
    method = models.CharField(max_length=10, choices=Method.choices)
    line = models.JSONField(default=list, blank=True, help_text="X1, Y1, X2, Y2 (pixels); the first point is medial")
    results = models.JSONField(default=dict, blank=True,
                               help_text="Per-profile widths and margins (semi-automatic) or the calipers (manual)")
    medial = models.FloatField(null=True, blank=True, help_text="Mean width of the medial third; empty: not measurable")
    central = models.FloatField(null=True, blank=True)
    lateral = models.FloatField(null=True, blank=True)
    minimum = models.FloatField(null=True, blank=True)
    unit = models.CharField(max_length=2, choices=Unit.choices)
    mm_per_px = models.FloatField(null=True, blank=True, help_text="Along the measured direction, when calibrated")
    calibration_source = models.CharField(max_length=16, choices=Image.Calibration.choices)
    accepted = models.BooleanField(default=False)
    accepted_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    accepted_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, help_text="Last change (the API's updated_since)")
    history = HistoricalRecords()

    VALUES = ("medial", "central", "lateral", "minimum")

    class Meta:
        ordering = ["image", "-accepted", "-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["image"], condition=models.Q(accepted=True),
                                    name="one_accepted_measurement_per_image"),
        ]

    def __str__(self) -> str:
        return f"{self.get_method_display()} joint space width on image {self.image_id}"

    @property
    def patient(self):
        return self.image.patient

    @property
    def values(self) -> dict[str, float | None]:
        return {name: getattr(self, name) for name in self.VALUES}

    @property
    def notes(self) -> list[str]:
        return list(self.results.get("notes", []))

    def as_data(self) -> dict:
        return {
            "id": self.pk,
            "method": self.method,
            "method_label": self.get_method_display(),
            "line": self.line,
            "unit": self.unit,
            "mm_per_px": self.mm_per_px,
            "calibration_source": self.calibration_source,
            "accepted": self.accepted,
            **{name: {"value": value, "text": calibration.format_length(value, self.unit)}
               for name, value in self.values.items()},
            "notes": self.notes,
            "profiles": self.results.get("profiles", []),
            "calipers": self.results.get("calipers", []),
            "measurable": self.results.get("measurable"),
            "count": self.results.get("count"),
        }
