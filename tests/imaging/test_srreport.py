"""Measurements others can read: each image's annotations and joint space width measurements as a DICOM SR
(TID 1500 measurement report) that references the image; downloaded from the image page, written and pushed from
the command line, stored on a real Orthanc (STOW-RS) and read back (QIDO-RS, WADO-RS) with the same values."""

from __future__ import annotations

import io
import re

import pydicom
import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.urls import reverse
from pydicom.sr.codedict import codes

from orthoreg.accounts.models import AuditEvent
from orthoreg.imaging import pacs, services, srreport
from orthoreg.imaging.models import Image
from tests.imaging.conftest import as_upload
from tests.imaging.orthanc import film_for, free_port, orthanc, orthanc_server  # noqa: F401
from tests.imaging.real_films import JOINTS

pytestmark = pytest.mark.django_db

COMPREHENSIVE_3D_SR = "1.2.840.10008.5.1.4.1.1.88.34"
THIRDS = {"medial": "Medial", "central": "Central", "lateral": "Lateral"}


def annotate(image, user):
    """A caliper in the medial third, an arrow, an ellipse, a circle and a text label, as the editor saves them."""
    shapes = [("caliper", {"x1": 60, "y1": 100, "x2": 60, "y2": 112, "region": "medial"}, "medial gap"),
              ("arrow", {"x1": 20, "y1": 20, "x2": 58, "y2": 98}, "collapsed medial joint line"),
              ("ellipse", {"cx": 80, "cy": 108, "rx": 40, "ry": 12, "angle": 10}, ""),
              ("circle", {"cx": 200, "cy": 110, "r": 15}, ""),
              ("text", {"x": 150, "y": 30}, "6 months after BMC")]
    return [services.annotation_save(image=image, kind=k, geometry=g, label=label, user=user) for k, g, label in shapes]


def expected_values(image) -> list[tuple]:
    """(group, name, value, unit, derivation, modifier) of every measurement the report must hold."""
    rows = []
    for m in image.measurements.all():
        group = f"Joint space width {m.pk}: {m.get_method_display()}, {'accepted' if m.accepted else 'draft'}"
        for name, value in m.values.items():
            if value is not None:
                rows.append((group, "Width", value, "mm" if m.unit == "mm" else "{pixels}",
                             "Minimum" if name == "minimum" else "Mean", THIRDS.get(name, "")))
    for a in image.annotations.filter(kind="caliper"):
        value, unit = a.length()
        rows.append((f"Caliper {a.pk}" + (f": {a.label}" if a.label else ""), "Length", round(value, 3), "mm" if unit == "mm" else "{pixels}",
                     "", THIRDS.get(a.geometry.get("region", ""), "")))
    return sorted(rows)


def read_values(data) -> tuple[list[tuple], set[str], dict]:
    report = srreport.read(data)
    rows = sorted((v.group, v.name, v.value, v.unit, v.derivation, v.modifier) for v in report["values"])
    uids = {v.referenced_sop_instance_uid for v in report["values"]}
    return rows, uids | set(report["referenced"]), report["regions"]


@pytest.fixture
def measured(image, small_phantom, clinician):
    """The phantom DICOM with an accepted semi-automatic measurement, a manual one from the caliper, annotations."""
    semi = services.measurement_run(image=image, line=small_phantom.line, user=clinician)
    services.measurement_accept(measurement=semi, user=clinician)
    annotate(image, clinician)
    services.measurement_record_manual(image=image, user=clinician)
    return image


