"""Backups that restore: one tar archive with the database, the uploaded files, the secret key and a manifest of
SHA-256 checksums.

SQLite: an online copy through sqlite3's backup API (one consistent snapshot while the server and workers keep
writing). PostgreSQL: `pg_dump --format=custom` (one consistent snapshot too), restored with `pg_restore`.
The database is copied before the uploads are listed: a file is stored before the row naming it is committed,
so every file the copied database refers to is in the archive.

The secret key is in the archive because the audit log's hash chain is keyed with it (and sessions, links and
tokens are signed with it): the archive is as secret as the registry itself.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.db import connections

FORMAT = "orthoreg-backup"
VERSION = 1
MANIFEST = "manifest.json"
SQLITE_MEMBER = "database/orthoreg.sqlite3"
PG_MEMBER = "database/orthoreg.pgdump"
SECRET_MEMBER = "secret_key"
CHUNK = 1 << 20


class BackupError(Exception):
    """A backup or restore that cannot go on; the message says why and what to do."""


@dataclass
class Summary:
    engine: str
    files: dict = field(default_factory=dict)  # member name -> {"sha256", "size"}

    @property
    def media_count(self) -> int:
        return sum(1 for name in self.files if name.startswith("media/"))

    @property
    def size(self) -> int:
        return sum(entry["size"] for entry in self.files.values())


def _engine() -> str:
    vendor = connections["default"].vendor
    if vendor not in ("sqlite", "postgresql"):
        raise BackupError(f"Backups support SQLite and PostgreSQL, not {vendor}.")
    return vendor


class _Hashing(io.RawIOBase):
    """Reads a file while hashing what was read."""

    def __init__(self, stream):
        self.stream, self.sha256, self.size = stream, hashlib.sha256(), 0

    def readable(self):
        return True

    def read(self, n=-1):
        data = self.stream.read(n)
        self.sha256.update(data)
        self.size += len(data)
        return data


def _add_file(tar: tarfile.TarFile, name: str, path: Path, summary: Summary) -> None:
    with open(path, "rb") as stream:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = os.fstat(stream.fileno()).st_size, int(os.path.getmtime(path)), 0o600
        reader = _Hashing(stream)
        tar.addfile(info, reader)  # reads exactly info.size bytes
    summary.files[name] = {"sha256": reader.sha256.hexdigest(), "size": reader.size}


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, summary: Summary | None = None) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), int(dt.datetime.now().timestamp()), 0o600
    tar.addfile(info, io.BytesIO(data))
    if summary is not None:
        summary.files[name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


def _sqlite_snapshot(target: Path) -> None:
    source = sqlite3.connect(settings.DATABASES["default"]["NAME"], timeout=60)
    try:
        destination = sqlite3.connect(target)
        try:
            source.backup(destination)  # all pages in one step: one consistent snapshot
            check = destination.execute("PRAGMA quick_check").fetchone()[0]
        finally:
            destination.close()
    finally:
        source.close()
    if check != "ok":
        raise BackupError(f"The copied database fails SQLite's check ({check}); the archive was not written.")


def _pg_env() -> tuple[list[str], dict]:
    db = settings.DATABASES["default"]
    args = ["--dbname", db["NAME"]]
    if db.get("HOST"):
        args += ["--host", db["HOST"]]
    if db.get("PORT"):
        args += ["--port", str(db["PORT"])]
    if db.get("USER"):
        args += ["--username", db["USER"]]
    env = {**os.environ, "PGPASSWORD": db.get("PASSWORD") or os.environ.get("PGPASSWORD", "")}
    return args, env


def _run(tool: str, args: list[str], env: dict) -> None:
    if shutil.which(tool) is None:
        raise BackupError(f"{tool} is not installed (Debian: apt-get install postgresql-client; it must match the "
                          "server's major version).")
    result = subprocess.run([tool, *args], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise BackupError(f"{tool} failed: {result.stderr.strip() or result.stdout.strip()}")


def backup_create(*, target: Path) -> Summary:
    """Write the archive to `target` (through a temporary name, so a failed backup leaves no half archive)."""
    engine = _engine()
    target = Path(target).resolve()
    if target.is_dir():
        raise BackupError(f"{target} is a directory; give the archive's file name, e.g. {target}/orthoreg.tar.gz.")
    target.parent.mkdir(parents=True, exist_ok=True)
    summary = Summary(engine=engine)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".orthoreg-backup-") as tmp:
        if engine == "sqlite":
            snapshot, member = Path(tmp) / "orthoreg.sqlite3", SQLITE_MEMBER
            _sqlite_snapshot(snapshot)
        else:
            snapshot, member = Path(tmp) / "orthoreg.pgdump", PG_MEMBER
            args, env = _pg_env()
            _run("pg_dump", ["--format=custom", "--file", str(snapshot), *args], env)
        partial = Path(tmp) / "archive.partial"
        with tarfile.open(partial, "w:gz") as tar:
            _add_file(tar, member, snapshot, summary)
            media_root = Path(settings.MEDIA_ROOT)
            if media_root.is_dir():
                for path in sorted(media_root.rglob("*")):
                    if path.is_file() and not path.is_symlink():
                        try:
                            _add_file(tar, f"media/{path.relative_to(media_root).as_posix()}", path, summary)
                        except FileNotFoundError:
                            continue  # removed since it was listed: not referenced by the copied database
            _add_bytes(tar, SECRET_MEMBER, settings.SECRET_KEY.encode(), summary)
            manifest = {"format": FORMAT, "version": VERSION, "engine": engine,
                        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "files": summary.files}
            _add_bytes(tar, MANIFEST, json.dumps(manifest, indent=1, sort_keys=True).encode())
        os.replace(partial, target)
    return summary


# --- restore --------------------------------------------------------------------------------------------------

def _safe_name(name: str) -> bool:
    path = PurePosixPath(name)
    return bool(name) and not path.is_absolute() and ".." not in path.parts and "\\" not in name


def _read_manifest(tar: tarfile.TarFile, source: Path) -> dict:
    try:
        member = tar.getmember(MANIFEST)
        manifest = json.loads(tar.extractfile(member).read())
    except KeyError:
        raise BackupError(f"{source} is damaged or is not an orthoreg backup: it has no {MANIFEST} (the archive's "
                          "last file, lost when an archive is cut short or corrupted).") from None
    except ValueError as error:
        raise BackupError(f"{source} is damaged: its {MANIFEST} cannot be read ({error}).") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not isinstance(manifest.get("files"), dict):
        raise BackupError(f"{source} is not an orthoreg backup ({MANIFEST} is not one of ours).")
    if manifest.get("version") != VERSION:
        raise BackupError(f"{source} is a backup of format version {manifest.get('version')}; this orthoreg reads "
                          f"version {VERSION}.")
    return manifest


def backup_check(*, source: Path) -> dict:
    """Read the whole archive and compare every file with the manifest. Returns the manifest."""
    source = Path(source)
    if not source.is_file():
        raise BackupError(f"{source} does not exist or is not a file.")
    try:
        with tarfile.open(source, "r:*") as tar:
            manifest = _read_manifest(tar, source)
            expected, seen = manifest["files"], set()
            for member in tar:
                if member.name == MANIFEST:
                    continue
                if member.name not in expected or not member.isfile() or not _safe_name(member.name):
                    raise BackupError(f"{source} holds {member.name!r}, which its manifest does not list.")
                digest, size = hashlib.sha256(), 0
                stream = tar.extractfile(member)
                while chunk := stream.read(CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                if digest.hexdigest() != expected[member.name]["sha256"] or size != expected[member.name]["size"]:
                    raise BackupError(f"{source} is damaged: {member.name} does not match its checksum.")
                seen.add(member.name)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, OSError) as error:
        reason = str(error).strip().splitlines()[0].rstrip(":") or type(error).__name__
        raise BackupError(f"{source} is damaged or not a backup archive (it cannot be read as a tar.gz: "
                          f"{reason}).") from None
    missing = sorted(set(expected) - seen)
    if missing:
        raise BackupError(f"{source} is damaged: {len(missing)} file(s) of its manifest are missing, "
                          f"e.g. {missing[0]}.")
    engine = _engine()
    if manifest.get("engine") != engine:
        raise BackupError(f"{source} is a backup of a {manifest.get('engine')} registry; this orthoreg is set up "
                          f"for {engine} (ORTHOREG_DATABASE_URL).")
    return manifest


def _sqlite_path() -> Path:
    return Path(settings.DATABASES["default"]["NAME"])


def _pg_has_tables() -> bool:
    from django.db import OperationalError

    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
            return cursor.fetchone()[0] > 0
    except OperationalError as error:
        raise BackupError(f"Cannot reach the PostgreSQL database {settings.DATABASES['default']['NAME']!r} "
                          f"({str(error).strip().splitlines()[-1]}); create it first (createdb) and check "
                          "ORTHOREG_DATABASE_URL.") from None


def registry_present() -> list[str]:
    """What in the target would a restore overwrite (empty when it is empty)."""
    found = []
    if _engine() == "sqlite":
        path = _sqlite_path()
        if path.exists() and path.stat().st_size > 0:
            found.append(f"the database {path}")
    elif _pg_has_tables():
        found.append(f"tables in the PostgreSQL database {settings.DATABASES['default']['NAME']}")
    media_root = Path(settings.MEDIA_ROOT)
    if media_root.is_dir() and any(p.is_file() for p in media_root.rglob("*")):
        found.append(f"uploaded files in {media_root}")
    return found


def backup_restore(*, source: Path, force: bool = False) -> dict:
    """Check the archive, then put its database, uploads and secret key in place. Refuses to overwrite a
    registry unless `force`. Returns the manifest."""
    source = Path(source).resolve()
    manifest = backup_check(source=source)
    present = registry_present()
    if present and not force:
        raise BackupError(f"Not restoring over an existing registry ({'; '.join(present)}). Restore into an empty "
                          "data directory (ORTHOREG_DATA_DIR), or add --force to replace it.")
    data_dir = Path(settings.DATA_DIR)
    data_dir.mkdir(parents=True, exist_ok=True)
    engine = manifest["engine"]
    connections.close_all()
    with tempfile.TemporaryDirectory(dir=data_dir, prefix=".orthoreg-restore-") as tmp:
        staging = Path(tmp)
        with tarfile.open(source, "r:*") as tar:
            for member in tar:
                if member.name == MANIFEST:
                    continue
                target = staging / member.name
                target.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(member) as stream, open(target, "wb") as out:
                    shutil.copyfileobj(stream, out, CHUNK)
        if engine == "sqlite":
            database = _sqlite_path()
            database.parent.mkdir(parents=True, exist_ok=True)
            for suffix in ("-wal", "-shm", "-journal"):
                Path(f"{database}{suffix}").unlink(missing_ok=True)
            os.replace(staging / SQLITE_MEMBER, database)
        else:
            args, env = _pg_env()
            extra = ["--clean", "--if-exists"] if force else []
            _run("pg_restore", ["--no-owner", "--no-privileges", "--single-transaction", "--exit-on-error", *extra,
                                *args, str(staging / PG_MEMBER)], env)
        media_root = Path(settings.MEDIA_ROOT)
        if media_root.exists():
            shutil.rmtree(media_root)
        if (staging / "media").is_dir():
            media_root.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(staging / "media"), media_root)
        key = staging / SECRET_MEMBER
        key_path = data_dir / "secret_key"
        os.chmod(key, 0o600)
        os.replace(key, key_path)
    return manifest


def secret_key_overridden() -> bool:
    """True when ORTHOREG_SECRET_KEY is set and differs from the key the restore put in the data directory."""
    key = os.environ.get("ORTHOREG_SECRET_KEY")
    stored = Path(settings.DATA_DIR) / "secret_key"
    return bool(key) and stored.exists() and stored.read_text().strip() != key
