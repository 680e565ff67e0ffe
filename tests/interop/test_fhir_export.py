"""FHIR R4 export: `orthoreg export fhir` (Bulk Data ndjson) and the mapping of each record."""

import datetime as dt
import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from fhir.resources.R4B import get_fhir_model_class

from orthoreg.instruments import definitions
from orthoreg.interop.fhir import codes
from orthoreg.registry.models import Clinic
from orthoreg.site import demo
from orthoreg.site.synth import Generator


@pytest.fixture(autouse=True)
def private_data_dir(settings, tmp_path):
    """Instruments installed by an import go to a temporary data directory, never the real one."""
    settings.DATA_DIR = tmp_path / "data"
    definitions.clear_caches()
    yield
    definitions.clear_caches()


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
    assert "Patient" not in later and "Questionnaire" in later


@pytest.mark.parametrize("args, message", [(["--clinic", "nowhere"], "Unknown clinic"),
                                           (["--since", "2024-13-01"], "is not a date")])
def test_bad_arguments_exit_2(tmp_path, clinic, args, message):
    with pytest.raises(CommandError, match=message) as err:
        call_command("export", "fhir", "--out", str(tmp_path / "x"), *args)
    assert err.value.returncode == 2


def test_research_subcommand_still_there(tmp_path, clinic):
    call_command("export", "research", "--out", str(tmp_path / "r.zip"), stdout=io.StringIO())
    assert (tmp_path / "r.zip").exists()
    assert Clinic.objects.count() == 1
