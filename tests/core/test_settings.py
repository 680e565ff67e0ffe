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
