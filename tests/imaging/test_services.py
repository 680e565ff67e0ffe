"""Services: each write validated, stored whole or not at all, audited, with history."""

import datetime as dt

import pytest
from django.core.exceptions import ValidationError

from orthoreg.accounts.models import AuditEvent
from orthoreg.imaging import services
from orthoreg.imaging.models import Annotation, Image, ImagingStudy, Measurement

from .conftest import as_upload, stored_files


def test_dicom_upload_keeps_the_original_and_calibrates(image, dicom_bytes, settings, patient):
    assert image.original.read() == dicom_bytes
    assert image.format == "dicom" and image.modality == "DX" and (image.width, image.height) == (300, 220)
    assert image.calibration_source == "dicom_imager" and image.spacing.row_mm == 0.1
    assert image.rendition.name.endswith("rendition.png") and image.thumbnail.name.endswith("thumbnail.png")
    assert len(stored_files(settings)) == 3
    assert image.study.date == dt.date(2025, 3, 3) and image.history.count() == 1
    event = AuditEvent.objects.get(object_type="image", object_id=str(image.pk))
    assert event.action == "create" and event.patient == patient and "uploaded" in event.detail


def test_png_upload_is_uncalibrated(png_image):
    assert png_image.format == "png" and png_image.calibration_source == "none" and png_image.spacing is None
    assert png_image.calibration_label.startswith("uncalibrated")


def test_images_of_one_date_share_a_study(episode, image, png_bytes, clinician):
    second = services.image_upload(episode=episode, file=as_upload(png_bytes, "b.png"), view="lateral", side="right",
                                   date=image.study.date, user=clinician)
    assert second.study == image.study and ImagingStudy.objects.count() == 1


def test_the_date_comes_from_the_dicom_header_when_not_given(episode, dicom_bytes):
    image = services.image_upload(episode=episode, file=as_upload(dicom_bytes), view="ap_wb")
    assert image.study.date == dt.date(2025, 3, 3) and image.side == "right"  # side defaults to the episode's


def _refused(settings, **kwargs):
    before = (Image.objects.count(), ImagingStudy.objects.count(), len(stored_files(settings)))
    with pytest.raises(ValidationError) as info:
        services.image_upload(**kwargs)
    assert (Image.objects.count(), ImagingStudy.objects.count(), len(stored_files(settings))) == before
    return info.value.message_dict


def test_bad_uploads_store_nothing(settings, episode, dicom_bytes, png_bytes):
    common = {"episode": episode, "view": "ap_wb", "side": "right", "date": dt.date(2025, 3, 3)}
    assert "not a DICOM" in _refused(settings, file=as_upload(b"%PDF-1.4 nope", "x.pdf"), **common)["file"][0]
    assert "truncated" in _refused(settings, file=as_upload(dicom_bytes[:5000]), **common)["file"][0]
    assert "left" in _refused(settings, file=as_upload(dicom_bytes), **{**common, "side": "left"})["side"][0]
    assert "future" in _refused(settings, file=as_upload(png_bytes, "x.png"),
                                **{**common, "date": dt.date.today() + dt.timedelta(days=3)})["date"][0]
    undated = _refused(settings, file=as_upload(png_bytes, "x.png"), **{**common, "date": None})
    assert "Give the date" in undated["date"][0]
    assert "view" in _refused(settings, file=as_upload(png_bytes, "x.png"), **{**common, "view": "axial"})
    settings.MAX_UPLOAD_MB = 0
    assert "MB" in _refused(settings, file=as_upload(png_bytes, "x.png"), **common)["file"][0]


def test_a_duplicate_file_is_refused(settings, image, episode, dicom_bytes):
    message = _refused(settings, episode=episode, file=as_upload(dicom_bytes), view="ap_wb", side="right")["file"][0]
    assert "already" in message


