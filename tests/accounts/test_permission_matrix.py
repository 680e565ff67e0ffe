"""The permission matrix: every URL pattern has a decision, and every role gets exactly what it allows,
in its own clinic and in another (where every object answers 404, so ids reveal nothing).

A new route without a decision in ROUTES fails test_every_route_has_a_decision.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from dataclasses import dataclass, field

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from orthoreg.accounts import access
from orthoreg.accounts.models import Role
from orthoreg.registry import services as registry
from orthoreg.registry.models import Clinic, Patient
from tests.conftest import make_user

PUBLIC, LOGIN = "public", "login"
CAPABILITY = {"contact": access.CONTACT, "clinical": access.CLINICAL, "research": access.RESEARCH,
              "audit": access.AUDIT}
ROLES = [Role.ADMIN, Role.CLINICIAN, Role.COORDINATOR, Role.RESEARCHER, Role.AUDITOR]


@dataclass
class Rule:
    need: str  # public | login | contact | clinical | research | audit
    kwargs: object = None  # callable(world) -> dict of URL kwargs (an object of that world's clinic)
    method: str = "GET"
    data: dict = field(default_factory=dict)
    scoped: bool = True  # the kwargs name an object of one clinic (False: a chart name, a code, ...)


def w(attr, name="pk"):
    return lambda world: {name: getattr(world, attr).pk}


ROUTES: dict[str, Rule] = {
    "home": Rule(LOGIN),
    "accounts:login": Rule(PUBLIC),
    "accounts:logout": Rule(PUBLIC, method="POST"),
    "accounts:2fa_setup": Rule(LOGIN),
    "accounts:2fa_verify": Rule(LOGIN),
    "accounts:audit_log": Rule("audit"),
    "registry:healthz": Rule(PUBLIC),
    "registry:patient_list": Rule("contact"),
    "registry:patient_create": Rule("clinical"),
    "registry:patient_detail": Rule("contact", w("patient")),
    "registry:patient_edit": Rule("clinical", w("patient")),
    "registry:patient_history": Rule("clinical", w("patient")),
    "registry:episode_create": Rule("clinical", w("patient", "patient_pk")),
    "registry:episode_detail": Rule("contact", w("episode")),
    "registry:episode_edit": Rule("clinical", w("episode")),
    "registry:grade_create": Rule("clinical", w("episode", "episode_pk")),
    "registry:grade_edit": Rule("clinical", lambda x: {"episode_pk": x.episode.pk, "pk": x.grade.pk}),
    "registry:grade_suggest": Rule("clinical", w("episode", "episode_pk"), "POST", {"system": "coughlin_shurnas"}),
    "registry:procedure_create": Rule("clinical", w("episode", "episode_pk")),
    "registry:procedure_form_edit": Rule("clinical", lambda x: {"episode_pk": x.episode.pk, "pk": x.procedure.pk}),
    "registry:procedure_edit": Rule("clinical", w("procedure")),
    "registry:exam_create": Rule("clinical", w("episode", "episode_pk")),
    "registry:exam_edit": Rule("clinical", lambda x: {"episode_pk": x.episode.pk, "pk": x.exam.pk}),
    "registry:note_create": Rule("clinical", w("episode", "episode_pk")),
    "registry:note_edit": Rule("clinical", lambda x: {"episode_pk": x.episode.pk, "pk": x.note.pk}),
    "registry:adverse_event_create": Rule("clinical", w("procedure", "procedure_pk")),
    "registry:adverse_event_edit": Rule("clinical", lambda x: {"procedure_pk": x.procedure.pk, "pk": x.event.pk}),
    "instruments:instrument_list": Rule(LOGIN),
    "instruments:instrument_detail": Rule(LOGIN, lambda x: {"code": "nprs"}),
    "instruments:response_new": Rule("clinical", w("patient", "patient_id")),
    "instruments:response_detail": Rule("clinical", w("response")),
    "instruments:episode_responses": Rule("clinical", w("episode", "episode_id")),
    "instruments:episode_chart": Rule("clinical", lambda x: {"episode_id": x.episode.pk, "code": "nprs",
                                                             "fmt": "svg"}),
    "followup:worklist": Rule("contact"),
    "followup:protocol_list": Rule("contact"),
    "followup:protocol_copy": Rule("contact", lambda x: {"pk": x.protocol.pk}, "POST", {}, scoped=False),
    "followup:protocol_edit": Rule("contact", w("own_protocol")),
    "followup:assessment_enter": Rule("contact", w("assessment")),
    "followup:assessment_cancel": Rule("contact", w("assessment"), "POST", {"reason": ""}),
    "followup:invitation_resend": Rule("contact", w("invitation"), "POST"),
    "followup:invitation_revoke": Rule("contact", w("invitation"), "POST"),
    "interop:research_export": Rule("research"),
    "analytics:index": Rule("research"),
    "reports:cohort": Rule("research"),
    "reports:cohort_pdf": Rule("research"),
    "reports:cohort_json": Rule("research"),
    "reports:cohort_chart": Rule("research", lambda x: {"name": "survival", "fmt": "svg"}, scoped=False),
    "reports:case": Rule("clinical", w("episode", "episode_id")),
    "reports:case_pdf": Rule("clinical", w("episode", "episode_id")),
    "reports:case_images": Rule("clinical", w("episode", "episode_id")),
    "reports:options": Rule("clinical"),
    "reports:public_index": Rule(PUBLIC),
    "reports:public_outcomes": Rule(PUBLIC, lambda x: {"site": "first_mtp", "condition": "hallux_rigidus"}),
    "reports:public_chart": Rule(PUBLIC, lambda x: {"site": "first_mtp", "condition": "hallux_rigidus"}),
    "api:openapi-json": Rule(PUBLIC),
    "api:openapi-view": Rule(PUBLIC),
    "api:cohort_report": Rule("research"),
    "api:cohort_compare": Rule("research"),
    "api:patient_everything": Rule("clinical", w("patient", "patient_id")),
    "api:fhir_import": Rule("clinical", method="POST"),  # an empty body: 400 once past the access check
    "survey_done": Rule(PUBLIC),
    "survey": Rule(PUBLIC, lambda x: {"token": x.token}),
    "survey_unsubscribe": Rule(PUBLIC, lambda x: {"token": x.token}),
    "imaging:episode_images": Rule("clinical", w("episode", "episode_id")),
    "imaging:upload": Rule("clinical", w("episode", "episode_id")),
    "imaging:compare": Rule("clinical", w("episode", "episode_id")),
    "imaging:pacs": Rule("clinical", w("episode", "episode_id")),
    "imaging:compare_png": Rule("clinical", w("episode", "episode_id")),
    "imaging:image_detail": Rule("clinical", w("image")),
    "imaging:image_edit": Rule("clinical", w("image"), "POST", {}),
    "imaging:image_delete": Rule("clinical", w("image"), "POST", {"confirm": ""}),
    "imaging:image_rendition": Rule("clinical", w("image")),
    "imaging:image_thumbnail": Rule("clinical", w("image")),
    "imaging:image_original": Rule("clinical", w("image")),
    "imaging:image_sr": Rule("clinical", w("image")),
    "imaging:image_sr_push": Rule("clinical", w("image"), "POST", {}),
    "imaging:calibration": Rule("clinical", w("image"), "POST", {}),
    "imaging:annotations": Rule("clinical", w("image")),
    "imaging:annotation": Rule("clinical", w("annotation")),
    "imaging:measure": Rule("clinical", w("image"), "POST", {}),
    "imaging:measure_manual": Rule("clinical", w("image"), "POST", {}),
    "imaging:measurement_accept": Rule("clinical", w("measurement"), "POST", {}),
    "imaging:measurement_delete": Rule("clinical", w("measurement"), "POST", {}),
}
# Routes served outside the application's own access rules, and names that are no page (the API's prefix).
IGNORED_NAMESPACES = {"admin"}
IGNORED_NAMES = {"api:api-root"}


def all_route_names() -> set[str]:
    names: set[str] = set()

    def walk(patterns, namespace=""):
        for p in patterns:
            if isinstance(p, URLResolver):
                ns = p.namespace or ""
                walk(p.url_patterns, f"{namespace}:{ns}".strip(":") if ns else namespace)
            elif isinstance(p, URLPattern) and p.name:
                names.add(f"{namespace}:{p.name}" if namespace else p.name)

    walk(get_resolver().url_patterns)
    return {n for n in names if n.split(":")[0] not in IGNORED_NAMESPACES and n not in IGNORED_NAMES}


def api_matrix_routes() -> dict[str, set[str]]:
    """Route name -> methods of the API's records, whose decisions tests/api/test_permissions.py checks for every
    (method, path), every role, another clinic and every token state (no token, expired, revoked)."""
    from django.urls import resolve

    from tests.api.test_permissions import OPERATIONS

    routes: dict[str, set[str]] = {}
    for operation, (method, path, _, _) in OPERATIONS.items():
        match = resolve(re.sub(r"OURS_\w+", "1", f"/api/v1{path.split('?')[0]}"))
        routes.setdefault(f"{match.namespace}:{match.url_name}", set()).add(method.upper())
        routes.setdefault(f"api:{operation}", set()).add(method.upper())  # each operation's own route name
    return routes


def test_every_route_has_a_decision():
    missing = sorted(all_route_names() - set(ROUTES) - set(api_matrix_routes()))
    assert not missing, f"routes without an access decision in ROUTES: {missing}"
    stale = sorted(set(ROUTES) - all_route_names())
    assert not stale, f"decisions for routes that no longer exist: {stale}"


class World:
    """One clinic's objects: a patient with an episode, an index procedure and everything hanging off it."""

    def __init__(self, clinic: Clinic):
        from orthoreg.followup import services as followup
        from orthoreg.followup.models import Assessment
        from orthoreg.instruments.services import response_record

        today = timezone.localdate()
        self.patient = registry.patient_create(
            clinic=clinic, mrn=f"MRN{clinic.code.upper()}40917", given_name="Zuleikaqx", family_name=f"Matrix{clinic.code}",
            phone="+1-555-0199-7731",
            birth_date=dt.date(1980, 2, 2), email=f"ida@{clinic.code}.example.org", consent_registry=True,
            consent_date=dt.date(2024, 1, 1), consent_version="1")
        self.episode = registry.episode_create(patient=self.patient, body_site="first_mtp", side="left",
                                               condition="hallux_rigidus")
        self.procedure = registry.procedure_record(episode=self.episode, date=today - dt.timedelta(days=183),
                                                   kind="bmc", is_index=True)
        self.grade = registry.grade_record(episode=self.episode, system="coughlin_shurnas", date=today,
                                           inputs={"radiograph": 2})
        self.exam = registry.exam_record(episode=self.episode, date=today, dorsiflexion_deg=30)
        self.note = registry.note_record(episode=self.episode, date=today, text="Zqfreetextmarker note")
        self.event = registry.adverse_event_record(procedure=self.procedure, date=today, severity="mild",
                                                   description="flare")
        self.response = response_record(patient=self.patient, episode=self.episode, instrument="nprs", answers=[4],
                                        time_point="1m")
        from orthoreg.followup.models import Protocol

        self.protocol = Protocol.objects.get(clinic=None, condition="hallux_rigidus")
        self.own_protocol = Protocol.objects.create(name=f"Own {clinic.code}", clinic=clinic, condition="oa_primary",
                                                    body_site="hip")
        self.assessment = Assessment.objects.filter(episode=self.episode, time_point="6m", instrument="nprs").get()
        followup.invitations_plan()
        self.invitation = self.episode.invitations.get()
        self.token = followup.token_issue(invitation=self.invitation)
        from orthoreg.imaging.demo import create_demo_images

        self.image, _ = create_demo_images(episode=self.episode, before_date=today - dt.timedelta(days=190),
                                           after_date=today)
        self.annotation = self.image.annotations.first()
        self.measurement = self.image.measurements.first()


