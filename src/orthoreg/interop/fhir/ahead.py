"""Work on the lines of an import's files in a second process, ahead of the import itself.

Validating a resource against its R4B model needs nothing but the resource, and is about a third of an import's
CPU time; mapping and storing need the database and the order of the lines. So on a machine with a second core,
`orthoreg import fhir` forks one process that reads the same ndjson files in the same order and validates every
line (the same function, `imports.resource_verdict`), while the import maps and stores; the import asks for each
line's verdict when it reaches it and judges a line itself whenever no verdict has come for it yet (so it never
waits, and is never slower for the other process: on a busy machine it simply does more of the work itself).

What crosses between them is small: per line its number and its verdict (None, or the refusal's three strings),
in batches. The pipe between them is bounded (the validating process waits when it is far ahead), so memory stays
bounded whatever the files' size. The validating process never touches the database (it inherits the
connection; it leaves it alone and ends with os._exit, so nothing of it is closed or sent), ignores Ctrl-C (the
import stops it) and is stopped when the import ends, however it ends. If it dies, the import validates the rest
itself: the verdicts, and so the import, are the same either way (tests/interop/test_fhir_ahead.py).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator
from typing import Any

BATCH = 256  # verdicts per message (at most)
# A line whose result has not arrived yet is worked on by the caller itself instead of waited for (so the import is
# never slower for the other process: on a busy machine it simply does more itself); False: wait (the tests).
STEAL = True


def usable() -> bool:
    """A second core to work on, and fork (Linux, macOS): otherwise the import validates every line itself."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # (no sched_getaffinity: macOS)
        cores = os.cpu_count() or 1
    return cores >= 2 and "fork" in multiprocessing.get_all_start_methods()


def _work(names: list[str], work: Callable[[str], Iterator[tuple[int, Any]]], send) -> None:
    """The second process: every file's (line, result) in order, in batches; (name, [], True) ends a file."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        for name in names:
            batch: list[tuple[int, Any]] = []
            size = min(16, BATCH)  # (small at first: the import waits for a file's first verdicts)
            for item in work(name):
                batch.append(item)
                if len(batch) >= size:
                    send.send((name, batch, False))
                    batch, size = [], min(size * 2, BATCH)
            send.send((name, batch, True))
    except (BrokenPipeError, EOFError, OSError):  # the import has stopped listening
        pass


class Ahead:
    """The results of `work(name)` for each of `names`, computed in a forked process ahead of the caller, who asks
    for them file by file, line by line, in the same order (`result`). `fallback(name, line, value)` gives a
    result for a line that got none (its process died, or stopped at a line the caller stops at too)."""

    def __init__(self, names: list[str], work: Callable[[str], Iterator[tuple[int, Any]]],
                 fallback: Callable[[str, int, Any], Any]) -> None:
        names = list(dict.fromkeys(names))
        self.names = set(names)
        self._fallback = fallback
        context = multiprocessing.get_context("fork")
        self._receive, send = context.Pipe(duplex=False)
        self._process = context.Process(target=_work, args=(names, work, send), daemon=True,
                                        name="orthoreg-validate-ahead")
        self._process.start()
        send.close()  # (the child's end: the parent holds only the receiving one)
        self._name: str | None = None  # the file whose results are arriving
        self._results: dict[int, Any] = {}
        self._finished = False  # every result of self._name has arrived
        self._ended: set[str] = set()  # files whose results are all in (or passed over)
        self._broken = False
        self.received = 0  # results that came from the other process (the tests' witness)
        self.stolen = 0  # results worked out here because the other process had not sent them yet

    def result(self, name: str, line: int, value: Any) -> Any:
        """The result for this line of this file: from the other process when it has sent it, else computed
        here by the fallback."""
        while True:
            if name == self._name and line in self._results:
                self.received += 1
                return self._results.pop(line)
            if self._broken or name not in self.names or name in self._ended or (
                    name == self._name and self._finished):
                return self._fallback(name, line, value)
            try:
                if STEAL and not self._receive.poll():
                    # Not there yet (the other process is behind: it started later, or has less of the machine):
                    # this line is worked on here rather than waited for; its result, when it comes, is dropped.
                    self.stolen += 1
                    return self._fallback(name, line, value)
                arrived, results, finished = self._receive.recv()
            except Exception:  # (EOFError, OSError, a message cut short: the process is gone)
                self._broken = True
                continue
            if arrived != self._name:  # a new file: what is left of the one before is passed over
                if self._name is not None:
                    self._ended.add(self._name)
                self._name, self._results = arrived, {}
            if arrived == name:  # (results of lines the caller has passed, or of a file it has left, are dropped)
                self._results.update(item for item in results if item[0] >= line)
            self._finished = finished

    def close(self) -> None:
        self._receive.close()
        if self._process.is_alive():
            self._process.terminate()
        self._process.join(timeout=5)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
