"""FHIR R4 import: the shared corpus (real HL7 examples and a Synthea patient), idempotence, the round trip,
follow-up scheduling, and every kind of bad input (refused whole, nothing written, exit 2)."""

import copy
import io
import json
import tracemalloc
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orthoreg.accounts.models import AuditEvent
from orthoreg.analytics.models import StaleEpisode
from orthoreg.followup.models import Assessment
from orthoreg.imaging.models import ImagingStudy
from orthoreg.instruments import definitions
from orthoreg.instruments.models import Response
from orthoreg.interop.fhir import codes, imports
from orthoreg.interop.models import FhirLink
from orthoreg.registry.models import Episode, Patient, Procedure
from orthoreg.site import demo
from orthoreg.site.synth import Generator

from .fhir_compare import load, normalised

CORPUS = Path(__file__).resolve().parent.parent / "data" / "fhir"


def run(*args) -> tuple[int, dict]:
    out = io.StringIO()
    try:
        call_command("import", "fhir", *[str(a) for a in args], "--format", "json", stdout=out)
        code = 0
    except CommandError as exc:
        code = exc.returncode
    return code, json.loads(out.getvalue())


def write(tmp_path, name: str, content) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return path


def errors(summary) -> list[dict]:
    return [e for s in summary["resources"].values() for e in s["errors"]]


# --- the corpus ---------------------------------------------------------------------------------------------

def test_the_whole_corpus_imports_and_a_second_run_updates_only(clinic):
    code, summary = run(CORPUS)
    assert code == 0, errors(summary)
    assert [u["status"] for u in summary["units"]] == ["imported"] * 10
    res = summary["resources"]
    assert res["Patient"]["created"] == 6  # 4 of the transaction example (one has no key), HL7 example, Synthea
    assert res["Patient"]["skipped_reasons"] == {
        "DELETE without a resource: not carried out (an import never deletes or reads)": 2,
        "GET without a resource: not carried out (an import never deletes or reads)": 2,
        "no identifier or id to key on (the registry needs a medical record number)": 1}
    assert res["Claim"] == {"created": 0, "updated": 0, "skipped": 49, "errors": [], "warnings": [],
                            "skipped_reasons": {"Claim is not imported (the registry has no place for it)": 49}}
    assert res["Condition"]["skipped"] == 23 and res["Condition"]["created"] == 0  # none is a registry condition
    synthea = Patient.objects.get(family_name="Gerlach374")
    assert (synthea.given_name, synthea.birth_date.isoformat(), synthea.sex) == ("Lindsay928", "1950-10-24", "male")
    hl7 = Patient.objects.get(mrn="12345")
    assert hl7.phone == "(03) 5555 6473"
    # the GCS Questionnaire is installed as a draft instrument and its response scored with it (4 + 5 + 4)
    gcs = definitions.get_definition("gcs")
    assert gcs.status == "draft" and [i.link_id for i in gcs.items] == ["1.1", "1.2", "1.3"]
    response = Response.objects.get(instrument="gcs")
    assert (response.patient, response.score, response.source) == (hl7, 13, "import")
    assert res["Questionnaire"]["warnings"]
    assert AuditEvent.objects.filter(patient=synthea, action=AuditEvent.Action.CREATE).exists()

    patients, responses = Patient.objects.count(), Response.objects.count()
    code, again = run(CORPUS)
    assert code == 0
    assert all(s["created"] == 0 for s in again["resources"].values())
    assert again["resources"]["Patient"]["updated"] == 6
    assert (Patient.objects.count(), Response.objects.count()) == (patients, responses)


@pytest.mark.parametrize("name", sorted(p.name for p in CORPUS.glob("*.json")))
def test_each_corpus_file_alone(clinic, name):
    code, summary = run(CORPUS / name)
    assert code == 0, errors(summary)


def test_dry_run_writes_nothing(clinic):
    code, summary = run(CORPUS, "--dry-run")
    assert code == 0 and summary["dry_run"]
    assert summary["resources"]["Patient"]["created"] == 6
    assert Patient.objects.count() == 0 and FhirLink.objects.count() == 0
    assert "gcs" not in definitions.available_codes()


# --- the round trip -------------------------------------------------------------------------------------------

def _export(tmp_path, name):
    call_command("export", "fhir", "--out", str(tmp_path / name), "--no-progress", stdout=io.StringIO())
    return load(tmp_path / name)


IMAGE_PARTS = ("series", "numberOfSeries", "numberOfInstances")


def _importable(export):
    """What an import brings back: imaging studies without their images (series), and no joint space
    measurements (they belong to an image, whose pixel data FHIR does not carry)."""
    out = dict(export)
    out["ImagingStudy"] = [{k: v for k, v in s.items() if k not in IMAGE_PARTS} for s in export["ImagingStudy"]]
    out["Observation"] = [o for o in export["Observation"] if o["category"][0]["coding"][0]["code"] != "imaging"]
    return out


