"""orthoreg restore FILE [--force]

Checks every checksum of an archive made by `orthoreg backup` first (a damaged archive is refused with exit 2
and nothing is touched), then puts its database, uploaded files and secret key into the data directory
(ORTHOREG_DATA_DIR / ORTHOREG_DATABASE_URL). Refuses to replace an existing registry unless --force. Stop
`orthoreg serve` and the workers first.
"""

from django.core.management.base import BaseCommand, CommandError

from orthoreg.accounts.backup import BackupError, backup_check, backup_restore, secret_key_overridden


class Command(BaseCommand):
    help = "Restore a backup archive into an empty data directory (or over an existing one with --force)."
    requires_system_checks: list = []

    def add_arguments(self, parser):
        parser.add_argument("file", help="an archive written by `orthoreg backup`")
        parser.add_argument("--force", action="store_true", help="replace the registry that is there")
        parser.add_argument("--check", action="store_true", help="only check the archive's checksums")

    def handle(self, *args, file, force, check, **options):
        try:
            if check:
                manifest = backup_check(source=file)
                self.stdout.write(self.style.SUCCESS(f"{file}: {len(manifest['files'])} files, every checksum "
                                                     f"matches (made {manifest.get('created', '?')})."))
                return
            manifest = backup_restore(source=file, force=force)
        except BackupError as error:
            raise CommandError(str(error), returncode=2) from None
        self.stdout.write(self.style.SUCCESS(
            f"Restored {file} (made {manifest.get('created', '?')}, {len(manifest['files'])} files). Next: "
            "`orthoreg migrate` (if this orthoreg is newer), then `orthoreg audit verify`."))
        if secret_key_overridden():
            self.stderr.write("Warning: ORTHOREG_SECRET_KEY is set and differs from the restored secret key; "
                              "unset it (or set it to the restored key) or the audit chain will not verify.")
