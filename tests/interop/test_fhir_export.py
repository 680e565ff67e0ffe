"""FHIR R4 export: `orthoreg export fhir` (Bulk Data ndjson) and the mapping of each record."""

import datetime as dt
import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from fhir.resources.R4B import get_fhir_model_class

from orthoreg.interop.fhir import codes
from orthoreg.interop.fhir import export as fhir_export
from orthoreg.interop.fhir.export import RESOURCE_ORDER, ExportError
from orthoreg.registry.models import Clinic, Patient, Procedure
from orthoreg.site import demo
from orthoreg.site.synth import Generator


@pytest.fixture
def df(clinic):
    return demo.create_df(clinic=clinic, today=timezone.localdate())


def export(tmp_path, *args) -> dict[str, list[dict]]:
    out = tmp_path / "fhir"
    call_command("export", "fhir", "--out", str(out), "--no-progress", *args, stdout=io.StringIO())
    return {p.stem: [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines()]
            for p in sorted(out.glob("*.ndjson"))}


def by_code(resources, system, code):
    return [r for r in resources if any(c.get("system") == system and c.get("code") == code
                                        for c in r.get("code", {}).get("coding", []))]


def test_every_line_is_a_valid_r4_resource_of_its_file(tmp_path, df):
    files = export(tmp_path)
    assert set(files) == {"Patient", "Questionnaire", "Condition", "Procedure", "QuestionnaireResponse",
                          "Observation", "AdverseEvent", "ImagingStudy"}
    for resource_type, resources in files.items():
        for resource in resources:
            assert resource["resourceType"] == resource_type
            get_fhir_model_class(resource_type).model_validate(resource)