def test_a_failure_after_files_were_written_leaves_no_orphan(settings, episode, png_bytes, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("audit log unavailable")

    monkeypatch.setattr(services, "audit_record", broken)
    with pytest.raises(RuntimeError):
        services.image_upload(episode=episode, file=as_upload(png_bytes, "x.png"), view="ap_wb", side="right",
                              date=dt.date(2025, 1, 2))
    assert stored_files(settings) == [] and Image.objects.count() == 0 and ImagingStudy.objects.count() == 0


def test_update_and_delete(settings, image, clinician, django_capture_on_commit_callbacks):
    services.image_update(image=image, view="oblique", side="right", caption="new", user=clinician)
    assert image.history.first().caption == "new"
    with pytest.raises(ValidationError):
        services.image_update(image=image, view="sideways", side="right", caption="")
    with django_capture_on_commit_callbacks(execute=True):
        services.image_delete(image=image, user=clinician)
    assert stored_files(settings) == [] and not ImagingStudy.objects.exists()
    assert AuditEvent.objects.filter(action="delete", object_type="image").exists()


# --- annotations --------------------------------------------------------------------------------------

def test_annotation_create_update_delete_with_history(image, clinician, patient):
    arrow = services.annotation_save(image=image, kind="arrow", geometry={"x1": 10, "y1": 10, "x2": 60, "y2": 40},
                                     colour="#FF0000", label="spur", user=clinician)
    assert arrow.colour == "#ff0000" and arrow.created_by == clinician
    services.annotation_save(image=image, kind="circle", annotation=arrow, dashed=True, colour="#00ff00", label="",
                             geometry={"x1": 20, "y1": 10, "x2": 60, "y2": 40}, user=clinician)
    arrow.refresh_from_db()
    assert arrow.kind == "arrow" and arrow.dashed and arrow.geometry["x1"] == 20  # the kind never changes
    assert arrow.history.count() == 2 and arrow.history.first().history_user == clinician
    services.annotation_delete(annotation=arrow, user=clinician)
    assert not Annotation.objects.exists()
    assert Annotation.history.filter(history_type="-").count() == 1
    actions = list(AuditEvent.objects.filter(object_type="annotation").values_list("action", flat=True))
    assert sorted(actions) == ["create", "delete", "update"]
    assert AuditEvent.objects.filter(object_type="annotation", patient=patient).count() == 3


def test_bad_annotations_are_refused(image):
    with pytest.raises(ValidationError) as info:
        services.annotation_save(image=image, kind="ellipse", geometry={"cx": 5, "cy": 5, "rx": -1, "ry": 2})
    assert "rx" in info.value.message_dict
    with pytest.raises(ValidationError):
        services.annotation_save(image=image, kind="text", geometry={"x": 5, "y": 5}, label="")
    assert not Annotation.objects.exists()


def test_caliper_length_follows_the_calibration(image):
    caliper = services.annotation_save(image=image, kind="caliper", geometry={"x1": 10, "y1": 10, "x2": 40, "y2": 50})
    assert caliper.as_data()["length"] == {"value": 5.0, "unit": "mm", "text": "5.00 mm"}


# --- measurements and calibration ---------------------------------------------------------------------

def test_measurement_run_replaces_the_draft_and_accept_is_unique(image, small_phantom, clinician):
    first = services.measurement_run(image=image, line=small_phantom.line, user=clinician)
    assert first.unit == "mm" and first.minimum == pytest.approx(1.0, abs=0.1) and not first.accepted
    assert first.results["measurable"] > 0.9 * first.results["count"]
    second = services.measurement_run(image=image, line=list(small_phantom.line), search_px=30, user=clinician)
    assert list(Measurement.objects.values_list("pk", flat=True)) == [second.pk]
    services.measurement_accept(measurement=second, user=clinician)
    third = services.measurement_run(image=image, line=",".join(map(str, small_phantom.line)), user=clinician)
    assert Measurement.objects.count() == 2  # the accepted one stays
    services.measurement_accept(measurement=third, user=clinician)
    second.refresh_from_db()
    assert not second.accepted and image.accepted_measurement == third
    assert AuditEvent.objects.filter(object_type="measurement", action="update").count() == 2


def test_measurement_run_refuses_a_bad_line(image):
    with pytest.raises(ValidationError, match="outside"):
        services.measurement_run(image=image, line=[0, 0, 9999, 0])
    with pytest.raises(ValidationError, match="four numbers"):
        services.measurement_run(image=image, line="1,2")
    assert not Measurement.objects.exists()


def test_calibration_restates_measurements(png_image, small_phantom, clinician):
    measurement = services.measurement_run(image=png_image, line=small_phantom.line)
    assert measurement.unit == "px" and measurement.minimum == pytest.approx(10, abs=1)
    services.calibration_set(image=png_image, source="manual", points=[0, 0, 200, 0], known_mm=20, user=clinician)
    measurement.refresh_from_db()
    assert png_image.calibration_source == "manual" and png_image.calibration_detail["known_mm"] == 20
    assert measurement.unit == "mm" and measurement.minimum == pytest.approx(1.0, abs=0.1)
    assert measurement.calibration_source == "manual"
    services.calibration_set(image=png_image, source="none")
    measurement.refresh_from_db()
    assert measurement.unit == "px" and png_image.spacing is None


def test_bad_calibrations_are_refused(png_image, image):
    with pytest.raises(ValidationError, match="apart"):
        services.calibration_set(image=png_image, source="manual", points=[0, 0, 3, 0], known_mm=10)
    with pytest.raises(ValidationError, match="Only a DICOM"):
        services.calibration_set(image=png_image, source="dicom")
    with pytest.raises(ValidationError):
        services.calibration_set(image=png_image, source="guess")
    png_image.refresh_from_db()
    assert png_image.calibration_source == "none"
    services.calibration_set(image=image, source="none")
    services.calibration_set(image=image, source="dicom")
    assert image.calibration_source == "dicom_imager"


def test_manual_measurement_from_region_calipers(image, clinician):
    with pytest.raises(ValidationError, match="calipers"):
        services.measurement_record_manual(image=image)
    for region, y2 in (("medial", 20), ("medial", 22), ("lateral", 35)):
        services.annotation_save(image=image, kind="caliper", geometry={"x1": 50, "y1": 10, "x2": 50, "y2": y2,
                                                                        "region": region})
    services.annotation_save(image=image, kind="caliper", geometry={"x1": 0, "y1": 0, "x2": 90, "y2": 0})
    measurement = services.measurement_record_manual(image=image, user=clinician)
    assert measurement.method == "manual" and measurement.unit == "mm"
    assert measurement.medial == pytest.approx(1.1) and measurement.lateral == pytest.approx(2.5)
    assert measurement.central is None and measurement.minimum == pytest.approx(1.0)
    assert any("central" in n for n in measurement.notes)
    services.measurement_delete(measurement=measurement, user=clinician)
    assert not Measurement.objects.exists()


def test_deleting_the_episode_removes_the_files(settings, image, episode, django_capture_on_commit_callbacks):
    assert len(stored_files(settings)) == 3
    with django_capture_on_commit_callbacks(execute=True):
        episode.delete()
    assert stored_files(settings) == [] and not Image.objects.exists()
