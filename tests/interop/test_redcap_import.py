"""REDCap project migration on real public REDCap test projects (REDCapR's test data, tests/data/README.md):
suggested mappings, classic, longitudinal and repeating projects, checkboxes, comma decimals, refusals."""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from hypothesis import given
from hypothesis import strategies as st

from orthoreg.followup.models import Assessment
from orthoreg.instruments.models import Response
from orthoreg.interop import redcap
from orthoreg.registry.models import Episode, Patient, Procedure

DATA = Path(__file__).resolve().parents[1] / "data" / "redcap"


def project(name: str) -> tuple[Path, Path]:
    return DATA / f"redcapr-{name}-dictionary.csv", DATA / f"redcapr-{name}-records.csv"


def run(*args, capsys) -> tuple[int, dict]:
    """The command's exit status and its JSON summary."""
    try:
        call_command("import", "redcap", *map(str, args), "--format", "json")
        status = 0
    except CommandError as exc:
        status = exc.returncode
    out = capsys.readouterr().out
    return status, json.loads(out) if out.strip() else {}


def suggest(name: str, capsys, with_records: bool = True) -> dict:
    dictionary, records = project(name)
    args = ["--dictionary", str(dictionary), "--suggest-mapping"]
    if with_records:
        args += ["--records", str(records)]
    call_command("import", "redcap", *args)
    return json.loads(capsys.readouterr().out)


