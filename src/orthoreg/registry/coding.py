"""Controlled vocabularies and code derivation (DOMAIN.md section 2).

ICD-10-CM is public domain. CPT codes are stored as facts with labels written by us (the AMA
descriptors are copyrighted). Laterality is its own field; the ICD-10-CM code is derived from
condition + body site + side and never typed twice.

Bilateral: where ICD-10-CM has a bilateral code (M17.0 knee, M16.0 hip) that one code is used; where it has
only a right and a left code (hallux rigidus M20.2-, osteoarthritis of ankle and foot M19.-7-), a bilateral
condition gets both, right first ("M20.21, M20.22"), as ICD-10-CM codes both sides. An episode's codes are one
text field holding a comma-separated list (`Episode.icd10_codes` splits it). Every mapped code is a valid
billable leaf of the CDC's ICD-10-CM table (tests/registry/test_coding.py checks it with simple-icd-10-cm).
"""

from __future__ import annotations

import re

from django.db import models


class BodySite(models.TextChoices):
    FIRST_MTP = "first_mtp", "First MTP joint"
    ANKLE = "ankle", "Ankle"
    KNEE = "knee", "Knee"
    HIP = "hip", "Hip"
    SHOULDER = "shoulder", "Shoulder"
    ELBOW = "elbow", "Elbow"
    WRIST_HAND = "wrist_hand", "Wrist / hand"
    LUMBAR_SPINE = "lumbar_spine", "Lumbar spine"
    CERVICAL_SPINE = "cervical_spine", "Cervical spine"
    OTHER = "other", "Other"


class Side(models.TextChoices):
    LEFT = "left", "Left"
    RIGHT = "right", "Right"
    BILATERAL = "bilateral", "Bilateral"
    NOT_APPLICABLE = "na", "Not applicable"


class Condition(models.TextChoices):
    HALLUX_RIGIDUS = "hallux_rigidus", "Hallux rigidus"
    OA_PRIMARY = "oa_primary", "Primary osteoarthritis"
    OA_POST_TRAUMATIC = "oa_post_traumatic", "Post-traumatic osteoarthritis"
    OA_SECONDARY = "oa_secondary", "Secondary osteoarthritis"
    LOW_BACK_PAIN = "low_back_pain", "Low back pain"
    LIGAMENT_INSTABILITY = "ligament_instability", "Ligament laxity / instability"
    TENDINOPATHY = "tendinopathy", "Tendinopathy"
    OTHER = "other", "Other"


# Sites with a left and a right; the spine has no side.
LATERAL_SITES = {
    BodySite.FIRST_MTP, BodySite.ANKLE, BodySite.KNEE, BodySite.HIP, BodySite.SHOULDER,
    BodySite.ELBOW, BodySite.WRIST_HAND,
}
FOOT_SITES = {BodySite.FIRST_MTP, BodySite.ANKLE}
SPINE_SITES = {BodySite.LUMBAR_SPINE, BodySite.CERVICAL_SPINE}

# (condition, site group, side) -> ICD-10-CM. Site group "foot" covers first MTP and ankle.
_ICD10: dict[tuple[str, str, str], str] = {
    ("hallux_rigidus", "foot", "right"): "M20.21",
    ("hallux_rigidus", "foot", "left"): "M20.22",
    ("oa_primary", "foot", "right"): "M19.071",
    ("oa_primary", "foot", "left"): "M19.072",
    ("oa_post_traumatic", "foot", "right"): "M19.171",
    ("oa_post_traumatic", "foot", "left"): "M19.172",
    ("oa_secondary", "foot", "right"): "M19.271",
    ("oa_secondary", "foot", "left"): "M19.272",
    ("oa_primary", "knee", "right"): "M17.11",
    ("oa_primary", "knee", "left"): "M17.12",
    ("oa_primary", "knee", "bilateral"): "M17.0",
    ("oa_primary", "hip", "right"): "M16.11",
    ("oa_primary", "hip", "left"): "M16.12",
    ("oa_primary", "hip", "bilateral"): "M16.0",
    ("low_back_pain", "lumbar", "na"): "M54.50",
}