def test_round_trip_export_import_export(tmp_path, clinic):
    demo.create_df(clinic=clinic, today=timezone.localdate())
    Generator(clinics=[clinic], seed=7).run(6)
    first = _export(tmp_path, "one")
    assert len(first["Patient"]) == 7 and first["AdverseEvent"]
    Patient.objects.all().delete()  # an empty registry (the clinic stays)
    assert not Episode.objects.exists() and not Response.objects.exists() and not ImagingStudy.objects.exists()

    code, summary = run(tmp_path / "one")
    assert code == 0, errors(summary)
    assert summary["resources"]["ImagingStudy"]["created"] == len(first["ImagingStudy"]) > 0
    assert summary["resources"]["ImagingStudy"]["warnings"]  # the series (images) are said not to come
    measurements = [o for o in first["Observation"] if o["category"][0]["coding"][0]["code"] == "imaging"]
    assert summary["resources"]["Observation"]["skipped"] >= len(measurements)
    second = _export(tmp_path, "two")
    assert len(second["ImagingStudy"]) == len(first["ImagingStudy"])
    a, b = normalised(_importable(first)), normalised(_importable(second))
    assert a.keys() == b.keys()
    for resource_type in a:
        assert a[resource_type] == b[resource_type], resource_type
    # and importing the same files again changes nothing
    counts = (Patient.objects.count(), Procedure.objects.count(), Response.objects.count(),
              ImagingStudy.objects.count())
    code, again = run(tmp_path / "one")
    assert code == 0 and all(s["created"] == 0 for s in again["resources"].values())
    assert (Patient.objects.count(), Procedure.objects.count(), Response.objects.count(),
            ImagingStudy.objects.count()) == counts


# --- writes go through the services ------------------------------------------------------------------------------

PATIENT = {"resourceType": "Patient", "id": "p1", "identifier": [{"system": "urn:example:mrn", "value": "A-77"}],
           "name": [{"family": "Okafor", "given": ["Ada"]}], "gender": "female", "birthDate": "1979-03-02"}


def _bundle(kind="transaction", *resources, full_urls=None):
    entries = []
    for n, resource in enumerate(resources):
        url = (full_urls or {}).get(n, f"urn:uuid:00000000-0000-4000-8000-{n:012d}")
        entries.append({"fullUrl": url, "resource": resource,
                        "request": {"method": "POST", "url": resource["resourceType"]}})
    return {"resourceType": "Bundle", "type": kind, "entry": entries}


def _clinical_bundle(procedure_day: str):
    condition = {"resourceType": "Condition", "code": {"coding": [{"system": codes.ICD10CM, "code": "M20.22"}]},
                 "subject": {"reference": "urn:uuid:00000000-0000-4000-8000-000000000000"}}
    procedure = {"resourceType": "Procedure", "status": "completed",
                 "code": {"coding": [{"system": codes.CPT, "code": "0232T"}]},
                 "subject": {"reference": "urn:uuid:00000000-0000-4000-8000-000000000000"},
                 "reasonReference": [{"reference": "urn:uuid:00000000-0000-4000-8000-000000000001"}],
                 "performedDateTime": procedure_day}
    pain = {"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": codes.LOINC, "code": "72514-3"}]},
            "subject": {"reference": "urn:uuid:00000000-0000-4000-8000-000000000000"},
            "effectiveDateTime": procedure_day, "valueInteger": 6}
    return _bundle("transaction", PATIENT, condition, procedure, pain)


def test_an_imported_procedure_schedules_its_follow_up(tmp_path, clinic):
    day = (timezone.localdate().replace(day=1)).isoformat()
    code, summary = run(write(tmp_path, "b.json", _clinical_bundle(day)))
    assert code == 0, errors(summary)
    episode = Episode.objects.get()
    assert (episode.condition, episode.body_site, episode.side, episode.icd10_code) == \
        ("hallux_rigidus", "first_mtp", "left", "M20.22")
    procedure = Procedure.objects.get()
    assert (procedure.kind, procedure.cpt_code, procedure.is_index) == ("prp", "0232T", True)
    assert Assessment.objects.filter(episode=episode).count() > 3
    assert Response.objects.get().score == 6
    assert AuditEvent.objects.filter(object_type="procedure", object_id=str(procedure.pk)).exists()
    assert StaleEpisode.objects.filter(episode_id=episode.pk).exists()  # its outcomes recomputed by the next pass


