"""A file email backend that writes each message to a file of its own (the demo's outbox)."""

import os
import uuid

from django.core.mail.backends.filebased import EmailBackend as FileEmailBackend
from django.utils import timezone


class EmailBackend(FileEmailBackend):
    def _get_filename(self):
        if self._fname is None:
            name = f"{timezone.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:12]}.eml"
            self._fname = os.path.join(self.file_path, name)
        return self._fname
