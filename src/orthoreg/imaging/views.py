"""Thin views: parse, authorize (orthoreg.accounts.access, capability CLINICAL), call a service, respond.

Files are served only from here, after the access check; another clinic's image answers 404.
The editor's endpoints speak JSON: 400 with {"error", "errors"} for bad input, never a 500.
"""

from __future__ import annotations

import json
import os
import tempfile

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import TemporaryUploadedFile, UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, StopUpload, TemporaryFileUploadHandler
from django.http import FileResponse, Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from orthoreg.accounts import access
from orthoreg.accounts.models import AuditEvent
from orthoreg.accounts.services import audit_record
from orthoreg.registry.forms import apply_errors, error_messages

from . import comparison, pacs, selectors, services, srreport
from .forms import ImageEditForm, PacsSearchForm, UploadForm
from .models import Image


def _json_error(exc: ValidationError | str, status: int = 400) -> JsonResponse:
    if isinstance(exc, str):
        return JsonResponse({"error": exc, "errors": {"__all__": [exc]}}, status=status)
    errors = error_messages(exc)
    text = " ".join(m for items in errors.values() for m in items)
    return JsonResponse({"error": text, "errors": errors}, status=status)


def _body(request) -> dict:
    """The JSON object of a request (or its form fields); raises ValidationError for anything else."""
    if request.content_type == "application/json":
        try:
            data = json.loads(request.body or b"{}")
        except (ValueError, UnicodeDecodeError):
            raise ValidationError("The request is not valid JSON.") from None
        if not isinstance(data, dict):
            raise ValidationError("The request must be a JSON object.")
        return data
    return request.POST.dict()


def _float_or_none(value, name: str) -> float | None:
    if value in (None, ""):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValidationError({name: f"{name} must be a number."}) from None


def _episode_context(episode) -> dict:
    return {"episode": episode, "patient": episode.patient}


# --- Pages --------------------------------------------------------------------------------------------

@login_required
@require_GET
def episode_images(request, episode_id: int):
    episode = access.access_episode(request.user, episode_id)
    return render(request, "imaging/episode_images.html", {**_episode_context(episode), "nav": "patients"})


class UploadLimit(FileUploadHandler):
    """Stops reading an upload as soon as it passes the size limit, so an oversized file never reaches the disk."""

    def __init__(self, request, limit: int):
        super().__init__(request)
        self.limit = limit
        self.received = 0

    def new_file(self, *args, **kwargs):
        super().new_file(*args, **kwargs)
        self.received = 0

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > self.limit:
            self.request.upload_too_large = True
            raise StopUpload(connection_reset=False)  # the rest of the body is read and dropped
        return raw_data

    def file_complete(self, file_size):
        return None


class _SpooledUpload(TemporaryUploadedFile):
    """An upload spooled to a temporary file under the data directory (services.upload_temp_dir)."""

    def __init__(self, name, content_type, size, charset, content_type_extra=None):
        file = tempfile.NamedTemporaryFile(suffix=".upload" + os.path.splitext(name)[1][:16],
                                           dir=services.upload_temp_dir())
        UploadedFile.__init__(self, file, name, content_type, size, charset, content_type_extra)


class SpoolToDisk(TemporaryFileUploadHandler):
    """Every radiograph goes to disk as it arrives, 64 KB at a time, whatever its size: the server never holds
    the file in memory (issue 17 item 4)."""

    def new_file(self, *args, **kwargs):
        FileUploadHandler.new_file(self, *args, **kwargs)
        self.file = _SpooledUpload(self.file_name, self.content_type, 0, self.charset, self.content_type_extra)


@login_required
@csrf_exempt  # checked by _upload, after the size limit is in place (request.POST must not be read before)
@require_http_methods(["GET", "POST"])
def upload(request, episode_id: int):
    episode = access.access_episode(request.user, episode_id)
    request.upload_handlers = [UploadLimit(request, services.max_upload_bytes()), SpoolToDisk(request)]
    return _upload(request, episode)


@csrf_protect
def _upload(request, episode):
    form = UploadForm(request.POST or None, request.FILES or None, episode=episode)
    if getattr(request, "upload_too_large", False):
        form.is_valid()
        form.errors["file"] = form.error_class([
            f"The file is larger than {settings.MAX_UPLOAD_MB} MB, the largest accepted; nothing was stored."])
    elif request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            image = services.image_upload(episode=episode, file=data["file"], view=data["view"], side=data["side"],
                                          date=data["date"], caption=data["caption"],
                                          description=data["description"], user=request.user, request=request)
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            messages.success(request, f"Radiograph uploaded: {image.calibration_label}.")
            return redirect(image.get_absolute_url())
    status = 400 if request.method == "POST" else 200
    return render(request, "imaging/upload.html", {**_episode_context(episode), "form": form, "nav": "patients"},
                  status=status)


