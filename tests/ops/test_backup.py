"""`orthoreg backup` and `orthoreg restore`: a round trip while two writers keep writing, damaged archives
refused, an existing registry never overwritten by accident; PostgreSQL through pg_dump/pg_restore."""

from __future__ import annotations

import io
import json
import sqlite3
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import pytest

from .conftest import cli_env, orthoreg

WRITER = r"""
import sys, django
from pathlib import Path
django.setup()
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from orthoreg.accounts.models import AuditEvent
from orthoreg.accounts.services import audit_record
from orthoreg.registry.models import Clinic

name, stop = sys.argv[1], Path(sys.argv[2])
i = 0
while not stop.exists():
    # As an upload does: the file is stored, then the row naming it is committed with its audit entry.
    path = default_storage.save(f"uploads/{name}-{i}.txt", ContentFile(f"{name} {i}".encode()))
    with transaction.atomic():
        clinic = Clinic.objects.create(code=f"{name}{i}", name=f"Clinic {name} {i}")
        audit_record(action=AuditEvent.Action.CREATE, obj=clinic, detail=path)
    i += 1
print(i)
"""


def _count(data_dir: Path, table: str) -> int:
    with sqlite3.connect(data_dir / "orthoreg.sqlite3", timeout=60) as db:
        return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def _restored_is_consistent(data_dir: Path) -> int:
    """Every clinic in the restored registry has its audit entry and its uploaded file, with its content."""
    with sqlite3.connect(data_dir / "orthoreg.sqlite3") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        clinics = dict(db.execute("SELECT id, code FROM registry_clinic"))
        entries = dict(db.execute("SELECT object_id, detail FROM accounts_auditevent "
                                  "WHERE object_type = 'clinic' AND action = 'create'"))
    assert {str(pk) for pk in clinics} == set(entries)
    for pk, code in clinics.items():
        writer, number = code[:1], code[1:]
        assert (data_dir / "media" / entries[str(pk)]).read_text() == f"{writer} {number}"
    return len(clinics)


def test_round_trip_while_two_writers_write(data_dir, tmp_path):
    stop = tmp_path / "stop"
    env = cli_env(data_dir, DJANGO_SETTINGS_MODULE="orthoreg.settings")
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, name, str(stop)], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for name in ("a", "b")]
    try:
        while _count(data_dir, "registry_clinic") < 10:
            assert all(w.poll() is None for w in writers), [w.stderr.read() for w in writers]
        archive = tmp_path / "backups" / "orthoreg.tar.gz"
        done = orthoreg("backup", str(archive), data_dir=data_dir)
        assert "Backed up the sqlite database" in done.stdout
        written_after_backup = _count(data_dir, "registry_clinic")
        while _count(data_dir, "registry_clinic") < written_after_backup + 5:
            assert all(w.poll() is None for w in writers), [w.stderr.read() for w in writers]
    finally:
        stop.touch()
        results = [w.communicate(timeout=120) for w in writers]
    assert [w.returncode for w in writers] == [0, 0], results
    total = sum(int(out) for out, _ in results)
    # Two processes appended to the chain at once and it did not fork.
    verified = orthoreg("audit", "verify", data_dir=data_dir)
    assert verified.returncode == 0 and f"verified {_count(data_dir, 'accounts_auditevent')} entries" in verified.stdout
    assert _count(data_dir, "registry_clinic") == total

    restored = tmp_path / "restored"
    result = orthoreg("restore", str(archive), data_dir=restored)
    assert "Restored" in result.stdout
    assert (restored / "secret_key").read_text() == (data_dir / "secret_key").read_text()
    clinics = _restored_is_consistent(restored)
    assert 10 <= clinics <= written_after_backup
    verified = orthoreg("audit", "verify", data_dir=restored)
    assert f"verified {_count(restored, 'accounts_auditevent')} entries" in verified.stdout


@pytest.fixture
def archive(data_dir, tmp_path) -> Path:
    (data_dir / "media" / "radiographs").mkdir(parents=True)
    (data_dir / "media" / "radiographs" / "toe.png").write_bytes(b"\x89PNG not really" * 100)
    orthoreg("clinic", "create", "east", "--name", "East Clinic", data_dir=data_dir)
    path = tmp_path / "orthoreg.tar.gz"
    orthoreg("backup", str(path), data_dir=data_dir)
    return path


def test_restore_refuses_to_overwrite_a_registry_unless_forced(archive, data_dir):
    refused = orthoreg("restore", str(archive), data_dir=data_dir, check=False)
    assert refused.returncode == 2
    assert "Not restoring over an existing registry" in refused.stderr and "--force" in refused.stderr
    orthoreg("clinic", "create", "west", "--name", "West Clinic", data_dir=data_dir)  # made after the backup
    forced = orthoreg("restore", str(archive), "--force", data_dir=data_dir)
    assert forced.returncode == 0
    with sqlite3.connect(data_dir / "orthoreg.sqlite3") as db:
        assert [row[0] for row in db.execute("SELECT code FROM registry_clinic")] == ["east"]
    assert (data_dir / "media" / "radiographs" / "toe.png").read_bytes() == b"\x89PNG not really" * 100
    assert orthoreg("audit", "verify", data_dir=data_dir).returncode == 0


