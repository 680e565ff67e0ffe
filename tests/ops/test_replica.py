"""The read replica (orthoreg/replica.py, issue 17 item 6).

On PostgreSQL a real streaming replica of the test's own server is made: `pg_basebackup -R` into a temporary
folder, a second cluster started from it on a free port, streaming from the primary. Reports are read there (the
replica connection's queries run on a server in recovery), writes and the analytics refresh stay on the primary,
a request that writes reads its own write from the primary, and the report says how far behind the replica is
(replay paused: behind, and the report shows the old figures; resumed: caught up).

Needs the PostgreSQL server binaries (/usr/lib/postgresql/<major>/bin) and a pg_hba.conf line allowing replication
connections from 127.0.0.1 (.ci/run adds it); skipped with the reason otherwise, except with
ORTHOREG_REQUIRE_REPLICA=1 (CI), where a missing piece fails. As root (CI) the cluster runs as the `postgres` user.
"""

from __future__ import annotations

import copy
import datetime as dt
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from django.db import connection, connections
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from orthoreg import replica
from orthoreg.analytics import facts
from orthoreg.analytics.models import EpisodeFact
from orthoreg.registry import services
from orthoreg.registry.models import Patient

from .conftest import free_port

COPY_WAIT = 1800  # the copy of the whole server (every database on it: small in CI, large on a developer's machine)
WAIT = 120  # seconds allowed for the replica to start or catch up (a loaded machine), never a measured figure


# ------------------------------------------------------------------------------------------------ without replica

@pytest.mark.django_db
def test_without_a_replica_everything_reads_the_primary(clinician_client, index_procedure):
    assert not replica.configured()
    with replica.reading_from_replica():
        assert replica.read_alias() == replica.PRIMARY
        assert replica.source() == {"read_from": "primary", "replica_lag_seconds": None}
    facts.refresh()
    body = clinician_client.get(reverse("reports:cohort_json")).json()
    assert body["read_from"] == "primary" and body["replica_lag_seconds"] is None
    assert body["cohort"]["episodes"] == 1


def test_replica_settings_only_with_a_postgresql_primary():
    from orthoreg.settings import database_from_url, replica_from_url

    sqlite = database_from_url("sqlite:////tmp/x.sqlite3", Path("/tmp"))
    pg = database_from_url("postgresql://u@db:5432/orthoreg", Path("/tmp"))
    assert replica_from_url("postgresql://u@replica:5432/orthoreg", sqlite) is None
    assert replica_from_url("", pg) is None
    entry = replica_from_url("postgresql://u@replica:5433/orthoreg", pg)
    assert entry["HOST"] == "replica" and entry["PORT"] == "5433" and entry["TEST"] == {"MIRROR": "default"}
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match="ORTHOREG_REPLICA_URL"):
        replica_from_url("sqlite:////tmp/y.sqlite3", pg)


def test_describe_says_where_and_how_far_behind():
    assert replica.describe({"read_from": "primary", "replica_lag_seconds": None}) == ""
    assert "up to date" in replica.describe({"read_from": "replica", "replica_lag_seconds": 0})
    assert "2.5 s behind" in replica.describe({"read_from": "replica", "replica_lag_seconds": 2.5})
    assert "unknown" in replica.describe({"read_from": "replica", "replica_lag_seconds": None})


# ------------------------------------------------------------------------------------------------ a real replica

def _missing() -> str | None:
    if connection.vendor != "postgresql":
        return "runs on the PostgreSQL test run (ORTHOREG_DATABASE_URL=postgresql://...)"
    host = connection.settings_dict.get("HOST") or "localhost"
    if host not in ("127.0.0.1", "localhost"):
        return f"the primary is on {host}: a replica is made of a server on this machine only"
    if not _bin("pg_basebackup").exists():
        return f"no PostgreSQL server binaries in {_bin('')} (apt-get install postgresql)"
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_hba_file_rules WHERE 'replication' = ANY(database) "
                       "AND (address IS NULL OR address = '127.0.0.1')")
        if not cursor.fetchone()[0]:
            return ("the primary's pg_hba.conf allows no replication connection from 127.0.0.1 (add "
                    "`host replication all 127.0.0.1/32 trust` and reload, as .ci/run does)")
    return None