@login_required
@require_GET
def image_detail(request, pk: int):
    image = selectors.access_image(request.user, pk)
    episode = image.study.episode
    measurements = list(image.measurements.all())
    editor = {
        "image": {
            "id": image.pk, "width": image.width, "height": image.height,
            "spacing": [image.spacing_row_mm, image.spacing_col_mm] if image.calibrated else None,
            "calibration": image.calibration_label, "rendition": reverse("imaging:image_rendition", args=[image.pk]),
        },
        "annotations": [a.as_data() for a in image.annotations.all()],
        "measurements": [m.as_data() for m in measurements],
        "urls": {
            "annotations": reverse("imaging:annotations", args=[image.pk]),
            "annotation": reverse("imaging:annotation", args=[0]),
            "measure": reverse("imaging:measure", args=[image.pk]),
            "measure_manual": reverse("imaging:measure_manual", args=[image.pk]),
            "accept": reverse("imaging:measurement_accept", args=[0]),
            "delete_measurement": reverse("imaging:measurement_delete", args=[0]),
            "calibration": reverse("imaging:calibration", args=[image.pk]),
        },
        "regions": ["medial", "central", "lateral"],
    }
    siblings = list(selectors.episode_images(episode))
    return render(request, "imaging/image_detail.html", {
        **_episode_context(episode), "image": image, "editor": editor, "measurements": measurements,
        "edit_form": ImageEditForm(initial={"view": image.view, "side": image.side, "caption": image.caption}),
        "siblings": siblings, "history": selectors.annotation_history(image), "pacs": pacs.configured(),
        "nav": "patients",
    })


@login_required
@require_POST
def image_edit(request, pk: int):
    image = selectors.access_image(request.user, pk)
    form = ImageEditForm(request.POST)
    if form.is_valid():
        try:
            services.image_update(image=image, user=request.user, request=request, **form.cleaned_data)
            messages.success(request, "Radiograph details saved.")
        except ValidationError as exc:
            messages.error(request, " ".join(m for items in error_messages(exc).values() for m in items))
    else:
        messages.error(request, "The details were not saved: " + " ".join(
            f"{form[name].label}: {' '.join(errs)}" if name in form.fields else " ".join(errs)  # type: ignore[arg-type]
            for name, errs in form.errors.items()))
    return redirect(image.get_absolute_url())


@login_required
@require_http_methods(["GET", "POST"])
def image_delete(request, pk: int):
    image = selectors.access_image(request.user, pk)
    episode = image.study.episode
    if request.method == "POST":
        services.image_delete(image=image, user=request.user, request=request)
        messages.success(request, "Radiograph deleted.")
        return redirect("imaging:episode_images", episode_id=episode.pk)
    return render(request, "imaging/image_delete.html", {**_episode_context(episode), "image": image,
                                                         "nav": "patients"})


def _file_response(field, *, content_type: str, filename: str | None = None) -> FileResponse:
    try:
        handle = field.open("rb")
    except (OSError, ValueError):
        raise Http404("The file is missing from storage") from None
    response = FileResponse(handle, content_type=content_type, as_attachment=filename is not None,
                            filename=filename or "")
    response["X-Content-Type-Options"] = "nosniff"
    return response


@login_required
@require_GET
def image_rendition(request, pk: int):
    image = selectors.access_image(request.user, pk)
    return _file_response(image.rendition, content_type="image/png")


@login_required
@require_GET
def image_thumbnail(request, pk: int):
    image = selectors.access_image(request.user, pk)
    return _file_response(image.thumbnail, content_type="image/png")


@login_required
@require_GET
def image_original(request, pk: int):
    image = selectors.access_image(request.user, pk)
    content_type = {Image.Format.DICOM: "application/dicom", Image.Format.PNG: "image/png",
                    Image.Format.JPEG: "image/jpeg"}[image.format]  # type: ignore[index]
    extension = {Image.Format.DICOM: ".dcm", Image.Format.PNG: ".png", Image.Format.JPEG: ".jpg"}[image.format]  # type: ignore[index]
    name = image.original_name or f"radiograph-{image.pk}{extension}"
    response = _file_response(image.original, content_type=content_type, filename=name)
    audit_record(request=request, action=AuditEvent.Action.EXPORT, obj=image, patient=image.patient,
                 detail=f"original radiograph file downloaded ({name})")
    return response