ICD10_LABELS = {
    "M20.20": "Hallux rigidus, unspecified foot",
    "M20.21": "Hallux rigidus, right foot",
    "M20.22": "Hallux rigidus, left foot",
    "M19.071": "Primary osteoarthritis, right ankle and foot",
    "M19.072": "Primary osteoarthritis, left ankle and foot",
    "M19.171": "Post-traumatic osteoarthritis, right ankle and foot",
    "M19.172": "Post-traumatic osteoarthritis, left ankle and foot",
    "M19.271": "Secondary osteoarthritis, right ankle and foot",
    "M19.272": "Secondary osteoarthritis, left ankle and foot",
    "M17.0": "Bilateral primary osteoarthritis of knee",
    "M17.11": "Unilateral primary osteoarthritis, right knee",
    "M17.12": "Unilateral primary osteoarthritis, left knee",
    "M16.0": "Bilateral primary osteoarthritis of hip",
    "M16.11": "Unilateral primary osteoarthritis, right hip",
    "M16.12": "Unilateral primary osteoarthritis, left hip",
    "M54.50": "Low back pain, unspecified",
}


def _site_group(site: str) -> str:
    if site in FOOT_SITES:
        return "foot"
    if site == BodySite.LUMBAR_SPINE:
        return "lumbar"
    return str(site)


CODE_SEPARATOR = ", "


def split_codes(text: str) -> list[str]:
    """"M20.21, M20.22" (or with spaces, semicolons) -> ["M20.21", "M20.22"]; upper-cased, blanks dropped."""
    return [part.upper() for part in re.split(r"[\s,;]+", text or "") if part]


def join_codes(codes: list[str]) -> str:
    return CODE_SEPARATOR.join(codes)


def icd10_codes_for(condition: str, site: str, side: str) -> list[str]:
    """The ICD-10-CM codes for a condition at a site and side ([] where none is mapped).

    One code, except a bilateral condition that ICD-10-CM codes side by side: then the right and the left code."""
    key = (str(condition), _site_group(site))
    code = _ICD10.get((*key, str(side)))
    if code:
        return [code]
    if str(side) == Side.BILATERAL:
        right, left = _ICD10.get((*key, Side.RIGHT.value)), _ICD10.get((*key, Side.LEFT.value))
        if right and left:
            return [right, left]
    return []


def icd10_for(condition: str, site: str, side: str) -> str:
    """The ICD-10-CM code(s) as stored on an episode: "M20.21", or "M20.21, M20.22" for both sides ("" if none)."""
    return join_codes(icd10_codes_for(condition, site, side))


def icd10_labels(text: str) -> str:
    """The labels of the codes in `text`, joined: "Hallux rigidus, right foot; Hallux rigidus, left foot"."""
    return "; ".join(label for code in split_codes(text) if (label := ICD10_LABELS.get(code)))


ICD10_FORMAT = re.compile(r"^[A-TV-Z][0-9][0-9AB](\.[0-9A-Z]{1,4})?$")
# The table read the other way: each mapped code names one (condition, site group, side).
_ICD10_MEANING: dict[str, tuple[str, str, str]] = {code: key for key, code in _ICD10.items()}


def icd10_problem(text: str, condition: str, site: str, side: str) -> str:
    """Why typed ICD-10-CM code(s) cannot stand on this episode ("" when they can).

    A code is derived wherever condition, site and side map to one (then it must be that one); elsewhere a
    typed code must look like ICD-10-CM, must not be a code this table gives to another condition or site
    (a left-over from an edit), and must not name a side the episode does not have."""
    for code in split_codes(text):
        problem = _one_code_problem(code, condition, site, side)
        if problem:
            return problem
    return ""


