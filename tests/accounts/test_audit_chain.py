"""The audit log is append-only in the database (triggers) and tamper-evident (hash chain + `audit verify`)."""

from __future__ import annotations

import threading

import pytest
from django.core.exceptions import PermissionDenied
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, models, transaction

from orthoreg.accounts import auditchain
from orthoreg.accounts.models import AuditEvent
from orthoreg.accounts.services import audit_record

T = auditchain.TABLE


def _entries(n=5):
    return [audit_record(action=AuditEvent.Action.VIEW, detail=f"entry {i}") for i in range(n)]


def _verify() -> tuple[int, str]:
    from io import StringIO

    out = StringIO()
    try:
        call_command("audit", "verify", stdout=out)
    except CommandError as error:
        return error.returncode, str(error)
    return 0, out.getvalue()


def _refused(statement, params=()):
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(statement, params)


@pytest.mark.django_db
def test_orm_and_raw_sql_changes_are_refused_by_the_database():
    first = _entries(3)[0]
    with pytest.raises(PermissionDenied):
        AuditEvent.objects.update(detail="x")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.all()._raw_delete(AuditEvent.objects.db)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        models.QuerySet.update(AuditEvent.objects.filter(pk=first.pk), detail="rewritten")  # past the ORM guard
    _refused(f"UPDATE {T} SET detail = 'rewritten' WHERE id = %s", [first.pk])
    _refused(f"DELETE FROM {T} WHERE id = %s", [first.pk])
    _refused(f"DELETE FROM {T}")
    if connection.vendor == "postgresql":
        _refused(f"TRUNCATE {T}")
    assert AuditEvent.objects.count() == 3
    assert AuditEvent.objects.get(pk=first.pk).detail == "entry 0"
    assert auditchain.guard_installed(connection)


@pytest.mark.django_db
def test_verify_passes_an_intact_log():
    _entries(4)
    code, out = _verify()
    assert code == 0 and "verified 4 entries" in out, out
    entries = list(AuditEvent.objects.order_by("id"))
    assert entries[0].prev_hash == ""
    assert all(b.prev_hash == a.hash for a, b in zip(entries, entries[1:]))


@pytest.mark.django_db
def test_bulk_inserts_join_the_chain(patient, clinician):
    _entries(2)
    AuditEvent.objects.bulk_create([AuditEvent(action="view", patient_id=patient.pk, user=clinician,
                                               ip_address="::ffff:10.0.0.1", detail=f"bulk {i}") for i in range(3)])
    _entries(1)
    code, out = _verify()
    assert code == 0 and f"verified {AuditEvent.objects.count()} entries" in out


@pytest.fixture
def superuser_dropped_the_triggers(db):
    """A database superuser can drop the triggers (the test's transaction puts them back)."""
    auditchain.remove_guard(connection)
    assert not auditchain.guard_installed(connection)


def test_verify_names_an_altered_entry(superuser_dropped_the_triggers):
    entries = _entries(5)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {T} SET detail = 'nothing to see' WHERE id = %s", [entries[2].pk])
    code, message = _verify()
    assert code == 2
    assert f"entry #{entries[2].pk}" in message and "altered" in message and "2 entries before it verify" in message


def test_verify_names_the_entry_after_a_deleted_one(superuser_dropped_the_triggers):
    entries = _entries(5)
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {T} WHERE id = %s", [entries[1].pk])
    code, message = _verify()
    assert code == 2 and f"entry #{entries[2].pk}" in message and "deleted" in message


def test_verify_notices_the_first_entries_deleted(superuser_dropped_the_triggers):
    entries = _entries(3)
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {T} WHERE id = %s", [entries[0].pk])
    code, message = _verify()
    assert code == 2 and f"entry #{entries[1].pk}" in message


