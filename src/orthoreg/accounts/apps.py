from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "orthoreg.accounts"
    label = "accounts"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        from . import signals  # noqa: F401
        from .auditchain import register_sqlite_function

        connection_created.connect(register_sqlite_function, dispatch_uid="orthoreg_audit_sqlite_function")
