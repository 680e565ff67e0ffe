from django.apps import AppConfig


class ImagingConfig(AppConfig):
    name = "orthoreg.imaging"
    label = "imaging"
    verbose_name = "Imaging"

    def ready(self) -> None:
        # Function-level: models and what imports them load only once the app registry is ready.
        from django.db.models.signals import post_delete

        from .models import Image
        from .signals import image_deleted

        post_delete.connect(image_deleted, sender=Image, dispatch_uid="imaging_image_files")
