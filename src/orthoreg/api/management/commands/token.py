"""orthoreg token create --user NAME [--expires DAYS] [--name LABEL] | list [--user NAME] | revoke PREFIX_OR_ID

API tokens for `Authorization: Bearer <token>`. The clear token is printed once, at creation; the registry
keeps only its hash. A token acts with exactly its user's roles and clinics. Creation and revocation are
audited; refused input exits with status 2.
"""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from orthoreg.api import tokens
from orthoreg.api.models import ApiToken


def _refuse(exc: ValidationError) -> CommandError:
    problems = [f"{name}: {'; '.join(messages)}" for name, messages in exc.message_dict.items()] \
        if hasattr(exc, "error_dict") else exc.messages
    return CommandError("; ".join(problems), returncode=2)


class Command(BaseCommand):
    help = "Create, list or revoke API tokens (Authorization: Bearer <token>)."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="a new token for a user; printed once")
        create.add_argument("--user", required=True, help="the user the token acts as")
        create.add_argument("--expires", type=int, metavar="DAYS", help="valid for this many days (default: no "
                                                                         "expiry)")
        create.add_argument("--name", default="", metavar="LABEL", help="what the token is for")
        listing = sub.add_parser("list", help="every token (prefix, user, name, state); never the token itself")
        listing.add_argument("--user", help="only this user's tokens")
        revoke = sub.add_parser("revoke", help="revoke a token by its prefix (as listed) or id")
        revoke.add_argument("token", help="the prefix shown by `orthoreg token list`, or the token id")

    def handle(self, *args, action, **options):
        try:
            if action == "create":
                user = tokens.user_by_name(options["user"])
                token, clear = tokens.token_create(user=user, name=options["name"], days=options["expires"])
                until = f"expires {token.expires_at:%Y-%m-%d %H:%M} UTC" if token.expires_at else "never expires"
                self.stderr.write(f"Token {token.prefix}… for {user.username} ({until}). It is shown once; keep it "
                                  "secret:")
                self.stdout.write(clear)
            elif action == "list":
                self._list(options.get("user"))
            else:
                token = self._find(options["token"])
                tokens.token_revoke(token=token)
                self.stdout.write(self.style.SUCCESS(f"Revoked token {token.prefix}… of {token.user.username}."))
        except ValidationError as exc:
            raise _refuse(exc) from None

    def _list(self, username):
        if username:
            tokens.user_by_name(username)
        rows = list(tokens.tokens_of(username=username))
        if not rows:
            self.stdout.write("No API tokens: `orthoreg token create --user NAME`.")
        now = timezone.now()
        for t in rows:
            expires = f"{t.expires_at:%Y-%m-%d}" if t.expires_at else "never"
            used = f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "never"
            self.stdout.write(f"{t.pk:<5} {t.prefix}…  {t.user.username:<16} {t.state(now):<8} expires {expires:<10} "
                              f"last used {used:<16} {t.name}")

    @staticmethod
    def _find(value: str) -> ApiToken:
        value = value.strip().rstrip("…").rstrip(".")
        matches = list(ApiToken.objects.select_related("user").filter(prefix=value)) if len(value) >= 8 else []
        if not matches and value.isdigit():
            matches = list(ApiToken.objects.select_related("user").filter(pk=int(value)))
        if not matches:
            raise CommandError(f"No API token {value!r}: give the id or prefix shown by `orthoreg token list`.",
                               returncode=2)
        if len(matches) > 1:
            raise CommandError(f"Several tokens start with {value!r}: give the id.", returncode=2)
        return matches[0]
