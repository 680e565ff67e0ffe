"""orthoreg backup FILE

One archive (tar.gz) with the database (SQLite: an online copy through sqlite3's backup API; PostgreSQL:
pg_dump --format=custom), the uploaded files, the secret key and a manifest of SHA-256 checksums. Safe while
`orthoreg serve` and workers run. Restore with `orthoreg restore FILE`.
"""

from django.core.management.base import BaseCommand, CommandError

from orthoreg.accounts.backup import BackupError, backup_create


class Command(BaseCommand):
    help = "Back up the registry (database, uploads, secret key) into one checksummed archive."
    requires_system_checks: list = []

    def add_arguments(self, parser):
        parser.add_argument("file", help="the archive to write, e.g. /backups/orthoreg-$(date +%%F).tar.gz")

    def handle(self, *args, file, **options):
        try:
            summary = backup_create(target=file)
        except BackupError as error:
            raise CommandError(str(error), returncode=2) from None
        self.stdout.write(self.style.SUCCESS(
            f"Backed up the {summary.engine} database, {summary.media_count} uploaded file(s) and the secret key "
            f"to {file} ({summary.size / 1e6:.1f} MB before compression). Keep it as safe as the registry: it "
            "holds patient data and the secret key."))
