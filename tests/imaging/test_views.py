"""Pages and endpoints through HTTP: access per clinic, files only through checked views, bad input -> 400."""

import datetime as dt
import io
import json

import pytest
from django.urls import reverse
from PIL import Image as PILImage

from orthoreg.accounts.models import AuditEvent
from orthoreg.imaging.models import Annotation, Image, Measurement
from orthoreg.registry.models import Episode

from .conftest import as_upload, stored_files


def _post_json(client, url, data, method="post"):
    return getattr(client, method)(url, data=json.dumps(data), content_type="application/json")


def _upload(client, episode, data, name="xray.dcm", **fields):
    form = {"file": as_upload(data, name), "view": "ap_wb", "side": "right", "date": "2025-03-03", **fields}
    return client.post(reverse("imaging:upload", args=[episode.pk]), form)


# --- upload -------------------------------------------------------------------------------------------

def test_upload_page_and_a_good_dicom(clinician_client, episode, dicom_bytes):
    page = clinician_client.get(reverse("imaging:upload", args=[episode.pk]))
    assert page.status_code == 200 and b'enctype="multipart/form-data"' in page.content
    response = _upload(clinician_client, episode, dicom_bytes)
    image = Image.objects.get()
    assert response.status_code == 302 and response["Location"] == image.get_absolute_url()


