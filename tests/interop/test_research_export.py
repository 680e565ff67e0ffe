"""The de-identified research export: consented patients only, and not one identifier in it."""

import csv
import datetime as dt
import io
import re
import zipfile

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from orthoreg.accounts.models import AuditEvent
from orthoreg.instruments.services import response_record
from orthoreg.registry import services as registry
from orthoreg.site.synth import Generator
from tests.conftest import login

ISO_DATE = re.compile(r"\b(19|20)\d\d-\d\d-\d\d\b")


@pytest.fixture
def registry_with_identifiers(clinic, other_clinic):
    today = timezone.localdate()
    people = []
    for n, consent in enumerate([True, True, False]):
        p = registry.patient_create(
            clinic=clinic, mrn=f"ZX-{9000 + n}", given_name=f"Quilla{n}", family_name=f"Vandermolen{n}",
            birth_date=dt.date(1971, 3, 14 + n), email=f"quilla{n}@private.example", phone=f"+1-202-555-01{n}9",
            consent_registry=consent, consent_date=dt.date(2024, 1, 1) if consent else None,
            consent_version="1" if consent else "", notes=f"Secret note about Quilla{n}")
        episode = registry.episode_create(patient=p, body_site="knee", side="left", condition="oa_primary",
                                          notes="Lives on Zebra Street")
        index = registry.procedure_record(episode=episode, date=today - dt.timedelta(days=200), kind="prp",
                                          is_index=True, notes="Procedure note Quilla")
        registry.adverse_event_record(procedure=index, date=index.date, severity="mild",
                                      description="Quilla felt faint")
        registry.exam_record(episode=episode, date=today, other_findings="Quilla findings")
        response_record(patient=p, episode=episode, instrument="nprs", answers=[3], time_point="6m")
        people.append(p)
    Generator(clinics=[clinic], seed=5).run(20)
    Generator(clinics=[other_clinic], seed=6, mrn_prefix="OTHER").run(5)
    return people


def read_zip(data: bytes) -> dict[str, list[dict]]:
    archive = zipfile.ZipFile(io.BytesIO(data))
    return {name: list(csv.DictReader(io.StringIO(archive.read(name).decode())))
            for name in archive.namelist() if name.endswith(".csv")}, archive


def test_researcher_download_has_no_identifier(researcher, registry_with_identifiers):
    client = login(researcher)
    assert client.get(reverse("interop:research_export")).status_code == 200
    response = client.get(reverse("interop:research_export"), {"download": "1"})
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    data = b"".join(response.streaming_content)
    tables, archive = read_zip(data)
    text = "\n".join(archive.read(n).decode() for n in archive.namelist())
    for p in registry_with_identifiers:
        for identifier in (p.given_name, p.family_name, p.mrn, p.email, p.phone, p.birth_date.isoformat(),
                           p.initials, "Zebra", "Secret", "Quilla", "faint"):
            assert identifier not in text, identifier
    assert not ISO_DATE.search(text), "a calendar date leaked"
    assert not re.search(r"@|\+1-", text)
    # consent: the third patient is not there; other clinics are not there
    from orthoreg.registry.models import Patient

    east = registry_with_identifiers[0].clinic
    assert len(tables["patients.csv"]) == Patient.objects.filter(clinic=east, consent_registry=True).count()
    clinics = {r["clinic"] for r in tables["patients.csv"]}
    assert clinics == {"east"}
    assert AuditEvent.objects.filter(action="export", user=researcher).exists()


def test_only_consented_patients(researcher, registry_with_identifiers):
    from orthoreg.interop import research
    from orthoreg.registry.models import Patient

    buffer = io.BytesIO()
    counts = research.write(buffer, [registry_with_identifiers[0].clinic_id])
    consented = Patient.objects.filter(clinic=registry_with_identifiers[0].clinic, consent_registry=True).count()
    assert counts["patients.csv"] == consented
    tables, _ = read_zip(buffer.getvalue())
    ids = {r["patient"] for r in tables["patients.csv"]}
    assert research.pseudonym("patient", registry_with_identifiers[2].pk) not in ids
    assert research.pseudonym("patient", registry_with_identifiers[0].pk) in ids
    # days are relative to the index procedure
    index_rows = [r for r in tables["procedures.csv"] if r["is_index"] == "True"]
    assert index_rows and {r["day"] for r in index_rows} == {"0"}
    ages = [int(r["age_at_index"]) for r in tables["patients.csv"] if r["age_at_index"]]
    assert ages and max(ages) <= 90


