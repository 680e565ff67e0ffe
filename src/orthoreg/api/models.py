"""API tokens (stored as hashes only) and the stored answers of idempotent writes."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class ApiToken(models.Model):
    """A bearer token acting as its user, with exactly the user's roles and clinics. The clear token is shown
    once, when it is created; the database keeps its SHA-256 hash and a short prefix to recognise it by."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True, help_text="What the token is for, e.g. 'EHR bridge'")
    prefix = models.CharField(max_length=12, db_index=True, help_text="The first characters of the token")
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: never expires")
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"API token {self.prefix}… of {self.user} ({self.name or 'no name'})"

    def state(self, now=None) -> str:
        now = now or timezone.now()
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


class IdempotentRequest(models.Model):
    """The answer to a write sent with an Idempotency-Key header: the same key with the same request gets the
    same answer again (nothing is written twice); the same key with another request is refused."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64, help_text="SHA-256 of method, path and body")
    status_code = models.PositiveSmallIntegerField()
    response = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="one_idempotency_key_per_user")]

    def __str__(self) -> str:
        return f"Idempotency-Key {self.key} of {self.user_id}: {self.status_code}"