def write(tmp_path, mapping: dict, name: str = "map.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(mapping))
    return path


def test_suggested_mapping_imports_the_longitudinal_project_as_it_stands(clinic, tmp_path, capsys):
    mapping = suggest("longitudinal", capsys)
    assert mapping["record_id"] == "study_id" and mapping["patient"]["birth_date"] == "dob"
    assert mapping["patient"]["sex"] == {"field": "sex", "codes": {"0": "female", "1": "male"}}
    assert mapping["events"]["enrollment_arm_1"] == "baseline" and mapping["events"]["visit_1_arm_1"] is None
    dictionary, records = project("longitudinal")
    path = write(tmp_path, mapping)
    args = ["--dictionary", dictionary, "--records", records, "--mapping", path, "--clinic", "east"]
    status, dry = run(*args, "--dry-run", capsys=capsys)
    assert status == 0 and dry["dry_run"] and dry["units"]["patients"]["created"] == 3
    assert not Patient.objects.exists()  # a dry run writes nothing
    assert {f["field"] for f in dry["not_mapped"]} >= {"race", "gym", "pmq1"}
    status, summary = run(*args, capsys=capsys)
    assert status == 0 and summary["units"]["patients"]["created"] == 3 and summary["written"]
    zharko = Patient.objects.get(clinic=clinic, mrn="100")
    assert (zharko.given_name, zharko.family_name, zharko.birth_date, zharko.sex) == \
        ("Zharko", "Lenox", dt.date(1983, 9, 23), "male")
    status, again = run(*args, capsys=capsys)  # idempotent
    assert status == 0 and again["units"]["patients"] == {"created": 0, "updated": 0, "skipped": 3, "errors": []}
    assert Patient.objects.count() == 3


def test_repeating_instruments_with_procedures_and_responses_through_the_services(clinic, tmp_path, capsys):
    """The repeating project: each blood-pressure instance becomes a response, the enrolment a BMC procedure that
    schedules follow-up, as the web form does."""
    dictionary, records = project("repeating")
    mapping = {
        "record_id": "record_id",
        "patient": {"given_name": "first_name", "family_name": {"value": "REDCap"}, "birth_date": "dob",
                    "sex": {"field": "sex", "codes": {"0": "female", "1": "male"}}},
        "episode": {"condition": {"value": "hallux_rigidus"}, "body_site": {"value": "first_mtp"},
                    "side": {"value": "right"}},
        "procedures": [{"date": "date_enrolled", "kind": {"value": "bmc"}, "index": True}],
        "forms": {"demographics": None,
                  "bp": {"instrument": "nprs", "items": ["bp_diastolic"], "date": "date_bp", "time_point": "6w"}},
    }
    path = write(tmp_path, mapping)
    args = ["--dictionary", dictionary, "--records", records, "--mapping", path, "--clinic", "east"]
    status, summary = run(*args, capsys=capsys)
    # diastolic pressures are not 0-10 pain scores: refused with the row and field, nothing written
    assert status == 2 and not summary["written"] and not Patient.objects.exists()
    bad = summary["units"]["bp"]["errors"][0]
    assert bad["location"] == {"file": str(records), "row": 3, "record": "1", "field": "bp_diastolic"}
    assert "out of range" in bad["message"]
    # the same project with a field that fits the instrument: the instance number keeps instances apart
    records2 = tmp_path / "records.csv"
    text = records.read_text().replace(",110,100,2", ",110,7,2").replace(",111,101,2", ",111,6,2") \
        .replace(",112,102,2", ",112,5,2").replace(",114,104,2", ",114,3,2")
    records2.write_text(text)
    args[3] = records2
    status, summary = run(*args, capsys=capsys)
    # the project's own data: record 2's blood pressure is dated 2004, before the birth date (2010)
    assert status == 2 and not Patient.objects.exists()
    (bad,) = summary["units"]["bp"]["errors"]
    assert (bad["location"]["row"], bad["location"]["record"]) == (7, "2") and "before the patient's birth date" in bad["message"]
    records2.write_text(text.replace("2004-04-04", "2020-04-04"))
    status, summary = run(*args, capsys=capsys)
    assert status == 0, json.dumps(summary)
    assert summary["units"]["bp"]["created"] == 4 and summary["units"]["procedures"]["created"] == 2
    first = Patient.objects.get(clinic=clinic, mrn="1")
    assert sorted(Response.objects.filter(patient=first).values_list("score", flat=True)) == [5, 6, 7]
    episode = Episode.objects.get(patient=first)
    assert episode.procedures.get(is_index=True).date == dt.date(2019, 10, 14)
    assert Assessment.objects.filter(episode=episode).exists()  # the procedure scheduled follow-up
    status, again = run(*args, capsys=capsys)
    assert status == 0 and again["units"]["bp"]["skipped"] == 4 and again["units"]["bp"]["created"] == 0
    assert Response.objects.count() == 4 and Procedure.objects.count() == 2
    # a repeat instance that is not a number: refused with its row and column (it stopped the command)
    records2.write_text(text.replace("2004-04-04", "2020-04-04").replace("1,bp,2,", "1,bp,two,"))
    status, summary = run(*args, capsys=capsys)
    assert status == 2 and Response.objects.count() == 4
    (bad,) = summary["units"]["bp"]["errors"]
    assert (bad["location"]["row"], bad["location"]["field"]) == (4, "redcap_repeat_instance")
    assert bad["message"] == "'two' is not a repeat instance (1, 2, 3 ...)"


def test_checkbox_procedures_and_a_code_not_in_the_dictionary(clinic, tmp_path, capsys):
    dictionary, records = project("checkboxes")
    mapping = {"record_id": "record_id",
               "patient": {"given_name": {"value": "Check"}, "family_name": "record_id",
                           "birth_date": {"value": "1970-01-01"}},
               "forms": {"form_1": None, "form_2": None}}
    path = write(tmp_path, mapping)
    status, summary = run("--dictionary", dictionary, "--records", records, "--mapping", path, "--clinic", "east",
                          capsys=capsys)
    assert status == 0, json.dumps(summary)
    assert summary["units"]["patients"]["created"] == 4
    bad = tmp_path / "bad.csv"
    bad.write_text(records.read_text().replace("check_one___4", "check_one___9", 1))
    status, summary = run("--dictionary", dictionary, "--records", bad, "--mapping", path, "--clinic", "east",
                          capsys=capsys)
    assert status == 2
    (problem,) = summary["units"]["records"]["errors"]
    assert problem["location"] == {"file": str(bad), "row": 1, "record": None, "field": "check_one___9"}
    assert "'9' is not one of check_one's choices" in problem["message"]


def test_event_not_in_the_mapping_is_refused_with_its_row(clinic, tmp_path, capsys):
    mapping = suggest("longitudinal", capsys)
    del mapping["events"]["visit_2_arm_1"]
    dictionary, records = project("longitudinal")
    status, summary = run("--dictionary", dictionary, "--records", records, "--mapping", write(tmp_path, mapping),
                          "--clinic", "east", capsys=capsys)
    assert status == 2 and not Patient.objects.exists()
    errors = summary["units"]["records"]["errors"]
    assert [e["location"]["row"] for e in errors] == [6, 12]
    assert errors[0]["location"]["field"] == "redcap_event_name" and "'visit_2_arm_1'" in errors[0]["message"]


def test_mapping_naming_unknown_fields_is_refused(clinic, tmp_path, capsys):
    mapping = suggest("longitudinal", capsys)
    mapping["patient"]["birth_date"] = "date_of_birth"
    mapping["forms"]["no_such_form"] = None
    mapping["procedures"] = [{"date": "when", "kind": {"value": "bmc"}}]
    mapping["events"]["visit_1_arm_1"] = "six weeks"
    dictionary, records = project("longitudinal")
    status, summary = run("--dictionary", dictionary, "--records", records, "--mapping", write(tmp_path, mapping),
                          "--clinic", "east", capsys=capsys)
    assert status == 2
    fields = {e["location"]["field"] for e in summary["units"]["mapping"]["errors"]}
    assert {"patient.birth_date", "forms.no_such_form", "procedures[0].date", "procedures[0]",
            "events.visit_1_arm_1"} <= fields
    assert not Patient.objects.exists()


def test_impossible_dates_and_codes_are_refused_and_nothing_is_written(clinic, tmp_path, capsys):
    """The simple project as REDCapR stores it has sex as TRUE/FALSE, not the dictionary's 0/1 codes."""
    dictionary, records = project("simple")
    mapping = suggest("simple", capsys, with_records=False)
    status, summary = run("--dictionary", dictionary, "--records", records, "--mapping", write(tmp_path, mapping),
                          "--clinic", "east", capsys=capsys)
    assert status == 2 and not Patient.objects.exists()
    errors = summary["units"]["patients"]["errors"]
    assert {e["location"]["field"] for e in errors} == {"sex"} and len(errors) == 5
    assert "'FALSE' is not a code of sex (0, 1)" in errors[0]["message"]
    fixed = tmp_path / "records.csv"
    fixed.write_text(records.read_text().replace(",FALSE,", ",0,").replace(",TRUE,", ",1,")
                     .replace("1934-04-09", "1934-02-30"))
    status, summary = run("--dictionary", dictionary, "--records", fixed, "--mapping", write(tmp_path, mapping),
                          "--clinic", "east", capsys=capsys)
    assert status == 2 and not Patient.objects.exists()
    (error,) = summary["units"]["patients"]["errors"]
    assert error["location"]["field"] == "dob" and "'1934-02-30' is not a date that exists" in error["message"]


def test_non_utf8_records_are_refused(clinic, tmp_path, capsys):
    dictionary, records = project("longitudinal")
    latin = tmp_path / "latin1.csv"
    latin.write_bytes(records.read_bytes().replace(b"Zharko", "Žarko".encode("cp1250")))
    mapping = write(tmp_path, suggest("longitudinal", capsys))
    status, summary = run("--dictionary", dictionary, "--records", latin, "--mapping", mapping, "--clinic", "east",
                          capsys=capsys)
    assert status == 2 and not Patient.objects.exists()
    (error,) = summary["units"]["records"]["errors"]
    assert "not UTF-8" in error["message"] and error["location"]["file"] == str(latin)


def test_comma_decimals_by_the_dictionary(clinic, tmp_path, capsys):
    _, fields = redcap.read_dictionary(DATA / "redcapr-decimal-comma-dictionary.csv")
    assert redcap.parse_value(fields["height"], "1,54") == 1.54
    assert redcap.parse_value(fields["weight"], "52,3") == 52.3
    with pytest.raises(ValueError, match="not a number"):
        redcap.parse_value(fields["weight"], "52;3")


@pytest.mark.parametrize("validation, text, day", [
    ("date_ymd", "2024-02-29", dt.date(2024, 2, 29)), ("date_mdy", "02-03-2024", dt.date(2024, 2, 3)),
    ("date_dmy", "02/03/2024", dt.date(2024, 3, 2)), ("date_dmy", "2024-03-02", dt.date(2024, 3, 2)),
    ("datetime_mdy", "12-31-2023 14:05", dt.date(2023, 12, 31)),
])
def test_redcap_date_formats(validation, text, day):
    assert redcap.parse_date(text, validation) == day


@pytest.mark.parametrize("validation, text", [("date_ymd", "2023-02-29"), ("date_mdy", "13-01-2024"),
                                              ("date_dmy", "31/04/2024"), ("date_ymd", "01-02-2024"),
                                              ("date_ymd", "yesterday")])
def test_impossible_dates(validation, text):
    with pytest.raises(ValueError, match=repr(text)):
        redcap.parse_date(text, validation)


@given(st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2100, 12, 31)),
       st.sampled_from(["date_ymd", "date_mdy", "date_dmy"]), st.sampled_from(["-", "/"]))
