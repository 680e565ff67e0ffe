"""Staff two-factor authentication with TOTP (django-otp): who must use it, setting it up, verifying."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from base64 import b32encode

import qrcode
import qrcode.image.svg
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice

from . import access
from .models import AuditEvent, EnrolmentCode, Role
from .services import audit_record

ENROLMENT_DAYS = 7
_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud or typed from paper


def required_for(user, *, device: bool | None = None) -> bool:
    """Admins always; everyone when ORTHOREG_REQUIRE_2FA is set; anyone who has set up a device (`device`:
    whether they have, when the caller already knows). The roles are the request's own (read once)."""
    if not getattr(user, "is_authenticated", False):
        return False
    if user.is_superuser or user.is_staff or settings.REQUIRE_2FA_FOR_ALL:
        return True
    if Role.ADMIN in access.roles(user):
        return True
    return has_device(user) if device is None else device


def has_device(user) -> bool:
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def gate(user) -> str:
    """Where a signed-in user whose session is not verified must go first: "verify" (they have a confirmed
    device), "setup" (two-factor is required of them and they have no device yet) or "" (nowhere). One device
    query."""
    if has_device(user):
        return "verify"
    if required_for(user, device=False):
        return "setup"
    return ""


@transaction.atomic
def device_start(*, user) -> TOTPDevice:
    """The user's pending (unconfirmed) device, created once and kept until confirmed."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)
    return device


def secret_of(device: TOTPDevice) -> str:
    return b32encode(device.bin_key).decode().rstrip("=")


def qr_svg(device: TOTPDevice) -> str:
    image = qrcode.make(device.config_url, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    return image.to_string(encoding="unicode")


def _hash(code: str) -> str:
    return hashlib.sha256(code.strip().upper().replace("-", "").replace(" ", "").encode()).hexdigest()


def enrolment_needed(user, *, device: bool | None = None) -> bool:
    """A user who must use two-factor and has no device yet sets it up only with an enrolment code (`device`:
    whether they have one, when the caller already knows; else one device query)."""
    has = has_device(user) if device is None else device
    return not has and required_for(user, device=has)


@transaction.atomic
def enrolment_code_issue(*, user, actor=None, days: int = ENROLMENT_DAYS) -> str:
    """A new one-time enrolment code for the user (any earlier one stops working); returned once, kept hashed."""
    raw = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(12))  # 60 bits
    EnrolmentCode.objects.update_or_create(
        user=user, defaults={"code_hash": _hash(raw), "expires_at": timezone.now() + dt.timedelta(days=days)})
    audit_record(user=actor, action=AuditEvent.Action.UPDATE, obj=user, detail="two-factor enrolment code issued")
    return "-".join(raw[i:i + 4] for i in range(0, 12, 4))


@transaction.atomic
def twofactor_reset(*, user, actor=None) -> str:
    """A lost phone: remove the user's devices and issue a new enrolment code."""
    TOTPDevice.objects.filter(user=user).delete()
    audit_record(user=actor, action=AuditEvent.Action.UPDATE, obj=user, detail="two-factor devices removed")
    return enrolment_code_issue(user=user, actor=actor)


def _enrolment_problem(user, code: str) -> str:
    stored = EnrolmentCode.objects.filter(user=user).first()
    if stored is None:
        return "No enrolment code has been issued to you: ask an administrator for one."
    if not code or not hmac.compare_digest(stored.code_hash, _hash(code)):
        return "That enrolment code is not the one issued to you."
    if stored.expires_at < timezone.now():
        return "That enrolment code has expired: ask an administrator for a new one."
    return ""


@transaction.atomic
def device_confirm(*, request, device: TOTPDevice, token: str, enrolment_code: str = "") -> dict[str, str]:
    """Confirm a pending device with a code from the app (and the enrolment code where two-factor is required);
    log the session in as verified. Returns the problems by form field, empty on success."""
    if enrolment_needed(request.user):
        problem = _enrolment_problem(request.user, enrolment_code)
        if problem:
            audit_record(request=request, action=AuditEvent.Action.LOGIN_FAILED, detail="wrong enrolment code")
            return {"enrolment_code": problem}
    if not device.verify_token(token.strip().replace(" ", "")):
        return {"token": "That code did not match. Check the time on your phone and try the next code."}
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    EnrolmentCode.objects.filter(user=request.user).delete()
    otp_login(request, device)
    audit_record(request=request, action=AuditEvent.Action.UPDATE, obj=request.user, detail="two-factor set up")
    return {}


def verify(*, request, token: str) -> bool:
    token = token.strip().replace(" ", "")
    for device in TOTPDevice.objects.filter(user=request.user, confirmed=True):
        if device.verify_token(token):
            otp_login(request, device)
            return True
    audit_record(request=request, action=AuditEvent.Action.LOGIN_FAILED, detail="wrong two-factor code")
    return False
