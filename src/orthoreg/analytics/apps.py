from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    name = "orthoreg.analytics"
    label = "analytics"
