from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "orthoreg.registry"
    label = "registry"
