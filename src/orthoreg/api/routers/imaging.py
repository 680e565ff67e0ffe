"""/api/v1/images (radiograph metadata: list, read, change view, side and caption) and /api/v1/measurements
(joint space width: list, read, run the semi-automatic measurement along a line). The image files themselves
are not served here: the site's pages show and download them (audited there)."""

from __future__ import annotations

from ninja import Query, Router

from orthoreg.accounts import access
from orthoreg.imaging import services
from orthoreg.imaging.models import Image, Measurement

from ..common import (
    IDEMPOTENT,
    READ_ERRORS,
    WRITE_ERRORS,
    Id,
    ListQuery,
    changes,
    get_object,
    no_changes_refused,
    page_of,
    paginate,
    require,
    write,
)
from ..resources import ImageOut, ImagePatch, MeasurementIn, MeasurementOut

router = Router(tags=["imaging"])
WHAT = "radiographs"


class ImageQuery(ListQuery):
    episode_id: Id | None = None
    study_id: Id | None = None


@router.get("/images", response={200: page_of(ImageOut), **READ_ERRORS}, summary="Radiographs (metadata)")
def image_list(request, query: Query[ImageQuery]):
    ids = require(request, access.CLINICAL, WHAT)
    qs = Image.objects.filter(study__episode__patient__clinic_id__in=ids).select_related("study__episode__patient")
    if query.episode_id is not None:
        qs = qs.filter(study__episode_id=query.episode_id)
    if query.study_id is not None:
        qs = qs.filter(study_id=query.study_id)
    page = paginate(qs, query)
    for row in page["items"]:
        access.touch(request.auth, row)
    return page


def _image(request, image_id: Id, location: str = "id") -> Image:
    return get_object(request, Image, image_id, queryset=Image.objects.select_related("study__episode__patient"),
                      location=location)


@router.get("/images/{image_id}", response={200: ImageOut, **READ_ERRORS}, summary="One radiograph")
def image_read(request, image_id: Id):
    require(request, access.CLINICAL, WHAT)
    return _image(request, image_id)


@router.patch("/images/{image_id}", response={200: ImageOut, **WRITE_ERRORS},
              openapi_extra=IDEMPOTENT, summary="Change a radiograph's view, side or caption")
def image_update(request, image_id: Id, payload: ImagePatch):
    require(request, access.CLINICAL, WHAT)
    image = _image(request, image_id)
    fields = {k: v for k, v in changes(payload).items() if v is not None}
    no_changes_refused(fields)
    merged = {"view": image.view, "side": image.side, "caption": image.caption, **fields}
    return write(request, status=200, out=ImageOut, action=lambda: services.image_update(
        image=image, user=request.auth, request=request, **merged))


class MeasurementQuery(ListQuery):
    image_id: Id | None = None
    episode_id: Id | None = None
    accepted: bool | None = None


@router.get("/measurements", response={200: page_of(MeasurementOut), **READ_ERRORS},
            summary="Joint space width measurements")
def measurement_list(request, query: Query[MeasurementQuery]):
    ids = require(request, access.CLINICAL, WHAT)
    qs = Measurement.objects.filter(image__study__episode__patient__clinic_id__in=ids) \
        .select_related("image__study__episode__patient")
    if query.image_id is not None:
        qs = qs.filter(image_id=query.image_id)
    if query.episode_id is not None:
        qs = qs.filter(image__study__episode_id=query.episode_id)
    if query.accepted is not None:
        qs = qs.filter(accepted=query.accepted)
    page = paginate(qs, query)
    for row in page["items"]:
        access.touch(request.auth, row.image)
    return page


@router.get("/measurements/{measurement_id}", response={200: MeasurementOut, **READ_ERRORS},
            summary="One measurement")
def measurement_read(request, measurement_id: Id):
    require(request, access.CLINICAL, WHAT)
    measurement = get_object(request, Measurement, measurement_id,
                             queryset=Measurement.objects.select_related("image__study__episode__patient"))
    access.touch(request.auth, measurement.image)
    return measurement


@router.post("/measurements", response={201: MeasurementOut, **WRITE_ERRORS},
             openapi_extra=IDEMPOTENT, summary="Run the semi-automatic joint space width along a line (a draft until accepted)")
def measurement_create(request, payload: MeasurementIn):
    require(request, access.CLINICAL, WHAT)
    image = _image(request, payload.image_id, location="image_id")
    return write(request, status=201, out=MeasurementOut, action=lambda: services.measurement_run(
        image=image, line=payload.line, user=request.auth, request=request))
