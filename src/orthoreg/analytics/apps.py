from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    name = "orthoreg.analytics"
    label = "analytics"

    def ready(self):
        from . import signals

        signals.connect()
