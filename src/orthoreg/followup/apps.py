from django.apps import AppConfig

from orthoreg import events


class FollowupConfig(AppConfig):
    name = "orthoreg.followup"
    label = "followup"

    def ready(self) -> None:
        events.connect_app(self)