def test_a_searchset_bundle_imports(tmp_path, clinic):
    """A searchset (a search's or $everything's answer): absolute fullUrls, references relative to the server."""
    base = "http://example.org/fhir"
    condition = {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"},
                 "code": {"coding": [{"system": codes.ICD10CM, "code": "M17.12"}]}}
    bundle = {"resourceType": "Bundle", "type": "searchset", "total": 2, "entry": [
        {"fullUrl": f"{base}/Patient/p1", "resource": PATIENT, "search": {"mode": "match"}},
        {"fullUrl": f"{base}/Condition/c1", "resource": condition, "search": {"mode": "include"}}]}
    code, summary = run(write(tmp_path, "search.json", bundle))
    assert code == 0, errors(summary)
    assert summary["resources"]["Condition"]["created"] == 1
    episode = Episode.objects.get()
    assert (episode.patient.mrn, episode.body_site, episode.side) == ("A-77", "knee", "left")


def test_a_recorded_response_is_never_rewritten(tmp_path, clinic):
    day = (timezone.localdate().replace(day=1)).isoformat()
    bundle = _clinical_bundle(day)
    assert run(write(tmp_path, "a.json", bundle))[0] == 0
    bundle["entry"][3]["resource"]["valueInteger"] = 4
    code, summary = run(write(tmp_path, "b.json", bundle))
    assert code == 0
    assert summary["resources"]["Observation"]["skipped_reasons"] == {
        "already recorded with other answers (a recorded response is never rewritten)": 1}
    assert Response.objects.get().score == 6
    assert summary["resources"]["Procedure"]["updated"] == 1 and Procedure.objects.count() == 1


@pytest.mark.parametrize("between", [False, True])
def test_the_same_medical_record_number_twice_in_a_file_is_one_patient(tmp_path, clinic, between):
    """Two Patient lines with different keys (identifier systems, ids) but the same medical record number, in one
    chunk: the second updates the first; also when something stored in between (a Condition: the chunk's
    patients are stored first) or when the patient was stored by an earlier import."""
    first = {**PATIENT, "id": "a", "identifier": [{"system": "urn:one:mrn", "value": "A-77"}]}
    second = {**PATIENT, "id": "b", "identifier": [{"system": "urn:two:mrn", "value": "A-77"}], "gender": "other"}
    condition = {"resourceType": "Condition", "code": {"coding": [{"system": codes.ICD10CM, "code": "M17.11"}]},
                 "subject": {"reference": "Patient/a"}}
    lines = [first, condition, second] if between else [first, second]
    path = write(tmp_path, "Patient.ndjson" if not between else "all.ndjson",
                 "\n".join(json.dumps(line) for line in lines) + "\n")
    code, summary = run(path)
    assert code == 0, errors(summary)
    assert summary["resources"]["Patient"] | {"errors": [], "skipped_reasons": {}, "warnings": []} == {
        "created": 1, "updated": 1, "skipped": 0, "errors": [], "skipped_reasons": {}, "warnings": []}
    patient = Patient.objects.get()
    assert patient.mrn == "A-77" and patient.sex == "other"
    third = {**PATIENT, "id": "c", "identifier": [{"system": "urn:three:mrn", "value": "A-77"}]}
    code, summary = run(write(tmp_path, "Patient.ndjson", json.dumps(third) + "\n"))
    assert code == 0 and summary["resources"]["Patient"]["updated"] == 1
    assert Patient.objects.get().sex == "female"


def test_a_medical_record_number_is_looked_up_in_the_clinic_the_patient_goes_to(tmp_path, clinic, other_clinic):
    """The same MRN in another clinic is another patient: an import into one clinic creates its own and leaves
    the other clinic's alone; an import into the other clinic updates that one."""
    theirs = Patient.objects.create(clinic=other_clinic, mrn="A-77", given_name="Other", family_name="Person",
                                    birth_date="1960-01-01", sex="male")
    line = {**PATIENT, "id": "a", "identifier": [{"system": "urn:one:mrn", "value": "A-77"}]}
    code, summary = run(write(tmp_path, "Patient.ndjson", json.dumps(line) + "\n"), "--clinic", clinic.code)
    assert code == 0 and summary["resources"]["Patient"]["created"] == 1, errors(summary)
    assert Patient.objects.get(clinic=clinic).mrn == "A-77"
    theirs.refresh_from_db()
    assert (theirs.given_name, theirs.sex) == ("Other", "male")
    again = {**line, "id": "b", "identifier": [{"system": "urn:two:mrn", "value": "A-77"}]}
    code, summary = run(write(tmp_path, "Patient.ndjson", json.dumps(again) + "\n"), "--clinic", other_clinic.code)
    assert code == 0 and summary["resources"]["Patient"]["updated"] == 1, errors(summary)
    theirs.refresh_from_db()
    assert theirs.sex == "female" and Patient.objects.count() == 2


