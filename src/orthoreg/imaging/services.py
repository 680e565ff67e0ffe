"""Every write of the imaging app. Each function owns its transaction and its audit entry.

Bad input raises django.core.exceptions.ValidationError with a message for the user, and leaves nothing
behind: no row, no file.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass

import pydicom
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile, File
from django.db import transaction
from django.utils import timezone

from orthoreg.accounts.models import AuditEvent
from orthoreg.accounts.services import audit_record
from orthoreg.formats import format_date
from orthoreg.registry.coding import Side
from orthoreg.registry.models import Episode, validate_clinical_date

from . import calibration, dicomio, jsw, pacs, render, srreport
from . import geometry as geo
from .models import Annotation, Image, ImagingStudy, Measurement
from .signals import delete_files

_EXTENSIONS = {Image.Format.DICOM: ".dcm", Image.Format.PNG: ".png", Image.Format.JPEG: ".jpg"}
_LATERALITY = {"L": Side.LEFT, "R": Side.RIGHT, "B": Side.BILATERAL}


def max_upload_bytes() -> int:
    return int(settings.MAX_UPLOAD_MB) * 1024 * 1024


def max_pixels() -> int:
    return int(getattr(settings, "IMAGING_MAX_PIXELS", dicomio.MAX_PIXELS))


def _history_user(obj, user):
    if user is not None and getattr(user, "is_authenticated", False):
        obj._history_user = user
    return obj


_COPY_CHUNK = 1 << 20


def upload_temp_dir() -> str:
    """Where uploads wait on disk while they are checked: under the data directory (on disk, unlike a /tmp that
    may be held in memory), created when first needed."""
    path = str(getattr(settings, "FILE_UPLOAD_TEMP_DIR", None) or os.path.join(settings.DATA_DIR, "tmp"))
    os.makedirs(path, exist_ok=True)
    return path


@contextmanager
def _upload_on_disk(uploaded) -> Iterator[tuple[str, int, str]]:
    """(path, size, sha256) of the upload as a file on disk, read a chunk at a time, never whole in memory.

    A file Django already spooled to disk (TemporaryUploadedFile) is used where it is; anything else (a small
    in-memory upload, a file pulled from the PACS) is copied in chunks to a temporary file, removed afterwards."""
    size = getattr(uploaded, "size", None)
    limit = max_upload_bytes()
    if size is not None and size > limit:
        raise ValidationError({"file": f"The file is {size / 1048576:.1f} MB; files up to {settings.MAX_UPLOAD_MB} MB "
                                       "are accepted."})
    too_large = ValidationError({"file": f"The file is larger than {settings.MAX_UPLOAD_MB} MB, the largest accepted."})
    digest = hashlib.sha256()
    if hasattr(uploaded, "temporary_file_path"):
        path = uploaded.temporary_file_path()
        size = 0
        with open(path, "rb") as fh:
            while chunk := fh.read(_COPY_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise too_large
                digest.update(chunk)
        yield path, size, digest.hexdigest()
        return
    if hasattr(uploaded, "seek"):
        uploaded.seek(0)
    chunks = uploaded.chunks(_COPY_CHUNK) if hasattr(uploaded, "chunks") else iter(
        lambda: uploaded.read(_COPY_CHUNK), b"")
    fd, path = tempfile.mkstemp(prefix="upload-", suffix=".part", dir=upload_temp_dir())
    try:
        size = 0
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise too_large
                digest.update(chunk)
                out.write(chunk)
        yield path, size, digest.hexdigest()
    finally:
        with suppress(OSError):
            os.unlink(path)


def image_upload(*, episode: Episode, file, view: str, side: str = "", date: dt.date | None = None,
                 caption: str = "", description: str = "", origin: str = "", user=None, request=None) -> Image:
    """Store a radiograph (DICOM, PNG or JPEG) of an episode: the original unchanged, a display rendition
    and a thumbnail, calibrated from the DICOM header where it gives a believable pixel spacing.

    `origin` says where the file came from when not from the user's disk (e.g. "the PACS"), for the audit.

    The file is never read whole into memory (issue 17 item 4): it is checked, hashed and decoded from disk, and
    copied to storage in chunks."""
    with _upload_on_disk(file) as (path, size, digest):
        return _image_store(episode=episode, file=file, path=path, size=size, digest=digest, view=view, side=side,
                            date=date, caption=caption, description=description, origin=origin, user=user,
                            request=request)


def _image_store(*, episode: Episode, file, path: str, size: int, digest: str, view: str, side: str,
                 date: dt.date | None, caption: str, description: str, origin: str, user, request) -> Image:
    try:
        loaded = dicomio.load_image(path, max_pixels=max_pixels(), measure=False)
    except dicomio.ImageReadError as exc:
        raise ValidationError({"file": str(exc)}) from None

    errors: dict[str, str] = {}
    if view not in Image.View.values:
        errors["view"] = "Choose the view: AP weight-bearing, lateral, oblique or other."
    side = side or episode.side
    if side not in Side.values:
        errors["side"] = "Choose the side."
    stated = _LATERALITY.get(loaded.header.get("laterality", ""))
    if stated and side in (Side.LEFT, Side.RIGHT) and stated != side:
        errors["side"] = (f"The DICOM header says this is a {stated.label.lower()} image (laterality "
                          f"{loaded.header['laterality']}), but {Side(side).label.lower()} was chosen. Check the side.")
    if date is None and loaded.header.get("study_date"):
        date = dt.date.fromisoformat(loaded.header["study_date"])
    if date is None:
        errors["date"] = "Give the date the radiograph was taken."
    else:
        errors.update(validate_clinical_date(None, "date", date, episode.patient))
    duplicate = Image.objects.filter(study__episode=episode, sha256=digest).select_related("study").first()
    if duplicate is not None:
        errors["file"] = f"This file is already on this episode (radiographs of {format_date(duplicate.study.date)})."
    if errors:
        raise ValidationError(errors)

    rendition = render.encode_png(loaded.display)
    thumbnail = render.thumbnail_png(loaded.display)
    spacing = loaded.spacing
    folder = f"imaging/{timezone.now():%Y/%m}/{uuid.uuid4().hex}"
    name = os.path.basename(getattr(file, "name", "") or "")[:255]
    image = Image(
        original_name=name, original_size=size, sha256=digest, format=loaded.format,
        modality=loaded.header.get("modality", "")[:16], view=view, side=side, width=loaded.width,
        height=loaded.height, bits=loaded.bits, photometric=loaded.photometric, window=loaded.window[:80],
        spacing_row_mm=spacing.row_mm if spacing else None, spacing_col_mm=spacing.col_mm if spacing else None,
        calibration_source=spacing.source if spacing else calibration.NONE,
        calibration_detail={"messages": loaded.spacing_messages} if loaded.spacing_messages or spacing else {},
        header=loaded.header, caption=caption.strip()[:300], uploaded_by=user if _is_user(user) else None,
    )
    files = [
        (image.original, f"{folder}/original{_EXTENSIONS[loaded.format]}", None),  # type: ignore[index]
        (image.rendition, f"{folder}/rendition.png", rendition),
        (image.thumbnail, f"{folder}/thumbnail.png", thumbnail),
    ]
    saved: list[str] = []
    storage = image.original.storage
    try:
        with transaction.atomic():
            study, created = ImagingStudy.objects.get_or_create(
                episode=episode, date=date,
                defaults={"description": description.strip()[:200], "created_by": user if _is_user(user) else None})
            image.study = study
            for field, name, content in files:
                if content is None:  # the original: copied from disk a chunk at a time
                    with open(path, "rb") as fh:
                        field.save(name, File(fh), save=False)
                else:
                    field.save(name, ContentFile(content), save=False)
                saved.append(field.name)
            _history_user(image, user).save()
            audit_record(request=request, user=user, action=AuditEvent.Action.CREATE, obj=image,
                         patient=episode.patient,
                         detail=f"radiograph {'imported from ' + origin if origin else 'uploaded'}: {image.get_format_display()} {image.get_view_display()} "
                                f"{image.get_side_display()} of {format_date(date)}, {image.width}×{image.height} px, "
                                f"{image.calibration_label}")
    except BaseException:
        delete_files(storage, saved)
        raise
    return image


@transaction.atomic
def imaging_study_record(*, episode: Episode, date: dt.date, description: str = "", user=None, request=None,
                         instance: ImagingStudy | None = None) -> ImagingStudy:
    """Create (or update, with instance=) the metadata of an imaging study without its images (e.g. from a FHIR
    ImagingStudy, which carries no pixel data): the episode's study of that date is updated rather than
    duplicated. Validated (a clinical date), audited. Raises ValidationError; stores nothing then."""
    if instance is None:
        instance = ImagingStudy.objects.filter(episode=episode, date=date).first()
    created = instance is None
    study = instance or ImagingStudy(episode=episode, created_by=user if _is_user(user) else None)
    study.episode, study.date, study.description = episode, date, description.strip()[:200]
    study.full_clean()
    _history_user(study, user).save()
    audit_record(request=request, user=user, action=AuditEvent.Action.CREATE if created else AuditEvent.Action.UPDATE,
                 obj=study, patient=episode.patient, detail=f"imaging study of {format_date(date)} (metadata)")
    return study


def _is_user(user) -> bool:
    return user is not None and getattr(user, "is_authenticated", False)


def image_update(*, image: Image, view: str, side: str, caption: str, user=None, request=None) -> Image:
    errors = {}
    if view not in Image.View.values:
        errors["view"] = "Choose the view."
    if side not in Side.values:
        errors["side"] = "Choose the side."
    if len(caption) > 300:
        errors["caption"] = "The caption is longer than 300 characters."
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        image.view, image.side, image.caption = view, side, caption.strip()
        _history_user(image, user).save(update_fields=["view", "side", "caption", "updated_at"])
        audit_record(request=request, user=user, action=AuditEvent.Action.UPDATE, obj=image, patient=image.patient,
                     detail=f"radiograph details: {image.get_view_display()}, {image.get_side_display()}")
    return image


def image_delete(*, image: Image, user=None, request=None) -> None:
    """Delete a radiograph, its annotations and measurements (its files go once this is committed: signals.py)."""
    with transaction.atomic():
        study = image.study
        audit_record(request=request, user=user, action=AuditEvent.Action.DELETE, obj=image, patient=image.patient,
                     detail=f"radiograph deleted: {image}")
        _history_user(image, user).delete()
        if not study.images.exists():
            _history_user(study, user).delete()


def read_original(image: Image) -> dicomio.LoadedImage:
    """The stored original, read again (measurements always run on the original, never the rendition)."""
    source: dicomio.Source
    try:
        source = image.original.path  # a local file: decoded from disk (its pixels read once, not its bytes too)
        if not os.path.exists(source):
            raise OSError(source)
    except NotImplementedError:  # storage without paths (object storage): its bytes
        try:
            with image.original.open("rb") as fh:
                source = fh.read()
        except OSError:
            raise ValidationError("The original file of this radiograph cannot be found in storage.") from None
    except OSError:
        raise ValidationError("The original file of this radiograph cannot be found in storage.") from None
    try:
        return dicomio.load_image(source, max_pixels=max(max_pixels(), image.width * image.height))
    except dicomio.ImageReadError as exc:
        raise ValidationError(str(exc)) from None


# --- Calibration --------------------------------------------------------------------------------------

def calibration_set(*, image: Image, source: str, points: Sequence[float] | None = None,
                    known_mm: float | None = None, user=None, request=None) -> Image:
    """Calibrate from a marker of known length ("manual": points X1,Y1,X2,Y2 and known_mm), from the DICOM
    header ("dicom"), or remove the calibration ("none"). Existing measurements are restated in the new unit."""
    detail: dict = {}
    if source == calibration.MANUAL:
        if points is None or len(points) != 4:
            raise ValidationError({"points": "Mark both ends of the marker."})
        try:
            spacing = calibration.spacing_from_marker(points[:2], points[2:], known_mm)
        except calibration.CalibrationError as exc:
            raise ValidationError({"known_mm": str(exc)}) from None
        detail = {"points": [round(float(v), 2) for v in points], "known_mm": float(known_mm),
                  "marker_px": round(calibration.length_px(points[:2], points[2:]), 2)}
    elif source == "dicom":
        if image.format != Image.Format.DICOM:
            raise ValidationError({"source": "Only a DICOM image states its pixel spacing; calibrate with a marker."})
        spacing, messages = calibration.spacing_from_dicom(_dicom_header(image))
        if spacing is None:
            raise ValidationError({"source": " ".join(messages)})
        detail = {"messages": messages}
    elif source == calibration.NONE:
        spacing = None
    else:
        raise ValidationError({"source": "Choose a marker, the DICOM header or no calibration."})

    with transaction.atomic():
        image.spacing_row_mm = spacing.row_mm if spacing else None
        image.spacing_col_mm = spacing.col_mm if spacing else None
        image.calibration_source = spacing.source if spacing else calibration.NONE
        image.calibration_detail = detail
        _history_user(image, user).save(update_fields=["spacing_row_mm", "spacing_col_mm", "calibration_source",
                                                       "calibration_detail", "updated_at"])
        for measurement in image.measurements.all():
            _restate(measurement, image)
            _history_user(measurement, user).save()
        audit_record(request=request, user=user, action=AuditEvent.Action.UPDATE, obj=image, patient=image.patient,
                     detail=f"calibration: {image.calibration_label}")
    return image


def _dicom_header(image: Image):
    try:
        with image.original.open("rb") as fh:
            return pydicom.dcmread(fh, stop_before_pixels=True)
    except Exception:
        raise ValidationError({"source": "The original DICOM file cannot be read again."}) from None


# --- Annotations --------------------------------------------------------------------------------------

def annotation_save(*, image: Image, kind: str, geometry: dict, colour: str = "", dashed: bool = False,
                    label: str = "", annotation: Annotation | None = None, user=None, request=None) -> Annotation:
    """Create an annotation, or update `annotation` (its kind cannot change)."""
    if annotation is not None and annotation.image_id != image.pk:
        raise ValidationError("This annotation belongs to another image.")
    if annotation is not None:
        kind = annotation.kind
    try:
        clean = geo.clean_geometry(kind, geometry, image.width, image.height)
        colour = geo.clean_colour(colour)
        label = geo.clean_label(kind, label)
    except geo.GeometryError as exc:
        raise ValidationError(exc.errors) from None
    creating = annotation is None
    with transaction.atomic():
        if creating:
            annotation = Annotation(image=image, kind=kind, created_by=user if _is_user(user) else None)
        annotation.geometry, annotation.colour, annotation.dashed, annotation.label = clean, colour, bool(dashed), label
        _history_user(annotation, user).save()
        audit_record(request=request, user=user,
                     action=AuditEvent.Action.CREATE if creating else AuditEvent.Action.UPDATE,
                     obj=annotation, patient=image.patient,
                     detail=f"{annotation.get_kind_display().lower()} annotation")
    return annotation


def annotation_delete(*, annotation: Annotation, user=None, request=None) -> None:
    with transaction.atomic():
        audit_record(request=request, user=user, action=AuditEvent.Action.DELETE, obj=annotation,
                     patient=annotation.image.patient, detail=f"{annotation.get_kind_display().lower()} annotation")
        _history_user(annotation, user).delete()


# --- Measurements -------------------------------------------------------------------------------------

def measurement_run(*, image: Image, line: Sequence[float] | str, search_px: float | None = None, user=None,
                    request=None) -> Measurement:
    """Run the semi-automatic joint-space width along `line` (medial end first) on the original image.

    The result is a draft for the user to accept or correct; it replaces the image's previous draft."""
    try:
        line = jsw.parse_line(line)
    except jsw.JswError as exc:
        raise ValidationError({"line": str(exc)}) from None
    loaded = read_original(image)
    try:
        result = jsw.measure(loaded.intensities, line, image.spacing, search_px=search_px)
    except jsw.JswError as exc:
        raise ValidationError({"line": str(exc)}) from None
    data = result.to_dict()
    with transaction.atomic():
        for draft in image.measurements.filter(method=Measurement.Method.SEMI_AUTO, accepted=False):
            _history_user(draft, user).delete()
        measurement = Measurement(image=image, method=Measurement.Method.SEMI_AUTO, line=data["line"],
                                  created_by=user if _is_user(user) else None,
                                  results={key: data[key] for key in ("profiles", "search_px", "measurable", "count")})
        _summarise_semi_auto(measurement, image)
        _history_user(measurement, user).save()
        audit_record(request=request, user=user, action=AuditEvent.Action.CREATE, obj=measurement,
                     patient=image.patient, detail=f"semi-automatic joint space width: {_values_text(measurement)}")
    return measurement