def _one_code_problem(code: str, condition: str, site: str, side: str) -> str:
    if not code:
        return ""
    if not ICD10_FORMAT.match(code):
        return f"{code} is not an ICD-10-CM code (a letter, two characters, then optionally a dot and up to four)."
    group = _site_group(site)
    meaning = _ICD10_MEANING.get(code)
    if meaning is not None:
        mapped_condition, mapped_site, mapped_side = meaning
        if mapped_condition != str(condition) or mapped_site != group:
            return (f"{code} is the code for {ICD10_LABELS.get(code, 'another condition').lower()}, not for this "
                    f"episode: clear it or enter the code that fits.")
        if mapped_side != str(side) and code not in icd10_codes_for(condition, site, side):
            return f"{code} is a {mapped_side} code but this episode is {side}."
    categories = sorted({mapped.split(".")[0] for (c, g, _), mapped in _ICD10.items()
                         if c == str(condition) and g == group})
    if categories and code.split(".")[0] not in categories:
        return f"{code} is not a code of this condition at this site (expected {' or '.join(categories)}.x)."
    return ""


def icd10_side(code: str) -> str | None:
    """The side a mapped ICD-10-CM code implies (left/right/bilateral/na), or None if unknown."""
    meaning = _ICD10_MEANING.get(code)
    return meaning[2] if meaning else None


class ProcedureKind(models.TextChoices):
    BMC = "bmc", "Bone marrow concentrate injection"
    PRP = "prp", "Platelet-rich plasma injection"
    PROLOTHERAPY = "prolotherapy", "Prolotherapy"
    HYALURONIC_ACID = "hyaluronic_acid", "Hyaluronic acid injection"
    CORTICOSTEROID = "corticosteroid", "Corticosteroid injection"
    CHEILECTOMY = "cheilectomy", "Cheilectomy"
    FIRST_MTP_ARTHRODESIS = "first_mtp_arthrodesis", "First MTP arthrodesis (fusion)"
    ARTHROPLASTY = "arthroplasty", "Arthroplasty"
    OTHER_SURGERY = "other_surgery", "Other surgery"
    OTHER = "other", "Other"


class ProcedureCategory(models.TextChoices):
    ORTHOBIOLOGIC = "orthobiologic", "Orthobiologic"
    INJECTION = "injection", "Injection"
    SURGERY = "surgery", "Surgery"
    OTHER = "other", "Other"


KIND_CATEGORY: dict[str, ProcedureCategory] = {  # keyed by ProcedureKind (a str)
    ProcedureKind.BMC: ProcedureCategory.ORTHOBIOLOGIC,
    ProcedureKind.PRP: ProcedureCategory.ORTHOBIOLOGIC,
    ProcedureKind.PROLOTHERAPY: ProcedureCategory.INJECTION,
    ProcedureKind.HYALURONIC_ACID: ProcedureCategory.INJECTION,
    ProcedureKind.CORTICOSTEROID: ProcedureCategory.INJECTION,
    ProcedureKind.CHEILECTOMY: ProcedureCategory.SURGERY,
    ProcedureKind.FIRST_MTP_ARTHRODESIS: ProcedureCategory.SURGERY,
    ProcedureKind.ARTHROPLASTY: ProcedureCategory.SURGERY,
    ProcedureKind.OTHER_SURGERY: ProcedureCategory.SURGERY,
    ProcedureKind.OTHER: ProcedureCategory.OTHER,
}
SURGICAL_KINDS = [k for k, c in KIND_CATEGORY.items() if c == ProcedureCategory.SURGERY]
BIOLOGIC_KINDS = [ProcedureKind.BMC, ProcedureKind.PRP]


class TargetStructure(models.TextChoices):
    JOINT = "joint", "The joint (intra-articular)"
    MEDIAL_COLLATERAL_LIGAMENT = "mcl", "Medial collateral ligament"
    LATERAL_COLLATERAL_LIGAMENT = "lcl", "Lateral collateral ligament"
    PLANTAR_PLATE = "plantar_plate", "Plantar plate"
    JOINT_CAPSULE = "capsule", "Joint capsule"
    TENDON = "tendon", "Tendon"
    FACET_JOINT = "facet", "Facet joint"
    SACROILIAC = "si_joint", "Sacroiliac joint / ligaments"
    BONE = "bone", "Bone (subchondral / intraosseous)"
    OTHER = "other", "Other (name it)"


