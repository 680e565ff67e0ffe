"""A PACS import streams the instance to disk (issue: the whole file was held in memory, several times): the file
kept is byte for byte the one dicomweb-client + pydicom made before, the multipart answer is split as
dicomweb-client splits it whatever the chunk sizes, and the retrieve's peak memory is pydicom's writer's two
copies of the pixel data, no longer five (tracemalloc; the real Orthanc of tests/imaging/orthanc.py)."""

from __future__ import annotations

import io
import os
import tracemalloc

import pytest
from dicomweb_client.api import DICOMwebClient
from hypothesis import given
from hypothesis import strategies as st

from orthoreg.imaging import pacs, services
from orthoreg.imaging.models import Image
from tests.imaging.orthanc import film_for, orthanc, orthanc_server  # noqa: F401

BOUNDARY = b"b0undary-42"
DELIMITER = b"\r\n--" + BOUNDARY


class _Answer:  # what dicomweb-client's decoder reads of a response
    def __init__(self, body: bytes):
        self.headers = {"content-type": f'multipart/related; type="application/dicom"; boundary={BOUNDARY.decode()}'}
        self.content = body

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _theirs(body: bytes) -> list[bytes]:
    web = DICOMwebClient(url="http://pacs.invalid/dicom-web")
    return [bytes(part) for part in web._decode_multipart_message(_Answer(body), stream=False)]


def _ours(body: bytes, size: int) -> tuple[int, bytes]:
    out = io.BytesIO()
    chunks = iter([body[i:i + size] for i in range(0, len(body), size)])
    return pacs._write_single_part(chunks, DELIMITER, out), out.getvalue()


def _message(*contents: bytes, closed: bool = True) -> bytes:
    body = b"".join(b"--" + BOUNDARY + b"\r\nContent-Type: application/dicom\r\n\r\n" + c + b"\r\n"
                    for c in contents)
    return body + (b"--" + BOUNDARY + b"--\r\n" if closed else b"")


@given(content=st.binary(max_size=300), size=st.integers(min_value=1, max_value=64), closed=st.booleans())
def test_one_part_is_split_as_dicomweb_client_splits_it(content, size, closed):
    body = _message(content, closed=closed)
    if not closed:
        body = body[:-2]  # no closing delimiter: the part runs to the end
    theirs = _theirs(body)
    assert _ours(body, size) == (len(theirs), theirs[0])


@pytest.mark.parametrize("size", [1, 7, 1 << 20])
def test_two_parts_are_counted_and_a_part_without_headers_refused(size):
    assert _ours(_message(b"one", b"two"), size)[0] == 2
    with pytest.raises(ValueError, match="CRLF CRLF"):
        _ours(b"--" + BOUNDARY + b"\r\nno end of headers" + b"x" * 70000, size)


def _before(instance: pacs.Instance) -> bytes:
    """What pacs.retrieve kept before streaming: dicomweb-client's dataset saved by pydicom."""
    dataset = pacs.client().retrieve_instance(instance.study_uid, instance.series_uid, instance.uid)
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


@pytest.mark.django_db
@pytest.mark.parametrize("film", ["ankle", "cat"])
def test_retrieved_file_is_the_same_bytes_and_removed_after(orthanc, patient, episode, film, tmp_path, settings):
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path / "uploads")  # this test's own: nothing may be left there
    dataset = film_for(film, patient.mrn)
    orthanc.upload(dataset)
    (instance,) = pacs.study_instances(dataset.StudyInstanceUID, patient_id=patient.mrn)
    expected = _before(instance)
    with pacs.retrieved(instance, patient_id=patient.mrn, directory=str(tmp_path)) as pulled:
        with open(pulled.path, "rb") as fh:
            assert fh.read() == expected
        assert "PixelData" not in pulled.dataset and pulled.dataset.SOPInstanceUID == instance.uid
    assert os.listdir(tmp_path) == []
    (outcome,) = services.pacs_import(episode=episode, study_uids=[dataset.StudyInstanceUID])
    with Image.objects.get(pk=outcome.image.pk).original.open("rb") as fh:
        assert fh.read() == expected  # the stored original too
    assert os.listdir(services.upload_temp_dir()) == []


@pytest.mark.django_db
def test_retrieve_holds_at_most_two_copies_of_the_pixels(orthanc, patient, tmp_path):
    dataset = film_for("cat", patient.mrn)  # 3072 x 2614, 16 bit: 16 MB of pixels
    orthanc.upload(dataset)
    (instance,) = pacs.study_instances(dataset.StudyInstanceUID, patient_id=patient.mrn)
    pixels = len(dataset.PixelData)
    with pacs.retrieved(instance, patient_id=patient.mrn, directory=str(tmp_path)):
        pass  # imports and connections settle
    tracemalloc.start()
    try:
        with pacs.retrieved(instance, patient_id=patient.mrn, directory=str(tmp_path)) as pulled:
            size = os.path.getsize(pulled.path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert size > pixels
    # before: 5.0 x (the answer, its part, the dataset, save_as's buffer and its getvalue); now pydicom's save_as of
    # the deferred pixel data (the value read, and its write buffer): 2.0 x
    assert peak < 2.5 * pixels, f"peak {peak / 1e6:.1f} MB for {pixels / 1e6:.1f} MB of pixels"


def test_a_capped_file_stops_at_its_limit():
    out = io.BytesIO()
    instance = pacs.Instance(study_uid="1.2", series_uid="1.2.3", uid="1.2.3.4", sop_class_uid="", number=None)
    capped = pacs._Capped(out, 10, instance)
    chunks = iter([_message(b"x" * 6 + b"y" * 6)[i:i + 5] for i in range(0, 200, 5)])
    with pytest.raises(pacs.TooLarge, match="1.2.3.4 on the PACS is larger than"):
        pacs._write_single_part(chunks, DELIMITER, capped)
    assert len(out.getvalue()) <= 10  # never more than the limit written
    whole = io.BytesIO()
    assert pacs._write_single_part(iter([_message(b"x" * 10)]), DELIMITER, pacs._Capped(whole, 10, instance)) == 1
    assert whole.getvalue() == b"x" * 10  # exactly the limit is accepted


@pytest.mark.django_db
def test_an_image_larger_than_an_upload_may_be_is_left_out_and_nothing_kept(orthanc, patient, episode, tmp_path,
                                                                           settings):
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path / "uploads")
    settings.MAX_UPLOAD_MB = 8
    small, big = film_for("ankle", patient.mrn), film_for("cat", patient.mrn)  # files of 6 MB and 16 MB
    big.StudyInstanceUID = small.StudyInstanceUID  # one study, two images
    orthanc.upload(small)
    orthanc.upload(big)
    outcomes = {o.instance_uid: o for o in services.pacs_import(episode=episode, study_uids=[small.StudyInstanceUID])}
    assert outcomes[small.SOPInstanceUID].image is not None  # the other image of the study still comes in
    refused = outcomes[big.SOPInstanceUID]
    assert refused.image is None
    assert refused.reason == (f"Image {big.SOPInstanceUID} on the PACS is larger than 8 MB, the largest accepted "
                              "(ORTHOREG_MAX_UPLOAD_MB): not imported.")
    assert Image.objects.filter(study__episode=episode).count() == 1
    assert os.listdir(services.upload_temp_dir()) == []