def test_df_mapping(tmp_path, df):
    bmc_record = Procedure.objects.get(episode__patient=df, kind="bmc")
    bmc_record.performer_name = "Dr. Ada Byron"
    bmc_record.save(update_fields=["performer_name"])
    files = export(tmp_path)
    [patient] = files["Patient"]
    assert patient["name"][0] == {"use": "official", "family": "Fairley", "given": ["Dana"]}
    assert {"system": codes.mrn_system("east"), "value": "DF-0001"}.items() <= patient["identifier"][0].items()
    assert patient["identifier"][1] == {"system": codes.id_system("patient"), "value": str(df.pk)}

    [toe] = by_code(files["Condition"], codes.ICD10CM, "M20.21")
    assert toe["bodySite"][0]["text"] == "Right first MTP joint"
    assert toe["bodySite"][0]["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] == "24028007"
    assert toe["subject"] == {"reference": f"Patient/{df.pk}"}

    [bmc] = by_code(files["Procedure"], codes.CS_PROCEDURE_KIND, "bmc")
    assert bmc["code"]["coding"][0] == {"system": codes.CPT, "code": "20604",
                                        "display": "Small joint (e.g. toe) injection or aspiration, with "
                                                   "ultrasound guidance"}
    assert bmc["reasonReference"] == [{"reference": f"Condition/{toe['id']}"}]
    detail = {e["url"]: e for e in next(x for x in bmc["extension"] if x["url"] == codes.EXT_ORTHOBIOLOGIC)["extension"]}
    assert detail["total_nucleated_cells"]["valueDecimal"] == 4.6e8
    assert detail["harvest_site"]["valueCode"] == "pic"
    assert detail["g_force"]["valueInteger"] == 800
    assert {"url": codes.EXT_INDEX, "valueBoolean": True} in bmc["extension"]
    assert bmc["performer"] == [{"actor": {"display": "Dr. Ada Byron"}}]

    pain = by_code(files["Observation"], codes.LOINC, "72514-3")
    assert sorted(o["valueQuantity"]["value"] for o in pain) == [3, 4, 5, 7]
    responses = {f"QuestionnaireResponse/{r['id']}": r for r in files["QuestionnaireResponse"]}
    for obs in pain:
        [source] = obs["derivedFrom"]
        assert responses[source["reference"]]["questionnaire"].startswith("urn:orthoreg:instrument:nprs|")

    [jsw, *_] = by_code(files["Observation"], codes.CS_MEASUREMENT, "jsw")
    studies = {f"ImagingStudy/{s['id']}" for s in files["ImagingStudy"]}
    assert jsw["derivedFrom"][0]["reference"] in studies
    assert jsw["valueQuantity"]["code"] == "mm" and jsw["method"]["coding"][0]["code"] in ("semi_auto", "manual")
    assert jsw["bodySite"]["text"] == "Right first MTP joint"

    [ae] = files["AdverseEvent"]
    assert ae["suspectEntity"][0]["instance"]["reference"] == f"Procedure/{bmc['id']}"
    assert ae["severity"]["coding"][0]["code"] == "mild"
    assert {q["id"] for q in files["Questionnaire"]} >= {"nprs", "sane", "faam-adl"}


def test_clinic_and_since_select(tmp_path, df, other_clinic):
    Generator(clinics=[other_clinic], seed=3).run(4)
    west = export(tmp_path / "w", "--clinic", "west")
    assert len(west["Patient"]) == 4
    assert all(p["managingOrganization"]["identifier"]["value"] == "west" for p in west["Patient"])
    tomorrow = (timezone.localdate() + dt.timedelta(days=1)).isoformat()
    later = export(tmp_path / "s", "--since", tomorrow)
    assert later["Patient"] == [] and later["Questionnaire"]


@pytest.mark.parametrize("args, message", [(["--clinic", "nowhere"], "Unknown clinic"),
                                           (["--since", "2024-13-01"], "is not a date")])
def test_bad_arguments_exit_2(tmp_path, clinic, args, message):
    with pytest.raises(CommandError, match=message) as err:
        call_command("export", "fhir", "--out", str(tmp_path / "x"), *args)
    assert err.value.returncode == 2


def test_an_export_into_an_earlier_exports_folder_leaves_nothing_of_it(tmp_path, df):
    """Every type's file is written (empty when there is none of the type): importing the folder brings nothing
    of the earlier export back; files that are not the export's stay; no temporary file is left."""
    first = export(tmp_path)
    assert first["Patient"] and first["Condition"] and first["Observation"]
    (tmp_path / "fhir" / "notes.txt").write_text("keep me")
    tomorrow = (timezone.localdate() + dt.timedelta(days=1)).isoformat()
    second = export(tmp_path, "--since", tomorrow)
    assert set(second) == set(RESOURCE_ORDER)
    assert {t for t, resources in second.items() if resources} == {"Questionnaire"}
    assert (tmp_path / "fhir" / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in (tmp_path / "fhir").iterdir() if not p.name.endswith(".ndjson")) == ["notes.txt"]


def test_a_failed_export_leaves_the_earlier_files_whole(tmp_path, df, monkeypatch):
    export(tmp_path)
    before = {p.name: p.read_bytes() for p in (tmp_path / "fhir").iterdir()}

    def broken(self, resource):
        if resource["resourceType"] == "Observation":  # late in the export: other files half written by then
            raise ExportError("the mapping is broken")
        return resource

    monkeypatch.setattr(fhir_export.Validator, "__call__", broken)
    with pytest.raises(ExportError):
        fhir_export.bulk_export(tmp_path / "fhir", Patient.objects.all())
    assert {p.name: p.read_bytes() for p in (tmp_path / "fhir").iterdir()} == before


class FakeBar:
    """tqdm as the command uses it: what it was told, kept."""

    made: list["FakeBar"] = []

    def __init__(self, *, total, **kwargs):
        self.total, self.updates = total, []
        FakeBar.made.append(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n):
        self.updates.append(n)

    def refresh(self):
        pass


@pytest.mark.parametrize("since", [None, "tomorrow"])
def test_the_progress_bar_ends_at_what_was_written(tmp_path, clinic, monkeypatch, since):
    from orthoreg.interop.fhir import commands

    demo.create_df(clinic=clinic, today=timezone.localdate())
    Generator(clinics=[clinic], seed=5).run(12)
    monkeypatch.setattr(fhir_export, "PROGRESS_STEP", 50, raising=False)  # steps, and a partial one at the end
    monkeypatch.setattr(commands, "tqdm", FakeBar)
    FakeBar.made = []
    args = ["--since", (timezone.localdate() + dt.timedelta(days=1)).isoformat()] if since else []
    written = sum(len(resources) for resources in export(tmp_path, *args).values())
    [bar] = FakeBar.made
    assert written % 50 and sum(bar.updates) == written == bar.total
    assert all(n == 50 for n in bar.updates[:-1])


def test_research_subcommand_still_there(tmp_path, clinic):
    call_command("export", "research", "--out", str(tmp_path / "r.zip"), stdout=io.StringIO())
    assert (tmp_path / "r.zip").exists()
    assert Clinic.objects.count() == 1


# --- the validation of the export: each distinct element once, refusing exactly what validate() refuses --------

def _resources(tmp_path, df) -> list[dict]:
    return [r for resources in export(tmp_path).values() for r in resources]


def _broken(resource: dict) -> list[dict]:
    """Copies of a resource each with one fault deep inside: in a nested element, a list, a primitive."""
    faults = []

    def walk(value, path):
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, (*path, key))
            if path:
                faults.append((path, "unknown", True))  # an element no model has
        elif isinstance(value, list):
            for n, item in enumerate(value):
                walk(item, (*path, n))
            if value and isinstance(value[0], dict):
                faults.append((path, "null in list", None))
        elif isinstance(value, str) and path[-1] in ("system", "code", "reference", "id"):
            faults.append((path, "blank", " "))

    walk(resource, ())
    copies = []
    for path, kind, bad in faults:
        copy = json.loads(json.dumps(resource))
        target = copy
        for key in path[:-1]:
            target = target[key]
        if kind == "unknown":
            target[path[-1]]["noSuchElement"] = bad
        elif kind == "null in list":
            target[path[-1]].append(bad)
        else:
            target[path[-1]] = bad
        copies.append(copy)
    return copies