def measurement_record_manual(*, image: Image, user=None, request=None) -> Measurement:
    """A manual joint-space width from the image's calipers that name a region (medial, central, lateral)."""
    calipers = [a for a in image.annotations.filter(kind=Annotation.Kind.CALIPER) if a.geometry.get("region")]
    if not calipers:
        raise ValidationError("Draw calipers across the joint space and give each its region (medial, central or "
                              "lateral) first.")
    with transaction.atomic():
        measurement = Measurement(image=image, method=Measurement.Method.MANUAL,
                                  created_by=user if _is_user(user) else None, results={"calipers": [
                                      {"annotation": a.pk, "region": a.geometry["region"],
                                       "points": [a.geometry[k] for k in ("x1", "y1", "x2", "y2")]}
                                      for a in calipers]})
        _summarise_manual(measurement, image)
        _history_user(measurement, user).save()
        audit_record(request=request, user=user, action=AuditEvent.Action.CREATE, obj=measurement,
                     patient=image.patient, detail=f"manual joint space width: {_values_text(measurement)}")
    return measurement


def measurement_accept(*, measurement: Measurement, user=None, request=None) -> Measurement:
    """Accept a measurement as the image's measurement of record (any other accepted one is released)."""
    with transaction.atomic():
        image = Image.objects.select_for_update().get(pk=measurement.image_id)
        for other in image.measurements.filter(accepted=True).exclude(pk=measurement.pk):
            other.accepted, other.accepted_by, other.accepted_at = False, None, None
            _history_user(other, user).save(update_fields=["accepted", "accepted_by", "accepted_at", "updated_at"])
        measurement.accepted = True
        measurement.accepted_by = user if _is_user(user) else None
        measurement.accepted_at = timezone.now()
        _history_user(measurement, user).save(update_fields=["accepted", "accepted_by", "accepted_at", "updated_at"])
        audit_record(request=request, user=user, action=AuditEvent.Action.UPDATE, obj=measurement,
                     patient=image.patient, detail=f"joint space width accepted: {_values_text(measurement)}")
    return measurement


