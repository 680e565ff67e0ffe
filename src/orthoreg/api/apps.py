from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "orthoreg.api"
    label = "api"