def verified_client(user) -> Client:
    client = Client()
    client.force_login(user)
    if user.is_staff:  # admins must have passed two-factor
        device = TOTPDevice.objects.create(user=user, name="test", confirmed=True)
        session = client.session
        session["otp_device_id"] = device.persistent_id
        session.save()
    return client


def allowed(role: str, need: str) -> bool:
    if need in (PUBLIC, LOGIN):
        return True
    return role in CAPABILITY[need]


def call(client: Client, name: str, rule: Rule, world: World | None):
    url = reverse(name, kwargs=rule.kwargs(world) if rule.kwargs else None)
    if rule.method == "POST":
        return client.post(url, rule.data)
    return client.get(url)


def reached(response) -> bool:
    if response.status_code in (401, 403, 404):  # the API answers 401/403 where pages answer 404
        return False
    location = response.get("Location", "")
    return not (response.status_code == 302 and "/accounts/login/" in location)


@pytest.mark.parametrize("role", ROLES)
def test_matrix_for_role(role, db, default_protocols):
    own_clinic = Clinic.objects.create(code="a", name="A")
    other_clinic = Clinic.objects.create(code="b", name="B")
    own, other = World(own_clinic), World(other_clinic)
    user = make_user(f"u-{role}", role, own_clinic)
    client = verified_client(user)
    wrong = []
    # Destructive routes last, so the objects other routes need still exist.
    order = sorted(ROUTES.items(), key=lambda kv: (kv[1].method == "POST", "delete" in kv[0] or "revoke" in kv[0],
                                                   "image_delete" in kv[0]))
    for name, rule in order:
        if name in ("accounts:logout",):
            continue
        expect = allowed(role, rule.need)
        response = call(client, name, rule, own)
        if response.status_code >= 500:
            wrong.append(f"{name}: own clinic gave {response.status_code}")
        elif reached(response) != expect:
            wrong.append(f"{name}: own clinic {'reached' if reached(response) else 'refused'} "
                         f"({response.status_code}), expected {'reach' if expect else 'refusal'}")
        if rule.kwargs and rule.scoped and rule.need not in (PUBLIC, LOGIN):
            own_status = response.status_code
            response = call(client, name, rule, other)
            # 404, as for an id that does not exist; the API answers a role without the capability anywhere 403
            # whatever the id (the same answer for its own clinic's object: the id reveals nothing)
            refused_anyway = name.startswith("api:") and not expect and response.status_code == own_status == 403
            if response.status_code != 404 and not refused_anyway:
                wrong.append(f"{name}: another clinic's object gave {response.status_code}, expected 404")
    assert not wrong, "\n".join(wrong)