def measurement_delete(*, measurement: Measurement, user=None, request=None) -> None:
    with transaction.atomic():
        audit_record(request=request, user=user, action=AuditEvent.Action.DELETE, obj=measurement,
                     patient=measurement.image.patient, detail="joint space width measurement deleted")
        _history_user(measurement, user).delete()


def _restate(measurement: Measurement, image: Image) -> None:
    if measurement.method == Measurement.Method.SEMI_AUTO:
        _summarise_semi_auto(measurement, image)
    else:
        _summarise_manual(measurement, image)


def _summarise_semi_auto(measurement: Measurement, image: Image) -> None:
    x1, y1, x2, y2 = measurement.line
    spacing = image.spacing
    # Profiles run perpendicular to the line: that is the direction their widths are measured in.
    factor = spacing.mm_per_px(-(y2 - y1), x2 - x1) if spacing else None
    profiles = measurement.results.get("profiles", [])
    summary = jsw.summarize([p["t"] for p in profiles], [p["width_px"] for p in profiles], factor)
    _apply(measurement, summary, factor, image)


def _summarise_manual(measurement: Measurement, image: Image) -> None:
    spacing = image.spacing
    by_region: dict[str, list[float]] = {name: [] for name in jsw.THIRDS}
    digits = 3 if spacing else 2
    for caliper in measurement.results["calipers"]:
        x1, y1, x2, y2 = caliper["points"]
        value, _unit = calibration.distance((x1, y1), (x2, y2), spacing)
        caliper["length"] = round(value, digits)
        by_region[caliper["region"]].append(value)
    summary: dict = {"unit": "mm" if spacing else "px"}
    notes = []
    for name, values in by_region.items():
        summary[name] = round(sum(values) / len(values), digits) if values else None
        if not values:
            notes.append(f"No caliper was drawn in the {name} third.")
    every = [v for values in by_region.values() for v in values]
    summary["minimum"] = round(min(every), digits) if every else None
    if not spacing:
        notes.append("Uncalibrated: widths are in pixels.")
    summary.update(notes=notes, measurable=len(every), count=len(every))
    _apply(measurement, summary, spacing.mean_mm if spacing else None, image)


