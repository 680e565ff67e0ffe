"""An image's files leave storage once its row is deleted for good (directly, or with its episode or patient)."""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from .models import Image

log = logging.getLogger(__name__)


def delete_files(storage, paths: list[str]) -> None:
    for path in paths:
        try:
            storage.delete(path)
        except OSError:  # the row is gone either way; a stray file is logged, not fatal
            log.warning("could not delete %s", path)


@receiver(post_delete, sender=Image, dispatch_uid="imaging_image_files")
def _image_deleted(sender, instance: Image, **kwargs) -> None:
    storage = instance.original.storage
    paths = [f.name for f in (instance.original, instance.rendition, instance.thumbnail) if f.name]
    transaction.on_commit(lambda: delete_files(storage, paths))