def test_anonymous_reaches_only_public_routes(db, default_protocols):
    world = World(Clinic.objects.create(code="a", name="A"))
    client = Client()
    for name, rule in ROUTES.items():
        if name == "accounts:logout":
            continue
        response = call(client, name, rule, world)
        assert response.status_code < 500, name
        if rule.need == PUBLIC:
            assert reached(response), name
        else:
            assert not reached(response), f"{name} reached anonymously"


def readable_text(response) -> str:
    """What a person could read in a response: a PDF's extracted text (its streams are compressed, so the
    raw bytes would hide a name), a streamed download's whole content, or the body."""
    raw = b"".join(response.streaming_content) if getattr(response, "streaming", False) else response.content
    if response.get("Content-Type", "").startswith("application/pdf"):
        from pypdf import PdfReader

        return "\n".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(raw)).pages)
    return raw.decode(errors="ignore")


def test_researcher_cannot_reach_a_name_anywhere(db, default_protocols):
    clinic = Clinic.objects.create(code="a", name="A")
    world = World(clinic)
    client = verified_client(make_user("res", Role.RESEARCHER, clinic))
    name = world.patient.family_name
    for route, rule in ROUTES.items():
        if rule.method != "GET" or route == "survey":
            continue
        response = call(client, route, rule, world)
        body = readable_text(response)
        assert name not in body, route
        assert world.patient.mrn not in body, route
        assert world.patient.email not in body, route
        assert world.patient.given_name not in body, route
        assert world.patient.phone not in body, route
        assert "Zqfreetextmarker" not in body, route
    assert Patient.objects.filter(family_name=name).exists()