def _apply(measurement: Measurement, summary: dict, factor: float | None, image: Image) -> None:
    for name in Measurement.VALUES:
        setattr(measurement, name, summary[name])
    measurement.unit = summary["unit"]
    measurement.mm_per_px = factor
    measurement.calibration_source = image.calibration_source
    measurement.results = {**measurement.results, "notes": summary["notes"], "measurable": summary["measurable"],
                           "count": summary["count"]}


def _values_text(measurement: Measurement) -> str:
    return ", ".join(f"{name} {calibration.format_length(value, measurement.unit)}"
                     for name, value in measurement.values.items())


# --- The clinic's PACS (DICOMweb) ---------------------------------------------------------------------

_VIEW_POSITIONS = {"LAT": Image.View.LATERAL, "LL": Image.View.LATERAL, "RL": Image.View.LATERAL,
                   "LATERAL": Image.View.LATERAL}


@dataclass
class PulledInstance:
    """What became of one instance of a PACS study: imported as `image`, or left out and why."""

    study_uid: str
    instance_uid: str
    image: Image | None = None
    reason: str = ""

    @property
    def imported(self) -> bool:
        return self.image is not None


def _view_from_header(view_position: str) -> str:
    position = (view_position or "").upper()
    if position.startswith("OBL") or position in ("LO", "RO", "LAO", "RAO", "LPO", "RPO"):
        return Image.View.OBLIQUE
    # AP or PA says nothing about weight bearing: "other" until the user says which view it is.
    return _VIEW_POSITIONS.get(position, Image.View.OTHER)