def _bin(name: str) -> Path:
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version_num")
        major = int(cursor.fetchone()[0]) // 10000
    return Path(f"/usr/lib/postgresql/{major}/bin") / name


def _as_postgres(*command) -> list[str]:
    """initdb, postgres and pg_ctl refuse to run as root: run them as the postgres user then."""
    return ["runuser", "-u", "postgres", "--", *map(str, command)] if os.geteuid() == 0 else list(map(str, command))


def _run(*command, timeout=WAIT) -> subprocess.CompletedProcess:
    result = subprocess.run(_as_postgres(*command), capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(map(str, command))}:\n{result.stdout}\n{result.stderr}"
    return result


def _settings_of_primary() -> dict[str, str]:
    """The settings a hot standby needs at least as high as its primary's."""
    names = ("max_connections", "max_worker_processes", "max_wal_senders", "max_prepared_transactions",
             "max_locks_per_transaction")
    with connection.cursor() as cursor:
        cursor.execute("SELECT name, setting FROM pg_settings WHERE name = ANY(%s)", [list(names)])
        return dict(cursor.fetchall())


def _until(predicate, what: str, log: Path | None = None):
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    text = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise AssertionError(f"{what}: not within {WAIT} s\n{text}")


class Standby:
    """A running streaming replica of the test's PostgreSQL server."""

    def __init__(self, folder: Path, port: int):
        self.folder, self.port = folder, port
        self.log = folder / "server.log"

    def sql(self, query: str, params=()):
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user=connection.settings_dict["USER"] or "postgres",
                             dbname=connection.settings_dict["NAME"], autocommit=True, connect_timeout=5) as conn:
            return conn.execute(query, params).fetchone()

    def streaming(self) -> bool:
        try:
            return (self.sql("SELECT status FROM pg_stat_wal_receiver") or [None])[0] == "streaming"
        except Exception:
            return False

    def wait_replayed(self) -> None:
        """Until the replica has replayed everything the primary has written so far."""
        self._wait_for("pg_last_wal_replay_lsn", "replica replays the primary's writes")

    def wait_received(self) -> None:
        """Until the replica has received (not necessarily replayed) everything the primary has written so far."""
        self._wait_for("pg_last_wal_receive_lsn", "replica receives the primary's writes")

    def _wait_for(self, position: str, what: str) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_current_wal_lsn()")
            target = cursor.fetchone()[0]
        _until(lambda: self.sql(f"SELECT pg_wal_lsn_diff({position}(), %s) >= 0", [target])[0], what, self.log)