def _rewrite(archive: Path, target: Path, change) -> None:
    """Copy an archive member by member, letting `change(name, data)` alter a member (the manifest stays)."""
    with tarfile.open(archive) as source, tarfile.open(target, "w:gz") as out:
        for member in source:
            data = change(member.name, source.extractfile(member).read())
            if data is None:
                continue
            member.size = len(data)
            out.addfile(member, io.BytesIO(data))


@pytest.mark.parametrize(("damage", "message"), [
    ("flip", "is damaged"),
    ("truncate", "is damaged"),
    ("altered_member", "is damaged: media/radiographs/toe.png does not match its checksum"),
    ("missing_member", "file(s) of its manifest are missing"),
    ("extra_member", "which its manifest does not list"),
    ("not_ours", "is not an orthoreg backup"),
])
def test_a_damaged_archive_is_refused_and_nothing_is_touched(archive, tmp_path, damage, message):
    damaged = tmp_path / "damaged.tar.gz"
    raw = archive.read_bytes()
    if damage == "flip":
        middle = len(raw) // 2
        damaged.write_bytes(raw[:middle] + bytes([raw[middle] ^ 0xFF]) + raw[middle + 1:])
    elif damage == "truncate":
        damaged.write_bytes(raw[: len(raw) * 2 // 3])
    elif damage == "altered_member":
        _rewrite(archive, damaged, lambda name, data: data.replace(b"really", b"REALLY") if "toe" in name else data)
    elif damage == "missing_member":
        _rewrite(archive, damaged, lambda name, data: None if "toe" in name else data)
    elif damage == "extra_member":
        def add(name, data):
            return data
        _rewrite(archive, damaged, add)
        with tarfile.open(damaged, "r:gz") as tar:
            members = [(m, tar.extractfile(m).read()) for m in tar]
        with tarfile.open(damaged, "w:gz") as tar:
            for member, data in members:
                tar.addfile(member, io.BytesIO(data))
            extra = tarfile.TarInfo("../../etc/cron.d/evil")
            extra.size = 4
            tar.addfile(extra, io.BytesIO(b"evil"))
    else:
        _rewrite(archive, damaged, lambda name, data: json.dumps({"format": "something"}).encode()
                 if name == "manifest.json" else data)
    target = tmp_path / "empty"
    result = orthoreg("restore", str(damaged), data_dir=target, check=False)
    assert result.returncode == 2, result
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not (target / "orthoreg.sqlite3").exists() and not (target / "media").exists()
    checked = orthoreg("restore", "--check", str(archive), data_dir=target)
    assert "every checksum matches" in checked.stdout


def test_backup_into_a_directory_is_refused(data_dir, tmp_path):
    result = orthoreg("backup", str(tmp_path), data_dir=data_dir, check=False)
    assert result.returncode == 2 and "is a directory" in result.stderr


@pytest.mark.django_db(transaction=True)
def test_postgresql_round_trip_with_pg_dump_while_writing(tmp_path, settings, clinic):
    from django.core.management import call_command
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("runs on the PostgreSQL test run (ORTHOREG_DATABASE_URL=postgresql://...)")
    from orthoreg.accounts.models import AuditEvent
    from orthoreg.accounts.services import audit_record

    settings.MEDIA_ROOT = tmp_path / "media"
    (tmp_path / "media" / "uploads").mkdir(parents=True)
    (tmp_path / "media" / "uploads" / "note.txt").write_text("kept")
    stop, errors = threading.Event(), []

    def writer():
        try:
            while not stop.is_set():
                audit_record(action=AuditEvent.Action.VIEW, detail="written during the backup")
        except Exception as error:
            errors.append(error)
        finally:
            connection.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while AuditEvent.objects.count() < 20:
            pass
        archive = tmp_path / "pg.tar.gz"
        call_command("backup", str(archive))
    finally:
        stop.set()
        thread.join()
    assert not errors

    db = settings.DATABASES["default"]
    restored_name = f"{db['NAME']}_restored"
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{restored_name}"')
        cursor.execute(f'CREATE DATABASE "{restored_name}"')
    try:
        url = f"postgresql://{db['USER']}@{db['HOST']}:{db['PORT'] or 5432}/{restored_name}"
        env = cli_env(tmp_path / "restored", ORTHOREG_DATABASE_URL=url)
        restore = subprocess.run([sys.executable, "-m", "orthoreg", "restore", str(archive)], env=env,
                                 capture_output=True, text=True, timeout=300)
        assert restore.returncode == 0, restore.stderr
        assert (tmp_path / "restored" / "media" / "uploads" / "note.txt").read_text() == "kept"
        again = subprocess.run([sys.executable, "-m", "orthoreg", "restore", str(archive)], env=env,
                               capture_output=True, text=True, timeout=300)
        assert again.returncode == 2 and "Not restoring over an existing registry" in again.stderr
        verify = subprocess.run([sys.executable, "-m", "orthoreg", "audit", "verify"], env=env,
                                capture_output=True, text=True, timeout=300)
        assert verify.returncode == 0, verify.stderr
        assert "verified" in verify.stdout
        status = subprocess.run([sys.executable, "-m", "orthoreg", "audit", "status"], env=env,
                                capture_output=True, text=True, timeout=300)
        assert "in place" in status.stdout  # the triggers came back with the dump
    finally:
        from django.db import connections

        connections.close_all()
        with connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{restored_name}" WITH (FORCE)')
