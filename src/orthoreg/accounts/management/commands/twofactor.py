"""orthoreg twofactor reset NAME | code NAME | status NAME

Two-factor sign-in for a user: `reset` removes the user's authenticator devices (a lost phone) and prints a new
one-time enrolment code; `code` prints a new enrolment code and keeps the devices; `status` tells whether the
user must use two-factor, has a device, and has an unused enrolment code.
"""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from orthoreg.accounts import twofactor
from orthoreg.accounts.models import EnrolmentCode


class Command(BaseCommand):
    help = "Reset a user's two-factor devices or issue an enrolment code."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["reset", "code", "status"])
        parser.add_argument("username")

    def handle(self, *args, action, username, **options):
        try:
            user = get_user_model().objects.get(username=username)
        except get_user_model().DoesNotExist:
            raise CommandError(f"No user named {username!r}.", returncode=2) from None
        if action == "status":
            code = EnrolmentCode.objects.filter(user=user, expires_at__gte=timezone.now()).first()
            required = "required" if twofactor.required_for(user) else "optional"
            device = "a device is set up" if twofactor.has_device(user) else "no device yet"
            enrolment = (f"an enrolment code valid until {code.expires_at:%Y-%m-%d}" if code
                         else "no valid enrolment code")
            self.stdout.write(f"{username}: two-factor {required}, {device}, {enrolment}.")
            return
        code = twofactor.twofactor_reset(user=user) if action == "reset" else twofactor.enrolment_code_issue(user=user)
        self.stdout.write(self.style.SUCCESS(
            f"Two-factor enrolment code for {username}: {code} (valid {twofactor.ENROLMENT_DAYS} days, once). "
            "Give it to the user in person or by phone; it is needed with the first code of the authenticator app."))
