"""Reads on a PostgreSQL streaming replica (ORTHOREG_REPLICA_URL), writes on the primary.

With ORTHOREG_REPLICA_URL set (and a PostgreSQL primary) settings.py adds the database alias `replica`, this
module's `Router` and `ReplicaMiddleware`. Nothing is read on the replica unless the code says so: read-only work
runs inside `reading_from_replica()` (the cohort and options reports and their PDF/JSON downloads, the case and
public pages, the `report` and `export` commands, the API's GET operations); everything else (ordinary pages,
every write, every transaction) stays on the primary. Inside it:

- a unit of work (one request: ReplicaMiddleware; otherwise the outermost `reading_from_replica()`) that has
  written reads from the primary from then on (read your own writes): any write statement on the primary, any
  request that is not GET/HEAD/OPTIONS, and, for a few seconds after such a request
  (ORTHOREG_REPLICA_STICKY_SECONDS, default 10, a cookie), the next requests of the same browser too: a POST
  that redirects to a report reads its own write;
- reads inside a transaction on the primary stay on the primary;
- `primary()` forces the primary for a block: the analytics facts refresh (facts.ensure_current/refresh) runs
  under it, so a report never writes to, nor decides what to refresh from, the replica (which is read-only).

`source()` says where a report was read and how far the replica is behind (`read_from`, `replica_lag_seconds`):
every report page, PDF and JSON shows it.

Without a replica every function here is a no-op: `reading_from_replica()` reads from the primary; so it does
when the replica cannot be reached (a warning in the log).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Iterator
from contextvars import ContextVar

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections

logger = logging.getLogger(__name__)
REPLICA = "replica"
PRIMARY = DEFAULT_DB_ALIAS
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
STICKY_COOKIE = "orthoreg_wrote"
WRITE_VERBS = ("INSERT", "UPDATE", "DELETE", "MERGE", "TRUNCATE", "COPY", "CREATE", "ALTER", "DROP")


@dataclasses.dataclass
class Unit:
    """One unit of work (a request, a command): whether it has written, and whether it read on the replica."""

    wrote: bool = False
    read_replica: bool = False


_unit: ContextVar[Unit | None] = ContextVar("orthoreg_replica_unit", default=None)
_where: ContextVar[str | None] = ContextVar("orthoreg_replica_where", default=None)


def configured() -> bool:
    """Whether a replica alias is configured (settings.py adds it from ORTHOREG_REPLICA_URL)."""
    return REPLICA in connections.settings


def note_write() -> None:
    unit = _unit.get()
    if unit is not None:
        unit.wrote = True


def read_alias() -> str:
    """Where a read runs now: the replica only inside reading_from_replica(), outside primary(), before the unit
    wrote and outside a transaction on the primary."""
    if _where.get() != REPLICA or not configured():
        return PRIMARY
    unit = _unit.get()
    if unit is None or unit.wrote or connections[PRIMARY].in_atomic_block:
        return PRIMARY
    unit.read_replica = True
    return REPLICA


def _watch_writes(execute, sql, params, many, context):
    """An execute wrapper on the primary: a write statement (raw SQL included) makes the unit read the primary."""
    if isinstance(sql, str) and sql.lstrip()[:8].upper().startswith(WRITE_VERBS):
        note_write()
    return execute(sql, params, many, context)


@contextlib.contextmanager
def unit(*, wrote: bool = False) -> Iterator[Unit]:
    """A unit of work whose writes are watched (ReplicaMiddleware opens one per request)."""
    current = Unit(wrote=wrote)
    token = _unit.set(current)
    try:
        if configured():
            with connections[PRIMARY].execute_wrapper(_watch_writes):
                yield current
        else:
            yield current
    finally:
        _unit.reset(token)


@contextlib.contextmanager
def _placed(where: str) -> Iterator[None]:
    token = _where.set(where)
    try:
        yield
    finally:
        _where.reset(token)


@contextlib.contextmanager
def reading_from_replica() -> Iterator[None]:
    """Run read-only work on the replica (a context manager, or a view decorator: a fresh one per call). Opens a
    unit of work when none is open (a command), so that its own writes send the reads after them to the primary."""
    with contextlib.ExitStack() as stack:
        if _unit.get() is None:
            stack.enter_context(unit())
        stack.enter_context(_placed(REPLICA if configured() and _reachable() else PRIMARY))
        yield


def _reachable() -> bool:
    """Whether the replica answers (one round trip on a kept connection): a replica that is down or restarting
    sends the work to the primary, with a warning in the log, instead of failing every report."""
    db = connections[REPLICA]
    try:
        if db.connection is not None and not db.is_usable():
            db.close()
        db.ensure_connection()
        return True
    except Exception as exc:  # any failure to reach it: the primary can answer instead
        logger.warning("read replica unreachable, reading the primary: %s", exc)
        with contextlib.suppress(Exception):
            db.close()
        return False


def primary():
    """Read from the primary inside this block (the analytics refresh; anything that reads in order to write)."""
    return _placed(PRIMARY)


def lag_seconds() -> float | None:
    """How far the replica is behind the primary, in seconds: 0 when it has replayed everything it received (an
    idle primary sends nothing, so the time since the last replayed transaction says nothing then), else the time
    since the last transaction it replayed. None when unknown (no replica, or it is not a standby)."""
    if not configured():
        return None
    with connections[REPLICA].cursor() as cursor:
        cursor.execute(
            "SELECT CASE WHEN NOT pg_is_in_recovery() THEN NULL "
            "WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0 "
            "ELSE GREATEST(0, EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())) END")
        value = cursor.fetchone()[0]
    return None if value is None else round(float(value), 3)


def source() -> dict:
    """Where the current unit of work read (call after the reads): {"read_from": "replica" | "primary",
    "replica_lag_seconds": float | None}. A report adds it to what it shows."""
    current = _unit.get()
    if current is None or not current.read_replica:
        return {"read_from": "primary", "replica_lag_seconds": None}
    try:
        lag = lag_seconds()
    except Exception:  # the replica went away after the report was read: say so rather than fail the report
        lag = None
    return {"read_from": "replica", "replica_lag_seconds": lag}


def describe(info) -> str:
    """One sentence for a page or a PDF: where the report was read, and how far behind that was (`info`: the
    dict of source(), or a report carrying its keys as attributes)."""
    def get(key):
        return info.get(key) if isinstance(info, dict) else getattr(info, key, None)

    if get("read_from") != "replica":
        return ""
    lag = get("replica_lag_seconds")
    if lag is None:
        return "Read from the read replica (its delay is unknown)."
    if lag == 0:
        return "Read from the read replica, which was up to date with the primary."
    return f"Read from the read replica, {lag:.1f} s behind the primary."


# ------------------------------------------------------------------------------------------------ wiring

class Router:
    """DATABASE_ROUTERS entry when a replica is configured: reads where read_alias() says, writes on the primary
    (and noted: the unit reads the primary from then on), no migrations on the replica."""

    def db_for_read(self, model, **hints):
        return read_alias()

    def db_for_write(self, model, **hints):
        note_write()
        return PRIMARY

    def allow_relation(self, obj1, obj2, **hints):
        return {obj1._state.db, obj2._state.db} <= {PRIMARY, REPLICA}

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db != REPLICA


def _sticky_seconds() -> float:
    return float(getattr(settings, "REPLICA_STICKY_SECONDS", 10))


class ReplicaMiddleware:
    """One unit of work per request: a request that is not GET/HEAD/OPTIONS, or that comes within a few seconds
    after one from the same browser (a cookie it sets), reads from the primary; so does the rest of a request
    after it wrote anything."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not configured():
            return self.get_response(request)
        try:
            recent = time.time() - float(request.COOKIES.get(STICKY_COOKIE, "")) < _sticky_seconds()
        except ValueError:
            recent = False
        writes = request.method not in SAFE_METHODS
        with unit(wrote=writes or recent):
            response = self.get_response(request)
        if writes:  # a user's write (bookkeeping of a GET, an audit entry, is not one the next page must see)
            response.set_cookie(STICKY_COOKIE, f"{time.time():.3f}", max_age=max(1, int(_sticky_seconds())),
                                httponly=True, samesite="Lax", secure=settings.SESSION_COOKIE_SECURE)
        return response