def test_every_date_reads_back_in_its_field_format(day, validation, sep):
    order = {"date_ymd": "%Y{0}%m{0}%d", "date_mdy": "%m{0}%d{0}%Y", "date_dmy": "%d{0}%m{0}%Y"}[validation]
    assert redcap.parse_date(day.strftime(order.format(sep)), validation) == day
    assert redcap.parse_date(day.isoformat(), validation) == day  # what REDCap itself exports


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e9, max_value=1e9))
def test_numbers_with_comma_or_dot(value):
    text = repr(value)
    assert redcap.parse_number(text) == value
    if "e" not in text:
        assert redcap.parse_number(text.replace(".", ","), comma=True) == value


DD_HEADER = ('"Variable / Field Name","Form Name","Section Header","Field Type","Field Label",'
             '"Choices, Calculations, OR Slider Labels","Field Note","Text Validation Type OR Show Slider Number",'
             '"Text Validation Min","Text Validation Max",Identifier?,"Branching Logic (Show field only if...)",'
             '"Required Field?","Custom Alignment","Question Number (surveys only)","Matrix Group Name",'
             '"Matrix Ranking?","Field Annotation"\n')


def test_a_form_installed_from_the_dictionary_is_a_draft_and_its_answers_are_scored(clinic, data_dir, tmp_path,
                                                                                      capsys):
    from orthoreg.instruments.definitions import get_definition

    dictionary = tmp_path / "dd.csv"
    dictionary.write_text(DD_HEADER + "\n".join([
        "record_id,enrol,,text,Record,,,,,,,,,,,,,",
        "first_name,enrol,,text,First name,,,,,,y,,,,,,,",
        "last_name,enrol,,text,Last name,,,,,,y,,,,,,,",
        "dob,enrol,,text,Date of birth,,,date_dmy,,,y,,,,,,,",
        'toe_date,toe,,text,Date,,,date_mdy,,,,,,,,,,',
        'toe_rest,toe,,radio,Pain at rest,"0, None | 1, Some | 2, Much",,,,,,,,,,,,',
        'toe_walk,toe,,radio,Pain walking,"0, None | 1, Some | 2, Much",,,,,,,,,,,,',
        'toe_total,toe,,calc,Toe pain,"sum([toe_rest],[toe_walk])",Lower is better,,,,,,,,,,,',
    ]) + "\n")
    records = tmp_path / "records.csv"
    records.write_text("record_id,first_name,last_name,dob,enrol_complete,toe_date,toe_rest,toe_walk,toe_total,"
                       "toe_complete\n1,Ada,Moss,23/07/1970,2,03-15-2025,2,1,3,2\n")
    mapping = write(tmp_path, {
        "patient": {"given_name": "first_name", "family_name": "last_name", "birth_date": "dob"},
        "forms": {"enrol": None, "toe": {"install": "redcap-toe", "date": "toe_date", "time_point": "baseline"}}})
    args = ["--dictionary", dictionary, "--records", records, "--mapping", mapping, "--clinic", "east"]
    status, dry = run(*args, "--dry-run", capsys=capsys)
    assert status == 0 and dry["units"]["toe"]["created"] == 1 and dry["installed"] == ["redcap-toe"]
    assert not (data_dir / "instruments" / "redcap-toe.json").exists()  # a dry run installs nothing
    status, summary = run(*args, capsys=capsys)
    assert status == 0, json.dumps(summary)
    definition = get_definition("redcap-toe")
    assert definition.status == "draft"  # not sent to patients until reviewed
    response = Response.objects.get(instrument="redcap-toe")
    assert (response.score, response.time_point, response.patient.birth_date) == (3, "baseline", dt.date(1970, 7, 23))
    assert response.completed_at.date() == dt.date(2025, 3, 15)


