"""The audit log's hash chain and its guard in the database.

Every entry carries `prev_hash` (the `hash` of the entry before it, "" for the first) and `hash`, an
HMAC-SHA-256 over a canonical serialisation of its content including `prev_hash`. The key is derived from the
secret key, which lives on the application's disk, not in the database: a database superuser who drops the
triggers and edits, deletes or inserts a row cannot compute a valid hash, and `verify` names the first entry
where the chain breaks.

Appends are serialised so two writers never fork the chain: on PostgreSQL a transaction-scoped advisory lock
(which needs no UPDATE privilege on the table); on SQLite the write transaction itself (orthoreg opens every
transaction with BEGIN IMMEDIATE, which takes the database's single write lock before the last hash is read).

The triggers installed by migration 0004 refuse UPDATE, DELETE (and on PostgreSQL TRUNCATE) of audit rows.
`maintenance()` lifts them for one connection: only the test suite's database flush uses it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import ipaddress
import json
from dataclasses import dataclass

from django.conf import settings
from django.db import connections, transaction

TABLE = "accounts_auditevent"
GENESIS = ""
# Arbitrary constant identifying the audit chain's advisory lock (PostgreSQL locks are per database).
ADVISORY_LOCK_KEY = 0x6F72_7468_6175_6474 & 0x7FFF_FFFF_FFFF_FFFF
SQLITE_BYPASS_FUNCTION = "orthoreg_audit_maintenance"
PG_BYPASS_SETTING = "orthoreg.audit_maintenance"


def _key() -> bytes:
    return hashlib.sha256(b"orthoreg audit chain\x00" + settings.SECRET_KEY.encode()).digest()


def _ip(value) -> str | None:
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(str(value).strip()))
    except ValueError:
        return str(value)


def _at(value: dt.datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


def canonical(*, prev_hash: str, at, user_id, username, ip_address, action, patient_id, object_type, object_id,
              detail) -> bytes:
    """The bytes an entry's hash is computed over: its content in a fixed order, as compact JSON."""
    return json.dumps(
        ["orthoreg-audit-1", prev_hash or GENESIS, _at(at), user_id, username or "", _ip(ip_address), action,
         patient_id, object_type or "", object_id or "", detail or ""],
        ensure_ascii=False, separators=(",", ":")).encode()


def entry_hash(prev_hash: str, **content) -> str:
    return hmac.new(_key(), canonical(prev_hash=prev_hash, **content), hashlib.sha256).hexdigest()


def _content(entry) -> dict:
    return {"at": entry.at, "user_id": entry.user_id, "username": entry.username, "ip_address": entry.ip_address,
            "action": entry.action, "patient_id": entry.patient_id, "object_type": entry.object_type,
            "object_id": entry.object_id, "detail": entry.detail}


def lock_and_last_hash(using: str) -> str:
    """Inside the caller's transaction: take the chain's lock and return the hash of the last entry."""
    connection = connections[using]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ADVISORY_LOCK_KEY])
        cursor.execute(f"SELECT hash FROM {TABLE} ORDER BY id DESC LIMIT 1")
        row = cursor.fetchone()
    return row[0] if row else GENESIS


def link(entries, prev_hash: str) -> str:
    """Give each new entry its prev_hash and hash, in order; return the hash of the last one."""
    for entry in entries:
        entry.prev_hash = prev_hash
        entry.hash = entry_hash(prev_hash, **_content(entry))
        prev_hash = entry.hash
    return prev_hash


def append(entries, insert, using: str):
    """Chain `entries` after the last stored entry and run `insert()` (which writes them) under the chain lock,
    in one transaction."""
    with transaction.atomic(using=using):
        link(entries, lock_and_last_hash(using))
        return insert()


@dataclass
class Verdict:
    count: int
    head: str
    broken_id: int | None = None
    problem: str = ""

    @property
    def intact(self) -> bool:
        return self.broken_id is None


def verify(using: str = "default", rows=None) -> Verdict:
    """Walk the log in id order; the first entry whose link or hash does not match breaks the chain."""
    from .models import AuditEvent  # models imports this module (every insert joins the chain)

    if rows is None:
        rows = AuditEvent.objects.using(using).order_by("id").iterator(chunk_size=2000)
    prev, count = GENESIS, 0
    for entry in rows:
        if entry.prev_hash != prev:
            where = "the first entry" if count == 0 else f"entry #{entry.pk}"
            return Verdict(count, prev, entry.pk,
                           f"{where} does not follow the entry before it: an entry before it was deleted, or one "
                           "was inserted or altered")
        if not hmac.compare_digest(entry.hash, entry_hash(prev, **_content(entry))):
            return Verdict(count, prev, entry.pk,
                           "its content does not match its hash: it was altered or inserted outside orthoreg (or the "
                           "secret key is not the one the log was written with)")
        prev, count = entry.hash, count + 1
    return Verdict(count, prev)


def chain_existing(apps, using: str) -> int:
    """For the migration: chain the entries that exist, in id order. Returns how many were chained."""
    AuditEvent = apps.get_model("accounts", "AuditEvent")
    prev, count, batch = GENESIS, 0, []
    for entry in AuditEvent.objects.using(using).order_by("id").iterator(chunk_size=2000):
        prev = link([entry], prev)
        batch.append(entry)
        count += 1
        if len(batch) >= 1000:
            AuditEvent.objects.using(using).bulk_update(batch, ["prev_hash", "hash"])
            batch = []
    AuditEvent.objects.using(using).bulk_update(batch, ["prev_hash", "hash"])
    return count