def test_snomed_coded_conditions_with_a_snomed_laterality(tmp_path, clinic):
    """Conditions coded in SNOMED CT (the registry's few concept ids), their side a SNOMED laterality qualifier in
    bodySite as other systems write it (a concept of its own, or a second coding): imported at that site and
    side; a joint condition without a side is skipped with the reason."""
    def condition(code, *body_sites):
        return {"resourceType": "Condition", "subject": {"reference": "urn:uuid:00000000-0000-4000-8000-000000000000"},
                "code": {"coding": [{"system": codes.SNOMED, "code": code}]}, "bodySite": list(body_sites)}

    hip = condition("239872002", {"coding": [{"system": codes.SNOMED, "code": "24136001"}]},
                    {"coding": [{"system": codes.SNOMED, "code": "24028007", "display": "Right"}]})
    knee = condition("239873007", {"coding": [{"system": codes.SNOMED, "code": "72696002"},
                                              {"system": codes.SNOMED, "code": "7771000", "display": "Left"}]})
    toe = condition("202857003", {"coding": [{"system": codes.SNOMED, "code": "368214003"}]})
    code, summary = run(write(tmp_path, "b.json", _bundle("transaction", PATIENT, hip, knee, toe)))
    assert code == 0, errors(summary)
    assert sorted((e.condition, e.body_site, e.side) for e in Episode.objects.all()) == [
        ("oa_primary", "hip", "right"), ("oa_primary", "knee", "left")]
    assert summary["resources"]["Condition"]["skipped_reasons"] == {
        "no side: a condition of a joint needs its laterality (bodySite)": 1}


@pytest.mark.parametrize("where", ["option", "coding"])
@pytest.mark.parametrize("url", [codes.EXT_ORDINAL, codes.EXT_ITEM_WEIGHT])
def test_a_questionnaire_with_answer_options_and_weights_installs_and_scores(tmp_path, clinic, where, url):
    """A standard Questionnaire whose answerOptions carry ordinalValue or itemWeight (on the option, or on its
    coding): installed as a draft instrument, a response to it scored by the weights (1 + 3)."""
    def option(code, weight):
        ext = [{"url": url, "valueDecimal": weight}]
        coding = {"system": "urn:example:answers", "code": code, "display": code.title()}
        return {"valueCoding": {**coding, "extension": ext}} if where == "coding" else \
            {"valueCoding": coding, "extension": ext}

    questionnaire = {"resourceType": "Questionnaire", "id": "stairs", "url": "http://example.org/Questionnaire/stairs",
                     "status": "active", "item": [
                         {"linkId": "up", "text": "Going up stairs", "type": "choice",
                          "answerOption": [option("none", 0), option("some", 1), option("much", 2)]},
                         {"linkId": "down", "text": "Going down stairs", "type": "choice",
                          "answerOption": [option("none", 0), option("some", 2), option("much", 3)]}]}

    def answer(link_id, code):
        return {"linkId": link_id, "answer": [{"valueCoding": {"system": "urn:example:answers", "code": code}}]}

    response = {"resourceType": "QuestionnaireResponse", "status": "completed",
                "questionnaire": "http://example.org/Questionnaire/stairs", "authored": "2026-01-05T10:00:00Z",
                "subject": {"reference": "urn:uuid:00000000-0000-4000-8000-000000000000"},
                "item": [answer("up", "some"), answer("down", "much")]}
    code, summary = run(write(tmp_path, "b.json", _bundle("transaction", PATIENT, questionnaire, response)))
    assert code == 0, errors(summary)
    assert definitions.get_definition("stairs").status == "draft"
    assert Response.objects.get(instrument="stairs").score == 4


def _ndjson(folder: Path, name: str, *resources) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / name).write_text("".join(json.dumps(r) + "\n" for r in resources), encoding="utf-8")
    return folder