# ------------------------------------------------------------------------------------------------ malformed mappings

def valid_mapping(capsys) -> dict:
    """The longitudinal project's suggested mapping with an episode, a procedure and an instrument form."""
    mapping = suggest("longitudinal", capsys)
    mapping["episode"] = {"condition": {"value": "hallux_rigidus"}, "body_site": {"value": "first_mtp"},
                          "side": {"field": "sex", "codes": {"0": "left", "1": "right"}}}
    mapping["procedures"] = [{"date": "date_enrolled", "kind": {"value": "bmc"}, "index": True}]
    mapping["forms"]["patient_morale_questionnaire"] = {"instrument": "nprs", "items": ["pmq1"], "date": "dob",
                                                        "time_point": "baseline"}
    return mapping


FORM = "forms.patient_morale_questionnaire"
MALFORMED = [  # (where, JSON value put there, the key path the refusal names)
    ("episode", "knee", "episode"),
    ("forms", ["x"], "forms"),
    ("procedures", {"a": 1}, "procedures"),
    ("forms.demographics", "nprs", "forms.demographics"),
    ("patient.sex", {"field": "sex", "codes": ["0"]}, "patient.sex.codes"),
    ("patient.sex", {"codes": {"0": "female"}}, "patient.sex"),
    ("patient.sex", {"value": "f"}, "patient.sex.value"),
    ("patient.given_name", ["x"], "patient.given_name"),
    ("patient.given_name", None, "patient.given_name"),
    ("patient.family_name", {"field": "last_name", "value": "x"}, "patient.family_name"),
    ("patient.birth_date", {"value": 1983}, "patient.birth_date.value"),
    ("patient.consent_registry", {"value": "no"}, "patient.consent_registry.value"),
    ("patient.mrn_prefix", 7, "patient.mrn_prefix"),
    ("patient.nickname", "first_name", "patient.nickname"),
    ("patient", "study_id", "patient"),
    ("record_id", 5, "record_id"),
    ("schema", "orthoreg.redcap-mapping/2", "schema"),
    ("events", ["enrollment_arm_1"], "events"),
    ("events.visit_1_arm_1", 6, "events.visit_1_arm_1"),
    ("episode.side", {"value": ["right"]}, "episode.side.value"),
    ("episode.side", {"field": "sex", "codes": {"0": 1}}, "episode.side.codes"),
    ("episode.knee", "sex", "episode.knee"),
    ("procedures.0", "bmc", "procedures[0]"),
    ("procedures.0.index", "yes", "procedures[0].index"),
    ("procedures.0.date", None, "procedures[0].date"),
    ("procedures.0.kind", "sex", "procedures[0].kind"),
    ("procedures.0.form", ["demographics"], "procedures[0].form"),
    (FORM, {}, FORM),
    (FORM, {"instrument": "nprs", "install": "nprs-2"}, FORM),
    (FORM + ".items", "pmq1", FORM + ".items"),
    (FORM + ".items", [1], FORM + ".items[0]"),
    (FORM + ".time_point", 6, FORM + ".time_point"),
    (FORM + ".date", {"field": "dob"}, FORM + ".date"),
    (FORM + ".instrument", ["nprs"], FORM + ".instrument"),
    (FORM, {"install": 3}, FORM + ".install"),
    (FORM, {"install": "redcap-pmq", "better": True}, FORM + ".better"),
]