@pytest.fixture
def standby():
    """A streaming replica made with pg_basebackup, started on a free port, and the `replica` alias pointing at it;
    stopped and removed afterwards, also when the test fails."""
    reason = _missing()
    if reason:
        if os.environ.get("ORTHOREG_REQUIRE_REPLICA") and connection.vendor == "postgresql":
            pytest.fail(f"ORTHOREG_REQUIRE_REPLICA=1 but {reason}")
        pytest.skip(reason)
    folder = Path(tempfile.mkdtemp(prefix="orthoreg-replica-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    folder.chmod(0o700)
    data = folder / "data"
    port = int(os.environ.get("ORTHOREG_TEST_REPLICA_PORT") or free_port())
    primary = connection.settings_dict
    started = False
    slot = f"orthoreg_test_replica_{os.getpid()}_{port}"
    try:
        _run(_bin("pg_basebackup"), "-h", "127.0.0.1", "-p", primary.get("PORT") or 5432,
             "-U", primary.get("USER") or "postgres", "-D", data, "-R", "-X", "stream", "-c", "fast",
             "-C", "-S", slot,  # a slot: the primary keeps the WAL the replica has not yet received, however busy
             timeout=COPY_WAIT)
        config = [f"port = {port}", "listen_addresses = '127.0.0.1'", f"unix_socket_directories = '{folder}'",
                  "hot_standby = on", "ssl = off", "fsync = off", "logging_collector = off",
                  *(f"{name} = {value}" for name, value in _settings_of_primary().items())]
        files = {"postgresql.conf": "\n".join(config) + "\n",
                 "pg_hba.conf": "local all all trust\nhost all all 127.0.0.1/32 trust\n", "pg_ident.conf": ""}
        for name, text in files.items():
            (data / name).write_text(text)
            if os.geteuid() == 0:
                shutil.chown(data / name, "postgres", "postgres")
        _run(_bin("pg_ctl"), "-D", data, "-l", folder / "server.log", "-w", "-t", WAIT, "start")
        started = True
        server = Standby(folder, port)
        _until(server.streaming, "replica streams from the primary", server.log)
        assert server.sql("SELECT pg_is_in_recovery()")[0] is True

        conf = copy.deepcopy(connections[replica.PRIMARY].settings_dict)
        conf.update(HOST="127.0.0.1", PORT=str(port), CONN_MAX_AGE=None, CONN_HEALTH_CHECKS=False)
        connections.settings[replica.REPLICA] = conf
        # Connected here: the test case (set up before the alias existed) refuses to open connections it does not
        # list, but uses an open one.
        connections[replica.REPLICA].connect()
        yield server
    finally:
        if replica.REPLICA in connections.settings:
            connections[replica.REPLICA].close()
            del connections[replica.REPLICA]
            del connections.settings[replica.REPLICA]
        if started:
            subprocess.run(_as_postgres(_bin("pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop"),
                           capture_output=True, timeout=WAIT)
        _drop_slot(slot)
        shutil.rmtree(folder, ignore_errors=True)


def _drop_slot(slot: str) -> None:
    """Forget the replica's replication slot on the primary (else the primary would keep WAL for it forever)."""
    import psycopg

    primary = connection.settings_dict
    with psycopg.connect(host=primary.get("HOST") or "127.0.0.1", port=primary.get("PORT") or 5432,
                         user=primary.get("USER") or "postgres", dbname=primary["NAME"], autocommit=True,
                         connect_timeout=5) as conn:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:  # the stopped replica's WAL sender may take a moment to go
            conn.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                         "WHERE slot_name = %s AND NOT active", [slot])
            if conn.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", [slot]).fetchone() is None:
                return
            time.sleep(0.2)


class Queries:
    """The statements run on one connection while it is watched, with whether that server was in recovery."""

    def __init__(self, alias: str):
        self.alias, self.statements = alias, []

    def __call__(self, execute, sql, params, many, context):
        self.statements.append(sql)
        return execute(sql, params, many, context)

    def read(self, table: str) -> bool:
        return any(table in sql and sql.lstrip().upper().startswith("SELECT") for sql in self.statements)


def _report(client: Client) -> tuple[dict, Queries, Queries]:
    on_replica, on_primary = Queries(replica.REPLICA), Queries(replica.PRIMARY)
    with connections[replica.REPLICA].execute_wrapper(on_replica), \
            connections[replica.PRIMARY].execute_wrapper(on_primary):
        response = client.get(reverse("reports:cohort_json"))
    assert response.status_code == 200, response.content[:500]
    return response.json(), on_replica, on_primary


FACTS_TABLE = f'"{EpisodeFact._meta.db_table}"'  # as it appears, quoted, in the SQL of the report's queries


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_reports_read_on_a_streaming_replica(standby, clinic, clinician, index_procedure):
    facts.refresh()  # on the primary, as the worker would
    standby.wait_replayed()

    # A report request reads on the replica: its report queries ran on a server in recovery, none on the primary.
    reader = Client()
    reader.force_login(clinician)
    body, on_replica, on_primary = _report(reader)
    assert body["read_from"] == "replica" and body["cohort"]["episodes"] == 1
    assert isinstance(body["replica_lag_seconds"], float) and body["replica_lag_seconds"] >= 0
    assert on_replica.read(FACTS_TABLE) and not on_primary.read(FACTS_TABLE)
    with connections[replica.REPLICA].cursor() as cursor:
        cursor.execute("SELECT pg_is_in_recovery()")
        assert cursor.fetchone()[0] is True
    page = reader.get(reverse("reports:cohort"), {"condition": "hallux_rigidus"})
    assert page.status_code == 200 and b"Read from the read replica" in page.content
    pdf = reader.get(reverse("reports:cohort_pdf"))
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"
    api = reader.get("/api/v1/patients")  # the API's reads go there too
    assert api.status_code == 200

    # Replay paused: the primary moves on, the replica stays behind and says so.
    standby.sql("SELECT pg_wal_replay_pause()")
    patient = services.patient_create(clinic=clinic, mrn="MRN-002", given_name="Ada", family_name="Stone",
                                      birth_date=dt.date(1980, 3, 1), sex=Patient.Sex.FEMALE, consent_registry=True,
                                      consent_date=dt.date(2024, 1, 10), consent_version="v1")
    episode = services.episode_create(patient=patient, body_site="first_mtp", side="left",
                                      condition="hallux_rigidus")
    # A request that writes (the clinician records the index procedure) and then reads: from the primary.
    writer = Client()
    writer.force_login(clinician)
    day = (timezone.localdate() - dt.timedelta(days=100)).isoformat()
    created = writer.post("/api/v1/procedures", {"episode_id": episode.pk, "date": day, "kind": "bmc",
                                                 "is_index": True, "target_structure": "joint",
                                                 "image_guidance": "ultrasound"}, content_type="application/json")
    assert created.status_code == 201, created.content[:500]
    standby.wait_received()
    own, on_replica, _ = _report(writer)  # the next page of the browser that just wrote
    assert own["read_from"] == "primary" and own["cohort"]["episodes"] == 2
    assert not on_replica.statements
    with replica.reading_from_replica():  # within one unit of work: reads after a write go to the primary
        assert replica.read_alias() == replica.REPLICA
        services.patient_update(patient=patient, given_name="Ada Mae")
        assert replica.read_alias() == replica.PRIMARY
        assert Patient.objects.get(pk=patient.pk).given_name == "Ada Mae"

    facts.refresh()  # the worker counts that change (a report request that refreshed would read the primary)
    standby.wait_received()
    behind, on_replica, _ = _report(reader)  # anyone else: the replica, which has not replayed it yet
    assert behind["read_from"] == "replica" and behind["cohort"]["episodes"] == 1
    assert behind["replica_lag_seconds"] > 0 and on_replica.statements  # (its report may come from the cache)
    page = reader.get(reverse("reports:cohort"), {"condition": "hallux_rigidus"})
    assert b"behind the primary" in page.content

    # Replay resumed: the replica catches up and the report read there has the new episode.
    standby.sql("SELECT pg_wal_replay_resume()")
    standby.wait_replayed()
    caught_up, on_replica, _ = _report(reader)
    assert caught_up["read_from"] == "replica" and caught_up["cohort"]["episodes"] == 2
    assert caught_up["replica_lag_seconds"] is not None

    # The replica goes down: reports are read on the primary instead of failing.
    _run(_bin("pg_ctl"), "-D", standby.folder / "data", "-m", "immediate", "-w", "stop")
    fallback, on_replica, _ = _report(reader)
    assert fallback["read_from"] == "primary" and fallback["cohort"]["episodes"] == 2
