"""`orthoreg report cohort|case|public`: the JSON document other tools read, exit status 2 on bad values,
files whole or absent."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from orthoreg.accounts.models import AuditEvent

RATE_KEYS = {"numerator", "denominator", "rate", "ci_low", "ci_high", "worst_case_rate"}
KM_KEYS = {"time", "at_risk", "events", "survival", "ci_low", "ci_high"}


def run(*args) -> str:
    out = io.StringIO()
    call_command("report", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_json_document_keys(registry):
    report = json.loads(run("cohort", "--condition", "hallux_rigidus", "--procedure", "bmc", "--grade-min", "1",
                            "--format", "json"))
    assert report["schema"] == "orthoreg.cohort-report/1"
    rows = [i for tp in report["time_points"] for i in tp["instruments"]]
    assert rows
    for row in rows:
        assert {"treated", "eligible", "responded"} <= set(row)
        for rate in row["responders"].values():
            assert RATE_KEYS <= set(rate)
    six = next(i for tp in report["time_points"] if tp["time_point"] == "6m" for i in tp["instruments"])
    assert (six["treated"], six["eligible"], six["responded"]) == (6, 6, 5)  # the ungraded episode is left out
    everyone = json.loads(run("cohort"))
    assert everyone["cohort"]["episodes"] == 7  # the command line sees both clinics
    assert report["survival"]["table"] and all(KM_KEYS <= set(r) for r in report["survival"]["table"])
    assert AuditEvent.objects.filter(action="export", detail__startswith="command line: cohort report json").exists()


def test_combination_and_comparison(registry, tmp_path):
    out = tmp_path / "c.json"
    run("cohort", "--procedure", "bmc", "--procedure", "prolotherapy", "--within-days", "30", "--out", str(out))
    assert json.loads(out.read_text())["cohort"]["episodes"] == 0
    report = json.loads(run("cohort", "--sex", "male", "--vs-sex", "female"))
    assert report["comparison"] and len(report["cohorts"]) == 2 and report["differences"]


@pytest.mark.parametrize(("args", "words"), [
    (["--grade-min", "9"], "--grade-min: Ensure this value is less than or equal to 4."),
    (["--procedure", "magic"], "--procedure: Unknown procedure kind magic"),
    (["--index-from", "March"], "--index-from: Give the date as YYYY-MM-DD."),
    (["--clinic", "nowhere"], "--clinic: Unknown clinic nowhere."),
    (["--age-min", "50", "--age-max", "40"], "--age-max: The upper age is below the lower one"),
    (["--format", "pdf"], "--format pdf needs --out FILE"),
])
def test_bad_values_exit_2_and_write_nothing(registry, tmp_path, args, words):
    out = tmp_path / "never.json"
    with pytest.raises(CommandError) as exc:
        call_command("report", "cohort", *args, *([] if "--format" in args else ["--out", str(out)]))
    assert exc.value.returncode == 2
    assert words in str(exc.value)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_unknown_option_and_missing_folder(registry, tmp_path):
    with pytest.raises(CommandError):
        call_command("report", "cohort", "--colour", "blue")
    with pytest.raises(CommandError) as exc:
        call_command("report", "cohort", "--out", str(tmp_path / "no" / "such.json"))
    assert exc.value.returncode == 2


def test_html_and_pdf_files(registry, tmp_path):
    html, pdf = tmp_path / "r.html", tmp_path / "r.pdf"
    run("cohort", "--condition", "hallux_rigidus", "--format", "html", "--out", str(html))
    run("cohort", "--condition", "hallux_rigidus", "--format", "pdf", "--out", str(pdf))
    text = html.read_text()
    assert "data:image/svg+xml;base64," in text and "Responders per time point" in text and "<style>" in text
    assert pdf.read_bytes().startswith(b"%PDF")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html", "r.pdf"]  # no temporary files left


def test_case_command(registry, tmp_path):
    episode = registry["mine"][0]
    out = tmp_path / "case.pdf"
    run("case", str(episode.pk), "--format", "pdf", "--out", str(out))
    assert out.read_bytes().startswith(b"%PDF")
    run("case", str(episode.pk), "--format", "html", "--out", str(tmp_path / "case.html"))
    assert "one responder, not evidence" in (tmp_path / "case.html").read_text()
    with pytest.raises(CommandError) as exc:
        call_command("report", "case", "999999", "--out", str(tmp_path / "x.pdf"))
    assert exc.value.returncode == 2 and not (tmp_path / "x.pdf").exists()


def test_public_export(registry, clinic, tmp_path):
    clinic.public_outcomes = True
    clinic.save()
    out = tmp_path / "public"
    run("public", "--out", str(out))
    names = sorted(p.name for p in out.iterdir())
    assert names == ["first_mtp--hallux_rigidus.html", "first_mtp--hallux_rigidus.svg", "index.html", "static"]
    page = (out / "first_mtp--hallux_rigidus.html").read_text()
    assert 'href="static/app.css"' in page and "East Clinic" in page and "&lt;5" in page
    assert "first_mtp--hallux_rigidus.html" in (out / "index.html").read_text()
    run("public", "--out", str(out))  # again: updated in place
    (tmp_path / "file").write_text("x")
    with pytest.raises(CommandError) as exc:
        call_command("report", "public", "--out", str(tmp_path / "file"))
    assert exc.value.returncode == 2


def test_entry_point_exit_status_and_stderr(tmp_path):
    """The `orthoreg` command itself, as other tools run it: exit 2 and a message on stderr for bad values."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, ORTHOREG_DATA_DIR=str(tmp_path / "data"))
    env.pop("ORTHOREG_DATABASE_URL", None)
    run_cli = [sys.executable, "-m", "orthoreg"]
    subprocess.run([*run_cli, "migrate", "--verbosity", "0"], env=env, check=True, timeout=300)
    out = tmp_path / "bad.json"
    bad = subprocess.run([*run_cli, "report", "cohort", "--grade-min", "9", "--out", str(out)], env=env,
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2
    assert "--grade-min: Ensure this value is less than or equal to 4." in bad.stderr and bad.stdout == ""
    assert not out.exists()
    good = subprocess.run([*run_cli, "report", "cohort", "--format", "json"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["cohort"]["episodes"] == 0
