"""Named points in the worker's sending where a crash test stops a real worker process to kill it (kill -9).

Off unless ORTHOREG_FAILPOINT names the point: the process then writes the name to ORTHOREG_FAILPOINT_FILE and
waits there until it is killed. Nothing else reads these variables.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

BEFORE_TOKEN_COMMIT = "before_token_commit"  # the link's token and the send record written, not committed
AFTER_TOKEN_COMMIT = "after_token_commit"  # committed; the email not yet handed over
DURING_SEND = "during_send"  # the file backend has written the message but not yet put it in the outbox
AFTER_SEND = "after_send"  # the email has left; not yet marked sent
ALL = (BEFORE_TOKEN_COMMIT, AFTER_TOKEN_COMMIT, DURING_SEND, AFTER_SEND)


def reached(name: str) -> None:
    if os.environ.get("ORTHOREG_FAILPOINT") != name:
        return
    marker = os.environ.get("ORTHOREG_FAILPOINT_FILE")
    if marker:
        Path(marker).write_text(name)
    while True:  # until the test kills this process
        time.sleep(0.5)