def test_download_gives_a_tid_1500_report_with_every_value(measured, clinician_client):
    image = measured
    answer = clinician_client.get(reverse("imaging:image_sr", args=[image.pk]))
    assert answer.status_code == 200 and answer["Content-Type"] == "application/dicom"
    assert answer["Content-Disposition"].startswith("attachment;") and f"measurements-{image.pk}-" in \
        answer["Content-Disposition"]
    data = answer.content
    dataset = pydicom.dcmread(io.BytesIO(data))
    assert dataset.SOPClassUID == COMPREHENSIVE_3D_SR and dataset.Modality == "SR"
    assert dataset.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    assert dataset.ConceptNameCodeSequence[0].CodeValue == codes.DCM.ImagingMeasurementReport.value
    source = pydicom.dcmread(image.original.path, stop_before_pixels=True)
    assert dataset.StudyInstanceUID == source.StudyInstanceUID and dataset.PatientID == source.PatientID

    rows, uids, regions = read_values(data)
    expected = expected_values(image)
    assert len(expected) == 4 + 2 + 1  # semi-automatic thirds and minimum, the manual medial third and minimum, caliper
    assert [r[:2] + r[3:] for r in rows] == [e[:2] + e[3:] for e in expected]
    for got, want in zip(rows, expected):
        assert got[2] == pytest.approx(want[2], abs=1e-9)
    assert {r[3] for r in rows} == {"mm"}  # UCUM mm: the phantom is calibrated
    assert uids == {source.SOPInstanceUID}
    semi = image.measurements.get(method="semi_auto")
    graphic, points, uid = regions[f"Joint space width {semi.pk}: Semi-automatic (profiles), accepted"]
    assert graphic == "POLYLINE" and uid == source.SOPInstanceUID
    assert [v for point in points for v in point] == pytest.approx(semi.line)
    shapes = sorted((name.split(" ")[0], graphic) for name, (graphic, _p, _u) in regions.items())
    # the manual measurement references the image without a shape of its own (its calipers have theirs)
    assert shapes == [("Arrow", "POLYLINE"), ("Caliper", "POLYLINE"), ("Circle", "CIRCLE"), ("Ellipse", "ELLIPSE"),
                      ("Joint", ""), ("Joint", "POLYLINE"), ("Text", "POINT")]
    assert {uid for _g, _p, uid in regions.values()} == {source.SOPInstanceUID}
    assert any(re.fullmatch(r"Text \d+: 6 months after BMC", name) for name in regions)  # the id varies by database
    assert AuditEvent.objects.filter(action=AuditEvent.Action.EXPORT, object_type="image",
                                     detail__contains="measurement report (DICOM SR) downloaded").count() == 1


def test_not_measurable_is_left_out_and_pixels_say_so(image, small_phantom, clinician):
    services.calibration_set(image=image, source="none", user=clinician)
    x1, y1, x2, y2 = small_phantom.line
    far = (x1, y1 - 60, x2, y2 - 60)  # solid bone above the joint: nothing measurable
    measurement = services.measurement_run(image=image, line=far, user=clinician)
    assert measurement.minimum is None
    annotate(image, clinician)
    rows, _uids, _regions = read_values(srreport.to_bytes(services.sr_export(image=image, user=clinician)))
    assert [r for r in rows if r[1] == "Width"] == []  # "not measurable" is never written as a number
    assert rows == [(f"Caliper {image.annotations.get(kind='caliper').pk}: medial gap", "Length", 12.0, "{pixels}",
                     "", "Medial")]


def test_a_png_or_an_empty_image_has_no_report_and_says_why(png_image, image, clinician_client):
    answer = clinician_client.get(reverse("imaging:image_sr", args=[png_image.pk]), follow=True)
    assert answer.status_code == 200
    assert "a PNG or JPEG has no SOP Instance UID" in answer.content.decode()
    empty = clinician_client.get(reverse("imaging:image_sr", args=[image.pk]), follow=True).content.decode()
    assert "no measurement or annotation to report yet" in empty


def test_another_clinic_cannot_download_or_push(measured, other_client):
    assert other_client.get(reverse("imaging:image_sr", args=[measured.pk])).status_code == 404
    assert other_client.post(reverse("imaging:image_sr_push", args=[measured.pk])).status_code == 404


def test_cli_writes_the_report(measured, tmp_path):
    out = tmp_path / "report.dcm"
    call_command("imaging", "sr", str(measured.pk), str(out), stdout=io.StringIO())
    rows, _uids, _regions = read_values(out.read_bytes())
    assert len(rows) == len(expected_values(measured))
    with pytest.raises(CommandError) as info:
        call_command("imaging", "sr", "999999", str(out))
    assert info.value.returncode == 2 and "no radiograph" in str(info.value)


