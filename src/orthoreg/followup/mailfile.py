"""A file email backend that writes each message to a file of its own (the demo's outbox).

A message appears in the outbox whole or not at all (written to a hidden file, then renamed), under a name made
from its Message-ID, so the worker can tell after a crash whether an email it was sending actually left
(`was_sent`).
"""

import hashlib
import os
from email.utils import make_msgid
from pathlib import Path

from django.core.mail.backends.filebased import EmailBackend as FileEmailBackend
from django.utils import timezone

from . import failpoints


def _key(message_id: str) -> str:
    return hashlib.sha256(message_id.strip().encode()).hexdigest()[:32]


class EmailBackend(FileEmailBackend):
    def send_messages(self, email_messages):
        if not email_messages:
            return 0
        outbox = Path(self.file_path)
        sent = 0
        with self._lock:
            for message in email_messages:
                message_id = message.extra_headers.setdefault("Message-ID", make_msgid(domain="orthoreg.invalid"))
                final = outbox / f"{timezone.now():%Y%m%d-%H%M%S}-{_key(message_id)}.eml"
                part = outbox / f".{final.name}.part"
                with open(part, "wb") as fh:
                    self.stream = fh
                    try:
                        self.write_message(message)
                        fh.flush()
                        os.fsync(fh.fileno())
                    finally:
                        self.stream = None
                failpoints.reached(failpoints.DURING_SEND)
                os.replace(part, final)
                sent += 1
        return sent

    def was_sent(self, message_id: str) -> bool:
        """Whether the message with this Message-ID is in the outbox (a half-written one is not)."""
        return any(Path(self.file_path).glob(f"*-{_key(message_id)}.eml"))  # type: ignore[attr-defined]