class _FileOnDisk(File):
    """A file already on disk, used where it is by the upload (like Django's TemporaryUploadedFile)."""

    def temporary_file_path(self) -> str:
        return self.file.name


def pacs_import(*, episode: Episode, study_uids: Sequence[str], user=None, request=None,
                progress: Callable[[PulledInstance], None] | None = None,
                on_total: Callable[[int], None] | None = None) -> list[PulledInstance]:
    """Import the images of the patient's PACS studies (`study_uids`, found by pacs.find_studies) into an episode.

    Each image goes through image_upload: the same validation, de-duplication, calibration and audit as a
    file the user uploads. Images already on the episode (same SOP Instance UID or same bytes) and objects that
    are not images (reports, presentation states) are left out with the reason; an image the upload refuses is
    left out with the upload's message. Each image is imported on its own: when the PACS fails half-way the
    images already imported stay, and the PacsError says what happened. `on_total` is told the number of
    instances once they are listed, `progress` each outcome."""
    patient_id = episode.patient.mrn
    if not study_uids:
        raise ValidationError({"studies": "Choose at least one study to import."})
    listed: list[pacs.Instance] = []
    for uid in dict.fromkeys(study_uids):
        listed.extend(pacs.study_instances(uid, patient_id=patient_id))
    if on_total:
        on_total(len(listed))
    outcomes: list[PulledInstance] = []
    for instance in listed:
        outcome = PulledInstance(study_uid=instance.study_uid, instance_uid=instance.uid)
        existing = Image.objects.filter(study__episode=episode, header__sop_instance_uid=instance.uid).first()
        if instance.kind_not_image:
            outcome.reason = f"not an image ({instance.kind_not_image})"
        elif existing is not None:
            outcome.reason = f"already on this episode (radiograph {existing.pk} of {format_date(existing.date)})"
        else:
            try:
                outcome.image = _pull_one(instance, episode=episode, patient_id=patient_id, user=user,
                                          request=request)
            except pacs.TooLarge as exc:  # the upload's limit, checked while it arrives: left out like a refusal
                outcome.reason = str(exc)
            except ValidationError as exc:
                messages = exc.message_dict if hasattr(exc, "error_dict") else {"file": exc.messages}
                outcome.reason = " ".join(m for items in messages.values() for m in items)
        outcomes.append(outcome)
        if progress:
            progress(outcome)
    return outcomes