@pytest.fixture
def pulled_ankle(orthanc, episode, patient, clinician):
    """The real ankle CR on the PACS, imported, with the tibiotalar joint measured and accepted and a caliper."""
    orthanc.upload(film_for("ankle", patient.mrn))
    [outcome] = services.pacs_import(episode=episode, study_uids=[film_for("ankle", patient.mrn).StudyInstanceUID],
                                     user=clinician)
    image = outcome.image
    joint = next(j for j in JOINTS if j.name == "ankle tibiotalar")
    measurement = services.measurement_run(image=image, line=joint.line, user=clinician)
    services.measurement_accept(measurement=measurement, user=clinician)
    services.annotation_save(image=image, kind="caliper", label="", user=clinician,
                             geometry={"x1": 800, "y1": 1400, "x2": 800, "y2": 1418, "region": "central"})
    return image


def _reports_on_the_pacs(study_uid: str) -> list:
    web = pacs.client()
    found = web.search_for_instances(study_instance_uid=study_uid, search_filters={"Modality": "SR"})
    return [web.retrieve_instance(study_uid, pacs._value(item, "SeriesInstanceUID"),
                                  pacs._value(item, "SOPInstanceUID")) for item in found]


def test_push_to_the_pacs_and_read_it_back(pulled_ankle, clinician_client):
    image = pulled_ankle
    answer = clinician_client.post(reverse("imaging:image_sr_push", args=[image.pk]), follow=True)
    assert "Measurement report sent to the PACS" in answer.content.decode()
    [report] = _reports_on_the_pacs(image.header["study_instance_uid"])
    rows, uids, _regions = read_values(report)
    expected = expected_values(image)
    assert {r[3] for r in rows} == {"{pixels}"}  # the ankle CR states no pixel spacing
    assert sum(r[1] == "Width" for r in rows) == 4  # the tibiotalar joint: three thirds and the minimum
    assert [r[:2] + r[3:] for r in rows] == [e[:2] + e[3:] for e in expected]
    for got, want in zip(rows, expected):
        assert got[2] == pytest.approx(want[2], abs=1e-9)
    assert uids == {image.header["sop_instance_uid"]}
    assert AuditEvent.objects.filter(detail__contains="sent to the PACS").count() == 1

    # The report comes back with the study on the next pull, and is not taken for a radiograph.
    outcomes = services.pacs_import(episode=image.study.episode, study_uids=[image.header["study_instance_uid"]])
    assert sorted(o.reason for o in outcomes) == [f"already on this episode (radiograph {image.pk} of 26 Aug 2004)",
                                                  "not an image (structured report)"]


def test_push_from_the_command_line_and_when_the_pacs_is_down(pulled_ankle, settings, clinician_client):
    out = io.StringIO()
    call_command("imaging", "push-sr", str(pulled_ankle.pk), stdout=out)
    assert "stored on the PACS" in out.getvalue()
    assert len(_reports_on_the_pacs(pulled_ankle.header["study_instance_uid"])) == 1
    settings.DICOMWEB_URL = f"http://127.0.0.1:{free_port()}/dicom-web"
    with pytest.raises(CommandError) as info:
        call_command("imaging", "push-sr", str(pulled_ankle.pk))
    assert info.value.returncode == 2 and "cannot be reached" in str(info.value)
    page = clinician_client.post(reverse("imaging:image_sr_push", args=[pulled_ankle.pk]), follow=True)
    assert page.status_code == 200 and "The measurement report was not sent" in page.content.decode()


def test_upload_of_a_report_as_a_radiograph_is_refused(measured, episode, clinician):
    data = srreport.to_bytes(services.sr_export(image=measured, user=clinician))
    with pytest.raises(ValidationError) as info:
        services.image_upload(episode=episode, file=as_upload(data, "report.dcm"), view="ap_wb", user=clinician)
    assert "holds no image (no pixel data)" in info.value.message_dict["file"][0]
    assert Image.objects.count() == 1
