from django.apps import AppConfig


class ImagingConfig(AppConfig):
    name = "orthoreg.imaging"
    label = "imaging"
    verbose_name = "Imaging"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (receivers; models cannot be imported before ready())
