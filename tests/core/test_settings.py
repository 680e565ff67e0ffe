"""Settings read from the environment: the secret key kept in the data directory."""
import os
import subprocess
import sys

from orthoreg.settings import database_from_url

PRINT_KEY = "from orthoreg import settings; print(settings.SECRET_KEY)"


def _env(data_dir, **extra):
    env = {k: v for k, v in os.environ.items() if k != "ORTHOREG_SECRET_KEY"}
    return {**env, "ORTHOREG_DATA_DIR": str(data_dir), **extra}


def test_processes_starting_together_on_a_fresh_data_dir_share_one_key(tmp_path):
    # Two workers started at once on a new data directory once raced to create the key file.
    procs = [subprocess.Popen([sys.executable, "-c", PRINT_KEY], env=_env(tmp_path), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(8)]
    results = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), results
    keys = {out.strip() for out, _ in results}
    assert len(keys) == 1
    key = keys.pop()
    assert len(key) >= 50
    assert (tmp_path / "secret_key").read_text().strip() == key
    assert oct((tmp_path / "secret_key").stat().st_mode & 0o777) == "0o600"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret_key"]  # no temporary files left behind


def test_key_from_the_environment_wins_and_writes_nothing(tmp_path):
    out = subprocess.run([sys.executable, "-c", PRINT_KEY], env=_env(tmp_path, ORTHOREG_SECRET_KEY="k" * 60),
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "k" * 60
    assert not (tmp_path / "secret_key").exists()


def test_database_url_forms(tmp_path):
    assert database_from_url(None, tmp_path)["NAME"] == str(tmp_path / "orthoreg.sqlite3")
    pg = database_from_url("postgresql://u:p@db.example:6543/reg", tmp_path)
    assert (pg["ENGINE"], pg["NAME"], pg["USER"], pg["PASSWORD"], pg["HOST"], pg["PORT"]) == (
        "django.db.backends.postgresql", "reg", "u", "p", "db.example", "6543")


def test_numeric_variables_name_themselves_when_wrong(monkeypatch):
    import pytest
    from django.core.exceptions import ImproperlyConfigured

    from orthoreg.settings import env_number

    monkeypatch.setenv("ORTHOREG_JSW_SEM_MM", "0,3")
    with pytest.raises(ImproperlyConfigured, match=r"ORTHOREG_JSW_SEM_MM='0,3': expected a number"):
        env_number("ORTHOREG_JSW_SEM_MM", None, float, minimum=0.01)
    monkeypatch.setenv("ORTHOREG_MAX_UPLOAD_MB", "0")
    with pytest.raises(ImproperlyConfigured, match="ORTHOREG_MAX_UPLOAD_MB='0': expected a whole number of at least 1"):
        env_number("ORTHOREG_MAX_UPLOAD_MB", 50, minimum=1)
    monkeypatch.setenv("ORTHOREG_IMAGING_MAX_PIXELS", "60_000_000")
    assert env_number("ORTHOREG_IMAGING_MAX_PIXELS", 1, minimum=1) == 60_000_000
    monkeypatch.delenv("ORTHOREG_JSW_SEM_MM")
    assert env_number("ORTHOREG_JSW_SEM_MM", None, float) is None


def test_a_bad_number_stops_start_up_with_a_sentence(tmp_path):
    done = subprocess.run([sys.executable, "-m", "orthoreg", "check"], capture_output=True, text=True,
                          env=_env(tmp_path, ORTHOREG_LOGIN_FAILURE_LIMIT="five"))
    assert done.returncode != 0
    assert "ORTHOREG_LOGIN_FAILURE_LIMIT='five': expected a whole number" in done.stderr
