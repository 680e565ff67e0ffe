from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "orthoreg.accounts"
    label = "accounts"

    def ready(self) -> None:
        # Function-level: models and what imports them load only once the app registry is ready.
        from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
        from django.db.backends.signals import connection_created
        from django.db.models.signals import post_migrate

        from . import signals
        from .auditchain import register_sqlite_function, reinstall_guard_after_migrate

        user_logged_in.connect(signals.on_login, dispatch_uid="orthoreg_audit_login")
        user_logged_out.connect(signals.on_logout, dispatch_uid="orthoreg_audit_logout")
        user_login_failed.connect(signals.on_login_failed, dispatch_uid="orthoreg_audit_login_failed")
        connection_created.connect(register_sqlite_function, dispatch_uid="orthoreg_audit_sqlite_function")
        post_migrate.connect(reinstall_guard_after_migrate, sender=self, dispatch_uid="orthoreg_audit_guard")
