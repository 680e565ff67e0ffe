from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from .models import AuditEvent
from .services import audit_record


@receiver(user_logged_in)
def _on_login(sender, request, user, **kwargs):
    audit_record(request=request, user=user, action=AuditEvent.Action.LOGIN)


@receiver(user_logged_out)
def _on_logout(sender, request, user, **kwargs):
    if user is not None:
        audit_record(request=request, user=user, action=AuditEvent.Action.LOGOUT)


@receiver(user_login_failed)
def _on_login_failed(sender, credentials, request=None, **kwargs):
    audit_record(request=request, action=AuditEvent.Action.LOGIN_FAILED,
                 detail=f"username {credentials.get('username', '')!r}")
