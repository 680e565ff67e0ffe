"""Sign-in throttling: django-axes locks a user name at one address after ORTHOREG_LOGIN_FAILURE_LIMIT failures;
this handler adds a limit per address across all user names (ORTHOREG_LOGIN_ADDRESS_LIMIT), so that trying a
few passwords against many accounts from one address (password spraying) is stopped as well."""

from __future__ import annotations

from axes.attempts import get_cool_off_threshold
from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_failure_limit
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Sum


def address_failures(request) -> int:
    """Failed sign-ins from the request's address within the cool-off time, whatever user names were tried."""
    address = getattr(request, "axes_ip_address", None)
    if not address:
        return 0
    attempts = AccessAttempt.objects.filter(ip_address=address)
    if settings.AXES_COOLOFF_TIME is not None:
        attempts = attempts.filter(attempt_time__gte=get_cool_off_threshold(request))
    return attempts.aggregate(total=Sum("failures_since_start"))["total"] or 0


class AddressLimitedHandler(AxesDatabaseHandler):
    """axes' database handler; an address that has failed ORTHOREG_LOGIN_ADDRESS_LIMIT times across user names
    counts as having reached the failure limit, so axes locks it out (and says so) as it does a user name."""

    def get_failures(self, request, credentials: dict | None = None) -> int:
        failures = super().get_failures(request, credentials)
        if address_failures(request) >= settings.LOGIN_ADDRESS_LIMIT:
            return max(failures, get_failure_limit(request, credentials))
        return failures
