"""An image's files leave storage once its row is deleted for good (directly, or with its episode or patient).

Django's post_delete, not a domain event (orthoreg/events.py): a row deleted by a cascade from the registry is
seen only there. apps.ImagingConfig.ready() connects it."""

from __future__ import annotations

import logging

from django.db import transaction

from .models import Image

log = logging.getLogger(__name__)


def delete_files(storage, paths: list[str]) -> None:
    for path in paths:
        try:
            storage.delete(path)
        except OSError:  # the row is gone either way; a stray file is logged, not fatal
            log.warning("could not delete %s", path)


def image_deleted(sender, instance: Image, **kwargs) -> None:
    storage = instance.original.storage
    paths = [f.name for f in (instance.original, instance.rendition, instance.thumbnail) if f.name]
    transaction.on_commit(lambda: delete_files(storage, paths))