def put(mapping: dict, where: str, value) -> dict:
    *path, last = [int(k) if k.isdigit() else k for k in where.split(".")]
    target = mapping
    for key in path:
        target = target[key]
    target[last] = value
    return mapping


@pytest.mark.parametrize("where, value, key", MALFORMED, ids=[f"{w}={json.dumps(v)}" for w, v, _ in MALFORMED])
def test_a_malformed_mapping_is_refused_naming_the_key(where, value, key, clinic, tmp_path, capsys):
    dictionary, records = project("longitudinal")
    mapping = valid_mapping(capsys)
    args = ["--dictionary", dictionary, "--records", records, "--clinic", "east", "--dry-run"]
    status, summary = run(*args, "--mapping", write(tmp_path, mapping, "good.json"), capsys=capsys)
    assert status == 0, json.dumps(summary)  # the mapping as it stands is good
    path = write(tmp_path, put(mapping, where, value))
    status, summary = run(*args, "--mapping", path, capsys=capsys)
    assert status == 2 and not summary["written"]
    assert key in {e["location"]["field"] for e in summary["units"]["mapping"]["errors"]}, json.dumps(summary)
    with pytest.raises(CommandError) as refused:  # the text report names the key too
        call_command("import", "redcap", *map(str, args[:-1]), "--mapping", str(path))
    assert refused.value.returncode == 2 and f", {key}: " in str(refused.value)
    assert not Patient.objects.exists()


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
                    | st.sampled_from(["sex", "dob", "first_name", "baseline", "bmc", "right", "nprs", "6w"]),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                 max_size=3), max_leaves=8)


