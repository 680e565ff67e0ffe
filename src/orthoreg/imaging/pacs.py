"""The clinic's PACS over DICOMweb (dicomweb-client): find a patient's studies (QIDO-RS), fetch their instances
(WADO-RS), store a measurement report (STOW-RS).

Configured by environment variables (settings.DICOMWEB_*): ORTHOREG_DICOMWEB_URL, optional
ORTHOREG_DICOMWEB_USER / ORTHOREG_DICOMWEB_PASSWORD, ORTHOREG_DICOMWEB_TIMEOUT. Every failure of the PACS
(not configured, down, refusing, answering nonsense) is a PacsError whose message says what happened in
words; callers show it, never a traceback.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from urllib.parse import quote

import pydicom
import requests
from dicomweb_client.api import DICOMwebClient
from django.conf import settings

# Storage classes that hold no picture: listed in a study, never imported as a radiograph.
_NOT_IMAGES = {
    "1.2.840.10008.5.1.4.1.1.88": "structured report",
    "1.2.840.10008.5.1.4.1.1.11": "presentation state",
    "1.2.840.10008.5.1.4.1.1.104": "encapsulated document",
    "1.2.840.10008.5.1.4.1.1.66": "raw data or registration",
    "1.2.840.10008.5.1.4.1.1.481": "radiotherapy object",
}
_STUDY_FIELDS = ("StudyDate", "StudyDescription", "ModalitiesInStudy", "NumberOfStudyRelatedInstances",
                 "AccessionNumber", "PatientName")


class PacsError(Exception):
    """The PACS could not be asked, or refused: the message is for the user."""


class TooLarge(PacsError):
    """The instance is larger than the caller accepts: its download stopped there (nothing kept)."""


@dataclass(frozen=True)
class Study:
    uid: str
    date: dt.date | None
    description: str
    modalities: str
    instances: int | None
    accession: str
    patient_name: str

    @property
    def date_text(self) -> str:
        return self.date.isoformat() if self.date else "no date"


@dataclass(frozen=True)
class Instance:
    study_uid: str
    series_uid: str
    uid: str
    sop_class_uid: str
    modality: str = ""
    number: int | None = None

    @property
    def kind_not_image(self) -> str | None:
        """What the instance is when it is not an image (a report, a presentation state...), else None."""
        for prefix, what in _NOT_IMAGES.items():
            if self.sop_class_uid.startswith(prefix):
                return what
        return None


@dataclass
class Retrieved:
    instance: Instance
    path: str  # the DICOM file on disk (removed when the `retrieved` block ends)
    dataset: pydicom.Dataset = field(repr=False)  # its header (no pixel data)


def configured() -> bool:
    return bool(settings.DICOMWEB_URL)


def describe() -> str:
    """Where the PACS is, for messages (no credentials)."""
    return settings.DICOMWEB_URL or "no PACS configured"


def client() -> DICOMwebClient:
    if not configured():
        raise PacsError("No PACS is configured: set ORTHOREG_DICOMWEB_URL to the DICOMweb address of the clinic's "
                        "PACS (for example http://pacs.example.org:8042/dicom-web).")
    try:
        web = DICOMwebClient(url=settings.DICOMWEB_URL, session=_session(), timeout=float(settings.DICOMWEB_TIMEOUT))
    except (ValueError, TypeError) as exc:
        raise PacsError(f"ORTHOREG_DICOMWEB_URL={settings.DICOMWEB_URL!r} is not a usable address ({exc}).") from None
    # dicomweb-client retries every failure (a refused connection too) with exponential back-off, 30 s in all:
    # a page waiting on a PACS that is down answers at once instead, and the user may try again.
    web.set_http_retry_params(retry=False)
    return web


def _session() -> requests.Session:
    session = requests.Session()
    if settings.DICOMWEB_USER:
        session.auth = (settings.DICOMWEB_USER, settings.DICOMWEB_PASSWORD)
    return session


def _words(exc: Exception, doing: str) -> PacsError:
    where = describe()
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        status = exc.response.status_code
        if status in (401, 403):
            why = (f"it refused the credentials (HTTP {status}); check ORTHOREG_DICOMWEB_USER and "
                   "ORTHOREG_DICOMWEB_PASSWORD")
        elif status == 404:
            why = "it does not know that address or object (HTTP 404); check ORTHOREG_DICOMWEB_URL"
        else:
            reason = (exc.response.reason or "").strip()
            why = f"it answered HTTP {status}{' ' + reason if reason else ''}"
        return PacsError(f"The PACS at {where} could not {doing}: {why}.")
    if isinstance(exc, requests.Timeout):
        return PacsError(f"The PACS at {where} did not answer within {settings.DICOMWEB_TIMEOUT:g} s while trying to "
                         f"{doing}. Try again later.")
    if isinstance(exc, requests.ConnectionError):
        return PacsError(f"The PACS at {where} cannot be reached (is it running, and is the address right?); "
                         f"could not {doing}.")
    return PacsError(f"The PACS at {where} gave an answer orthoreg cannot read while trying to {doing} ({exc}).")


_FAILURES = (requests.RequestException, ValueError, KeyError, TypeError, pydicom.errors.InvalidDicomError)


def _value(item: dict, keyword: str):
    tag = pydicom.datadict.tag_for_keyword(keyword)
    element = item.get(f"{tag:08X}") or {}
    values = element.get("Value") or []
    if not values:
        return None
    value = values[0]
    if isinstance(value, dict) and "Alphabetic" in value:  # a person name
        return value["Alphabetic"]
    if keyword == "ModalitiesInStudy":
        return "\\".join(str(v) for v in values)
    return value


def _date(value) -> dt.date | None:
    try:
        return dt.datetime.strptime(str(value)[:8], "%Y%m%d").date() if value else None
    except ValueError:
        return None


def find_studies(patient_id: str, *, since: dt.date | None = None, until: dt.date | None = None) -> list[Study]:
    """The PACS's studies of a patient (QIDO-RS, PatientID matched exactly), newest first."""
    if not patient_id or any(c in patient_id for c in "*?\\"):
        raise PacsError("The patient's MRN is empty or contains a wildcard (*, ?) or backslash: it must match one "
                        "patient exactly.")
    filters: dict[str, str] = {"PatientID": patient_id}
    if since or until:
        filters["StudyDate"] = f"{since:%Y%m%d}" if since else ""
        filters["StudyDate"] += f"-{until:%Y%m%d}" if until else "-"
    try:
        found = client().search_for_studies(search_filters=filters, fields=list(_STUDY_FIELDS), get_remaining=True)
        studies = [Study(uid=str(_value(item, "StudyInstanceUID")), date=_date(_value(item, "StudyDate")),
                         description=str(_value(item, "StudyDescription") or ""),
                         modalities=str(_value(item, "ModalitiesInStudy") or ""),
                         instances=_int(_value(item, "NumberOfStudyRelatedInstances")),
                         accession=str(_value(item, "AccessionNumber") or ""),
                         patient_name=str(_value(item, "PatientName") or ""))
                   for item in found if _value(item, "StudyInstanceUID")]
    except PacsError:
        raise
    except _FAILURES as exc:
        raise _words(exc, f"search for the studies of patient {patient_id}") from None
    # A server that ignores the date filter must not smuggle in other dates.
    studies = [s for s in studies if not (since and s.date and s.date < since) and not (until and s.date and
                                                                                       s.date > until)]
    return sorted(studies, key=lambda s: (s.date or dt.date.min, s.uid), reverse=True)


