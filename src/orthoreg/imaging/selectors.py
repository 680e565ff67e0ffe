"""Reads of the imaging app."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet
from django.http import Http404

from orthoreg.accounts import access

from . import calibration
from .models import Annotation, Image, Measurement

# Reproducibility of automated minimum JSW (Duryea et al., Med Phys 2000;27:580): smaller changes may be error.
MEASUREMENT_ERROR_MM = 0.16
MEASUREMENT_ERROR_SOURCE = "Duryea et al., Med Phys 2000;27:580"
# Standard error of measurement of minimum JSW in routine practice (J Rheumatol 1999;26:1359; DOMAIN.md 5):
# the smallest detectable change between two films is SDC_FACTOR x SEm (1.96 x sqrt 2).
SEM_SAME_UNIT_MM = 0.25  # same unit and device, same projection and calibration ("good films")
SEM_WITHIN_UNIT_MM = 0.32  # same unit overall (projection or calibration differ)
SEM_BETWEEN_UNITS_MM = 0.45  # different units or devices
SDC_FACTOR = 2.77
SDC_SOURCE = "J Rheumatol 1999;26:1359"


def smallest_detectable_change(before: Measurement | None, after: Measurement | None) -> dict | None:
    """The smallest change in mm between two measurements that exceeds measurement error, and why.

    {"sdc_mm", "sem_mm", "basis", "source"}; None when either is missing or not in mm. The clinic's own SEm
    (settings.ORTHOREG_JSW_SEM_MM, from its repeat measurements) replaces the published ones when set."""
    from django.conf import settings

    if before is None or after is None or before.unit != "mm" or after.unit != "mm":
        return None
    b, a = before.image, after.image
    device = (b.header or {}).get("manufacturer") or ""
    same_device = bool(device) and device == ((a.header or {}).get("manufacturer") or "")  # unknown: not the same
    same_setup = b.view == a.view and before.calibration_source == after.calibration_source
    own = getattr(settings, "JSW_SEM_MM", None)
    if own:
        sem, basis, source = float(own), "this clinic's own repeat measurements", "clinic setting ORTHOREG_JSW_SEM_MM"
    elif not same_device:
        sem, basis, source = SEM_BETWEEN_UNITS_MM, "different or unknown units/devices", SDC_SOURCE
    elif not same_setup:
        sem, basis, source = SEM_WITHIN_UNIT_MM, "same unit, different projection or calibration", SDC_SOURCE
    else:
        sem, basis, source = SEM_SAME_UNIT_MM, "same unit, projection and calibration", SDC_SOURCE
    return {"sdc_mm": round(SDC_FACTOR * sem, 2), "sem_mm": sem, "basis": basis, "source": source}


def image_queryset() -> QuerySet[Image]:
    return Image.objects.select_related("study__episode__patient__clinic")


def access_image(user, pk) -> Image:
    return access.access_object(user, Image, pk, access.CLINICAL, image_queryset())


def access_annotation(user, pk) -> Annotation:
    return access.access_object(user, Annotation, pk, access.CLINICAL,
                                Annotation.objects.select_related("image__study__episode__patient"))


def access_measurement(user, pk) -> Measurement:
    return access.access_object(user, Measurement, pk, access.CLINICAL,
                                Measurement.objects.select_related("image__study__episode__patient"))


HISTORY_LIMIT = 50
_HISTORY_ACTIONS = {"+": "created", "~": "edited", "-": "deleted"}
# What an edit can change, in the words of the history list (the kind of an annotation never changes).
_HISTORY_FIELDS = (("geometry", "moved or reshaped"), ("label", "label"), ("colour", "colour"),
                   ("dashed", "line style"))


def annotation_history(image: Image, *, limit: int = HISTORY_LIMIT) -> dict:
    """Who created, edited or deleted which annotation of an image, and when: newest first, read from the
    annotations' change history (django-simple-history) in one query, whatever the number of annotations.

    Returns {"entries": [{"when", "who", "action", "kind", "changes"}, ...] (at most `limit`), "more": how
    many older entries were left out}. An edit lists what it changed, from the annotation's previous record."""
    records = list(Annotation.history.filter(image_id=image.pk).select_related("history_user")
                   .order_by("id", "history_date", "history_id"))
    previous: dict[int, object] = {}
    entries = []
    for record in records:
        before = previous.get(record.id)
        changes = []
        if record.history_type == "~" and before is not None:
            changes = [text for name, text in _HISTORY_FIELDS if getattr(record, name) != getattr(before, name)]
            changes = changes or ["nothing changed"]
        previous[record.id] = record
        user = record.history_user
        entries.append({
            "when": record.history_date,
            "who": user.get_username() if user is not None else "",
            "action": _HISTORY_ACTIONS.get(record.history_type, record.history_type),
            "kind": record.get_kind_display(),
            "changes": changes,
            "order": (record.history_date, record.history_id),
        })
    entries.sort(key=lambda e: e.pop("order"), reverse=True)
    return {"entries": entries[:limit], "more": max(len(entries) - limit, 0)}


