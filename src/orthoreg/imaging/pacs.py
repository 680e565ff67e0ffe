"""The clinic's PACS over DICOMweb (dicomweb-client): find a patient's studies (QIDO-RS), fetch their instances
(WADO-RS), store a measurement report (STOW-RS).

Configured by environment variables (settings.DICOMWEB_*): ORTHOREG_DICOMWEB_URL, optional
ORTHOREG_DICOMWEB_USER / ORTHOREG_DICOMWEB_PASSWORD, ORTHOREG_DICOMWEB_TIMEOUT. Every failure of the PACS
(not configured, down, refusing, answering nonsense) is a PacsError whose message says what happened in
words; callers show it, never a traceback.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass, field

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
    data: bytes
    dataset: pydicom.Dataset = field(repr=False)


def configured() -> bool:
    return bool(settings.DICOMWEB_URL)


def describe() -> str:
    """Where the PACS is, for messages (no credentials)."""
    return settings.DICOMWEB_URL or "no PACS configured"


def client() -> DICOMwebClient:
    if not configured():
        raise PacsError("No PACS is configured: set ORTHOREG_DICOMWEB_URL to the DICOMweb address of the clinic's "
                        "PACS (for example http://pacs.example.org:8042/dicom-web).")
    session = requests.Session()
    if settings.DICOMWEB_USER:
        session.auth = (settings.DICOMWEB_USER, settings.DICOMWEB_PASSWORD)
    try:
        web = DICOMwebClient(url=settings.DICOMWEB_URL, session=session, timeout=float(settings.DICOMWEB_TIMEOUT))
    except (ValueError, TypeError) as exc:
        raise PacsError(f"ORTHOREG_DICOMWEB_URL={settings.DICOMWEB_URL!r} is not a usable address ({exc}).") from None
    # dicomweb-client retries every failure (a refused connection too) with exponential back-off, 30 s in all:
    # a page waiting on a PACS that is down answers at once instead, and the user may try again.
    web.set_http_retry_params(retry=False)
    return web


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


def retrieve(instance: Instance, *, patient_id: str) -> Retrieved:
    """One instance (WADO-RS) as the bytes of a DICOM file, checked to be of the patient."""
    try:
        dataset = client().retrieve_instance(instance.study_uid, instance.series_uid, instance.uid)
        if str(dataset.get("PatientID", "")) != patient_id:
            raise PacsError(f"Image {instance.uid} on the PACS belongs to another patient "
                            f"({dataset.get('PatientID', 'no PatientID')}), not {patient_id}: not imported.")
        buffer = io.BytesIO()
        if not getattr(dataset, "file_meta", None) or "TransferSyntaxUID" not in dataset.file_meta:
            raise ValueError("the instance came without its transfer syntax")
        dataset.save_as(buffer, enforce_file_format=True)
    except PacsError:
        raise
    except _FAILURES as exc:
        raise _words(exc, f"send image {instance.uid}") from None
    return Retrieved(instance=instance, data=buffer.getvalue(), dataset=dataset)


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