def _int(value) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError, OverflowError):  # not a number, or an infinite one
        return None


def study_instances(study_uid: str, *, patient_id: str) -> list[Instance]:
    """The instances of a study (QIDO-RS), checked to belong to the patient."""
    try:
        found = client().search_for_instances(
            study_instance_uid=study_uid, get_remaining=True,
            fields=["SeriesInstanceUID", "SOPClassUID", "Modality", "InstanceNumber", "PatientID"])
        instances = []
        for item in found:
            owner = _value(item, "PatientID")
            if owner is not None and str(owner) != patient_id:
                raise PacsError(f"Study {study_uid} on the PACS belongs to another patient ({owner}), not "
                                f"{patient_id}: nothing was imported from it.")
            instances.append(Instance(study_uid=study_uid, series_uid=str(_value(item, "SeriesInstanceUID")),
                                      uid=str(_value(item, "SOPInstanceUID")),
                                      sop_class_uid=str(_value(item, "SOPClassUID") or ""),
                                      modality=str(_value(item, "Modality") or ""),
                                      number=_int(_value(item, "InstanceNumber"))))
    except PacsError:
        raise
    except _FAILURES as exc:
        raise _words(exc, f"list the images of study {study_uid}") from None
    if not instances:
        raise PacsError(f"Study {study_uid} was not found on the PACS, or has no images.")
    return sorted(instances, key=lambda i: (i.series_uid, i.number or 0, i.uid))