def test_two_sources_with_the_same_resource_ids_are_not_merged(tmp_path, clinic):
    """Two systems' exports both hold a Patient/1 (and a Condition/c1 of it), with other medical record numbers:
    the second is another patient, never written over the first; the references of each export go to its own
    patient; importing either again updates its own records (a fullUrl or id means the record of the last
    resource that carried it; an identifier keeps its record)."""
    ann = {"resourceType": "Patient", "id": "1", "identifier": [{"system": "urn:east:mrn", "value": "A-1"}],
           "name": [{"family": "Alpha", "given": ["Ann"]}], "gender": "female", "birthDate": "1970-01-01"}
    bob = {"resourceType": "Patient", "id": "1", "identifier": [{"system": "urn:west:mrn", "value": "B-1"}],
           "name": [{"family": "Beta", "given": ["Bob"]}], "gender": "male", "birthDate": "1980-02-02"}

    def knee(side_code):
        return {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/1"},
                "code": {"coding": [{"system": codes.ICD10CM, "code": side_code}]}}

    east, west = tmp_path / "east", tmp_path / "west"
    _ndjson(east, "Patient.ndjson", ann)
    _ndjson(east, "Condition.ndjson", knee("M17.11"))
    _ndjson(west, "Patient.ndjson", bob)
    _ndjson(west, "Condition.ndjson", knee("M17.12"))
    code, summary = run(east)
    assert code == 0, errors(summary)
    code, summary = run(west)
    assert code == 0, errors(summary)
    assert summary["resources"]["Patient"]["created"] == 1 and summary["resources"]["Condition"]["created"] == 1
    a, b = Patient.objects.get(mrn="A-1"), Patient.objects.get(mrn="B-1")
    assert (a.given_name, a.family_name, str(a.birth_date), a.sex) == ("Ann", "Alpha", "1970-01-01", "female")
    assert (b.given_name, b.family_name, str(b.birth_date), b.sex) == ("Bob", "Beta", "1980-02-02", "male")
    assert [e.side for e in a.episodes.all()] == ["right"] and [e.side for e in b.episodes.all()] == ["left"]
    code, summary = run(west)  # again: its own patient and condition, updated
    assert code == 0, errors(summary)
    assert summary["resources"]["Patient"]["updated"] == 1 and summary["resources"]["Condition"]["updated"] == 1
    assert Patient.objects.count() == 2 and Episode.objects.count() == 2
    code, summary = run(east / "Patient.ndjson")  # the first one's patient, found by its identifier
    assert code == 0 and summary["resources"]["Patient"]["updated"] == 1, errors(summary)
    assert Patient.objects.count() == 2 and Patient.objects.get(mrn="B-1").given_name == "Bob"


def test_a_reused_urn_uuid_in_another_bundle_is_another_patient(tmp_path, clinic):
    """A sender that reuses the fullUrl urn:uuid:...0 for another person in its next Bundle: two patients."""
    first = {**PATIENT, "identifier": [{"system": "urn:example:mrn", "value": "Q-1"}]}
    second = {**PATIENT, "id": "p2", "identifier": [{"system": "urn:example:mrn", "value": "S-1"}],
              "name": [{"family": "Sato", "given": ["Sho"]}], "birthDate": "1990-05-05", "gender": "male"}
    for name, patient in (("a.json", first), ("b.json", second)):
        code, summary = run(write(tmp_path, name, _bundle("transaction", patient)))
        assert code == 0 and summary["resources"]["Patient"]["created"] == 1, errors(summary)
    assert Patient.objects.get(mrn="Q-1").family_name == "Okafor"
    assert Patient.objects.get(mrn="S-1").family_name == "Sato"


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's plan; PostgreSQL's in tests/ops/test_explain.py")
def test_a_chunks_patients_are_read_off_the_clinic_and_mrn_index(clinic, other_clinic):
    """Not the whole patients table per chunk (SQLite's plan does not depend on the table's size)."""
    text = imports.patients_with_mrns([clinic.pk, other_clinic.pk], ["A-1", "A-2"]).explain()
    assert "SEARCH registry_patient USING INDEX" in text and "(clinic_id=? AND mrn=?)" in text, text
    assert "SCAN registry_patient" not in text and "TEMP B-TREE" not in text, text


# --- bad input: refused whole, named, nothing written ------------------------------------------------------------

def refused(tmp_path, name, content, expected_message, *, location=""):
    before = (Patient.objects.count(), Episode.objects.count(), Procedure.objects.count(), FhirLink.objects.count())
    code, summary = run(write(tmp_path, name, content))
    assert code == 2
    assert not summary["ok"] and summary["units"][0]["status"] == "refused"
    messages = errors(summary)
    assert any(expected_message in e["message"] for e in messages), messages
    assert all(name in e["location"] for e in messages)
    if location:
        assert any(location in e["location"] for e in messages), messages
    after = (Patient.objects.count(), Episode.objects.count(), Procedure.objects.count(), FhirLink.objects.count())
    assert after == before
    return messages


def test_an_unknown_clinic_is_refused_in_the_json_summary_too(tmp_path, clinic):
    code, summary = run(write(tmp_path, "b.json", _bundle("transaction", PATIENT)), "--clinic", "NOWHERE")
    assert code == 2 and not summary["ok"]
    assert errors(summary) == [{"location": "--clinic", "message": "unknown clinic code: NOWHERE"}]
    assert not Patient.objects.exists()


