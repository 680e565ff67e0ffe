"""`orthoreg imaging measure|info|phantom`: JSON out, exit status 2 with a message on bad input."""

import json
import os
import subprocess
import sys

import pytest
from django.core.management import CommandError, call_command

from orthoreg.imaging import phantoms


def _run(*args, tmp_path):
    env = {**os.environ, "ORTHOREG_DATA_DIR": str(tmp_path / "data")}
    return subprocess.run([sys.executable, "-m", "orthoreg", "imaging", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def _line(phantom):
    return ",".join(f"{v:.2f}" for v in phantom.line)


def test_measure_a_dicom_prints_json_in_mm(tmp_path, small_phantom, dicom_bytes):
    path = tmp_path / "knee.dcm"
    path.write_bytes(dicom_bytes)
    done = _run("measure", str(path), "--line", _line(small_phantom), tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert {"medial", "central", "lateral", "minimum", "unit", "widths", "profiles"} <= set(out)
    assert out["unit"] == "mm" and out["calibration"] == "dicom_imager" and out["spacing_mm"] == [0.1, 0.1]
    assert out["minimum"] == pytest.approx(1.0, abs=0.1)
    assert out["medial"] < out["central"] < out["lateral"]
    assert len(out["widths"]) == out["count"]


def test_unreadable_file_exits_2_with_a_message(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not an image")
    done = _run("measure", str(path), "--line", "1,2,3,4", tmp_path=tmp_path)
    assert done.returncode == 2
    assert "not a DICOM, PNG or JPEG" in done.stderr and done.stdout == ""


def test_missing_file_and_bad_line_exit_2(tmp_path):
    assert _run("measure", str(tmp_path / "nothing.dcm"), "--line", "1,2,3,4", tmp_path=tmp_path).returncode == 2
    with pytest.raises(CommandError) as info:
        call_command("imaging", "measure", str(tmp_path / "x.dcm"), "--line=1,2,three,4")
    assert info.value.returncode == 2 and "four numbers" in str(info.value)


def test_png_is_in_pixels_unless_a_spacing_is_given(tmp_path, small_phantom, capsys):
    path = tmp_path / "foot.png"
    path.write_bytes(small_phantom.to_png())
    call_command("imaging", "measure", str(path), f"--line={_line(small_phantom)}", "--compact")
    out = json.loads(capsys.readouterr().out)
    assert out["unit"] == "px" and out["spacing_mm"] is None
    assert out["minimum"] == pytest.approx(10, abs=1)
    call_command("imaging", "measure", str(path), f"--line={_line(small_phantom)}", "--spacing=0.1")
    out = json.loads(capsys.readouterr().out)
    assert out["unit"] == "mm" and out["minimum"] == pytest.approx(1.0, abs=0.1)


@pytest.mark.parametrize("options, message", [
    (["--spacing=zero"], "number of mm"), (["--spacing=0"], "positive"), (["--spacing=30"], "believable"),
    (["--search=wide"], "pixels"), (["--line=0,0,5000,5000"], "outside"),
])
def test_bad_options_exit_2(tmp_path, small_phantom, options, message):
    path = tmp_path / "foot.png"
    path.write_bytes(small_phantom.to_png())
    line = [o for o in options if o.startswith("--line")] or [f"--line={_line(small_phantom)}"]
    rest = [o for o in options if not o.startswith("--line")]
    with pytest.raises(CommandError, match=message) as info:
        call_command("imaging", "measure", str(path), *line, *rest)
    assert info.value.returncode == 2


def test_fused_phantom_prints_nulls(tmp_path, capsys):
    phantom = phantoms.make_phantom(fused=True, supersample=2)
    path = tmp_path / "fused.dcm"
    path.write_bytes(phantom.to_dicom())
    call_command("imaging", "measure", str(path), f"--line={_line(phantom)}")
    out = json.loads(capsys.readouterr().out)
    assert [out[k] for k in ("medial", "central", "lateral", "minimum")] == [None] * 4


def test_info_and_phantom(tmp_path, capsys):
    target = tmp_path / "made.dcm"
    call_command("imaging", "phantom", str(target), "--gap-medial=0.7", "--rotation=12", "--bits=16")
    made = json.loads(capsys.readouterr().out)
    call_command("imaging", "info", str(target))
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "dicom" and info["bits"] == 16 and info["spacing_mm"] == [0.1, 0.1]
    call_command("imaging", "measure", str(target), f"--line={made['line']}")
    assert json.loads(capsys.readouterr().out)["minimum"] == pytest.approx(0.7, abs=0.1)
    with pytest.raises(CommandError) as error:
        call_command("imaging", "phantom", str(tmp_path / "x.png"), "--size=tiny")
    assert error.value.returncode == 2