_CHUNK = 1 << 20  # the WADO-RS answer is read and written 1 MiB at a time
_MAX_PART_HEADERS = 64 * 1024
# What dicomweb-client's retrieve_instance asks for: the instance as the PACS stores it (no transcoding).
_ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*'


@contextmanager
def retrieved(instance: Instance, *, patient_id: str, directory: str | None = None,
              max_bytes: int | None = None) -> Iterator[Retrieved]:
    """One instance (WADO-RS) as a DICOM file on disk, checked to be of the patient; the file is removed when the
    block ends. An instance larger than `max_bytes` raises TooLarge as soon as the PACS has sent that much (its
    announced length is checked first): a huge or endless answer never fills the disk.

    The PACS's answer is streamed to a temporary file a chunk at a time (never whole in memory), and the file kept
    is the one dicomweb-client's `retrieve_instance` + pydicom's `save_as` made before (the same bytes): the
    dataset is read from disk with its pixel data deferred and written to a second temporary file."""
    received = _temporary(directory, "pacs-", ".part")
    kept = _temporary(directory, "pacs-", ".dcm")
    try:
        try:
            _download(instance, received, max_bytes)
            dataset = pydicom.dcmread(received, defer_size="256 KB")
            if str(dataset.get("PatientID", "")) != patient_id:
                raise PacsError(f"Image {instance.uid} on the PACS belongs to another patient "
                                f"({dataset.get('PatientID', 'no PatientID')}), not {patient_id}: not imported.")
            if not getattr(dataset, "file_meta", None) or "TransferSyntaxUID" not in dataset.file_meta:
                raise ValueError("the instance came without its transfer syntax")
            dataset.save_as(kept, enforce_file_format=True)
            del dataset  # its pixel data, read for the copy
            with suppress(OSError):
                os.unlink(received)
            header = pydicom.dcmread(kept, stop_before_pixels=True)
        except PacsError:
            raise
        except _FAILURES as exc:
            raise _words(exc, f"send image {instance.uid}") from None
        yield Retrieved(instance=instance, path=kept, dataset=header)
    finally:
        for path in (received, kept):
            with suppress(OSError):
                os.unlink(path)


def _temporary(directory: str | None, prefix: str, suffix: str) -> str:
    fd, path = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=directory)
    os.close(fd)
    return path


class _Capped:
    """A file that refuses (TooLarge) to grow beyond `limit` bytes (None: no limit)."""

    def __init__(self, out, limit: int | None, instance: Instance):
        self.out, self.limit, self.instance, self.written = out, limit, instance, 0

    def write(self, data) -> None:
        self.written += len(data)
        if self.limit is not None and self.written > self.limit:
            raise _too_large(self.instance, self.limit)
        self.out.write(data)


def _too_large(instance: Instance, limit: int) -> TooLarge:
    return TooLarge(f"Image {instance.uid} on the PACS is larger than {limit / 1048576:g} MB, the largest accepted "
                    "(ORTHOREG_MAX_UPLOAD_MB): not imported.")