# --- the guard in the database --------------------------------------------------------------------------------

SQLITE_TRIGGERS = [
    f"""CREATE TRIGGER IF NOT EXISTS {TABLE}_no_update BEFORE UPDATE ON {TABLE}
        WHEN {SQLITE_BYPASS_FUNCTION}() IS NOT 1
        BEGIN SELECT RAISE(ABORT, 'The audit log is append-only: UPDATE refused'); END""",
    f"""CREATE TRIGGER IF NOT EXISTS {TABLE}_no_delete BEFORE DELETE ON {TABLE}
        WHEN {SQLITE_BYPASS_FUNCTION}() IS NOT 1
        BEGIN SELECT RAISE(ABORT, 'The audit log is append-only: DELETE refused'); END""",
]
SQLITE_DROP = [f"DROP TRIGGER IF EXISTS {TABLE}_no_update", f"DROP TRIGGER IF EXISTS {TABLE}_no_delete"]

PG_TRIGGERS = [
    f"""CREATE OR REPLACE FUNCTION orthoreg_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF coalesce(current_setting('{PG_BYPASS_SETTING}', true), '') = 'on' THEN
            RETURN NULL;
        END IF;
        RAISE EXCEPTION 'The audit log is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
    END $$""",
    f"DROP TRIGGER IF EXISTS {TABLE}_append_only ON {TABLE}",
    f"""CREATE TRIGGER {TABLE}_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON {TABLE}
        FOR EACH STATEMENT EXECUTE FUNCTION orthoreg_audit_append_only()""",
]
PG_DROP = [f"DROP TRIGGER IF EXISTS {TABLE}_append_only ON {TABLE}",
           "DROP FUNCTION IF EXISTS orthoreg_audit_append_only()"]


def install_guard(connection) -> None:
    statements = {"sqlite": SQLITE_TRIGGERS, "postgresql": PG_TRIGGERS}.get(connection.vendor, [])
    with connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)


def remove_guard(connection) -> None:
    statements = {"sqlite": SQLITE_DROP, "postgresql": PG_DROP}.get(connection.vendor, [])
    with connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)


def guard_installed(connection) -> bool:
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND tbl_name = %s", [TABLE])
            return cursor.fetchone()[0] == 2
        if connection.vendor == "postgresql":
            cursor.execute("SELECT count(*) FROM pg_trigger WHERE tgname = %s AND NOT tgisinternal",
                           [f"{TABLE}_append_only"])
            return cursor.fetchone()[0] == 1
    return False


def reinstall_guard_after_migrate(sender, using="default", **kwargs) -> None:
    """post_migrate: put the triggers back where they are missing. A later migration that alters the audit table
    rebuilds it on SQLite (new table, copy, drop the old one), and the old table's triggers go with it."""
    connection = connections[using]
    with connection.cursor() as cursor:
        if TABLE not in connection.introspection.table_names(cursor):
            return
        columns = {column.name for column in connection.introspection.get_table_description(cursor, TABLE)}
    if "hash" in columns and not guard_installed(connection):  # migration 0004 applied, triggers gone
        install_guard(connection)


def register_sqlite_function(sender, connection, **kwargs) -> None:
    """connection_created: the triggers ask this function whether this connection is in maintenance."""
    if connection.vendor == "sqlite":
        connection.connection.create_function(
            SQLITE_BYPASS_FUNCTION, 0, lambda: 1 if getattr(connection, "_orthoreg_audit_maintenance", False) else 0)


@contextlib.contextmanager
def maintenance(connection):
    """Let this one connection UPDATE/DELETE/TRUNCATE the audit table (the test suite's flush between tests).
    A role without those privileges stays refused whatever this says."""
    connection.ensure_connection()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config(%s, 'on', false)", [PG_BYPASS_SETTING])
    connection._orthoreg_audit_maintenance = True
    try:
        yield
    finally:
        connection._orthoreg_audit_maintenance = False
        if connection.vendor == "postgresql" and connection.connection is not None:
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config(%s, '', false)", [PG_BYPASS_SETTING])


def role_sql(role: str, database: str) -> str:
    """SQL for an application role on PostgreSQL that may insert and read audit entries but never change them."""
    from django.db.backends.postgresql.operations import DatabaseOperations

    quote = DatabaseOperations.quote_name
    r, db = quote(None, role), quote(None, database)
    return "\n".join([
        f"-- run as the owner of the tables (the role that runs `orthoreg migrate`); then connect as {role}",
        f"CREATE ROLE {r} LOGIN PASSWORD 'change-me';",
        f"GRANT CONNECT ON DATABASE {db} TO {r};",
        f"GRANT USAGE ON SCHEMA public TO {r};",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {r};",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {r};",
        f"REVOKE UPDATE, DELETE, TRUNCATE ON {TABLE} FROM {r};",
        "-- tables made by later migrations: grant them too (run by the role that runs migrate)",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {r};",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {r};",
        "",
    ])
