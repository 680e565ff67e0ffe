"""The clinic's PACS: a real Orthanc (tests/imaging/orthanc.py) holding real radiographs; orthoreg finds the
patient's studies (QIDO-RS), imports them (WADO-RS) through the upload service, from the command line and from
the episode's page, and says in words when the PACS is down or refuses."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from orthoreg.accounts.models import AuditEvent
from orthoreg.imaging import pacs, services
from orthoreg.imaging.models import Image
from orthoreg.registry.models import Episode
from tests.imaging.orthanc import film_for, free_port, orthanc, orthanc_server  # noqa: F401

pytestmark = pytest.mark.django_db

ANKLE_STUDY = "1.3.6.1.4.1.5962.1.2.11.20040826185059.5457"


@pytest.fixture
def films(orthanc, patient):
    """The PACS holds the patient's ankle CR (2004) and a DX (2020), and another patient's ankle."""
    ankle, dx = film_for("ankle", patient.mrn), film_for("cat", patient.mrn)
    for dataset in (ankle, dx):
        orthanc.upload(dataset)
    stranger = film_for("ankle", "SOMEONE-ELSE")
    stranger.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    stranger.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.2"
    stranger.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.3"
    orthanc.upload(stranger)
    return {"ankle": ankle, "dx": dx}


def pull(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command("imaging", "pull", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def refused(*args) -> str:
    with pytest.raises(CommandError) as info:
        pull(*args)
    assert info.value.returncode == 2
    return str(info.value)


def test_find_studies_by_mrn_and_date(films, patient):
    studies = pacs.find_studies(patient.mrn)
    assert [(s.date, s.modalities) for s in studies] == [(dt.date(2020, 2, 9), "DX"), (dt.date(2004, 8, 26), "CR")]
    assert ANKLE_STUDY in {s.uid for s in studies} and "1.2.826.0.1.3680043.8.498.1" not in {s.uid for s in studies}
    assert [s.date for s in pacs.find_studies(patient.mrn, since=dt.date(2010, 1, 1))] == [dt.date(2020, 2, 9)]
    assert pacs.find_studies("NOBODY") == []
    with pytest.raises(pacs.PacsError, match="wildcard"):
        pacs.find_studies("MRN*")


def test_pull_imports_each_image_through_the_upload_service(films, episode, patient):
    out, err = pull("--patient", patient.mrn)
    images = list(Image.objects.filter(study__episode=episode).order_by("study__date"))
    assert len(images) == 2, out
    ankle, dx = images
    assert ankle.header["sop_instance_uid"] == films["ankle"].SOPInstanceUID
    assert ankle.date == dt.date(2004, 8, 26) and ankle.side == "right" and ankle.calibration_source == "none"
    assert dx.date == dt.date(2020, 2, 9) and dx.side == "bilateral"
    assert dx.calibration_source.startswith("dicom") and dx.spacing_row_mm == pytest.approx(0.139, abs=0.01)
    assert ankle.view == "other"  # AP says nothing about weight bearing: the user sets the view
    with ankle.original.open("rb") as fh:  # the original is the PACS's DICOM file, pixels and all
        assert fh.read(132)[128:] == b"DICM"
    assert "2 of 2 image(s) imported" in out and "imported\t" + films["ankle"].SOPInstanceUID in out
    assert "100%" in err and "2/2" in err  # the progress bar
    audit = AuditEvent.objects.filter(object_type="image", patient=patient).values_list("detail", flat=True)
    assert sum("imported from the PACS" in d for d in audit) == 2

    again, _ = pull("--patient", patient.mrn)  # nothing twice
    assert "0 of 2 image(s) imported" in again and again.count("already on this episode") == 2
    assert Image.objects.filter(study__episode=episode).count() == 2


def test_pull_since_a_date_and_list(films, episode, patient):
    listed, _ = pull("--patient", patient.mrn, "--list")
    assert "2 studies of patient MRN-001" in listed and ANKLE_STUDY in listed
    assert Image.objects.count() == 0
    out, _ = pull("--patient", patient.mrn, "--since", "2010-01-01", "--episode", str(episode.pk))
    assert "1 of 1 image(s) imported" in out
    assert list(Image.objects.values_list("study__date", flat=True)) == [dt.date(2020, 2, 9)]


def test_pull_refusals_exit_2_with_words(films, episode, patient, settings):
    assert "no patient with MRN 'NOBODY'" in refused("--patient", "NOBODY")
    assert "not a date" in refused("--patient", patient.mrn, "--since", "last week")
    assert "is not an episode of patient" in refused("--patient", patient.mrn, "--episode", "99999")
    Episode.objects.create(patient=patient, body_site="ankle", side="right", condition="oa_primary")
    assert "say which with --episode" in refused("--patient", patient.mrn)
    assert "no study 1.2.3" in refused("--patient", patient.mrn, "--episode", str(episode.pk), "--study", "1.2.3")
    settings.DICOMWEB_URL = f"http://127.0.0.1:{free_port()}/dicom-web"  # nothing listens there
    assert "cannot be reached" in refused("--patient", patient.mrn, "--episode", str(episode.pk))
    settings.DICOMWEB_URL = ""
    assert "ORTHOREG_DICOMWEB_URL" in refused("--patient", patient.mrn, "--episode", str(episode.pk))
    assert Image.objects.count() == 0


def test_wrong_credentials_are_named(films, patient, settings):
    settings.DICOMWEB_PASSWORD = "wrong"
    with pytest.raises(pacs.PacsError, match="refused the credentials \\(HTTP 401\\)"):
        pacs.find_studies(patient.mrn)


def test_an_image_the_upload_refuses_is_reported_and_the_rest_imported(orthanc, episode, patient):
    early = film_for("ankle", patient.mrn)
    early.StudyDate = early.ContentDate = "19800101"  # before the patient was born
    early.SeriesDate = early.AcquisitionDate = "19800101"
    orthanc.upload(early)
    orthanc.upload(film_for("cat", patient.mrn))
    message = refused("--patient", patient.mrn)
    assert "1 image(s) were refused" in message and "birth" in message.lower()
    assert Image.objects.filter(study__episode=episode).count() == 1


def test_page_lists_the_studies_and_imports_the_chosen_one(films, episode, clinician_client):
    url = reverse("imaging:pacs", args=[episode.pk])
    page = clinician_client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert ANKLE_STUDY in html and "Non-ossifying fibroma of distal tibia" in html and "SOMEONE-ELSE" not in html
    assert clinician_client.get(url, {"since": "2010-01-01"}).content.decode().count('name="study"') == 1

    done = clinician_client.post(url, {"study": [ANKLE_STUDY]})
    assert done.status_code == 200
    text = done.content.decode()
    assert "1 of 1 image imported" in text
    image = Image.objects.get(study__episode=episode)
    assert reverse("imaging:image_detail", args=[image.pk]) in text
    again = clinician_client.post(url, {"study": [ANKLE_STUDY]}).content.decode()
    assert "0 of 1 image imported" in again and "already on this episode" in again
    nothing = clinician_client.post(url, {}).content.decode()
    assert "Choose at least one study" in nothing


def test_page_says_when_the_pacs_is_down_or_missing(episode, clinician_client, settings, orthanc):
    url = reverse("imaging:pacs", args=[episode.pk])
    settings.DICOMWEB_URL = f"http://127.0.0.1:{free_port()}/dicom-web"
    down = clinician_client.get(url)
    assert down.status_code == 200 and "cannot be reached" in down.content.decode()
    post = clinician_client.post(url, {"study": [ANKLE_STUDY]})
    assert post.status_code == 200 and "cannot be reached" in post.content.decode()
    settings.DICOMWEB_PASSWORD = "wrong"
    settings.DICOMWEB_URL = orthanc.dicomweb
    assert "refused the credentials" in clinician_client.get(url).content.decode()
    settings.DICOMWEB_URL = ""
    assert "No PACS is configured" in clinician_client.get(url).content.decode()


def test_the_page_is_the_clinics_own(films, episode, other_client):
    assert other_client.get(reverse("imaging:pacs", args=[episode.pk])).status_code == 404
    assert other_client.post(reverse("imaging:pacs", args=[episode.pk]), {"study": [ANKLE_STUDY]}).status_code == 404
    assert Image.objects.count() == 0


def test_service_refuses_a_study_of_another_patient(films, episode):
    with pytest.raises(pacs.PacsError, match="belongs to another patient"):
        services.pacs_import(episode=episode, study_uids=["1.2.826.0.1.3680043.8.498.1"])
    assert Image.objects.count() == 0
