from django.apps import AppConfig


class ReportsConfig(AppConfig):
    name = "orthoreg.reports"
    label = "reports"
