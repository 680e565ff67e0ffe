from django.apps import AppConfig


class InteropConfig(AppConfig):
    name = "orthoreg.interop"
    label = "interop"
