"""Migration 0004 chains the audit entries written before it and installs the triggers; other SQLite clients
cannot change audit rows either."""

from __future__ import annotations

import sqlite3

import pytest

from .conftest import orthoreg


def test_migration_chains_existing_entries_and_guards_the_table(data_dir):
    orthoreg("migrate", "accounts", "0003", "--verbosity", "0", data_dir=data_dir)
    database = data_dir / "orthoreg.sqlite3"
    with sqlite3.connect(database) as db:
        db.executemany("INSERT INTO accounts_auditevent (at, username, action, object_type, object_id, detail) "
                       "VALUES (?, 'doc', 'view', 'patient', ?, 'before the chain')",
                       [(f"2026-0{month}-01 10:00:00.{month:06d}", str(month)) for month in range(1, 8)])
    orthoreg("migrate", "--verbosity", "0", data_dir=data_dir)
    verified = orthoreg("audit", "verify", data_dir=data_dir)
    assert "verified 7 entries" in verified.stdout
    assert "in place" in orthoreg("audit", "status", data_dir=data_dir).stdout
    with sqlite3.connect(database) as db:  # a client that is not orthoreg, e.g. the sqlite3 shell
        for statement in ("UPDATE accounts_auditevent SET detail = 'x'", "DELETE FROM accounts_auditevent"):
            with pytest.raises(sqlite3.OperationalError, match="orthoreg_audit_maintenance"):
                db.execute(statement)
        db.execute("DROP TRIGGER accounts_auditevent_no_update")  # the file's owner can do anything ...
        db.execute("UPDATE accounts_auditevent SET detail = 'x' WHERE id = 3")
    broken = orthoreg("audit", "verify", data_dir=data_dir, check=False)
    assert broken.returncode == 2 and "entry #3" in broken.stderr  # ... and it shows
    status = orthoreg("audit", "status", data_dir=data_dir, check=False)
    assert status.returncode == 2 and "MISSING" in status.stdout
    orthoreg("migrate", "--verbosity", "0", data_dir=data_dir)  # puts missing triggers back
    assert "in place" in orthoreg("audit", "status", data_dir=data_dir).stdout