def _download(instance: Instance, path: str, max_bytes: int | None = None) -> None:
    """The instance's part of the WADO-RS answer written to `path`, read a chunk at a time. Parsed as
    dicomweb-client parses it (multipart/related, its one part; a server that sends the part bare, as
    application/dicom, is accepted too); ValueError when the answer is not one instance, TooLarge as soon as more
    than `max_bytes` of it arrived (or the answer announces more: its Content-Length counts the multipart framing,
    a few hundred bytes, so it is compared with a margin)."""
    client()  # the settings checked as for every other request (the stream is read with requests itself)
    url = "/".join([settings.DICOMWEB_URL.rstrip("/"), "studies", quote(instance.study_uid, safe=""), "series",
                    quote(instance.series_uid, safe=""), "instances", quote(instance.uid, safe="")])
    with _session().get(url, headers={"Accept": _ACCEPT}, stream=True,
                        timeout=float(settings.DICOMWEB_TIMEOUT)) as response:
        response.raise_for_status()
        content_type = response.headers.get("content-type", "")
        announced = response.headers.get("content-length", "")
        if max_bytes is not None and announced.isdigit() and int(announced) > max_bytes + _MAX_PART_HEADERS:
            raise _too_large(instance, max_bytes)
        chunks = response.iter_content(chunk_size=_CHUNK)
        with open(path, "wb") as raw:
            out = _Capped(raw, max_bytes, instance)
            if content_type.startswith("application/dicom"):
                for chunk in chunks:
                    out.write(chunk)
                return
            media_type, *parameters = [part.strip() for part in content_type.split(";")]
            if media_type.lower() != "multipart/related":
                raise ValueError(f'Unexpected media type: "{media_type}". Expected "multipart/related".')
            boundary = next((value.strip('"') for attr, _, value in (p.partition("=") for p in parameters)
                             if attr.lower() == "boundary"), None)
            if boundary is None:  # a single part sent without a boundary: the body as it is
                for chunk in chunks:
                    out.write(chunk)
                return
            if _write_single_part(chunks, b"\r\n--" + boundary.encode(), out) != 1:
                raise ValueError("the PACS did not send exactly one instance")


def _write_single_part(chunks: Iterator[bytes], delimiter: bytes, out) -> int:
    """Write the content of a multipart body's first part to `out` (`delimiter` is CRLF "--" boundary, the body
    split on it as dicomweb-client splits it), holding at most a chunk and a delimiter in memory; returns the
    number of parts with content (a second one makes the answer unusable: not written)."""
    data = bytearray()
    parts = 0
    in_body = False
    for chunk in chunks:
        data += chunk
        while True:
            if not in_body:
                if len(data) < len(delimiter):
                    break  # too little to tell a closing "--" from a part's headers: read on
                if data.startswith(b"--") and not data.startswith(delimiter[2:]):
                    return parts  # the closing delimiter's "--": the end of the message
                end = data.find(b"\r\n\r\n")
                if end < 0:
                    if len(data) > _MAX_PART_HEADERS:
                        raise ValueError("Message part does not contain CRLF CRLF")
                    break
                del data[:end + 4]
                in_body, parts = True, parts + 1
            found = data.find(delimiter)
            if found < 0:
                keep = len(delimiter) - 1
                if len(data) > keep:
                    if parts == 1:
                        out.write(data[:-keep])
                    del data[:-keep]
                break
            if parts == 1:
                out.write(data[:found])
            del data[:found + len(delimiter)]
            in_body = False
    if in_body:  # no closing delimiter: the part runs to the end of the body
        if parts == 1:
            out.write(data)
    elif bytes(data) not in (b"", b"--", b"\r\n") and not data.startswith(b"--\r\n"):
        end = data.find(b"\r\n\r\n")  # the last part, shorter than a delimiter
        if end < 0:
            raise ValueError("Message part does not contain CRLF CRLF")
        parts += 1
        if parts == 1:
            out.write(data[end + 4:])
    return parts


def store(dataset: pydicom.Dataset) -> None:
    """Store one instance on the PACS (STOW-RS); PacsError when it refuses it."""
    try:
        answer = client().store_instances([dataset])
    except _FAILURES as exc:
        raise _words(exc, "store the report") from None
    failed = answer.get("FailedSOPSequence") if answer is not None else None
    if failed:
        reason = failed[0].get("FailureReason", "")
        raise PacsError(f"The PACS at {describe()} refused the report (failure reason {reason}).")