def shaped(keys: list[str]):
    """Objects with the keys a part of the mapping has, each with any JSON value (and the odd unknown key)."""
    return st.dictionaries(st.sampled_from(keys) | st.text(max_size=4), JSON | shaped_spec, max_size=len(keys))


shaped_spec = st.fixed_dictionaries({}, optional={"field": JSON, "codes": JSON, "value": JSON})
TOP = {
    "schema": JSON, "record_id": JSON,
    "patient": JSON | shaped([*redcap.PATIENT_KEYS, "mrn_prefix"]),
    "episode": JSON | shaped(["condition", "body_site", "side"]),
    "events": JSON | st.dictionaries(st.sampled_from(["enrollment_arm_1", "x"]), JSON),
    "forms": JSON | st.dictionaries(st.sampled_from(["demographics", "patient_morale_questionnaire"]),
                                    JSON | shaped(sorted(redcap.FORM_KEYS))),
    "procedures": JSON | st.lists(JSON | shaped(sorted(redcap.PROCEDURE_KEYS)), max_size=2),
}


@given(st.sampled_from(sorted(TOP)).flatmap(lambda key: st.tuples(st.just(key), TOP[key])))
def test_any_json_in_a_mapping_is_read_or_refused_never_an_exception(key_value):
    """Any JSON value in place of a top-level key's value: the mapping is read, or refused with the problems."""
    dictionary, _ = project("longitudinal")
    text, fields = redcap.read_dictionary(dictionary)
    mapping = {"record_id": "study_id", "patient": {"given_name": "first_name", "family_name": "last_name",
                                                    "birth_date": "dob"}}
    key, value = key_value
    mapping[key] = value
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "map.json"
        path.write_text(json.dumps(mapping))
        try:
            redcap.load_mapping(path, fields, text)
        except redcap.MappingError as exc:
            assert exc.problems and all(p["location"]["field"] for p in exc.problems)


# ------------------------------------------------------------------------------------------------ row numbers

def test_a_refusal_names_the_row_as_a_spreadsheet_counts_it_and_the_record(clinic, tmp_path, capsys):
    """The simple project's addresses and comments are quoted values over several lines (16 lines, 6 rows): a bad
    birth date in record 5 is on row 6 (the header is row 1), not on line 16 where its row ends."""
    dictionary, records = project("simple")
    fixed = tmp_path / "records.csv"
    fixed.write_text(records.read_text().replace(",FALSE,", ",0,").replace(",TRUE,", ",1,")
                     .replace("1955-04-15", "1955-02-30"))
    mapping = write(tmp_path, suggest("simple", capsys, with_records=False))
    args = ["--dictionary", dictionary, "--records", fixed, "--mapping", mapping, "--clinic", "east"]
    status, summary = run(*args, capsys=capsys)
    assert status == 2 and not Patient.objects.exists()
    (error,) = summary["units"]["patients"]["errors"]
    assert error["location"] == {"file": str(fixed), "row": 6, "record": "5", "field": "dob"}
    with pytest.raises(CommandError, match=r", row 6 \(record 5\), dob: '1955-02-30' is not a date"):
        call_command("import", "redcap", *map(str, args))
