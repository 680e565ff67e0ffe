"""The patient search's full-text index on SQLite (issue 17 item 1): an FTS5 table with the trigram tokenizer over
the searched columns, kept in step with registry_patient by triggers.

On PostgreSQL the search's `icontains` is answered by trigram indexes (migration 0004); SQLite has no such index,
so there `LIKE '%word%'` read every patient of the user's clinics. Here, for a word of 3 characters or more, the
index gives the candidate patients (FTS5's trigram tokenizer matches any substring of 3 characters or more, its
case folding a superset of LIKE's ASCII one, no diacritics removed), and the search's own conditions are still
applied to them: the results are exactly those of the plain LIKE filter, only found through the index. Shorter
words keep the plain filter.

A migration that rebuilds registry_patient on SQLite (Django copies the table to change a column) drops its
triggers with it: `ensure` runs after every `migrate` (apps.py, post_migrate) and puts back whatever is missing,
rebuilding the index from the table when it does.
"""

from __future__ import annotations

from django.db import connections
from django.db.models import Q
from django.db.models.expressions import RawSQL

TABLE = "registry_patient_fts"
COLUMNS = ("given_name", "family_name", "mrn", "email", "initials")
TRIGGERS = {f"{TABLE}_ai", f"{TABLE}_ad", f"{TABLE}_au"}
MIN_CHARS = 3  # the trigram tokenizer matches nothing shorter


def _values(prefix: str) -> str:
    return ", ".join(f"{prefix}.{c}" for c in COLUMNS)


def _sql() -> list[str]:
    cols = ", ".join(COLUMNS)
    return [
        f"CREATE VIRTUAL TABLE IF NOT EXISTS {TABLE} USING fts5({cols}, content='registry_patient', "
        "content_rowid='id', tokenize='trigram')",
        f"CREATE TRIGGER IF NOT EXISTS {TABLE}_ai AFTER INSERT ON registry_patient BEGIN "
        f"INSERT INTO {TABLE}(rowid, {cols}) VALUES (new.id, {_values('new')}); END",
        f"CREATE TRIGGER IF NOT EXISTS {TABLE}_ad AFTER DELETE ON registry_patient BEGIN "
        f"INSERT INTO {TABLE}({TABLE}, rowid, {cols}) VALUES ('delete', old.id, {_values('old')}); END",
        f"CREATE TRIGGER IF NOT EXISTS {TABLE}_au AFTER UPDATE OF {cols} ON registry_patient BEGIN "
        f"INSERT INTO {TABLE}({TABLE}, rowid, {cols}) VALUES ('delete', old.id, {_values('old')}); "
        f"INSERT INTO {TABLE}(rowid, {cols}) VALUES (new.id, {_values('new')}); END",
    ]


def supported(connection) -> bool:
    """SQLite with FTS5 and its trigram tokenizer (SQLite 3.34 or later)."""
    if connection.vendor != "sqlite":
        return False
    import sqlite3

    return sqlite3.sqlite_version_info >= (3, 34, 0)


def ensure(connection) -> bool:
    """Create the index and its triggers where missing (rebuilding the index from the table then); True when the
    index is in place. Nothing on PostgreSQL."""
    if not supported(connection):
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'trigger') AND name LIKE %s",
                       [f"{TABLE}%"])
        present = {row[0] for row in cursor.fetchall()}
        if "registry_patient" not in {t.name for t in connection.introspection.get_table_list(cursor)}:
            return False
        connection._orthoreg_fts = None
        if TABLE in present and TRIGGERS <= present:
            return True
        for statement in _sql():
            cursor.execute(statement)
        cursor.execute(f"INSERT INTO {TABLE}({TABLE}) VALUES ('rebuild')")
    return True


def drop(connection) -> None:
    if connection.vendor != "sqlite":
        return
    connection._orthoreg_fts = None
    with connection.cursor() as cursor:
        for trigger in sorted(TRIGGERS):
            cursor.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        cursor.execute(f"DROP TABLE IF EXISTS {TABLE}")


def usable(alias: str) -> bool:
    connection = connections[alias]
    if not supported(connection):
        return False
    ready = getattr(connection, "_orthoreg_fts", None)  # looked up once per connection
    if ready is None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM sqlite_master WHERE name IN (%s, %s, %s, %s)",
                           [TABLE, *sorted(TRIGGERS)])
            ready = cursor.fetchone()[0] == 4
        setattr(connection, "_orthoreg_fts", ready)  # noqa: B010  (an attribute of our own on the wrapper)
    return ready


def phrase(word: str) -> str:
    """An FTS5 query for the word as one phrase, whatever its characters (quotes doubled)."""
    return '"' + word.replace('"', '""') + '"'


def candidates(word: str) -> Q:
    """Patients whose searched columns contain `word` as FTS5 finds them (a superset of the LIKE matches)."""
    return Q(pk__in=RawSQL(f"SELECT rowid FROM {TABLE} WHERE {TABLE} MATCH %s", (phrase(word),)))
