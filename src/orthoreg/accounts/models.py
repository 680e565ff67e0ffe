"""Clinic membership with a role, and the append-only audit log."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import models, router
from django.utils import timezone

from orthoreg import bulkinsert

from . import auditchain


class Role(models.TextChoices):
    ADMIN = "admin", "Administrator"
    CLINICIAN = "clinician", "Clinician"
    COORDINATOR = "coordinator", "Coordinator"
    RESEARCHER = "researcher", "Researcher"
    AUDITOR = "auditor", "Auditor"


class Membership(models.Model):
    """A user's role in one clinic. A user may belong to several clinics."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    clinic = models.ForeignKey("registry.Clinic", on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=12, choices=Role.choices)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "clinic"], name="one_role_per_user_and_clinic")]

    def __str__(self) -> str:
        return f"{self.user} · {self.get_role_display()} · {self.clinic}"


class AuditQuerySet(models.QuerySet):
    def bulk_create(self, objs, *args, **kwargs):
        """Every insert joins the hash chain (see auditchain), bulk ones included."""
        objs = list(objs)
        for obj in objs:
            if obj.pk is not None:
                raise PermissionDenied("The audit log is append-only.")
            obj.at = obj.at or timezone.now()
        self._for_write = True  # (self.db: the database written to, as bulk_create's own)
        if args or set(kwargs) - {"batch_size"}:
            return auditchain.append(objs, lambda: super(AuditQuerySet, self).bulk_create(objs, *args, **kwargs),
                                     using=self.db)
        return auditchain.append(objs, lambda: bulkinsert.insert_objects(self.model, objs, using=self.db),
                                 using=self.db)

    def update(self, **kwargs):
        raise PermissionDenied("The audit log is append-only.")

    def delete(self):
        raise PermissionDenied("The audit log is append-only.")


class AuditEvent(models.Model):
    """Who did what, when, from where, to which patient. Never updated or deleted: triggers in the database
    refuse it, and each entry carries the hash of the one before it (auditchain) so tampering shows."""

    class Action(models.TextChoices):
        VIEW = "view", "View"
        CREATE = "create", "Create"
        UPDATE = "update", "Update"
        DELETE = "delete", "Delete"
        EXPORT = "export", "Export"
        LOGIN = "login", "Login"
        LOGOUT = "logout", "Logout"
        LOGIN_FAILED = "login_failed", "Failed login"

    # Set before the insert (not auto_now_add, which would change it after the entry was hashed).
    at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)
    # DO_NOTHING without a database constraint: entries keep the ids of deleted users and patients.
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.DO_NOTHING,
                             related_name="+", db_constraint=False)
    username = models.CharField(max_length=150, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    action = models.CharField(max_length=16, choices=Action.choices)
    patient = models.ForeignKey("registry.Patient", null=True, blank=True, on_delete=models.DO_NOTHING,
                                related_name="+", db_constraint=False)
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    detail = models.CharField(max_length=500, blank=True)
    prev_hash = models.CharField(max_length=64, blank=True, editable=False)
    hash = models.CharField(max_length=64, blank=True, editable=False)

    objects = AuditQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["patient", "at"]), models.Index(fields=["action", "at"])]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.username} {self.action} {self.object_type} {self.object_id}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise PermissionDenied("The audit log is append-only.")
        using = kwargs.get("using") or router.db_for_write(type(self), instance=self)
        auditchain.append([self], lambda: super(AuditEvent, self).save(*args, **kwargs), using=using)

    def delete(self, *args, **kwargs):
        raise PermissionDenied("The audit log is append-only.")


class EnrolmentCode(models.Model):
    """A one-time code an administrator hands to a user who must use two-factor sign-in, needed once to set up
    the authenticator app: without it a stolen password could enrol the thief's phone. Stored only as a hash."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="enrolment_code")
    code_hash = models.CharField(max_length=64)
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"two-factor enrolment code of {self.user} (until {self.expires_at:%Y-%m-%d %H:%M})"