@login_required
@require_http_methods(["GET", "POST"])
def pacs_studies(request, episode_id: int):
    """The PACS's studies of the episode's patient (by MRN, from a date); import the ones picked."""
    episode = access.access_episode(request.user, episode_id)
    form = PacsSearchForm(request.GET or None)
    since = form.cleaned_data["since"] if form.is_valid() else None
    context = {**_episode_context(episode), "form": form, "configured": pacs.configured(), "where": pacs.describe(),
               "studies": [], "outcomes": None, "error": "", "nav": "patients"}
    if request.method == "POST":
        try:
            outcomes = services.pacs_import(episode=episode, study_uids=request.POST.getlist("study"),
                                            user=request.user, request=request)
        except (pacs.PacsError, ValidationError) as exc:
            context["error"] = str(exc) if isinstance(exc, pacs.PacsError) else " ".join(exc.messages)
        else:
            context["outcomes"] = outcomes
            context["imported"] = sum(o.imported for o in outcomes)
    if context["configured"] and (form.is_valid() or not request.GET):
        try:
            context["studies"] = pacs.find_studies(episode.patient.mrn, since=since)
            context["here"] = selectors.episode_study_uids(episode)
        except pacs.PacsError as exc:
            context["error"] = context["error"] or str(exc)
    return render(request, "imaging/pacs.html", context)


@login_required
@require_GET
def image_sr(request, pk: int):
    """The image's measurement report as a DICOM SR file to download."""
    image = selectors.access_image(request.user, pk)
    try:
        report = services.sr_export(image=image, user=request.user, request=request)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect(image.get_absolute_url())
    response = HttpResponse(srreport.to_bytes(report), content_type="application/dicom")
    response["Content-Disposition"] = f'attachment; filename="measurements-{image.pk}-{image.study.date:%Y%m%d}.dcm"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


@login_required
@require_POST
def image_sr_push(request, pk: int):
    """Send the image's measurement report to the PACS (STOW-RS)."""
    image = selectors.access_image(request.user, pk)
    try:
        services.sr_push(image=image, user=request.user, request=request)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    except pacs.PacsError as exc:
        messages.error(request, f"The measurement report was not sent. {exc}")
    else:
        messages.success(request, f"Measurement report sent to the PACS ({pacs.describe()}).")
    return redirect(image.get_absolute_url())


@login_required
@require_GET
def compare(request, episode_id: int):
    episode = access.access_episode(request.user, episode_id)
    before, after, images = selectors.pick_pair(episode, request.GET.get("before"), request.GET.get("after"))
    region = request.GET.get("region") if request.GET.get("region") in (comparison.JOINT, comparison.WHOLE) \
        else comparison.JOINT
    layout = comparison.comparison_layout(before, after, region=region) if before and after else None
    return render(request, "imaging/compare.html", {
        **_episode_context(episode), "images": images, "before": before, "after": after, "layout": layout,
        "region": region, "error_mm": selectors.MEASUREMENT_ERROR_MM,
        "error_source": selectors.MEASUREMENT_ERROR_SOURCE, "nav": "patients",
    })


@login_required
@require_GET
def compare_png(request, episode_id: int):
    episode = access.access_episode(request.user, episode_id)
    before, after, _images = selectors.pick_pair(episode, request.GET.get("before"), request.GET.get("after"))
    if before is None or after is None:
        raise Http404("Two radiographs are needed for a comparison")
    region = request.GET.get("region") if request.GET.get("region") in (comparison.JOINT, comparison.WHOLE) \
        else comparison.JOINT
    try:
        png = comparison.comparison_png(before, after, region=region)
    except OSError:
        raise Http404("A radiograph's file is missing from storage") from None
    audit_record(request=request, action=AuditEvent.Action.EXPORT, obj=after, patient=episode.patient,
                 detail=f"before/after comparison exported (images {before.pk} and {after.pk})")
    response = HttpResponse(png, content_type="image/png")
    response["Content-Disposition"] = (f'attachment; filename="radiographs-{before.study.date:%Y%m%d}-'
                                       f'{after.study.date:%Y%m%d}.png"')
    return response


# --- Editor endpoints (JSON) --------------------------------------------------------------------------

