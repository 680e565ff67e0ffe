"""The audit of logins, logouts and failed logins, on Django's auth signals (framework signals, not domain events:
orthoreg/events.py). apps.AccountsConfig.ready() connects them."""

from .models import AuditEvent
from .services import audit_record


def on_login(sender, request, user, **kwargs):
    audit_record(request=request, user=user, action=AuditEvent.Action.LOGIN)


def on_logout(sender, request, user, **kwargs):
    if user is not None:
        audit_record(request=request, user=user, action=AuditEvent.Action.LOGOUT)


def on_login_failed(sender, credentials, request=None, **kwargs):
    audit_record(request=request, action=AuditEvent.Action.LOGIN_FAILED,
                 detail=f"username {credentials.get('username', '')!r}")