def test_a_folder_without_fhir_files_is_refused(tmp_path, clinic):
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "notes.txt").write_text("not FHIR", encoding="utf-8")
    code, summary = run(folder)
    assert code == 2 and summary["units"] == [{"unit": str(folder), "status": "refused", "resources": 0}]
    assert errors(summary) == [{"location": str(folder), "message":
                                "a folder without FHIR files (.ndjson or .json): nothing to import"}]
    (folder / "Patient.ndjson").touch()  # an empty export of one type: nothing to import, nothing wrong
    code, summary = run(folder)
    assert code == 0 and summary["units"][0]["status"] == "imported"


def test_malformed_json(tmp_path, clinic):
    refused(tmp_path, "bad.json", '{"resourceType": "Patient", "name": [', "malformed JSON: ")


def test_malformed_ndjson_line(tmp_path, clinic):
    text = json.dumps(PATIENT) + "\n{not json\n"
    refused(tmp_path, "Patient.ndjson", text, "malformed JSON", location="line 2")


@pytest.mark.parametrize("line", ["[1, 2]", '"Patient"', "null", "42"])
def test_an_ndjson_line_that_is_not_an_object(tmp_path, clinic, line):
    """(A list on a line once stopped the command with a traceback.)"""
    text = json.dumps(PATIENT) + "\n" + line + "\n"
    refused(tmp_path, "Patient.ndjson", text, "not a FHIR resource: each line of an ndjson file must be a JSON "
                                              "object", location="line 2")


def test_unknown_resource_type(tmp_path, clinic):
    refused(tmp_path, "x.json", {**PATIENT, "resourceType": "Patinet"}, "unknown resourceType 'Patinet'")


def test_wrong_resource_type_in_an_ndjson_file(tmp_path, clinic):
    condition = {"resourceType": "Condition", "subject": {"reference": "Patient/p1"}}
    text = json.dumps(PATIENT) + "\n" + json.dumps(condition) + "\n"
    refused(tmp_path, "Patient.ndjson", text, "wrong resourceType 'Condition'", location="line 2")


def test_reference_to_a_missing_resource(tmp_path, clinic):
    condition = {"resourceType": "Condition", "code": {"coding": [{"system": codes.ICD10CM, "code": "M20.21"}]},
                 "subject": {"reference": "Patient/nobody"}}
    refused(tmp_path, "c.json", _bundle("collection", PATIENT, condition),
            "subject refers to Patient/nobody, which is neither in this file nor in the registry")


def test_urn_uuid_reference_outside_the_bundle(tmp_path, clinic):
    condition = {"resourceType": "Condition", "code": {"text": "anything"},
                 "subject": {"reference": "urn:uuid:11111111-2222-4333-8444-555555555555"}}
    refused(tmp_path, "u.json", _bundle("transaction", PATIENT, condition), "which is not in this Bundle")


def test_a_batch_imports_each_entry_on_its_own(tmp_path, clinic):
    """A batch Bundle (unlike a transaction) is not all or nothing: the valid entries are written, each refused
    one is named (with what depended on it), the run exits 2 and the summary gives every entry's outcome."""
    bad = {**PATIENT, "id": "p2", "identifier": [{"system": "urn:example:mrn", "value": "A-78"}],
           "birthDate": "1979-02-30"}
    old = {**PATIENT, "id": "p3", "identifier": [{"system": "urn:example:mrn", "value": "A-79"}],
           "birthDate": "1850-01-01"}
    knee = {"resourceType": "Condition", "code": {"coding": [{"system": codes.ICD10CM, "code": "M17.11"}]},
            "subject": {"reference": "urn:uuid:00000000-0000-4000-8000-000000000002"}}  # the refused patient
    dangling = {"resourceType": "Condition", "code": {"text": "anything"},
                "subject": {"reference": "urn:uuid:11111111-2222-4333-8444-555555555555"}}
    code, summary = run(write(tmp_path, "batch.json", _bundle("batch", PATIENT, bad, old, knee, dangling)))
    assert code == 2 and not summary["ok"]
    assert summary["units"][0]["status"] == "partly imported"
    assert list(Patient.objects.values_list("mrn", flat=True)) == ["A-77"]
    assert summary["resources"]["Patient"]["created"] == 1
    located = {e["location"].split(": ", 1)[1].split(" ")[0]: e["message"] for e in errors(summary)}
    assert sorted(located) == ["entry[1]", "entry[2]", "entry[3]", "entry[4]"]
    assert "birthDate" in located["entry[1]"] and "Birth date must be after 1900" in located["entry[2]"]
    assert "was refused" in located["entry[3]"] and "not in this Bundle" in located["entry[4]"]
    assert [e["status"] for e in summary["units"][0]["entries"]] == ["created"] + ["refused"] * 4
    # the same entries as a transaction: nothing is written
    Patient.objects.all().delete()
    code, summary = run(write(tmp_path, "tx.json", _bundle("transaction", PATIENT, bad, old, knee, dangling)))
    assert code == 2 and summary["units"][0]["status"] == "refused" and not Patient.objects.exists()