@pytest.mark.parametrize("payload, name, message", [
    (b"just text", "notes.txt", b"not a DICOM, PNG or JPEG"),
    ("truncated", "cut.dcm", b"truncated"),
    ("bomb", "bomb.png", b"decompression bomb"),
])
def test_bad_uploads_show_a_form_error_and_store_nothing(clinician_client, episode, settings, dicom_bytes,
                                                         payload, name, message):
    if payload == "truncated":
        payload = dicom_bytes[: len(dicom_bytes) // 2]
    elif payload == "bomb":
        settings.IMAGING_MAX_PIXELS = 10_000
        buffer = io.BytesIO()
        PILImage.new("L", (400, 300)).save(buffer, format="PNG")
        payload = buffer.getvalue()
    response = _upload(clinician_client, episode, payload, name)
    assert response.status_code == 400
    assert message in response.content and b"errorlist" in response.content
    assert not Image.objects.exists() and stored_files(settings) == []


def test_oversized_upload_is_refused(clinician_client, episode, settings, dicom_bytes):
    settings.MAX_UPLOAD_MB = 0
    response = _upload(clinician_client, episode, dicom_bytes)
    assert response.status_code == 400 and b"MB" in response.content
    assert not Image.objects.exists() and stored_files(settings) == []


def test_wrong_side_is_a_form_error(clinician_client, episode, dicom_bytes):
    response = _upload(clinician_client, episode, dicom_bytes, side="left")
    assert response.status_code == 400 and b"says this is a right image" in response.content


# --- access -------------------------------------------------------------------------------------------

def _urls(image, annotation, measurement):
    episode = image.study.episode.pk
    return [
        ("get", reverse("imaging:episode_images", args=[episode])),
        ("get", reverse("imaging:upload", args=[episode])),
        ("get", reverse("imaging:compare", args=[episode])),
        ("get", reverse("imaging:compare_png", args=[episode])),
        ("get", reverse("imaging:image_detail", args=[image.pk])),
        ("get", reverse("imaging:image_rendition", args=[image.pk])),
        ("get", reverse("imaging:image_thumbnail", args=[image.pk])),
        ("get", reverse("imaging:image_original", args=[image.pk])),
        ("get", reverse("imaging:image_delete", args=[image.pk])),
        ("post", reverse("imaging:image_edit", args=[image.pk])),
        ("post", reverse("imaging:calibration", args=[image.pk])),
        ("get", reverse("imaging:annotations", args=[image.pk])),
        ("post", reverse("imaging:annotations", args=[image.pk])),
        ("get", reverse("imaging:annotation", args=[annotation.pk])),
        ("delete", reverse("imaging:annotation", args=[annotation.pk])),
        ("post", reverse("imaging:measure", args=[image.pk])),
        ("post", reverse("imaging:measure_manual", args=[image.pk])),
        ("post", reverse("imaging:measurement_accept", args=[measurement.pk])),
        ("post", reverse("imaging:measurement_delete", args=[measurement.pk])),
    ]


@pytest.fixture
def marked(image, small_phantom, clinician):
    from orthoreg.imaging import services

    annotation = services.annotation_save(image=image, kind="circle", geometry={"cx": 50, "cy": 50, "r": 10})
    measurement = services.measurement_run(image=image, line=small_phantom.line, user=clinician)
    return image, annotation, measurement


def test_another_clinic_gets_404_everywhere(other_client, marked):
    for method, url in _urls(*marked):
        assert getattr(other_client, method)(url).status_code == 404, url
    assert Annotation.objects.count() == 1 and Measurement.objects.count() == 1


def test_anonymous_users_are_sent_to_login(client, marked):
    for method, url in _urls(*marked):
        response = getattr(client, method)(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], url


def test_a_coordinator_without_clinical_access_gets_404(coordinator, marked):
    from django.test import Client

    client = Client()
    client.force_login(coordinator)
    assert client.get(reverse("imaging:image_detail", args=[marked[0].pk])).status_code == 404
    assert client.get(reverse("imaging:image_original", args=[marked[0].pk])).status_code == 404


def test_files_are_served_only_through_checked_views(clinician_client, image, dicom_bytes, settings):
    original = clinician_client.get(reverse("imaging:image_original", args=[image.pk]))
    assert original.status_code == 200 and b"".join(original.streaming_content) == dicom_bytes
    assert original["Content-Type"] == "application/dicom" and "attachment" in original["Content-Disposition"]
    assert AuditEvent.objects.filter(action="export", object_id=str(image.pk)).exists()
    rendition = clinician_client.get(reverse("imaging:image_rendition", args=[image.pk]))
    assert rendition["Content-Type"] == "image/png" and rendition["Cache-Control"] == "no-store"
    assert PILImage.open(io.BytesIO(b"".join(rendition.streaming_content))).size == (300, 220)
    # No public media URL serves the stored files.
    assert clinician_client.get("/media/" + image.original.name).status_code == 404
    assert clinician_client.get("/" + image.original.name).status_code == 404


def test_a_file_missing_from_storage_is_404_not_500(clinician_client, image):
    image.rendition.storage.delete(image.rendition.name)
    assert clinician_client.get(reverse("imaging:image_rendition", args=[image.pk])).status_code == 404


# --- pages --------------------------------------------------------------------------------------------

def test_image_page_has_the_editor_and_no_inline_script_or_style(clinician_client, marked):
    image = marked[0]
    response = clinician_client.get(reverse("imaging:image_detail", args=[image.pk]))
    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="imaging-editor-data" type="application/json"' in html and "annotate.js" in html
    assert "style=" not in html
    scripts = html.count("<script")
    data_blocks = html.count('<script id="imaging-editor-data" type="application/json"')
    assert scripts == html.count("<script src=") + data_blocks
    data = json.loads(html.split('type="application/json">')[1].split("</script>")[0])
    assert data["image"]["spacing"] == [0.1, 0.1] and len(data["annotations"]) == 1
    assert data["measurements"][0]["minimum"]["value"] == pytest.approx(1.0, abs=0.1)


def _image_page(client, image):
    response = client.get(reverse("imaging:image_detail", args=[image.pk]))
    assert response.status_code == 200
    return response.content.decode()


def _history_items(html: str) -> list[str]:
    import re

    block = html.split('id="annotation-history"')[1].split("</ol>")[0]
    return re.findall(r'<span class="history-what">([^<]*)</span>', block)


def test_image_page_lists_annotation_history(clinician_client, image):
    html = _image_page(clinician_client, image)
    assert "No annotation has been drawn, changed or deleted yet." in html

    url = reverse("imaging:annotations", args=[image.pk])
    circle = _post_json(clinician_client, url, {"kind": "circle", "geometry": {"cx": 50, "cy": 50, "r": 10}}).json()
    arrow = _post_json(clinician_client, url, {"kind": "arrow", "geometry": {"x1": 1, "y1": 1, "x2": 30, "y2": 30}}
                       ).json()
    one = reverse("imaging:annotation", args=[circle["annotation"]["id"]])
    _post_json(clinician_client, one, {"geometry": {"cx": 60, "cy": 50, "r": 10}, "label": "osteophyte"}, "patch")
    _post_json(clinician_client, one, {"colour": "#ff0000"}, "patch")
    clinician_client.delete(reverse("imaging:annotation", args=[arrow["annotation"]["id"]]))

    html = _image_page(clinician_client, image)
    assert "style=" not in html and html.count("<script") == html.count("<script src=") + 1
    items = _history_items(html)
    assert items == ["deleted arrow", "edited circle: colour", "edited circle: moved or reshaped, label",
                     "created arrow", "created circle"]
    history = html.split('id="annotation-history"')[1].split("</ol>")[0]
    assert history.count('class="history-who">doc</span>') == 5 and "<time datetime=" in history


def test_annotation_history_is_this_images_only_and_limited(image, png_image, clinician):
    from orthoreg.imaging import selectors, services

    services.annotation_save(image=png_image, kind="circle", geometry={"cx": 5, "cy": 5, "r": 2}, user=clinician)
    mark = services.annotation_save(image=image, kind="text", geometry={"x": 5, "y": 5}, label="a", user=clinician)
    for label in "bcd":
        services.annotation_save(image=image, kind="text", geometry=mark.geometry, label=label, annotation=mark)
    again = Annotation.objects.get(pk=mark.pk)  # no user known for this last save
    services.annotation_save(image=image, kind="text", geometry=mark.geometry, label="d", annotation=again)
    history = selectors.annotation_history(image, limit=3)
    assert history["more"] == 2 and [e["action"] for e in history["entries"]] == ["edited"] * 3
    assert history["entries"][0]["changes"] == ["nothing changed"] and history["entries"][0]["who"] == ""
    assert history["entries"][1]["changes"] == ["label"] and history["entries"][1]["kind"] == "Text"
    full = selectors.annotation_history(image)
    assert full["more"] == 0 and full["entries"][-1]["action"] == "created" and full["entries"][-1]["who"] == "doc"


def test_image_page_queries_do_not_grow_with_annotations_or_their_history(clinician_client, image, clinician):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from orthoreg.imaging import services

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            _image_page(clinician_client, image)
        return len(captured)

    services.annotation_save(image=image, kind="circle", geometry={"cx": 50, "cy": 50, "r": 10}, user=clinician)
    _image_page(clinician_client, image)  # a session's first page does once-per-session work (time zone, audit)
    few = queries()
    for n in range(6):
        mark = services.annotation_save(image=image, kind="caliper", geometry={"x1": n, "y1": 1, "x2": 40, "y2": 9},
                                        user=clinician)
        services.annotation_save(image=image, kind="caliper", geometry={"x1": n, "y1": 2, "x2": 40, "y2": 9},
                                 label="edge", annotation=mark, user=clinician)
        if n % 2:
            services.annotation_delete(annotation=mark, user=clinician)
    assert len(_history_items(_image_page(clinician_client, image))) == 1 + 6 * 2 + 3
    assert queries() == few


def test_episode_page_and_tag(clinician_client, marked, png_image):
    episode = marked[0].study.episode
    html = clinician_client.get(reverse("imaging:episode_images", args=[episode.pk])).content.decode()
    assert html.count("imaging-thumb\"") == 2 and reverse("imaging:compare", args=[episode.pk]) in html
    assert "draft" in html and "uncalibrated" in html


def test_edit_details(clinician_client, image):
    response = clinician_client.post(reverse("imaging:image_edit", args=[image.pk]),
                                     {"view": "lateral", "side": "right", "caption": "weight-bearing lateral"})
    image.refresh_from_db()
    assert response.status_code == 302 and image.view == "lateral" and image.caption == "weight-bearing lateral"
    clinician_client.post(reverse("imaging:image_edit", args=[image.pk]), {"view": "upside-down", "side": "right"})
    image.refresh_from_db()
    assert image.view == "lateral"


def test_delete_page_and_delete(clinician_client, image, settings, django_capture_on_commit_callbacks):
    assert clinician_client.get(reverse("imaging:image_delete", args=[image.pk])).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        response = clinician_client.post(reverse("imaging:image_delete", args=[image.pk]))
    assert response.status_code == 302 and not Image.objects.exists() and stored_files(settings) == []


def test_compare_page_and_png(clinician_client, episode, image, png_image, small_phantom, clinician):
    from orthoreg.imaging import services

    services.calibration_set(image=png_image, source="manual", points=[0, 0, 100, 0], known_mm=10)
    for item in (image, png_image):
        services.measurement_accept(measurement=services.measurement_run(image=item, line=small_phantom.line))
    url = reverse("imaging:compare", args=[episode.pk])
    html = clinician_client.get(url).content.decode()
    assert "Minimum" in html and "style=" not in html and html.count('class="compare-svg"') == 2
    assert "within measurement error" in html  # the same phantom twice: no change
    assert "Smallest detectable change for this pair of films" in html
    png = clinician_client.get(reverse("imaging:compare_png", args=[episode.pk]))
    assert png.status_code == 200 and png["Content-Type"] == "image/png"
    assert PILImage.open(io.BytesIO(png.content)).format == "PNG"
    assert AuditEvent.objects.filter(action="export", detail__contains="comparison").exists()
    chosen = clinician_client.get(url, {"before": png_image.pk, "after": image.pk, "region": "whole"})
    assert chosen.status_code == 200
    assert clinician_client.get(url, {"before": 999999, "after": image.pk}).status_code == 404


def test_compare_page_says_why_a_change_is_not_shown(clinician_client, episode, image, png_image, small_phantom):
    from orthoreg.imaging import services

    for item in (image, png_image):  # the DICOM is calibrated, the PNG is not
        services.measurement_accept(measurement=services.measurement_run(image=item, line=small_phantom.line))
    html = clinician_client.get(reverse("imaging:compare", args=[episode.pk])).content.decode()
    assert 'id="change-not-comparable"' in html
    assert "not comparable: the before image is calibrated (mm) and the after image is not (pixels)" in html
    assert " px</td>" not in html and "within error" not in html


def test_compare_needs_two_images(clinician_client, episode, image):
    response = clinician_client.get(reverse("imaging:compare", args=[episode.pk]))
    assert response.status_code == 200 and b"Two radiographs" in response.content
    assert clinician_client.get(reverse("imaging:compare_png", args=[episode.pk])).status_code == 404


def test_an_image_of_another_episode_cannot_be_compared_here(clinician_client, episode, image, patient, png_bytes,
                                                             clinician):
    from orthoreg.imaging import services

    other = Episode.objects.create(patient=patient, body_site="first_mtp", side="left", condition="hallux_rigidus")
    foreign = services.image_upload(episode=other, file=as_upload(png_bytes, "x.png"), view="ap_wb", side="left",
                                    date=dt.date(2025, 5, 5))
    response = clinician_client.get(reverse("imaging:compare", args=[episode.pk]),
                                    {"before": image.pk, "after": foreign.pk})
    assert response.status_code == 404


# --- JSON endpoints -----------------------------------------------------------------------------------

def test_annotation_endpoints(clinician_client, image):
    url = reverse("imaging:annotations", args=[image.pk])
    ellipse = {"kind": "ellipse", "geometry": {"cx": 80, "cy": 60, "rx": 30, "ry": 20}, "colour": "#ffd400",
               "dashed": True}
    created = _post_json(clinician_client, url, ellipse)
    assert created.status_code == 201
    item = created.json()["annotation"]
    one = reverse("imaging:annotation", args=[item["id"]])
    changed = _post_json(clinician_client, one, {"geometry": {"cx": 90, "cy": 60, "rx": 30, "ry": 20}, "label": "OA"},
                         method="patch")
    assert changed.status_code == 200 and changed.json()["annotation"]["label"] == "OA"
    assert changed.json()["annotation"]["dashed"] is True
    assert clinician_client.get(url).json()["annotations"][0]["geometry"]["cx"] == 90
    assert clinician_client.delete(one).json() == {"deleted": item["id"]}
    assert not Annotation.objects.exists()


@pytest.mark.parametrize("body, status, text", [
    ({"kind": "arrow", "geometry": {"x1": 1}}, 400, "must be a number"),
    ({"kind": "hexagon", "geometry": {}}, 400, "Unknown annotation kind"),
    ({"kind": "text", "geometry": {"x": 5, "y": 5}}, 400, "needs its text"),
    ({"kind": "circle", "geometry": {"cx": 5, "cy": 5, "r": 4}, "colour": "red"}, 400, "#rrggbb"),
])
def test_bad_annotation_json_is_400(clinician_client, image, body, status, text):
    response = _post_json(clinician_client, reverse("imaging:annotations", args=[image.pk]), body)
    assert response.status_code == status and text in response.json()["error"]


def test_malformed_json_is_400(clinician_client, image):
    for url in (reverse("imaging:annotations", args=[image.pk]), reverse("imaging:measure", args=[image.pk])):
        for body in ("{not json", "[1, 2]", "\"text\""):
            response = clinician_client.post(url, data=body, content_type="application/json")
            assert response.status_code == 400 and response.json()["error"]


def test_measure_accept_and_delete(clinician_client, image, small_phantom):
    url = reverse("imaging:measure", args=[image.pk])
    response = _post_json(clinician_client, url, {"line": list(small_phantom.line)})
    assert response.status_code == 201
    measurement = response.json()["measurement"]
    assert measurement["unit"] == "mm" and measurement["minimum"]["text"].endswith(" mm")
    assert measurement["profiles"][0]["a"] is not None
    accepted = clinician_client.post(reverse("imaging:measurement_accept", args=[measurement["id"]]))
    assert accepted.json()["measurements"][0]["accepted"] is True
    deleted = clinician_client.post(reverse("imaging:measurement_delete", args=[measurement["id"]]))
    assert deleted.json()["measurements"] == []


@pytest.mark.parametrize("body, text", [
    ({}, "Draw the line"), ({"line": [1, 2]}, "four numbers"), ({"line": [0, 0, 5000, 0]}, "outside"),
    ({"line": [10, 100, 290, 100], "search_px": "far"}, "number"),
    ({"line": [10, 100, 290, 100], "search_px": 0}, "search"),
])
def test_bad_measure_requests_are_400(clinician_client, image, body, text):
    response = _post_json(clinician_client, reverse("imaging:measure", args=[image.pk]), body)
    assert response.status_code == 400 and text in response.json()["error"]
    assert not Measurement.objects.exists()


def test_fused_joint_through_http_is_not_measurable(clinician_client, episode, clinician):
    from orthoreg.imaging import phantoms, services

    phantom = phantoms.make_phantom(fused=True, supersample=2)
    fused = services.image_upload(episode=episode, file=as_upload(phantom.to_dicom(), "fused.dcm"), view="ap_wb",
                                  side="right", date=dt.date(2025, 6, 1))
    measurement = _post_json(clinician_client, reverse("imaging:measure", args=[fused.pk]),
                             {"line": list(phantom.line)}).json()["measurement"]
    assert measurement["minimum"] == {"value": None, "text": "not measurable"}


def test_calibration_endpoint(clinician_client, png_image):
    url = reverse("imaging:calibration", args=[png_image.pk])
    bad = _post_json(clinician_client, url, {"source": "manual", "points": [0, 0, 4, 0], "known_mm": 10})
    assert bad.status_code == 400 and "apart" in bad.json()["error"]
    assert _post_json(clinician_client, url, {"source": "manual", "points": [0, 0], "known_mm": 10}).status_code == 400
    good = _post_json(clinician_client, url, {"source": "manual", "points": [0, 0, 100, 0], "known_mm": 10})
    assert good.status_code == 200 and good.json()["spacing"] == [0.1, 0.1]
    form = clinician_client.post(url, {"source": "none"})  # the plain form (no JavaScript)
    png_image.refresh_from_db()
    assert form.status_code == 302 and png_image.calibration_source == "none"
    form = clinician_client.post(url, {"source": "dicom"})
    assert form.status_code == 302


def test_manual_measurement_endpoint(clinician_client, image):
    url = reverse("imaging:measure_manual", args=[image.pk])
    assert clinician_client.post(url).status_code == 400
    _post_json(clinician_client, reverse("imaging:annotations", args=[image.pk]),
               {"kind": "caliper", "geometry": {"x1": 10, "y1": 10, "x2": 10, "y2": 30, "region": "central"}})
    response = clinician_client.post(url)
    assert response.status_code == 201 and response.json()["measurement"]["central"]["text"] == "2.00 mm"


def test_wrong_methods_are_405(clinician_client, image):
    assert clinician_client.get(reverse("imaging:measure", args=[image.pk])).status_code == 405
    assert clinician_client.post(reverse("imaging:image_rendition", args=[image.pk])).status_code == 405


def test_json_endpoints_need_the_csrf_token(clinician, image):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(clinician)
    response = _post_json(client, reverse("imaging:annotations", args=[image.pk]),
                          {"kind": "circle", "geometry": {"cx": 5, "cy": 5, "r": 4}})
    assert response.status_code == 403 and not Annotation.objects.exists()


def test_an_oversized_upload_is_stopped_while_it_is_read(clinician, episode, settings, dicom_bytes, monkeypatch):
    from django.test import Client

    from orthoreg.imaging import services

    spooled = []
    monkeypatch.setattr(services, "image_upload", lambda **kw: spooled.append(kw))  # never reached
    settings.MAX_UPLOAD_MB = 0
    client = Client(enforce_csrf_checks=True)
    client.force_login(clinician)
    page = client.get(reverse("imaging:upload", args=[episode.pk]))
    token = page.context["csrf_token"]
    response = client.post(reverse("imaging:upload", args=[episode.pk]),
                           {"csrfmiddlewaretoken": str(token), "view": "ap_wb", "file": as_upload(dicom_bytes)})
    assert response.status_code == 400 and b"larger than 0 MB" in response.content
    assert spooled == [] and stored_files(settings) == []
    # The CSRF check still applies to the upload page.
    refused = client.post(reverse("imaging:upload", args=[episode.pk]), {"view": "ap_wb"})
    assert refused.status_code == 403


def test_compare_png_with_a_missing_file_is_404(clinician_client, episode, image, png_image):
    image.rendition.storage.delete(image.rendition.name)
    assert clinician_client.get(reverse("imaging:compare_png", args=[episode.pk])).status_code == 404


def test_reads_are_audited_once_per_request(clinician_client, marked, patient):
    image, annotation, _measurement = marked
    before = AuditEvent.objects.filter(action="view", patient=patient).count()
    clinician_client.get(reverse("imaging:image_detail", args=[image.pk]))
    clinician_client.get(reverse("imaging:annotation", args=[annotation.pk]))
    assert AuditEvent.objects.filter(action="view", patient=patient).count() == before + 2
