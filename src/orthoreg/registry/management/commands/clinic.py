"""orthoreg clinic list | create CODE --name NAME [options] | set CODE [options]

The clinics of a registry and their options: the time zone, whether invitations need the patient's registry
consent, and whether the clinic takes part in the public outcomes page. Every change is audited.
"""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from orthoreg.registry import services
from orthoreg.registry.models import Clinic
from orthoreg.registry.selectors import UnknownClinic, clinic_by_code


def _options(parser, *, creating: bool) -> None:
    parser.add_argument("code", help="short code, e.g. riverside")
    parser.add_argument("--name", required=creating, help="the clinic's name as patients know it")
    parser.add_argument("--timezone", help="IANA time zone, e.g. Europe/Berlin (default UTC)")
    consent = parser.add_mutually_exclusive_group()
    consent.add_argument("--invitations-require-consent", dest="invitations_require_consent", action="store_true",
                         default=None, help="send follow-up invitations only to patients with registry consent "
                                            "(the default)")
    consent.add_argument("--no-invitations-require-consent", dest="invitations_require_consent",
                         action="store_false", help="invite every active patient with an email address")
    public = parser.add_mutually_exclusive_group()
    public.add_argument("--public-outcomes", dest="public_outcomes", action="store_true", default=None,
                        help="take part in the public aggregated outcomes page")
    public.add_argument("--no-public-outcomes", dest="public_outcomes", action="store_false",
                        help="stay out of the public outcomes page (the default)")


class Command(BaseCommand):
    help = "List, create or change the clinics of the registry."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("list", help="every clinic with its options")
        _options(sub.add_parser("create", help="a new clinic"), creating=True)
        _options(sub.add_parser("set", help="change a clinic's name or options"), creating=False)

    def handle(self, *args, action, **options):
        if action == "list":
            return self._list()
        fields = {k: options[k] for k in ("name", "timezone", "invitations_require_consent", "public_outcomes")
                  if options.get(k) is not None}
        code = options["code"]
        try:
            if action == "create":
                if Clinic.objects.filter(code=code).exists():
                    raise CommandError(f"A clinic with code {code!r} exists already: use `orthoreg clinic set`.",
                                       returncode=2)
                clinic = services.clinic_create(code=code, **fields)
                verb = "Created"
            else:
                try:
                    clinic = clinic_by_code(code)
                except UnknownClinic as exc:
                    raise CommandError(str(exc), returncode=2) from None
                if not fields:
                    raise CommandError("Nothing to change: give --name, --timezone or an option.", returncode=2)
                clinic = services.clinic_update(clinic=clinic, **fields)
                verb = "Changed"
        except ValidationError as exc:
            problems = [f"{name}: {'; '.join(messages)}" for name, messages in exc.message_dict.items()] \
                if hasattr(exc, "error_dict") else exc.messages
            raise CommandError("; ".join(problems), returncode=2) from None
        self.stdout.write(self.style.SUCCESS(f"{verb} clinic {clinic.code}: {self._describe(clinic)}"))

    def _list(self):
        clinics = list(Clinic.objects.order_by("code"))
        if not clinics:
            self.stdout.write("No clinics yet: `orthoreg clinic create CODE --name NAME`.")
        for clinic in clinics:
            self.stdout.write(f"{clinic.code:<20} {self._describe(clinic)}")

    @staticmethod
    def _describe(clinic: Clinic) -> str:
        consent = "invitations need consent" if clinic.invitations_require_consent else "invitations without consent"
        public = "public outcomes on" if clinic.public_outcomes else "public outcomes off"
        return f"{clinic.name} · {clinic.timezone} · {consent} · {public}"