def test_readable_text_reads_what_a_pdf_says(db, default_protocols):
    """The scan above is only worth something if it can see text inside a PDF: the case report a clinician
    downloads names the patient by initials, and readable_text finds them."""
    clinic = Clinic.objects.create(code="a", name="A")
    world = World(clinic)
    client = verified_client(make_user("doc", Role.CLINICIAN, clinic))
    response = call(client, "reports:case_pdf", ROUTES["reports:case_pdf"], world)
    assert response.status_code == 200
    assert f"Case report: {world.patient.initials}" in readable_text(response)


def test_every_api_operation_has_a_decision_for_its_method():
    """A new method on an existing API path gets no decision by name alone: each (path, method) of the OpenAPI
    schema must resolve to a route of ROUTES whose decision is for that method."""
    from django.urls import resolve

    from orthoreg.api.api import api

    missing = []
    api_routes = api_matrix_routes()
    for path, operations in api.get_openapi_schema()["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", "1", path)
        match = resolve(concrete)
        name = f"{match.namespace}:{match.url_name}" if match.namespace else match.url_name
        for method in operations:
            rule = ROUTES.get(name)
            if method.upper() in api_routes.get(name, set()):
                continue
            if rule is None or rule.method != method.upper():
                missing.append(f"{method.upper()} {path} ({name})")
    assert not missing, f"API operations without an access decision: {missing}"
