from django.apps import AppConfig
from django.db.backends.signals import connection_created
from django.db.models.signals import post_migrate

from .auditchain import register_sqlite_function, reinstall_guard_after_migrate


class AccountsConfig(AppConfig):
    name = "orthoreg.accounts"
    label = "accounts"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (receivers; models cannot be imported before ready())

        connection_created.connect(register_sqlite_function, dispatch_uid="orthoreg_audit_sqlite_function")
        post_migrate.connect(reinstall_guard_after_migrate, sender=self, dispatch_uid="orthoreg_audit_guard")