def _pull_one(instance: pacs.Instance, *, episode: Episode, patient_id: str, user, request) -> Image:
    """One PACS instance through image_upload: on disk from the PACS's answer to storage, never whole in memory,
    and never more of it than an upload may be (max_upload_bytes)."""
    with pacs.retrieved(instance, patient_id=patient_id, directory=upload_temp_dir(),
                        max_bytes=max_upload_bytes()) as pulled, open(pulled.path, "rb") as fh:
        laterality = str(pulled.dataset.get("ImageLaterality") or pulled.dataset.get("Laterality") or "")
        return image_upload(
            episode=episode, file=_FileOnDisk(fh, name=f"{instance.uid}.dcm"),
            view=_view_from_header(str(pulled.dataset.get("ViewPosition") or "")),
            side=_LATERALITY.get(laterality.strip().upper(), ""),
            description=str(pulled.dataset.get("StudyDescription") or ""), origin="the PACS", user=user,
            request=request)


# --- Measurement reports (DICOM SR) -------------------------------------------------------------------

def _observer(user) -> str:
    """The person observer's name in DICOM's Family^Given form (a single name ends with ^)."""
    if not _is_user(user):
        return "orthoreg^"
    if user.last_name or user.first_name:
        return f"{user.last_name}^{user.first_name}"[:64]
    return f"{user.username}^"[:64]


