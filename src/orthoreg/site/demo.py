"""Demo data: the founding patient DF (DESIGN.md) and a synthetic cohort, loaded once.

All dates are relative to the day the demo is created, so follow-ups are due and overdue whenever it is run.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from orthoreg.accounts import twofactor
from orthoreg.accounts.models import Membership, Role
from orthoreg.accounts.services import user_create
from orthoreg.followup import services as followup
from orthoreg.followup.models import Assessment
from orthoreg.instruments import services as instruments
from orthoreg.registry import services
from orthoreg.registry.models import Clinic, Patient

from .synth import Generator

log = logging.getLogger(__name__)

DEMO_CLINICS = [("demo-east", "Riverside Orthobiologics (demo)"), ("demo-west", "Lakeside Sports & Spine (demo)")]
DF_MRN = "DF-0001"
COHORT_PATIENTS = 320
DEMO_USERS = [  # username, role, clinics (indexes into DEMO_CLINICS)
    ("admin", Role.ADMIN, (0, 1)),
    ("clinician", Role.CLINICIAN, (0,)),
    ("coordinator", Role.COORDINATOR, (0, 1)),
    ("researcher", Role.RESEARCHER, (0, 1)),
    ("auditor", Role.AUDITOR, (0, 1)),
]


def demo_password() -> str:
    """ORTHOREG_DEMO_PASSWORD, else one generated on first use and kept in the data directory."""
    given = os.environ.get("ORTHOREG_DEMO_PASSWORD")
    if given:
        return given
    path = settings.DATA_DIR / "demo_password"
    if path.exists():
        return path.read_text().strip()
    password = "demo-" + secrets.token_urlsafe(9)
    settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(password)
    return password


def is_loaded() -> bool:
    return Patient.objects.filter(clinic__code=DEMO_CLINICS[0][0], mrn=DF_MRN).exists()


def ensure_users(password: str) -> list[tuple[str, Role]]:
    """Create the demo users that are missing; existing users are left exactly as they are."""
    User = get_user_model()
    clinics = [Clinic.objects.get(code=code) for code, _ in DEMO_CLINICS]
    created = []
    for username, role, clinic_indexes in DEMO_USERS:
        if User.objects.filter(username=username).exists():
            continue
        user = user_create(username=username, password=password, role=role,
                           clinics=[clinics[i] for i in clinic_indexes], validate=False)
        if role == Role.ADMIN:
            user.is_staff = True
            user.save(update_fields=["is_staff"])
        created.append((username, role))
    return created


def admin_enrolment_code() -> str:
    """A fresh enrolment code for the demo admin while it has no authenticator device yet ("" once it has).
    Codes are kept hashed, so each run that prints one issues a new one; no demo data changes."""
    admin = get_user_model().objects.filter(username="admin").first()
    if admin is None or not twofactor.enrolment_needed(admin):
        return ""
    return twofactor.enrolment_code_issue(user=admin)


@transaction.atomic
def load(*, today: dt.date | None = None, cohort: int | None = None, progress=None) -> bool:
    """Load the demo data once (`cohort` synthetic patients, COHORT_PATIENTS by default). Returns False (and
    changes nothing) when it is already there."""
    if is_loaded():
        return False
    cohort = COHORT_PATIENTS if cohort is None else cohort
    today = today or timezone.localdate()
    clinics = []
    for code, name in DEMO_CLINICS:
        clinic = Clinic.objects.filter(code=code).first() or services.clinic_create(code=code, name=name)
        clinics.append(clinic)
    clinics[0].public_outcomes = True
    clinics[0].save(update_fields=["public_outcomes"])
    create_df(clinic=clinics[0], today=today)
    Generator(clinics=clinics, seed=20260301, today=today, mrn_prefix="DEMO").run(
        cohort, batch_size=200, progress=progress)
    return True


def _ago(today: dt.date, days: int) -> dt.date:
    return today - dt.timedelta(days=days)


def create_df(*, clinic: Clinic, today: dt.date) -> Patient:
    """DF, the founding case, exactly as DESIGN.md tells her story."""
    index_day = _ago(today, 192)  # the bone-marrow-concentrate injection, ~6 months ago
    df = services.patient_create(
        clinic=clinic, mrn=DF_MRN, given_name="Dana", family_name="Fairley", initials="DF",
        birth_date=dt.date(today.year - (40 if (today.month, today.day) >= (1, 15) else 41), 1, 15),  # 40 today
        sex=Patient.Sex.FEMALE, email="df@example.org", phone="+1-555-0100", consent_registry=True,
        consent_date=_ago(today, 230), consent_version="2024-1",
        notes="Active mother of five; runs obstacle races. The founding case of this registry (demo data).")

    back = services.episode_create(patient=df, body_site="lumbar_spine", side="na", condition="low_back_pain",
                                   onset_date=_ago(today, 9 * 365), notes="Chronic low-back pain, managed for years.")
    services.note_record(episode=back, date=_ago(today, 6 * 365),
                         text="Chronic low-back care for years: physical therapy, core programme, chiropractic.")
    services.procedure_record(episode=back, date=_ago(today, 3 * 365 + 40), kind="prolotherapy",
                              target_structure="si_joint", image_guidance="none", cpt_code="M0076",
                              dextrose_percent=15, injection_sites=8,
                              notes="Sacroiliac ligament prolotherapy for chronic low-back pain.")
    services.procedure_record(episode=back, date=_ago(today, 2 * 365 + 100), kind="prp",
                              target_structure="facet", image_guidance="fluoroscopy", cpt_code="0232T",
                              harvest_site="blood", harvest_volume_ml=30, harvest_anticoagulant="acd_a",
                              final_volume_ml=4, platelet_fold=5, notes="PRP to lumbar facet joints L4-S1.")

    toe = services.episode_create(patient=df, body_site="first_mtp", side="right", condition="hallux_rigidus",
                                  onset_date=_ago(today, 6 * 365),
                                  notes="Constant pain limiting activity despite cheilectomy.")
    services.procedure_record(episode=toe, date=_ago(today, 3 * 365 + 200), kind="cheilectomy",
                              target_structure="joint", cpt_code="28289",
                              notes="Dorsal bone spur removed (cheilectomy), no implant.")
    services.exam_record(episode=toe, date=_ago(today, 205), dorsiflexion_deg=20, plantarflexion_deg=10,
                         stability_findings="Medial laxity of the first MTP joint on valgus stress",
                         other_findings="Tender medial joint line; pain at end range, not at mid-range.")
    services.grade_record(episode=toe, system="coughlin_shurnas", date=_ago(today, 205),
                          inputs={"dorsiflexion": 20, "other_side_dorsiflexion": 65, "radiograph": 3, "clinical": 2,
                                  "prior_cheilectomy": True},
                          grade=3, notes="Collapsed medial joint line on the weight-bearing AP view.")
    services.note_record(episode=toe, date=_ago(today, 200),
                         text="Options discussed: first MTP fusion (arthrodesis) would likely end her running; "
                              "she chose bone marrow concentrate with prolotherapy to the medial ligaments.")
    bmc = services.procedure_record(
        episode=toe, date=index_day, kind="bmc", is_index=True, target_structure="joint",
        image_guidance="ultrasound", cpt_code="20604", bmi=21.5, nsaid_use=False, anticoagulant_use=False,
        steroid_use=False, smoking="never", harvest_site="pic", harvest_volume_ml=60, harvest_anticoagulant="heparin",
        processing_system="Bedside centrifuge (demo)", spins=2, g_force=800, spin_minutes=12, final_volume_ml=4,
        total_nucleated_cells=4.6e8, cfu_f_per_ml=1800, activation="none", delivered_volume_ml=2,
        anaesthetic="Lidocaine 1% at the harvest site; no intra-articular anaesthetic",
        post_protocol="Stiff-soled shoe 2 weeks; no NSAIDs 6 weeks; graded return to running from week 6.",
        notes="Bone marrow concentrate into the right first MTP joint.")
    for n, label in enumerate(("first", "second", "third")):
        services.procedure_record(
            episode=toe, date=index_day + dt.timedelta(days=28 * n), kind="prolotherapy", target_structure="mcl",
            image_guidance="ultrasound", cpt_code="M0076", dextrose_percent=15, injection_sites=3,
            delivered_volume_ml=1, notes=f"Prolotherapy, {label} session, to tighten the medial collateral ligament.")
    services.adverse_event_record(procedure=bmc, date=index_day + dt.timedelta(days=1), severity="mild",
                                  serious=False, description="Soreness at the iliac crest harvest site for 3 days.",
                                  resolved_date=index_day + dt.timedelta(days=4))
    services.exam_record(episode=toe, date=index_day + dt.timedelta(days=183), dorsiflexion_deg=35,
                         plantarflexion_deg=15, stability_findings="Medial stability improved",
                         other_findings="Minimal joint-line tenderness.")
    services.note_record(episode=toe, date=index_day + dt.timedelta(days=176),
                         text="Completed an obstacle race; toe pain about 60% better than before treatment.")
    _df_outcomes(df, toe, index_day)
    _df_images(toe, index_day)
    return df


def _df_outcomes(df: Patient, toe, index_day: dt.date) -> None:
    """DF's NPRS series: baseline 7, then 1, 3 and 6 months down to 3 (57% less pain), answered from her links;
    the 1-month check was a phone call outside the protocol."""
    def at(offset: int) -> dt.datetime:
        return timezone.make_aware(dt.datetime.combine(index_day + dt.timedelta(days=offset), dt.time(19, 30)))

    answers = {
        "baseline": (-5, {"nprs": [7], "sane": [30]}),
        "3m": (92, {"nprs": [4], "sane": [55], "global-improvement": [1, 40]}),
        "6m": (183, {"nprs": [3], "sane": [75], "global-improvement": [1, 60], "satisfaction": [5, 1]}),
    }
    for label, (offset, by_instrument) in answers.items():
        for code, values in by_instrument.items():
            assessment = Assessment.objects.get(episode=toe, time_point=label, instrument=code)
            followup.assessment_answer(assessment=assessment, answers=values, source="patient_link",
                                       completed_at=at(offset))
    for code, values in {"nprs": [5], "global-improvement": [1, 20]}.items():
        instruments.response_record(patient=df, episode=toe, instrument=code, answers=values, time_point="1m",
                                    completed_at=at(31), source="staff")
    for assessment in Assessment.objects.filter(episode=toe, time_point="6w", status="scheduled"):
        followup.assessment_cancel(assessment=assessment, reason="replaced by the 1-month phone check")


def _df_images(toe, index_day: dt.date) -> None:
    try:  # a build may leave the imaging app out (its dependencies are the heaviest): no images then
        from orthoreg.imaging.demo import create_demo_images
    except ImportError:
        log.info("imaging app has no demo images; skipped")
        return
    create_demo_images(episode=toe, before_date=index_day - dt.timedelta(days=10),
                       after_date=index_day + dt.timedelta(days=183))


def memberships_summary() -> list[tuple[str, str, str]]:
    rows = Membership.objects.select_related("user", "clinic").order_by("user__username", "clinic__code")
    return [(m.user.username, m.role, m.clinic.code) for m in rows]
