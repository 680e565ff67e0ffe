"""Code systems, identifier systems and extension URLs of orthoreg's FHIR R4 mapping (docs/fhir.md).

Identifiers: every exported resource carries `<installation system>/<kind>|<orthoreg id>`; the installation
system is derived from the installation's secret key, so two registries never claim each other's ids. A
patient also carries its medical record number under `urn:orthoreg:clinic:<CODE>:mrn` (type MR).
"""

from __future__ import annotations

import functools
import hashlib
import hmac

from django.conf import settings

from orthoreg.registry.coding import BodySite, Condition, ProcedureKind, Side

# --- external code systems ------------------------------------------------------------------------------
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
CPT = "http://www.ama-assn.org/go/cpt"
HCPCS = "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
UCUM = "http://unitsofmeasure.org"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VER = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
AE_SERIOUSNESS = "http://terminology.hl7.org/CodeSystem/adverse-event-seriousness"
AE_SEVERITY = "http://terminology.hl7.org/CodeSystem/adverse-event-severity"
AE_OUTCOME = "http://terminology.hl7.org/CodeSystem/adverse-event-outcome"
DATA_ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
EXT_ORDINAL = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
EXT_ITEM_WEIGHT = "http://hl7.org/fhir/StructureDefinition/itemWeight"

# --- orthoreg's own code systems and extensions ---------------------------------------------------------
CS = "urn:orthoreg:fhir:CodeSystem:"
CS_CONDITION = CS + "condition"
CS_BODY_SITE = CS + "body-site"
CS_PROCEDURE_KIND = CS + "procedure-kind"
CS_TARGET = CS + "target-structure"
CS_SCORE = CS + "score"
CS_MEASUREMENT = CS + "measurement"
CS_JSW_METHOD = CS + "jsw-method"
SD = "urn:orthoreg:fhir:StructureDefinition:"
EXT_LATERALITY = SD + "laterality"
EXT_ORTHOBIOLOGIC = SD + "orthobiologic"
EXT_INDEX = SD + "index-procedure"
EXT_TARGET = SD + "target-structure"
EXT_GUIDANCE = SD + "image-guidance"
EXT_EPISODE = SD + "episode"
EXT_TIME_POINT = SD + "time-point"
EXT_CONSENT = SD + "registry-consent"
EXT_WITHDRAWN = SD + "withdrawn"
EXT_RESOLVED = SD + "resolved-date"
EXT_CALIBRATION = SD + "calibration"
CLINIC_SYSTEM = "urn:orthoreg:clinic"

# Laterality qualifiers (SNOMED CT, the three concept ids used).
LATERALITY = {Side.LEFT: ("7771000", "Left"), Side.RIGHT: ("24028007", "Right"),
              Side.BILATERAL: ("51440002", "Right and left")}
LATERALITY_BY_CODE = {code: side for side, (code, _) in LATERALITY.items()}

# SNOMED CT concepts of the registry's conditions that an import recognises (DOMAIN.md: hallux rigidus
# 202857003 [verify]). Site and side still come from bodySite; a code without them is not enough for a joint.
SNOMED_CONDITIONS: dict[str, tuple[str, str | None]] = {
    "202857003": (Condition.HALLUX_RIGIDUS, BodySite.FIRST_MTP),
    "239873007": (Condition.OA_PRIMARY, BodySite.KNEE),
    "239872002": (Condition.OA_PRIMARY, BodySite.HIP),
    "279039007": (Condition.LOW_BACK_PAIN, BodySite.LUMBAR_SPINE),
}

# LOINC codes of scores where one exists (instrument, subscale) -> (code, display).
LOINC_SCORES = {("nprs", "pain"): ("72514-3", "Pain severity - 0-10 verbal numeric rating [Score] - Reported")}
LOINC_TO_SCORE = {code: key for key, (code, _) in LOINC_SCORES.items()}

# CPT / HCPCS codes that name the kind of procedure on their own (joint injections do not: the kind is the product).
CPT_KIND = {"28289": ProcedureKind.CHEILECTOMY, "28291": ProcedureKind.CHEILECTOMY,
            "28750": ProcedureKind.FIRST_MTP_ARTHRODESIS, "0232T": ProcedureKind.PRP,
            "M0076": ProcedureKind.PROLOTHERAPY, "27447": ProcedureKind.ARTHROPLASTY,
            "27130": ProcedureKind.ARTHROPLASTY}
HCPCS_CODES = {"M0076"}


def cpt_system(code: str) -> str:
    return HCPCS if code in HCPCS_CODES else CPT


def installation() -> str:
    """A short stable id of this installation (a keyed hash of its secret key: stable across backups)."""
    return _installation(settings.SECRET_KEY)


@functools.lru_cache(maxsize=4)
def _installation(secret_key: str) -> str:  # once per key: an export asks for it for every resource
    return hmac.new(secret_key.encode(), b"orthoreg-fhir-installation", hashlib.sha256).hexdigest()[:12]


def id_system(kind: str) -> str:
    """The identifier system of one kind of record of this installation, e.g. urn:orthoreg:ab12cd34ef56:episode."""
    return f"urn:orthoreg:{installation()}:{kind}"


def mrn_system(clinic_code: str) -> str:
    return f"urn:orthoreg:clinic:{clinic_code}:mrn"


def is_orthoreg_system(system: str) -> bool:
    return (system or "").startswith("urn:orthoreg:")


# Resource type -> the kind word used in its identifier system.
KINDS = {"Patient": "patient", "Condition": "episode", "Procedure": "procedure", "QuestionnaireResponse": "response",
         "AdverseEvent": "adverse-event", "ImagingStudy": "imaging-study"}
