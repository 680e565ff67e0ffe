"""Writes and checks of API tokens: create (the clear token is returned once), revoke, authenticate.

Every creation, revocation and refusal of a token is audited (accounts.services.audit_record), refusals at most
ORTHOREG_LOGIN_ADDRESS_LIMIT times per address within the sign-in cool-off time (then one entry saying that
further refusals from that address go unrecorded until the window passes), so that a client hammering the API
with a wrong token cannot flood the audit log. The token is `orr_` followed by 40 URL-safe random characters;
only its SHA-256 hash is stored.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from orthoreg.accounts.models import AuditEvent
from orthoreg.accounts.services import audit_record, client_ip

from .models import ApiToken

PREFIX = "orr_"
REFUSED = "API refused"  # how every audited refusal's detail begins (counted per address below)
MAX_DAYS = 3650


class TokenRefused(Exception):
    """A bearer token that does not let anyone in; the message says why (unknown, expired, revoked)."""


def token_hash(clear: str) -> str:
    return hashlib.sha256(clear.encode("utf-8", "surrogatepass")).hexdigest()


@transaction.atomic
def token_create(*, user, name: str = "", days: int | None = None, actor=None) -> tuple[ApiToken, str]:
    """A new token for the user; returns the stored token and the clear token (shown once, never stored)."""
    if not user.is_active:
        raise ValidationError({"user": f"{user.username} is not an active user."})
    if days is not None and not 1 <= days <= MAX_DAYS:
        raise ValidationError({"expires": f"Give between 1 and {MAX_DAYS} days, not {days}."})
    name = (name or "").strip()
    if len(name) > 100:
        raise ValidationError({"name": "Keep the name to 100 characters."})
    clear = PREFIX + secrets.token_urlsafe(30)
    now = timezone.now()
    token = ApiToken.objects.create(user=user, name=name, prefix=clear[:12], token_hash=token_hash(clear),
                                    created_at=now, expires_at=now + dt.timedelta(days=days) if days else None)
    until = f"until {token.expires_at:%Y-%m-%d %H:%M} UTC" if token.expires_at else "without expiry"
    audit_record(user=actor, action=AuditEvent.Action.CREATE, obj=token,
                 detail=f"API token {token.prefix}… for {user.username} ({name or 'no name'}) {until}")
    return token, clear


@transaction.atomic
def token_revoke(*, token: ApiToken, actor=None) -> ApiToken:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit_record(user=actor, action=AuditEvent.Action.UPDATE, obj=token,
                     detail=f"API token {token.prefix}… of {token.user.username} revoked")
    return token


def token_authenticate(clear: str, *, request=None):
    """The active user a bearer token acts as; raises TokenRefused (audited) otherwise."""
    token = ApiToken.objects.select_related("user").filter(token_hash=token_hash(clear)).first()
    now = timezone.now()
    reason = None
    if token is None:
        reason = "unknown token"
    elif token.revoked_at is not None:
        reason = "revoked token"
    elif token.expires_at is not None and token.expires_at <= now:
        reason = "expired token"
    elif not token.user.is_active:
        reason = "token of an inactive user"
    if reason is not None:
        shown = f"{token.prefix}…" if token is not None else f"{clear[:12]!r}…"
        _audit_refusal(request, token, f"{REFUSED} {reason} {shown}", now)
        raise TokenRefused(f"The bearer token is refused: {reason}.")
    if token.last_used_at is None or now - token.last_used_at > dt.timedelta(minutes=1):
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)  # at most once a minute
    return token.user


def _audit_refusal(request, token, detail: str, now) -> None:
    """Audit a refusal unless this address has already had ORTHOREG_LOGIN_ADDRESS_LIMIT refusals audited within
    the cool-off time; the entry that reaches the limit says that the next ones go unrecorded (one indexed count:
    action and time)."""
    limit = settings.LOGIN_ADDRESS_LIMIT
    window = dt.timedelta(hours=settings.AXES_COOLOFF_TIME or 0.25)
    address = client_ip(request)
    recorded = AuditEvent.objects.filter(action=AuditEvent.Action.LOGIN_FAILED, at__gte=now - window,
                                         ip_address=address, detail__startswith=REFUSED).count()
    if recorded >= limit:
        return
    if recorded == limit - 1:
        detail = (f"{detail}; {limit} refused tokens from this address within {window}: further refusals from it "
                  f"are not recorded until {now + window:%Y-%m-%d %H:%M} UTC")
    audit_record(request=request, user=token.user if token is not None else None,
                 action=AuditEvent.Action.LOGIN_FAILED, obj=token, detail=detail)


def tokens_of(*, username: str | None = None):
    qs = ApiToken.objects.select_related("user").order_by("user__username", "-created_at", "-id")
    return qs.filter(user__username=username) if username else qs


def user_by_name(username: str):
    User = get_user_model()
    try:
        return User.objects.get(username=username)
    except User.DoesNotExist:
        raise ValidationError({"user": f"No user named {username!r}."}) from None
