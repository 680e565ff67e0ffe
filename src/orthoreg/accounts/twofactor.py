"""Staff two-factor authentication with TOTP (django-otp): who must use it, setting it up, verifying."""

from __future__ import annotations

from base64 import b32encode

import qrcode
import qrcode.image.svg
from django.conf import settings
from django.db import transaction
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice

from .models import AuditEvent, Membership, Role
from .services import audit_record


def required_for(user) -> bool:
    """Admins always; everyone when ORTHOREG_REQUIRE_2FA is set; anyone who has set up a device."""
    if not getattr(user, "is_authenticated", False):
        return False
    if user.is_superuser or user.is_staff or settings.REQUIRE_2FA_FOR_ALL:
        return True
    if Membership.objects.filter(user=user, role=Role.ADMIN).exists():
        return True
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def has_device(user) -> bool:
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


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


@transaction.atomic
def device_confirm(*, request, device: TOTPDevice, token: str) -> bool:
    """Confirm a pending device with a code from the app; log the session in as verified."""
    if not device.verify_token(token.strip().replace(" ", "")):
        return False
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    otp_login(request, device)
    audit_record(request=request, action=AuditEvent.Action.UPDATE, obj=request.user, detail="two-factor set up")
    return True


def verify(*, request, token: str) -> bool:
    token = token.strip().replace(" ", "")
    for device in TOTPDevice.objects.filter(user=request.user, confirmed=True):
        if device.verify_token(token):
            otp_login(request, device)
            return True
    audit_record(request=request, action=AuditEvent.Action.LOGIN_FAILED, detail="wrong two-factor code")
    return False