def sr_export(*, image: Image, user=None, request=None, purpose: str = "downloaded") -> pydicom.Dataset:
    """The image's annotations and joint space width measurements as a DICOM SR measurement report (TID 1500)
    referencing the image's DICOM original (srreport.py); audited as an export."""
    if image.format != Image.Format.DICOM:
        raise ValidationError("Only a DICOM radiograph can have a DICOM measurement report: a PNG or JPEG has no SOP "
                              "Instance UID for the report to reference.")
    source = _dicom_header(image)
    measurements = list(image.measurements.all())
    annotations = list(image.annotations.all())
    if not measurements and not annotations:
        raise ValidationError("This radiograph has no measurement or annotation to report yet.")
    try:
        report = srreport.build(image, source, observer=_observer(user), measurements=measurements,
                                annotations=annotations)
    except (srreport.ReportError, ValueError, TypeError, AttributeError) as exc:
        raise ValidationError(f"The measurement report cannot be made from this radiograph's DICOM file: {exc}") \
            from None
    audit_record(request=request, user=user, action=AuditEvent.Action.EXPORT, obj=image, patient=image.patient,
                 detail=f"measurement report (DICOM SR) {purpose}: {len(measurements)} measurement(s), "
                        f"{len(annotations)} annotation(s), SR {report.SOPInstanceUID}")
    return report


def sr_push(*, image: Image, user=None, request=None) -> pydicom.Dataset:
    """Store the image's measurement report on the clinic's PACS (STOW-RS), into the image's own study.
    Raises ValidationError for an image that cannot have one, pacs.PacsError when the PACS fails or refuses."""
    pacs.client()  # no PACS configured: say so before building anything
    report = sr_export(image=image, user=user, request=request, purpose=f"sent to the PACS ({pacs.describe()})")
    pacs.store(report)
    return report
