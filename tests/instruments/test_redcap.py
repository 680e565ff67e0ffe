"""REDCap data dictionary import: the choices parser, field mapping, the per-row report, the command."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from hypothesis import given
from hypothesis import strategies as st

from orthoreg.instruments import definitions
from orthoreg.instruments.redcap import (
    COLUMNS,
    RedcapError,
    format_choices,
    import_data_dictionary,
    parse_choices,
)
from orthoreg.instruments.scoring import score

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
    result = import_data_dictionary(dictionary(), code="toe-survey", form="toe_survey")
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
    assert report["toe_total"][0] == "partly mapped" and "assumed higher" in report["toe_total"][1]
    assert "calculation not understood" in report["bmi"][1]
    assert "shoes, which is not a mapped item" in report["with_checkbox"][1]
    rows = [r.row for r in result.rows]
    assert rows == sorted(rows) and rows[0] == 3  # CSV line numbers; the header is line 1

    d = definitions.parse_definition(result.resource)
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
    call_command("instruments", "import-redcap", str(path), "--code", "toe-survey", "--form", "toe_survey")
    out = capsys.readouterr().out
    assert "row  field" in out and "colour" in out and "Installed site definition toe-survey (5 items)" in out
    result = score("toe-survey", [2, 1, 1, 50, 12.5])
    assert result.scores == {"toe_total": 4.0, "toe_mean": 1.5} and result.primary == 4.0
    with pytest.raises(CommandError, match="already installed"):
        call_command("instruments", "import-redcap", str(path), "--code", "toe-survey", "--form", "toe_survey")


def test_dry_run_and_output(tmp_path, capsys):
    path = tmp_path / "dict.csv"
    path.write_text(dictionary(), encoding="utf-8")
    call_command("instruments", "import-redcap", str(path), "--code", "toe", "--form", "toe_survey", "--dry-run")
    assert "toe" not in definitions.available_codes()
    out_file = tmp_path / "toe.json"
    call_command("instruments", "import-redcap", str(path), "--code", "toe", "--form", "toe_survey",
                 "--output", str(out_file))
    assert json.loads(out_file.read_text())["id"] == "toe" and "toe" not in definitions.available_codes()
    call_command("instruments", "install", str(out_file))
    assert "toe" in definitions.available_codes()


@pytest.mark.parametrize("text,kwargs,message", [
    ("", {}, "the file is empty"),
    ("a,b,c\n1,2,3\n", {}, "not a REDCap data dictionary: expected its 18 columns"),
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
    d = definitions.parse_definition(result.resource)
    assert d.subscales == () and not d.sendable