def test_a_batch_whose_every_entry_is_refused_is_refused(tmp_path, clinic):
    bad = {**PATIENT, "birthDate": "1979-02-30"}
    code, summary = run(write(tmp_path, "b.json", _bundle("batch", bad)))
    assert code == 2 and summary["units"][0]["status"] == "refused" and not Patient.objects.exists()


def test_duplicate_full_urls(tmp_path, clinic):
    second = {**PATIENT, "id": "p2", "identifier": [{"system": "urn:example:mrn", "value": "A-78"}]}
    bundle = _bundle("transaction", PATIENT, second, full_urls={0: "urn:uuid:aa", 1: "urn:uuid:aa"})
    refused(tmp_path, "d.json", bundle, "duplicate fullUrl 'urn:uuid:aa' (also entry[0])", location="entry[1]")


def test_impossible_date(tmp_path, clinic):
    refused(tmp_path, "p.json", {**PATIENT, "birthDate": "1979-02-30"}, "birthDate", location="p.json")


def test_procedure_without_subject(tmp_path, clinic):
    procedure = {"resourceType": "Procedure", "status": "completed",
                 "code": {"coding": [{"system": codes.CPT, "code": "28289"}]}, "performedDateTime": "2024-01-02"}
    messages = refused(tmp_path, "proc.json", procedure, "subject")
    assert any("Field required" in m["message"] for m in messages)


def test_non_utf8_bytes(tmp_path, clinic):
    data = json.dumps(PATIENT).replace("Okafor", "M\u00fcller").encode("latin-1")
    refused(tmp_path, "latin1.json", data, "not UTF-8")


def test_non_utf8_line_of_ndjson(tmp_path, clinic):
    data = json.dumps(PATIENT).encode() + b"\n" + json.dumps(PATIENT).replace("Okafor", "M\u00fcller").encode(
        "latin-1") + b"\n"
    refused(tmp_path, "Patient.ndjson", data, "not UTF-8", location="line 2")


def test_r5_only_element(tmp_path, clinic):
    # Procedure.occurrence[x] replaced performed[x] in R5
    procedure = {"resourceType": "Procedure", "status": "completed", "subject": {"reference": "Patient/p1"},
                 "code": {"coding": [{"system": codes.CPT, "code": "28289"}]}, "occurrenceDateTime": "2024-01-02"}
    refused(tmp_path, "r5.json", _bundle("collection", PATIENT, procedure), "occurrenceDateTime: not an element of "
                                                                            "this resource in FHIR R4")


def test_empty_bundle(tmp_path, clinic):
    refused(tmp_path, "empty.json", {"resourceType": "Bundle", "type": "transaction", "entry": []}, "empty Bundle")


def test_transaction_whose_second_entry_is_invalid_writes_nothing(tmp_path, clinic):
    bundle = _clinical_bundle("2024-02-01")
    bad = copy.deepcopy(bundle)
    bad["entry"][1]["resource"]["onsetDateTime"] = "2024-02-31"
    refused(tmp_path, "t.json", bad, "onsetDateTime", location="entry[1]")
    assert not Patient.objects.exists() and not Response.objects.exists() and not Assessment.objects.exists()


def test_registry_refusal_rolls_back_the_whole_transaction(tmp_path, clinic):
    too_old = {**PATIENT, "id": "p9", "identifier": [{"system": "urn:example:mrn", "value": "OLD"}],
               "birthDate": "1850-01-01"}
    refused(tmp_path, "old.json", _bundle("transaction", PATIENT, too_old),
            "the registry refuses it: birth_date: Birth date must be after 1900.", location="entry[1]")


def test_clinic_must_be_named_when_there_are_several(tmp_path, clinic, other_clinic):
    refused(tmp_path, "who.json", PATIENT, "give --clinic CODE")
    code, _ = run(tmp_path / "who.json", "--clinic", "west")
    assert code == 0 and Patient.objects.get().clinic == other_clinic


def test_a_file_larger_than_memory_is_streamed(tmp_path, clinic):
    """Each line is read, validated and mapped alone: peak memory stays a small fraction of the file."""
    narrative = "<div xmlns=\"http://www.w3.org/1999/xhtml\">" + "x" * 4000 + "</div>"
    line = json.dumps({"resourceType": "Patient", "text": {"status": "generated", "div": narrative},
                       "name": [{"family": "Nobirth", "given": ["Nora"]}]})  # skipped: no birth date
    path = tmp_path / "Patient.ndjson"
    with open(path, "w", encoding="utf-8") as fh:
        for _ in range(5000):
            fh.write(line + "\n")
    size = path.stat().st_size
    assert size > 20_000_000
    # (the import's one-time costs first: fhir.resources builds a model's validators when first used, several MB,
    # whatever the file's size; run alone, this test would count them)
    imports.import_paths([str(write(tmp_path, "Patient.1.ndjson", line + "\n"))], dry_run=True)
    tracemalloc.start()
    try:
        summary = imports.import_paths([str(path)])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert summary.ok and summary.types["Patient"].skipped == 5000
    assert peak < size / 10, f"peak {peak:,} bytes for a {size:,}-byte file"


