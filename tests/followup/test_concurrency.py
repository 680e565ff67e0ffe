"""Two worker processes against PostgreSQL send every invitation exactly once."""

import datetime as dt
import email
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from orthoreg.followup.models import Invitation
from orthoreg.registry import services as registry
from orthoreg.registry.models import Episode, Patient

pytestmark = pytest.mark.django_db(transaction=True)


def test_two_workers_send_each_invitation_exactly_once(clinic, tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (set ORTHOREG_DATABASE_URL=postgresql://...); SQLite runs one writer")
    n = 120
    index_day = timezone.localdate() - dt.timedelta(days=183)
    for i in range(n):
        patient = Patient.objects.create(clinic=clinic, mrn=f"C{i}", given_name="P", family_name=f"N{i}",
                                         birth_date=dt.date(1970, 1, 1), email=f"p{i}@example.org",
                                         consent_registry=True, consent_date=dt.date(2024, 1, 1), consent_version="1")
        episode = Episode.objects.create(patient=patient, body_site="knee", side="left", condition="oa_primary")
        registry.procedure_record(episode=episode, date=index_day, kind="prp", is_index=True)
    db = connection.settings_dict
    url = f"postgresql://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    outbox = tmp_path / "outbox"
    env = {**os.environ, "ORTHOREG_DATABASE_URL": url, "ORTHOREG_EMAIL_URL": f"file://{outbox}",
           "ORTHOREG_DATA_DIR": str(tmp_path)}
    workers = [subprocess.Popen([sys.executable, "-m", "orthoreg", "worker", "--once", "--batch", "7",
                                 "--name", f"w{k}"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for k in range(2)]
    outputs = [w.communicate(timeout=300) for w in workers]
    assert all(w.returncode == 0 for w in workers), outputs
    ids = []
    for path in Path(outbox).iterdir():
        for chunk in path.read_text().split("-" * 79):
            if chunk.strip():
                ids.append(email.message_from_string(chunk.strip())["X-Orthoreg-Invitation"])
    assert len(ids) == n and len(set(ids)) == n
    assert Invitation.objects.filter(sends=1, status="sent").count() == n
    sent_by = [int(line.split(" sent")[0].rsplit(",", 1)[1]) for out, _ in outputs for line in out.splitlines()
               if " sent," in line]
    assert sum(sent_by) == n
