"""Shared fixtures: two clinics, users of each role, a patient with an episode and an index procedure."""

from __future__ import annotations

import datetime as dt
import os
import threading
from pathlib import Path

import pytest
from django.core.servers.basehttp import ThreadedWSGIServer
from django.test import Client
from django.test.testcases import LiveServerThread
from django.utils import timezone

from orthoreg.accounts.models import Role
from orthoreg.accounts.services import user_create
from orthoreg.registry import services
from orthoreg.registry.models import Clinic, Episode, Patient

PASSWORD = "correct-horse-battery-9"


@pytest.fixture(autouse=True)
def _isolated_files(settings, tmp_path):
    """Uploads and file-backend mail go to a temporary directory in every test."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.EMAIL_FILE_PATH = str(tmp_path / "outbox")
    settings.AXES_ENABLED = False


@pytest.fixture(scope="session", autouse=True)
def _flush_may_empty_the_audit_log():
    """The audit table refuses DELETE/TRUNCATE (triggers); the flush between transactional tests lifts that
    guard for its own connection only (accounts.auditchain.maintenance)."""
    from django.db.backends.base.operations import BaseDatabaseOperations

    from orthoreg.accounts.auditchain import maintenance

    original = BaseDatabaseOperations.execute_sql_flush

    def execute_sql_flush(self, sql_list):
        with maintenance(self.connection):
            return original(self, sql_list)

    BaseDatabaseOperations.execute_sql_flush = execute_sql_flush
    yield
    BaseDatabaseOperations.execute_sql_flush = original


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Reports are cached: every test starts (and ends) with an empty cache."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def default_protocols(db):
    """Transactional tests flush the database, data migrations included: put the default protocols back."""
    from orthoreg.followup.scheduling import install_default_protocols

    install_default_protocols()


@pytest.fixture
def clinic(db, default_protocols):
    return Clinic.objects.create(code="east", name="East Clinic")


@pytest.fixture
def other_clinic(db):
    return Clinic.objects.create(code="west", name="West Clinic")


def make_user(username: str, role: str, *clinics) -> object:
    return user_create(username=username, password=PASSWORD, clinics=clinics, role=role, validate=False)


@pytest.fixture
def clinician(clinic):
    return make_user("doc", Role.CLINICIAN, clinic)


@pytest.fixture
def other_clinician(other_clinic):
    return make_user("otherdoc", Role.CLINICIAN, other_clinic)


@pytest.fixture
def coordinator(clinic):
    return make_user("coord", Role.COORDINATOR, clinic)


@pytest.fixture
def researcher(clinic):
    return make_user("research", Role.RESEARCHER, clinic)


@pytest.fixture
def auditor(clinic):
    return make_user("audit", Role.AUDITOR, clinic)


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def clinician_client(clinician):
    return login(clinician)


@pytest.fixture
def other_client(other_clinician):
    return login(other_clinician)


@pytest.fixture
def patient(clinic):
    return Patient.objects.create(
        clinic=clinic, mrn="MRN-001", given_name="Dana", family_name="Fox", birth_date=dt.date(1985, 5, 17),
        sex=Patient.Sex.FEMALE, email="dana@example.org", consent_registry=True,
        consent_date=dt.date(2024, 1, 10), consent_version="v1")


@pytest.fixture
def episode(patient):
    return Episode.objects.create(patient=patient, body_site="first_mtp", side="right", condition="hallux_rigidus")


@pytest.fixture
def index_procedure(episode):
    day = timezone.localdate() - dt.timedelta(days=200)
    return services.procedure_record(episode=episode, date=day, kind="bmc", is_index=True,
                                     target_structure="joint", image_guidance="ultrasound")


@pytest.fixture
def other_patient(other_clinic):
    return Patient.objects.create(clinic=other_clinic, mrn="W-1", given_name="Wes", family_name="Stone",
                                  birth_date=dt.date(1970, 1, 2), sex=Patient.Sex.MALE)


# ---------------------------------------------------------------- real browser (Playwright + Debian chromium)

CHROMIUM = os.environ.get("ORTHOREG_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


def _browser_unavailable() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"no chromium at {CHROMIUM} (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[test]')"
    return None


class OneRequestAtATime(ThreadedWSGIServer):
    """The browser tests' live server. With SQLite its threads share the one in-memory test database connection
    (Django's design), so two requests at once (a page's thumbnails) could interleave their transactions on it (seen
    once in CI: `atomic` popping another thread's block). Requests run one at a time; connections stay threaded."""

    lock = threading.Lock()

    def set_app(self, application):
        def one_at_a_time(environ, start_response):
            with self.lock:
                return application(environ, start_response)

        super().set_app(one_at_a_time)


LiveServerThread.server_class = OneRequestAtATime  # pytest-django's live_server runs a LiveServerThread


@pytest.fixture(scope="session")
def browser():
    reason = _browser_unavailable()
    if reason:
        if os.environ.get("ORTHOREG_REQUIRE_BROWSER"):
            pytest.fail(f"browser tests are required here but cannot run: {reason}")
        pytest.skip(reason)
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # live_server + Playwright's sync API
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser, request):
    """A fresh browser context per test (desktop size unless the test sets another viewport)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    console_errors: list[str] = []
    tab.on("console", lambda msg: console_errors.append(msg.text) if msg.type == "error" else None)
    tab.console_errors = console_errors
    yield tab
    context.close()


def screenshot(tab, name: str) -> Path:
    """Save a full-page screenshot under test-artifacts/ to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    tab.screenshot(path=str(path), full_page=True)
    return path


def browser_login(tab, live_server, username: str, password: str = PASSWORD) -> None:
    tab.goto(f"{live_server.url}/accounts/login/")
    tab.fill("input[name=username]", username)
    tab.fill("input[name=password]", password)
    # The first page after sign-in may bring the analytics facts up to date (no worker runs in tests): on a busy
    # CI machine that has taken longer than Playwright's default 30 s once, so allow it more.
    tab.click("button[type=submit]", timeout=120_000)
    tab.wait_for_load_state(timeout=120_000)


@pytest.fixture
def estimates_at_any_n(monkeypatch):
    """Lower the small-number rule (analytics.summaries.too_few) to one patient, for tests that check the arithmetic
    of a report on a hand-built registry smaller than the rule allows; the rule itself is tested with it in force."""
    from orthoreg.analytics import summaries

    monkeypatch.setattr(summaries, "MIN_ESTIMATE_N", 1)
