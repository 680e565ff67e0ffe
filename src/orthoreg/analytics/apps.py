from django.apps import AppConfig

from orthoreg import events


class AnalyticsConfig(AppConfig):
    name = "orthoreg.analytics"
    label = "analytics"

    def ready(self) -> None:
        events.connect_app(self)
