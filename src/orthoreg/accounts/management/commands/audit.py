"""orthoreg audit verify | status | role-sql ROLE

`verify` walks the audit log's hash chain: exit 0 and "verified N entries" when every entry follows the one
before it and matches its hash; exit 2 naming the first broken entry (deleted, inserted or altered, even by a
database superuser who dropped the triggers). `--head HASH` also checks that a head printed by an earlier
verify is still in the chain (entries cut from the end show only that way). `status` tells whether the triggers
that refuse UPDATE/DELETE are in place. `role-sql ROLE` prints the SQL for a PostgreSQL application role that
cannot UPDATE, DELETE or TRUNCATE the audit table.
"""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from orthoreg.accounts import auditchain
from orthoreg.accounts.models import AuditEvent


class Command(BaseCommand):
    help = "Verify the audit log's hash chain, show its guard, or print SQL for a restricted PostgreSQL role."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        verify = sub.add_parser("verify", help="check the hash chain from the first entry to the last")
        verify.add_argument("--head", default="", help="a head hash printed by an earlier verify: it must still "
                                                       "be in the chain")
        sub.add_parser("status", help="are the triggers refusing UPDATE/DELETE in place?")
        role = sub.add_parser("role-sql", help="SQL for a PostgreSQL role without UPDATE/DELETE/TRUNCATE on the log")
        role.add_argument("role")

    def handle(self, *args, action, **options):
        if action == "role-sql":
            postgres = connection.vendor == "postgresql"
            if not postgres:
                self.stderr.write("This registry runs on SQLite, which has no roles; the SQL is for PostgreSQL.")
            name = settings.DATABASES["default"]["NAME"] if postgres else "orthoreg"
            self.stdout.write(auditchain.role_sql(options["role"], name))
        elif action == "status":
            guarded = auditchain.guard_installed(connection)
            self.stdout.write(f"{AuditEvent.objects.count()} entries; triggers refusing UPDATE/DELETE: "
                              f"{'in place' if guarded else 'MISSING (run orthoreg migrate)'}.")
            if not guarded:
                raise CommandError("The audit log's triggers are missing.", returncode=2)
        else:
            self._verify(options["head"])

    def _verify(self, head: str) -> None:
        verdict = auditchain.verify()
        if not verdict.intact:
            entry = AuditEvent.objects.filter(pk=verdict.broken_id).first()
            when = f" ({entry.at:%Y-%m-%d %H:%M:%S} {entry.username or '-'} {entry.action})" if entry else ""
            raise CommandError(f"Audit chain broken at entry #{verdict.broken_id}{when}: {verdict.problem}. "
                               f"The {verdict.count} entries before it verify.", returncode=2)
        if head and head != verdict.head and not AuditEvent.objects.filter(hash=head).exists():
            raise CommandError(f"The head {head} is not in the chain: entries were cut from the end of the log "
                               f"(or it is from another registry). {verdict.count} entries verify.", returncode=2)
        self.stdout.write(self.style.SUCCESS(f"verified {verdict.count} entries") + f" (head {verdict.head or '-'})")