class ImageGuidance(models.TextChoices):
    NONE = "none", "None (landmark)"
    ULTRASOUND = "ultrasound", "Ultrasound"
    FLUOROSCOPY = "fluoroscopy", "Fluoroscopy"


# CPT / HCPCS codes with our own short labels (not the AMA descriptors).
CPT_LABELS = {
    "28289": "Great-toe joint spur removal (cheilectomy), no implant",
    "28291": "Great-toe joint spur removal with implant",
    "28750": "Great-toe joint fusion",
    "20600": "Small joint (e.g. toe) injection or aspiration, without ultrasound guidance",
    "20604": "Small joint (e.g. toe) injection or aspiration, with ultrasound guidance",
    "20605": "Intermediate joint (e.g. ankle) injection or aspiration, without ultrasound guidance",
    "20606": "Intermediate joint (e.g. ankle) injection or aspiration, with ultrasound guidance",
    "20610": "Large joint (e.g. knee) injection or aspiration, without ultrasound guidance",
    "20611": "Large joint (e.g. knee) injection or aspiration, with ultrasound guidance",
    "20550": "Injection into tendon sheath or ligament",
    "0232T": "Platelet-rich plasma injection, all inclusive",
    "38232": "Bone marrow harvest for transplantation (autologous)",
    "27447": "Knee replacement",
    "27130": "Hip replacement",
    "M0076": "Prolotherapy (HCPCS)",
}
CPT_CHOICES = [("", "—")] + [(code, f"{code} · {label}") for code, label in CPT_LABELS.items()]

# Joint injection codes by joint size: (without ultrasound guidance, with ultrasound guidance). "Without ultrasound"
# is not "no imaging": a landmark or fluoroscopy-guided injection takes the first code (fluoroscopic guidance is
# a separate code of its own).
JOINT_INJECTION_CPT = {"small": ("20600", "20604"), "intermediate": ("20605", "20606"), "large": ("20610", "20611")}
JOINT_SIZE: dict[str, str] = {  # keyed by BodySite (a str)
    BodySite.FIRST_MTP: "small", BodySite.ANKLE: "intermediate", BodySite.ELBOW: "intermediate",
    BodySite.WRIST_HAND: "intermediate", BodySite.KNEE: "large", BodySite.HIP: "large", BodySite.SHOULDER: "large",
}
CPT_WITH_ULTRASOUND = {with_us for _, with_us in JOINT_INJECTION_CPT.values()}
CPT_WITHOUT_ULTRASOUND = {without for without, _ in JOINT_INJECTION_CPT.values()}


def joint_injection_cpt(site: str, guidance: str) -> str:
    """The joint injection code for a site and the image guidance recorded ("" for a site without one)."""
    size = JOINT_SIZE.get(site)
    if size is None:
        return ""
    without, with_us = JOINT_INJECTION_CPT[size]
    return with_us if guidance == "ultrasound" else without


def cpt_guidance_problem(cpt_code: str, guidance: str) -> str:
    """Why a joint injection code does not fit the image guidance recorded ("" when it does). The one home of
    this rule: 20604/20606/20611 mean WITH ultrasound guidance, 20600/20605/20610 without it."""
    guidance_words = {"none": "no image guidance (landmark)", "fluoroscopy": "fluoroscopy", "": "no image guidance"}
    for without, with_us in JOINT_INJECTION_CPT.values():
        if cpt_code == with_us and guidance != "ultrasound":
            return (f"{with_us} means the injection was guided by ultrasound, but the guidance recorded is "
                    f"{guidance_words.get(guidance, guidance)}: use {without} (without ultrasound guidance), or "
                    "record ultrasound as the guidance.")
        if cpt_code == without and guidance == "ultrasound":
            return (f"{without} means without ultrasound guidance, but ultrasound is recorded as the guidance: "
                    f"use {with_us} (with ultrasound guidance), or correct the guidance.")
    return ""
