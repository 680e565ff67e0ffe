"""REDCap data dictionary import: the choices parser, field mapping, the per-row report, the command."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from hypothesis import given
from hypothesis import strategies as st

from orthoreg.accounts.models import AuditEvent
from orthoreg.instruments import definitions
from orthoreg.instruments.fhir import parse_definition
from orthoreg.instruments.redcap import (
    COLUMNS,
    RedcapError,
    dictionary_text,
    format_choices,
    import_data_dictionary,
    parse_choices,
)
from orthoreg.instruments.scoring import score

DATA = Path(__file__).resolve().parent.parent / "data" / "redcap"
HIGHER = {"*": "higher"}

# --- choices ---------------------------------------------------------------------------------------------------

def test_parse_choices_examples():
    assert parse_choices("1, Label | 2, Label") == [("1", "Label"), ("2", "Label")]
    assert parse_choices("0,None|1,Mild, sometimes") == [("0", "None"), ("1", "Mild, sometimes")]
    assert parse_choices("  ") == []
    assert parse_choices("-1, Worse | 1.5, Half") == [("-1", "Worse"), ("1.5", "Half")]
    assert parse_choices("3,") == [("3", "3")]
    for bad, message in (("1 Label", "not 'code, label'"), ("1, A || 2, B", "empty choice"),
                         ("1, A | 1, B", "used twice"), (", Label", "not 'code, label'")):
        with pytest.raises(ValueError, match=message):
            parse_choices(bad)


codes = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-.", min_size=1, max_size=6)
labels = st.text(alphabet=st.characters(blacklist_characters="|\r\n", blacklist_categories=("Cs", "Cc")),
                 min_size=1, max_size=30).map(str.strip).filter(bool)


@given(st.lists(st.tuples(codes, labels), min_size=1, max_size=12, unique_by=lambda c: c[0]))
def test_choices_round_trip(choices):
    assert parse_choices(format_choices(choices)) == choices


@given(st.text(max_size=60))
def test_choices_parser_never_fails_unexpectedly(text):
    try:
        parsed = parse_choices(text)
    except ValueError:
        return
    assert all(code and "|" not in code and "," not in code for code, _ in parsed)


# --- a data dictionary ---------------------------------------------------------------------------------------------

def row(name, form, ftype, label, choices="", validation="", vmin="", vmax="", identifier="", branching="",
        required=""):
    cells = [""] * 18
    cells[0:6] = [name, form, "", ftype, label, choices]
    cells[7:13] = [validation, vmin, vmax, identifier, branching, required]
    return cells


ROWS = [
    row("record_id", "demographics", "text", "Record ID"),
    row("pain_now", "toe_survey", "radio", "<b>Pain</b> now", "0, None | 1, Mild | 2, Moderate | 3, Severe",
        required="y"),
    row("pain_walk", "toe_survey", "dropdown", "Pain when walking", "0, None | 1, Mild | 2, Moderate | 3, Severe"),
    row("limps", "toe_survey", "yesno", "Do you limp?", branching="[pain_walk] > 0"),
    row("rate", "toe_survey", "slider", "Overall rating", "Bad | | Good"),
    row("steps", "toe_survey", "text", "Steps per day (thousands)", validation="number", vmin="0", vmax="30"),
    row("visits", "toe_survey", "text", "Visits", validation="integer"),
    row("comment", "toe_survey", "notes", "Anything else?"),
    row("when", "toe_survey", "text", "Date", validation="date_ymd"),
    row("shoes", "toe_survey", "checkbox", "Shoes worn", "1, Flat | 2, Heels"),
    row("colour", "toe_survey", "radio", "Colour", "a, Red | b, Blue"),
    row("intro", "toe_survey", "descriptive", "Please answer every question"),
    row("email", "toe_survey", "text", "Email", validation="email", identifier="y"),
    row("toe_total", "toe_survey", "calc", "Toe total", "sum([pain_now], [pain_walk], [limps])"),
    row("toe_mean", "toe_survey", "calc", "Toe mean", "mean([pain_now],[pain_walk])"),
    row("bmi", "toe_survey", "calc", "BMI", "[weight]/([height]*[height])"),
    row("with_checkbox", "toe_survey", "calc", "Shoe score", "[shoes] + [pain_now]"),
]


def dictionary(rows=ROWS, header=COLUMNS) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return "\ufeff" + out.getvalue()  # REDCap exports start with a byte-order mark


def test_import_maps_what_it_can_and_reports_every_row():
    result = import_data_dictionary(dictionary(), code="toe-survey", form="toe_survey", better=HIGHER)
    assert result.ok
    report = {r.field: (r.status, r.message) for r in result.rows}
    assert "record_id" not in report  # other form
    mapped = [r.field for r in result.rows if r.status == "mapped"]
    assert mapped == ["pain_now", "pain_walk", "rate", "steps"]
    assert report["limps"] == ("partly mapped", "branching logic not imported: the item is always asked")
    assert "a number field needs Text Validation Min and Max" in report["visits"][1]
    assert report["comment"] == ("skipped", "free text (notes) cannot be scored")
    assert report["when"] == ("skipped", "text validated as date_ymd cannot be scored")
    assert "several answers per item" in report["shoes"][1]
    assert report["colour"][1] == "choice codes 'a', 'b' not a number: scored answers need numeric codes"
    assert report["intro"] == ("skipped", "descriptive text has no answer")
    assert "identifier" in report["email"][1]
    assert report["toe_total"][0] == "partly mapped" and "higher is better (given)" in report["toe_total"][1]
    assert "calculation not understood" in report["bmi"][1]
    assert "shoes, which is not a mapped item" in report["with_checkbox"][1]
    rows = [r.row for r in result.rows]
    assert rows == sorted(rows) and rows[0] == 3  # CSV line numbers; the header is line 1

    d = parse_definition(result.resource)
    assert [i.link_id for i in d.items] == ["pain_now", "pain_walk", "limps", "rate", "steps"]
    assert d.items[0].text == "Pain now" and d.items[0].required
    assert (d.items[3].type, d.items[3].minimum, d.items[3].maximum) == ("integer", 0, 100)
    assert (d.items[4].type, d.items[4].maximum) == ("decimal", 30)
    total, mean = d.subscales
    assert (total.code, total.method, total.maximum, total.primary) == ("toe_total", "sum", 7, True)
    assert (mean.method, mean.min_answered_percent) == ("mean", 1)


def test_imported_definition_installs_and_scores(tmp_path, capsys):
    path = tmp_path / "dict.csv"
    path.write_text(dictionary(), encoding="utf-8")
    call_command("instruments", "import-redcap", str(path), "--code", "toe-survey", "--form", "toe_survey",
                 "--better", "higher")
    out = capsys.readouterr().out
    assert "row  field" in out and "colour" in out and "Installed site definition toe-survey (5 items)" in out
    result = score("toe-survey", [2, 1, 1, 50, 12.5])
    assert result.scores == {"toe_total": 4.0, "toe_mean": 1.5} and result.primary == 4.0
    with pytest.raises(CommandError, match="already installed"):
        call_command("instruments", "import-redcap", str(path), "--code", "toe-survey", "--form", "toe_survey",
                     "--better", "higher")


def test_dry_run_and_output(tmp_path, capsys):
    path = tmp_path / "dict.csv"
    path.write_text(dictionary(), encoding="utf-8")
    call_command("instruments", "import-redcap", str(path), "--code", "toe", "--form", "toe_survey", "--dry-run",
                 "--better", "higher")
    assert "toe" not in definitions.available_codes()
    out_file = tmp_path / "toe.json"
    call_command("instruments", "import-redcap", str(path), "--code", "toe", "--form", "toe_survey",
                 "--output", str(out_file), "--better", "higher")
    assert json.loads(out_file.read_text())["id"] == "toe" and "toe" not in definitions.available_codes()
    call_command("instruments", "install", str(out_file))
    assert "toe" in definitions.available_codes()


@pytest.mark.parametrize("text,kwargs,message", [
    ("", {}, "the file is empty"),
    ("a,b,c\n1,2,3\n", {}, "not a REDCap data dictionary: expected its 18 columns"),
    ("a,b,c\n1,2,3\n", {}, "older REDCap: 16 or 17"),
    (dictionary(), {}, "has 2 forms (demographics, toe_survey): choose one with --form"),
    (dictionary(), {"form": "nope"}, "no form 'nope'"),
    (dictionary(), {"code": "Bad Code"}, "code 'Bad Code' must be"),
])
def test_unreadable_dictionaries(text, kwargs, message):
    with pytest.raises(RedcapError, match=message.replace("(", r"\(").replace(")", r"\)")):
        import_data_dictionary(text, **{"code": "x", **kwargs})


def test_nothing_mappable_is_an_error(tmp_path):
    path = tmp_path / "dict.csv"
    path.write_text(dictionary([row("note", "f", "notes", "Say something")]), encoding="utf-8")
    with pytest.raises(CommandError, match="no definition made") as info:
        call_command("instruments", "import-redcap", str(path), "--code", "x")
    assert info.value.returncode == 2 and "x" not in definitions.available_codes()


def test_without_a_calc_field_the_instrument_has_no_score():
    result = import_data_dictionary(dictionary([row("q1", "f", "radio", "Q", "1, A | 2, B")]), code="f")
    assert result.ok and "no calculated field became a score" in result.rows[-1].message
    d = parse_definition(result.resource)
    assert d.subscales == () and not d.sendable


# --- which way is better, review before sending, blanks, instrument ZIPs, a real dictionary ------------------------

PHQ_ROWS = [row(f"phq{n}", "phq", "radio", f"Item {n}", "0, Not at all | 1, Several days | 2, More than half | "
                "3, Nearly every day") for n in (1, 2, 3)] + [
    row("phq_total", "phq", "calc", "PHQ total", "sum([phq1], [phq2], [phq3])")]


def test_without_the_direction_nothing_is_made_and_the_command_refuses_to_install(tmp_path, capsys):
    result = import_data_dictionary(dictionary(PHQ_ROWS), code="phq")
    assert not result.ok and result.resource is None
    assert "which way is better is not in the data dictionary for phq_total" in result.errors[0]
    path = tmp_path / "phq.csv"
    path.write_text(dictionary(PHQ_ROWS), encoding="utf-8")
    with pytest.raises(CommandError, match="--better higher or --better lower") as info:
        call_command("instruments", "import-redcap", str(path), "--code", "phq")
    assert info.value.returncode == 2 and "phq" not in definitions.available_codes()
    assert "phq_total" in capsys.readouterr().out  # the report is still printed


def test_a_lower_is_better_scale_is_installed_lower_is_better(tmp_path):
    path = tmp_path / "phq.csv"
    path.write_text(dictionary(PHQ_ROWS), encoding="utf-8")
    call_command("instruments", "import-redcap", str(path), "--code", "phq", "--better", "phq_total=lower")
    assert definitions.get_definition("phq").primary.better == "lower"
    with pytest.raises(CommandError, match="say higher or lower"):
        call_command("instruments", "import-redcap", str(path), "--code", "phq2", "--better", "worse")


def test_the_direction_is_read_where_the_dictionary_says_it():
    rows = [*PHQ_ROWS[:-1], row("phq_total", "phq", "calc", "PHQ total", "sum([phq1], [phq2], [phq3])")]
    rows[-1][17] = "Lower scores are better (0 = no symptoms)"
    result = import_data_dictionary(dictionary(rows), code="phq")
    assert result.ok and parse_definition(result.resource).primary.better == "lower"
    assert "lower is better (from the dictionary's own words)" in result.rows[-1].message


def test_the_report_says_how_redcap_and_orthoreg_treat_blanks():
    result = import_data_dictionary(dictionary(), code="toe", form="toe_survey", better=HIGHER)
    report = {r.field: r.message for r in result.rows}
    assert "REDCap's sum() adds only the answered fields" in report["toe_total"]
    assert "orthoreg scores it only with all 3 items answered" in report["toe_total"]
    assert "REDCap's mean() averages the answered fields" in report["toe_mean"]
    plus = import_data_dictionary(dictionary([*PHQ_ROWS[:-1], row("t", "phq", "calc", "T", "[phq1] + [phq2]")]),
                                  code="p", better=HIGHER)
    assert "[a] + [b] is blank when any field is blank" in plus.rows[-1].message


def test_an_import_is_not_sent_to_patients_until_a_person_reviews_it(tmp_path, db, clinician, capsys):
    path = tmp_path / "phq.csv"
    path.write_text(dictionary(PHQ_ROWS), encoding="utf-8")
    call_command("instruments", "import-redcap", str(path), "--code", "phq", "--better", "lower")
    assert "as a draft: not sent to patients until a person reviews it" in capsys.readouterr().out
    d = definitions.get_definition("phq")
    assert not d.reviewed and not d.sendable
    from orthoreg.followup.selectors import sendable_codes
    assert "phq" not in sendable_codes()
    with pytest.raises(CommandError, match="no active user"):
        call_command("instruments", "review", "phq", "--by", "nobody")
    call_command("instruments", "review", "phq", "--by", clinician.username, "--note", "direction checked")
    d = definitions.get_definition("phq")
    assert d.reviewed and d.sendable and "phq" in sendable_codes()
    entry = AuditEvent.objects.get(detail__startswith="instrument phq reviewed")
    assert entry.user_id == clinician.pk and "direction checked" in entry.detail
    with pytest.raises(CommandError, match="already been reviewed"):
        call_command("instruments", "review", "phq", "--by", clinician.username)
    with pytest.raises(CommandError, match="shipped instruments need no review"):
        call_command("instruments", "review", "nprs", "--by", clinician.username)
    # a replacement is a new draft: the earlier review does not carry over
    call_command("instruments", "import-redcap", str(path), "--code", "phq", "--better", "lower", "--replace")
    assert not definitions.get_definition("phq").sendable


def _zip(members: dict[str, str]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return out.getvalue()


def test_redcap_instrument_zip_is_read_from_its_instrument_csv(tmp_path, capsys):
    path = tmp_path / "PHQ.zip"
    path.write_bytes(_zip({"instrument.csv": dictionary(PHQ_ROWS), "OriginID.txt": "1", "AuthorID.txt": "x"}))
    call_command("instruments", "import-redcap", str(path), "--code", "phq", "--better", "lower")
    assert [i.link_id for i in definitions.get_definition("phq").items] == ["phq1", "phq2", "phq3"]
    other = tmp_path / "other.zip"
    other.write_bytes(_zip({"readme.txt": "hello"}))
    with pytest.raises(CommandError, match="a ZIP file without instrument.csv, so not a REDCap instrument ZIP"):
        call_command("instruments", "import-redcap", str(other), "--code", "x", "--better", "lower")
    with pytest.raises(RedcapError, match="not UTF-8 text: save the data dictionary as CSV"):
        dictionary_text(b"\xff\xfe\x00bad")


def test_a_real_redcap_data_dictionary_from_redcapr():
    """REDCapR's test data (tests/data/README.md): REDCap's older 17-column dictionary, no Field Annotation."""
    text = dictionary_text((DATA / "redcapr-simple-data-dictionary.csv").read_bytes())
    result = import_data_dictionary(text, code="health", form="health")
    report = {r.field: (r.status, r.message) for r in result.rows}
    assert result.ok
    assert report["height"][0] == report["weight"][0] == "mapped"
    assert "calculation not understood" in report["bmi"][1]
    assert report["comments"] == ("skipped", "free text (notes) cannot be scored")
    assert report["mugshot"] == ("skipped", "a file upload cannot be scored")
    d = parse_definition(result.resource)
    assert [(i.link_id, i.type, i.minimum, i.maximum) for i in d.items] == [
        ("height", "decimal", 130, 215), ("weight", "integer", 35, 200)]
    assert not d.sendable  # no score, and a draft
    demographics = import_data_dictionary(text, code="demo", form="demographics")
    assert [i["linkId"] for i in demographics.resource["item"]] == ["sex"]