def _patients(path: Path, start: int, count: int) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        for n in range(start, start + count):
            fh.write(json.dumps({**PATIENT, "id": f"m{n}", "identifier": [{"system": "urn:example:mrn",
                                                                            "value": f"M-{n}"}]}) + "\n")
    return path


def test_what_an_import_remembers_is_bounded_whatever_its_size(tmp_path, clinic, monkeypatch):
    """The keys an import links (for later references) are remembered up to LINK_CACHE, the rest found in the
    database again: importing 4 times as many patients takes about the same memory (it grew by ~2 KB a patient:
    every key of the run was kept), and references to forgotten keys still resolve."""
    monkeypatch.setattr(imports, "LINK_CACHE", 300)
    monkeypatch.setattr(imports, "OBJECT_CACHE", 100)
    monkeypatch.setattr(imports.Validator, "__init__", lambda self, max_elements=100: (
        setattr(self, "max_elements", max_elements), setattr(self, "_valid", {}))[0])
    imports.import_paths([str(_patients(tmp_path / "Patient.0.ndjson", 0, 10))], dry_run=True)  # one-time costs
    peaks = []
    for n, count in ((1, 600), (2, 2400)):
        path = _patients(tmp_path / f"Patient.{n}.ndjson", n * 10_000, count)
        tracemalloc.start()
        try:
            summary = imports.import_paths([str(path)], dry_run=True)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert summary.ok and summary.types["Patient"].created == count
        peaks.append(peak)
    assert peaks[1] < peaks[0] + 1_000_000, f"peak {peaks[1]:,} bytes for 2,400 patients, {peaks[0]:,} for 600"
    # the first patients' keys are forgotten by the end of a file of 2,400: a Condition of the first still finds it
    folder = tmp_path / "run"
    folder.mkdir()
    _patients(folder / "Patient.ndjson", 0, 400)
    (folder / "Condition.ndjson").write_text(json.dumps({
        "resourceType": "Condition", "subject": {"reference": "Patient/m0"},
        "code": {"coding": [{"system": codes.ICD10CM, "code": "M17.11"}]}}) + "\n", encoding="utf-8")
    summary = imports.import_paths([str(folder)])
    assert summary.ok and summary.types["Condition"].created == 1
    assert Episode.objects.get().patient == Patient.objects.get(mrn="M-0")


# --- the parser never fails on any JSON ----------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12)
resource_like = st.fixed_dictionaries(
    {"resourceType": st.sampled_from(["Patient", "Condition", "Procedure", "Observation", "Bundle", "Patinet", ""])},
    optional={"id": st.text(max_size=5), "birthDate": st.text(max_size=12), "subject": json_values,
              "type": st.sampled_from(["transaction", "collection", "history"]), "entry": json_values,
              "code": json_values, "name": json_values})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=json_values | resource_like)
def test_any_json_document_is_imported_or_refused_with_a_location(clinic, document):
    summary = imports.Summary()
    imports.import_document("doc.json", json.dumps(document).encode(), ctx=imports.Context(clinic=clinic),
                            summary=summary)
    assert summary.units[0]["status"] in ("imported", "refused")
    for error in (e for s in summary.types.values() for e in s.errors):
        assert error["location"].startswith("doc.json") and error["message"]
    if not summary.ok:
        assert not FhirLink.objects.exists()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(json_values | resource_like, min_size=1, max_size=3))
def test_any_json_lines_of_ndjson_are_imported_or_refused_with_a_location(tmp_path, clinic, lines):
    path = tmp_path / "Patient.ndjson"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    summary = imports.import_paths([str(path)])
    assert summary.units[0]["status"] in ("imported", "refused")
    for error in (e for s in summary.types.values() for e in s.errors):
        assert error["location"].startswith("Patient.ndjson: line ") and error["message"]
    if not summary.ok:
        assert not FhirLink.objects.exists()


@settings(max_examples=40, deadline=None)
@given(data=st.binary(max_size=64))
def test_any_bytes_are_decoded_or_refused(data):
    try:
        imports._loads(imports._decode(data, "f"), "f")
    except imports.UnitError as exc:
        assert exc.location == "f" and exc.message