def test_verify_names_an_inserted_entry_even_with_a_recomputed_plain_hash(superuser_dropped_the_triggers):
    """The forger links the row to the one before it and recomputes a SHA-256: without the key it cannot match."""
    import hashlib

    entries = _entries(3)
    forged = AuditEvent(action="view", detail="forged", prev_hash=entries[0].hash)
    forged.hash = hashlib.sha256(auditchain.canonical(prev_hash=entries[0].hash, **auditchain._content(forged))
                                 ).hexdigest()
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {T} (at, username, action, object_type, object_id, detail, prev_hash, hash) "
                       f"VALUES (%s, '', 'view', '', '', 'forged', %s, %s)", [forged.at, forged.prev_hash, forged.hash])
    forged_id = AuditEvent.objects.get(detail="forged").pk
    code, message = _verify()
    assert code == 2 and f"entry #{forged_id}" in message


def test_verify_head_detects_entries_cut_from_the_end(superuser_dropped_the_triggers):
    entries = _entries(4)
    head = entries[-1].hash
    call_command("audit", "verify", "--head", head)
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {T} WHERE id >= %s", [entries[2].pk])
    assert _verify()[0] == 0  # a shorter chain is still a chain
    with pytest.raises(CommandError, match="not in the chain") as error:
        call_command("audit", "verify", "--head", head)
    assert error.value.returncode == 2


@pytest.mark.django_db
def test_the_migration_chains_entries_written_before_it():
    _entries(3)
    with auditchain.maintenance(connection), connection.cursor() as cursor:
        cursor.execute(f"UPDATE {T} SET prev_hash = '', hash = ''")
    assert _verify()[0] == 2
    from django.db.migrations.loader import MigrationLoader

    migration_apps = MigrationLoader(connection).project_state(("accounts", "0004_audit_hash_chain_append_only")).apps
    with auditchain.maintenance(connection):
        assert auditchain.chain_existing(migration_apps, "default") == AuditEvent.objects.count()
    assert "verified 3 entries" in _verify()[1]


@pytest.mark.django_db
def test_status_reports_the_guard():
    call_command("audit", "status")
    auditchain.remove_guard(connection)
    with pytest.raises(CommandError, match="missing"):
        call_command("audit", "status")


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_do_not_fork_the_chain():
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        pytest.skip("an in-memory test database has no file locking; tests/ops/test_backup.py runs parallel "
                    "writers against a SQLite file")
    start = threading.Barrier(4)
    errors = []

    def writer(n):
        try:
            start.wait()
            for i in range(25):
                audit_record(action=AuditEvent.Action.VIEW, detail=f"writer {n} #{i}")
        except Exception as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    code, out = _verify()
    assert code == 0 and "verified 100 entries" in out


@pytest.mark.django_db
def test_role_sql_makes_a_role_that_cannot_change_the_log():
    if connection.vendor != "postgresql":
        pytest.skip("roles are a PostgreSQL feature")
    from io import StringIO

    out = StringIO()
    call_command("audit", "role-sql", "orthoreg_p6_app_test", stdout=out)
    entry = _entries(1)[0]
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = 'orthoreg_p6_app_test'")
        if cursor.fetchone() is not None:  # left by an earlier run (roles outlive test databases)
            cursor.execute("DROP OWNED BY orthoreg_p6_app_test; DROP ROLE orthoreg_p6_app_test")
        cursor.execute(out.getvalue())
        cursor.execute("SET LOCAL ROLE orthoreg_p6_app_test")
        with auditchain.maintenance(connection):  # the bypass does not help a role without the privilege
            for statement in (f"UPDATE {T} SET detail = 'x'", f"DELETE FROM {T}", f"TRUNCATE {T}"):
                with pytest.raises(DatabaseError, match="permission denied"), transaction.atomic():
                    cursor.execute(statement)
        audit_record(action=AuditEvent.Action.VIEW, detail="written by the restricted role")
        cursor.execute("RESET ROLE")
    assert AuditEvent.objects.filter(pk=entry.pk).exists()
    assert "verified 2 entries" in _verify()[1]
