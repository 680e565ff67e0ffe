"""orthoreg createuser NAME --password P [--clinic CODE ...] [--role ROLE] [--email E]"""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from orthoreg.accounts import twofactor
from orthoreg.accounts.models import Role
from orthoreg.accounts.services import user_create
from orthoreg.registry.selectors import UnknownClinic, clinic_by_code


class Command(BaseCommand):
    help = "Create a user with a role in one or more clinics."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--password", required=True)
        parser.add_argument("--clinic", action="append", default=[], metavar="CODE",
                            help="clinic code; repeat for several clinics")
        parser.add_argument("--role", default=Role.CLINICIAN, choices=Role.values)
        parser.add_argument("--email", default="")
        parser.add_argument("--no-validate", action="store_true", help="skip the password strength rules")

    def handle(self, *args, username, password, clinic, role, email, no_validate, **options):
        try:
            clinics = [clinic_by_code(code) for code in clinic]
        except UnknownClinic as exc:
            raise CommandError(str(exc), returncode=2) from None
        try:
            user = user_create(username=username, password=password, clinics=clinics, role=role, email=email,
                               validate=not no_validate)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages), returncode=2) from None
        where = ", ".join(c.code for c in clinics) or "no clinic"
        self.stdout.write(self.style.SUCCESS(f"Created {user.username} ({role}) in {where}."))
        if twofactor.required_for(user):
            code = twofactor.enrolment_code_issue(user=user)
            self.stdout.write(f"Two-factor sign-in is required for {user.username}: enrolment code {code} "
                              f"(valid {twofactor.ENROLMENT_DAYS} days, once; `orthoreg twofactor code "
                              f"{user.username}` issues a new one).")