def episode_images(episode) -> QuerySet[Image]:
    newest_accepted_first = Measurement.objects.order_by("-accepted", "-created_at", "-id")
    return (Image.objects.filter(study__episode=episode).select_related("study")
            .prefetch_related(Prefetch("measurements", queryset=newest_accepted_first))
            .order_by("study__date", "id"))


def measurement_of_record(image: Image) -> Measurement | None:
    """The accepted measurement, else the latest draft (shown as not accepted), else None."""
    measurements = list(image.measurements.all())  # ordered: accepted first, then newest
    return measurements[0] if measurements else None


def default_pair(images: list[Image]) -> tuple[Image | None, Image | None]:
    """The latest radiograph and the earliest earlier one of the same view and side (else of any view)."""
    if len(images) < 2:
        return None, None
    after = images[-1]
    earlier = [i for i in images if i.study.date < after.study.date] or images[:-1]
    same = [i for i in earlier if i.view == after.view and i.side == after.side]
    return (same or earlier)[0], after


def pick_pair(episode, before_id, after_id) -> tuple[Image | None, Image | None, list[Image]]:
    """The pair to compare: the ids given (each must be an image of this episode, else 404) or the default."""
    images = list(episode_images(episode))
    by_id = {str(i.pk): i for i in images}
    if before_id or after_id:
        try:
            before, after = by_id[str(before_id)], by_id[str(after_id)]
        except KeyError:
            raise Http404("No such radiograph on this episode") from None
        return before, after, images
    before, after = default_pair(images)
    return before, after, images


def change_not_comparable(before: Measurement | None, after: Measurement | None) -> str:
    """Why a change between two measurements would be meaningless ("" when it is not, or nothing to compare).

    Lengths in mm compare. Lengths in pixels compare only between images of the same dimensions: without a
    calibration the size of a pixel is unknown, so a pixel difference between images of different sizes
    (another detector, a rescaled export) says nothing about the joint."""
    if before is None or after is None:
        return ""
    if before.unit != after.unit:
        calibrated, uncalibrated = ("before", "after") if before.unit == Measurement.Unit.MM else ("after", "before")
        return (f"not comparable: the {calibrated} image is calibrated (mm) and the {uncalibrated} image is not "
                "(pixels). Calibrate both to see the change in mm.")
    if before.unit == Measurement.Unit.PX:
        b, a = before.image, after.image
        if (b.width, b.height) != (a.width, a.height):
            return (f"not comparable: both images are uncalibrated and of different sizes ({b.width} × {b.height} "
                    f"px before, {a.width} × {a.height} px after), so a pixel is not the same length on both. "
                    "Calibrate both to see the change in mm.")
    return ""


def width_rows(before: Measurement | None, after: Measurement | None) -> list[dict]:
    """Rows of the before/after table: each value as text, and the change where the two are comparable
    (both in mm, or both in pixels of images of the same dimensions: see change_not_comparable)."""
    rows = []
    comparable = before is not None and after is not None and not change_not_comparable(before, after)
    sdc = smallest_detectable_change(before, after)
    for name in Measurement.VALUES:
        b = getattr(before, name) if before else None
        a = getattr(after, name) if after else None
        change = change_text = None
        within_error = False
        if comparable and a is not None and b is not None:
            change = round(a - b, 3)
            change_text = (f"{change:+.2f} mm" if before.unit == "mm" else f"{change:+.1f} px")
            within_error = sdc is not None and abs(change) < sdc["sdc_mm"]
        elif a is not None and b is not None:
            change_text = "not comparable"
        rows.append({
            "name": name,
            "label": "Minimum" if name == "minimum" else f"{name.title()} third (mean)",
            "before": calibration.format_length(b, before.unit) if before else "no measurement",
            "after": calibration.format_length(a, after.unit) if after else "no measurement",
            "change": change,
            "change_text": change_text or "—",
            "within_error": within_error,
            "sdc_mm": sdc["sdc_mm"] if sdc else None,
            "error_text": (f"within measurement error (smaller than the smallest detectable change, "
                           f"{sdc['sdc_mm']:.2f} mm: {sdc['basis']}; {sdc['source']})") if within_error else "",
        })
    return rows


def episode_study_uids(episode) -> set[str]:
    """The DICOM Study Instance UIDs of the episode's radiographs (those that came with one)."""
    return {uid for uid in Image.objects.filter(study__episode=episode)
            .values_list("header__study_instance_uid", flat=True) if uid}