def test_clinician_and_coordinator_have_no_research_download(coordinator, clinic):
    assert login(coordinator).get(reverse("interop:research_export")).status_code == 404


def test_command(tmp_path, registry_with_identifiers, capsys):
    out = tmp_path / "export.zip"
    call_command("export", "research", "--out", str(out), "--clinic", "east")
    assert zipfile.is_zipfile(out)
    assert "patients.csv" in capsys.readouterr().out
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="Unknown clinic"):
        call_command("export", "research", "--out", str(out), "--clinic", "nope")


def test_folder_export_with_its_data_dictionary(tmp_path, registry_with_identifiers, capsys):
    import json

    from orthoreg.interop import research

    for fmt in ("csv", "parquet"):
        call_command("export", "research", "--format", fmt, "--out", str(tmp_path / fmt), "--clinic", "east")
        files = {p.name for p in (tmp_path / fmt).iterdir()}
        assert files == {"README.txt", "data_dictionary.csv", "data_dictionary.json",
                         *(f"{t.name}.{fmt}" for t in research.TABLES)}
    dictionary = json.loads((tmp_path / "csv" / "data_dictionary.json").read_text())
    described = {(t["name"], f["name"]) for t in dictionary["tables"] for f in t["fields"]}
    for table in research.TABLES:
        header = (tmp_path / "csv" / f"{table.name}.csv").read_text().splitlines()[0].split(",")
        assert {(table.name, column) for column in header} <= described, table.name
    rows = list(csv.DictReader(io.StringIO((tmp_path / "csv" / "data_dictionary.csv").read_text())))
    assert {(r["table"], r["field"]) for r in rows} == described
    sex = next(r for r in rows if (r["table"], r["field"]) == ("patients", "sex"))
    assert "female=Female" in sex["codes"]
    assert all(r["unit"] for r in rows if r["field"].endswith("_day"))
    text = "".join(p.read_text() for p in (tmp_path / "csv").iterdir())
    for p in registry_with_identifiers:
        assert p.family_name not in text and p.mrn not in text
    assert not ISO_DATE.search(text)
    # the ZIP carries the same tables and dictionary
    call_command("export", "research", "--out", str(tmp_path / "x.zip"))
    names = set(zipfile.ZipFile(tmp_path / "x.zip").namelist())
    assert {"data_dictionary.csv", "data_dictionary.json", "assessments.csv", "exams.csv"} <= names


@pytest.mark.parametrize("first, second", [("parquet", "csv"), ("csv", "parquet")])
def test_a_folder_export_replaces_an_earlier_one_in_the_other_format(tmp_path, clinic, first, second):
    from orthoreg.interop import research

    out = tmp_path / "out"
    call_command("export", "research", "--format", first, "--out", str(out), stdout=io.StringIO())
    (out / "notes.txt").write_text("keep me")
    call_command("export", "research", "--format", second, "--out", str(out), stdout=io.StringIO())
    assert {p.name for p in out.iterdir()} == {"README.txt", "data_dictionary.csv", "data_dictionary.json",
                                               "notes.txt", *(f"{t.name}.{second}" for t in research.TABLES)}
    assert (out / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize("args, message", [
    (["--format", "xlsx"], "invalid choice"),
    (["--as-of", "2025-02-30"], "not a date"),
    (["--format", "csv", "--out", "{file}"], "is a file"),
    (["--format", "parquet", "--out", "{missing}/deeper"], "does not exist"),
    (["--out", "{folder}"], "is a folder"),
])
def test_refused_export_exits_2_and_writes_nothing(tmp_path, clinic, args, message):
    from django.core.management.base import CommandError

    (tmp_path / "file").write_text("keep me")
    (tmp_path / "folder").mkdir()
    values = {"file": tmp_path / "file", "missing": tmp_path / "missing", "folder": tmp_path / "folder"}
    args = [a.format(**values) for a in args]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "out.zip")]
    with pytest.raises(CommandError, match=message) as refused:
        call_command("export", "research", *args)
    assert refused.value.returncode == 2 or message == "invalid choice"  # argparse itself exits 2 on a terminal
    assert (tmp_path / "file").read_text() == "keep me" and not list((tmp_path / "folder").iterdir())
    assert not (tmp_path / "out.zip").exists() and not (tmp_path / "missing").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