@login_required  # type: ignore[no-redef]
@require_http_methods(["GET", "POST"])
def annotations(request, pk: int):
    image = selectors.access_image(request.user, pk)
    if request.method == "GET":
        return JsonResponse({"annotations": [a.as_data() for a in image.annotations.all()]})
    try:
        data = _body(request)
        annotation = services.annotation_save(
            image=image, kind=str(data.get("kind", "")), geometry=data.get("geometry"), colour=data.get("colour", ""),
            dashed=bool(data.get("dashed")), label=data.get("label", ""), user=request.user, request=request)
    except ValidationError as exc:
        return _json_error(exc)
    return JsonResponse({"annotation": annotation.as_data()}, status=201)


@login_required
@require_http_methods(["GET", "POST", "PATCH", "PUT", "DELETE"])
def annotation(request, pk: int):
    item = selectors.access_annotation(request.user, pk)
    if request.method == "GET":
        return JsonResponse({"annotation": item.as_data()})
    if request.method == "DELETE":
        services.annotation_delete(annotation=item, user=request.user, request=request)
        return JsonResponse({"deleted": pk})
    try:
        data = _body(request)
        item = services.annotation_save(
            image=item.image, kind=item.kind, geometry=data.get("geometry", item.geometry),
            colour=data.get("colour", item.colour), dashed=bool(data.get("dashed", item.dashed)),
            label=data.get("label", item.label), annotation=item, user=request.user, request=request)
    except ValidationError as exc:
        return _json_error(exc)
    return JsonResponse({"annotation": item.as_data()})


@login_required
@require_POST
def calibration_view(request, pk: int):
    image = selectors.access_image(request.user, pk)
    try:
        data = _body(request)
        source = str(data.get("source", ""))
        points = data.get("points")
        if isinstance(points, str):
            points = points.split(",")
        if points is not None:
            if not isinstance(points, list) or len(points) != 4:
                raise ValidationError({"points": "Mark both ends of the marker."})
            points = [_float_or_none(v, "points") for v in points]
            if None in points:
                raise ValidationError({"points": "Mark both ends of the marker."})
        known = _float_or_none(data.get("known_mm"), "known_mm")
        image = services.calibration_set(image=image, source=source, points=points, known_mm=known,
                                         user=request.user, request=request)
    except ValidationError as exc:
        if request.content_type != "application/json":
            messages.error(request, " ".join(m for items in error_messages(exc).values() for m in items))
            return redirect(image.get_absolute_url())
        return _json_error(exc)
    if request.content_type != "application/json":
        messages.success(request, f"Calibration: {image.calibration_label}.")
        return redirect(image.get_absolute_url())
    return JsonResponse({
        "calibration": image.calibration_label,
        "spacing": [image.spacing_row_mm, image.spacing_col_mm] if image.calibrated else None,
        "annotations": [a.as_data() for a in image.annotations.all()],
        "measurements": [m.as_data() for m in image.measurements.all()],
    })


@login_required
@require_POST
def measure(request, pk: int):
    image = selectors.access_image(request.user, pk)
    try:
        data = _body(request)
        line = data.get("line")
        if line is None:
            raise ValidationError({"line": "Draw the line along the joint, starting at the medial end."})
        measurement = services.measurement_run(image=image, line=line,
                                               search_px=_float_or_none(data.get("search_px"), "search_px"),
                                               user=request.user, request=request)
    except ValidationError as exc:
        return _json_error(exc)
    return JsonResponse({"measurement": measurement.as_data()}, status=201)


@login_required
@require_POST
def measure_manual(request, pk: int):
    image = selectors.access_image(request.user, pk)
    try:
        measurement = services.measurement_record_manual(image=image, user=request.user, request=request)
    except ValidationError as exc:
        return _json_error(exc)
    return JsonResponse({"measurement": measurement.as_data()}, status=201)


@login_required
@require_POST
def measurement_accept(request, pk: int):
    measurement = selectors.access_measurement(request.user, pk)
    services.measurement_accept(measurement=measurement, user=request.user, request=request)
    return JsonResponse({"measurements": [m.as_data() for m in measurement.image.measurements.all()]})


@login_required
@require_POST
def measurement_delete(request, pk: int):
    measurement = selectors.access_measurement(request.user, pk)
    image = measurement.image
    services.measurement_delete(measurement=measurement, user=request.user, request=request)
    return JsonResponse({"measurements": [m.as_data() for m in image.measurements.all()]})

