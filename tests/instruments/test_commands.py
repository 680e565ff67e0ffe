"""The command line: orthoreg instruments list / show, orthoreg score."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError


def run(*args):
    call_command(*args)


def test_list(capsys):
    run("instruments", "list")
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["code", "version", "items", "scores", "item", "text", "sendable"]
    assert "faos" in out and "licensed text not installed" in out and "text shipped" in out


def test_list_json(capsys):
    run("instruments", "list", "--json")
    data = {d["code"]: d for d in json.loads(capsys.readouterr().out)}
    assert data["nprs"]["sendable"] is True and data["koos"]["text_status"] == "not installed"


def test_show(capsys):
    run("instruments", "show", "faam-adl")
    out = capsys.readouterr().out
    assert "adl (primary): Activities of daily living, 0 to 100, higher is better; MCID 8" in out
    assert "at least 19 of its 21 items answered" in out
    assert "21. [ADL21] Item 21 (licensed text not installed)" in out


def test_show_json_is_the_questionnaire(capsys):
    run("instruments", "show", "nprs", "--json")
    assert json.loads(capsys.readouterr().out)["resourceType"] == "Questionnaire"


def test_show_unknown():
    with pytest.raises(CommandError, match="Unknown instrument 'nope'") as info:
        run("instruments", "show", "nope")
    assert info.value.returncode == 2


def test_score_prints_json(capsys):
    run("score", "nprs", "--answers", "[3]")
    data = json.loads(capsys.readouterr().out)
    assert data["valid"] is True and data["scores"] == {"pain": 3.0} and data["primary"] == 3.0


def test_score_refuses_a_fraction_on_the_11_point_nprs(capsys):
    with pytest.raises(CommandError) as info:
        run("score", "nprs", "--answers", "[7.5]")
    assert info.value.returncode == 2
    assert "item 1: 7.5 is not a whole number: expected a whole number from 0 to 10" in str(info.value)


def test_score_from_file(tmp_path, capsys):
    path = tmp_path / "answers.json"
    path.write_text(json.dumps([4] * 10 + [3] * 5 + [2] * 4 + [None] * 2))
    run("score", "faam-adl", "--answers", f"@{path}")
    assert json.loads(capsys.readouterr().out)["scores"] == {"adl": 82.89}


def test_score_invalid_answer_exits_2_with_item_and_reason(capsys):
    with pytest.raises(CommandError) as info:
        run("score", "lefs", "--answers", json.dumps([4] * 19 + [7]))
    assert info.value.returncode == 2
    assert "item 20: 7 is not an answer to this item" in str(info.value)
    assert json.loads(capsys.readouterr().out)["valid"] is False


@pytest.mark.parametrize("args,message", [
    (("nope", "--answers", "[1]"), "Unknown instrument 'nope'"),
    (("nprs", "--answers", "[1"), "not valid JSON"),
    (("nprs", "--answers", '{"a": 1}'), "expected a JSON list"),
    (("nprs", "--answers", "@/no/such/file.json"), "no such file"),
])
def test_score_bad_input_exits_2(args, message):
    with pytest.raises(CommandError, match=message) as info:
        run("score", *args)
    assert info.value.returncode == 2


def test_score_valid_answers_without_a_score_exit_1(capsys):
    with pytest.raises(CommandError, match="0 of 21 items answered") as info:
        run("score", "faam-adl", "--answers", json.dumps([None] * 21))
    assert info.value.returncode == 1
    assert json.loads(capsys.readouterr().out)["valid"] is False


def test_orthoreg_entry_point_exit_codes(tmp_path):
    env = {**os.environ, "ORTHOREG_DATA_DIR": str(tmp_path)}
    ok = subprocess.run([sys.executable, "-m", "orthoreg", "score", "nprs", "--answers", "[7]"],
                        capture_output=True, text=True, env=env, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["scores"] == {"pain": 7.0}
    bad = subprocess.run([sys.executable, "-m", "orthoreg", "score", "nprs", "--answers", "[11]"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2
    assert "item 1: 11 is out of range" in bad.stderr