def test_the_export_validator_refuses_what_validate_refuses(tmp_path, df):
    from orthoreg.interop.fhir.export import ExportError, Validator, validate

    resources = _resources(tmp_path, df)
    check = Validator()
    for resource in resources:  # the valid elements are remembered first, the broken copies must still fail
        assert check(resource) is resource
    refused = accepted = 0
    first_of_each_type = {r["resourceType"]: r for r in reversed(resources)}.values()
    for resource in first_of_each_type:
        for broken in _broken(resource):
            try:
                validate(broken)
            except ExportError as exc:
                with pytest.raises(ExportError, match="does not validate") as err:
                    check(broken)
                assert str(err.value) == str(exc)  # the same message, naming the same path
                refused += 1
            else:
                assert check(broken) is broken
                accepted += 1
    assert refused > 50 and accepted < refused


def test_the_import_check_passes_exactly_what_whole_validation_passes(tmp_path, df):
    """Validator.passes (the import's check of each resource, its elements validated once): True exactly when the
    resource validates whole, with the valid elements already remembered."""
    from fhir.resources.R4B import get_fhir_model_class

    from orthoreg.interop.fhir.export import ExportError, Validator, validate

    resources = _resources(tmp_path, df)
    check = Validator()
    for resource in resources:
        assert check.passes(resource, get_fhir_model_class(resource["resourceType"]))
    refused = 0
    for resource in {r["resourceType"]: r for r in reversed(resources)}.values():
        for broken in _broken(resource):
            try:
                validate(broken)
                whole = True
            except ExportError:
                whole = False
                refused += 1
            assert check.passes(broken, get_fhir_model_class(broken["resourceType"])) is whole
    assert refused > 50


def test_the_export_validator_tells_equal_looking_values_apart(tmp_path, df):
    from orthoreg.interop.fhir.export import ExportError, Validator

    check = Validator(max_elements=3)  # and forgets when full
    ok = {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
          "valueQuantity": {"value": 1, "unit": "score"}}
    for _ in range(3):
        check(ok)
        check({**ok, "code": {"text": "y"}, "valueQuantity": {"value": 1.5}})
    with pytest.raises(ExportError):  # "1" (a string) is not a decimal, though 1 was seen
        check({**ok, "valueQuantity": {"value": "one", "unit": "score"}})
    with pytest.raises(ExportError):  # a boolean is not a decimal either
        check({**ok, "valueQuantity": {"value": True, "unit": "score"}})


def test_export_queries_do_not_grow_with_the_registry(tmp_path, clinic, monkeypatch):
    """Records are read table by table in chunks: no query per patient or per record."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    today = timezone.localdate()
    demo.create_df(clinic=clinic, today=today)
    Generator(clinics=[clinic], seed=5).run(3)

    def queries(out):
        with CaptureQueriesContext(connection) as ctx:
            fhir_export.bulk_export(tmp_path / out, Patient.objects.all())
        return len(ctx.captured_queries)

    monkeypatch.setattr(fhir_export, "CHUNK", 2000)
    small = queries("a")
    Generator(clinics=[clinic], seed=6).run(12)
    assert queries("b") == small
    monkeypatch.setattr(fhir_export, "CHUNK", 3)  # chunks of 3 records: the same queries, fetched in pieces
    assert queries("c") <= small + 1  # (one more for the images of the second chunk of studies, if any)
