"""The ndjson files of a command-line import validated in a second process ahead of the import (ahead.py): the
same verdicts, messages and locations as validating in the import itself; the import carries on alone when that
process dies (kill -9); the process never outlives the import."""

import io
import json
import os
import shutil
import signal
import time

import pytest
from django.core.management import call_command
from django.utils import timezone

from orthoreg.interop.fhir import ahead, imports
from orthoreg.registry.models import Episode, Patient
from orthoreg.site import demo
from orthoreg.site.synth import Generator

from .test_fhir_import import run

pytestmark = pytest.mark.skipif(not ahead.usable(), reason="needs fork and a second core")


@pytest.fixture(autouse=True)
def waiting(monkeypatch):
    """The import waits for each verdict (instead of working out the ones that have not come yet itself), so
    that what came from the other process is known (test_a_slow_process_is_not_waited_for: the default)."""
    monkeypatch.setattr(ahead, "STEAL", False)


@pytest.fixture
def exported(tmp_path, clinic):
    """The ndjson export of a small registry (7 patients, a few hundred resources), the registry emptied."""
    demo.create_df(clinic=clinic, today=timezone.localdate())
    Generator(clinics=[clinic], seed=11).run(6)
    out = tmp_path / "export"
    call_command("export", "fhir", "--out", str(out), "--no-progress", stdout=io.StringIO())
    Patient.objects.all().delete()
    return out


@pytest.fixture
def witness(monkeypatch):
    """The Ahead of each run, and how many verdicts it had from the other process when it closed."""
    seen: list[tuple[ahead.Ahead, int]] = []
    close = ahead.Ahead.close

    def recording_close(self):
        close(self)
        seen.append((self, self.received))

    monkeypatch.setattr(ahead.Ahead, "close", recording_close)
    return seen


def lines(path) -> int:
    return sum(1 for line in path.read_text().splitlines() if line.strip())


def spoil(directory):
    """Broken lines in three files: an R5-only element, an impossible date, a resource of the wrong type."""
    def edit(name, n, change):
        path = directory / name
        rows = path.read_text().splitlines()
        rows[n] = json.dumps(change(json.loads(rows[n])))
        path.write_text("\n".join(rows) + "\n")

    edit("Procedure.ndjson", 1, lambda r: {**r, "occurrenceDateTime": r.get("performedDateTime")})
    edit("Observation.ndjson", 3, lambda r: {**r, "effectiveDateTime": "2024-02-30"})
    edit("Condition.ndjson", 2, lambda r: {**r, "resourceType": "Patient"})


def test_verdicts_from_the_other_process_are_the_import_s_own(tmp_path, exported, witness):
    broken = tmp_path / "broken"
    shutil.copytree(exported, broken)
    spoil(broken)
    alone = imports.import_paths([str(broken)], dry_run=True)
    assert witness == []  # (no process without ahead_min_bytes)
    helped = imports.import_paths([str(broken)], dry_run=True, ahead_min_bytes=0)
    assert helped.as_dict() == alone.as_dict()
    messages = [e for s in helped.types.values() for e in s.errors]
    for where, what in (("Condition.ndjson: line 3", "wrong resourceType 'Patient'"),
                        ("Procedure.ndjson: line 2", "not an element of this resource in FHIR R4"),
                        ("Observation.ndjson: line 4", "effectiveDateTime")):
        assert any(e["location"].startswith(where) and what in e["message"] for e in messages), (where, messages)
    ((process, received),) = witness
    checked = sum(lines(p) for p in broken.glob("*.ndjson"))
    assert 0 < received <= checked  # (lines of a refused file after its refusal are still checked, in the import)
    assert not process._process.is_alive()


def test_an_import_validated_ahead_stores_what_one_validated_alone_stores(exported, witness):
    summary = imports.import_paths([str(exported)], ahead_min_bytes=0)
    assert summary.ok, [e for s in summary.types.values() for e in s.errors]
    ((_, received),) = witness
    assert received == sum(lines(p) for p in exported.glob("*.ndjson"))  # every verdict came from the other process
    assert Patient.objects.count() == 7 and Episode.objects.count() >= 7
    again = imports.import_paths([str(exported)])  # validated here: the same records, now updated only
    assert again.ok and all(s.created == 0 for s in again.types.values())


def test_the_import_validates_alone_when_the_other_process_is_killed(tmp_path, exported, witness, monkeypatch):
    broken = tmp_path / "broken"
    shutil.copytree(exported, broken)
    spoil(broken)
    alone = imports.import_paths([str(broken)], dry_run=True)
    result = ahead.Ahead.result

    def kill_after_ten(self, name, line, value):
        if self.received == 10 and self._process.is_alive():
            os.kill(self._process.pid, signal.SIGKILL)  # kill -9, mid-import
            self._process.join()
        return result(self, name, line, value)

    monkeypatch.setattr(ahead.Ahead, "result", kill_after_ten)
    helped = imports.import_paths([str(broken)], dry_run=True, ahead_min_bytes=0)
    assert helped.as_dict() == alone.as_dict()
    ((_, received),) = witness
    assert received < sum(lines(p) for p in broken.glob("*.ndjson"))  # (batches already sent are still used)


def test_the_other_process_ends_when_the_import_fails(exported, witness, monkeypatch):
    calls = []
    import_path = imports._import_path

    def fail_at_the_second_file(path, ctx, summary):
        calls.append(path)
        if len(calls) == 2:
            raise RuntimeError("the import stops here")
        return import_path(path, ctx, summary)

    monkeypatch.setattr(imports, "_import_path", fail_at_the_second_file)
    with pytest.raises(RuntimeError):
        imports.import_paths([str(exported)], ahead_min_bytes=0)
    ((process, _),) = witness
    assert not process._process.is_alive()
    assert Patient.objects.count() == 7  # (the first file, a unit of its own, was imported before the failure)


def test_the_command_line_validates_large_imports_ahead(exported, witness, monkeypatch):
    code, alone = run(exported, "--dry-run")
    assert code == 0 and witness == []  # a small import: validated in the import itself
    monkeypatch.setattr(imports, "AHEAD_MIN_BYTES", 0)
    code, helped = run(exported, "--dry-run")
    assert code == 0 and helped == alone
    ((_, received),) = witness
    assert received > 0
    code, single = run(exported, "--dry-run", "--single-process")
    assert code == 0 and single == alone and len(witness) == 1  # (no second process)


def test_an_import_far_behind_loses_nothing(tmp_path, exported, witness, monkeypatch):
    """The import slower than the validating process: the pipe fills, the other process waits; every verdict
    still arrives, in order."""
    monkeypatch.setattr(ahead, "BATCH", 1)
    result = ahead.Ahead.result

    def slow(self, name, line, value):
        if self.received == 0:
            time.sleep(0.5)  # (the other process meanwhile fills the pipe and waits)
        return result(self, name, line, value)

    monkeypatch.setattr(ahead.Ahead, "result", slow)
    summary = imports.import_paths([str(exported)], dry_run=True, ahead_min_bytes=0)
    assert summary.ok
    ((_, received),) = witness
    assert received == sum(lines(p) for p in exported.glob("*.ndjson"))


def test_a_slow_process_is_not_waited_for(tmp_path, exported, witness, monkeypatch):
    """The other process slower than the import (a busy machine): the import works out what has not come yet
    itself, and drops what comes later; the same import."""
    broken = tmp_path / "broken"
    shutil.copytree(exported, broken)
    spoil(broken)
    alone = imports.import_paths([str(broken)], dry_run=True)
    monkeypatch.setattr(ahead, "STEAL", True)
    work = ahead._work

    def slow_work(names, produce, send):
        def slowly(name):
            for item in produce(name):
                time.sleep(0.002)
                yield item
        work(names, slowly, send)

    monkeypatch.setattr(ahead, "_work", slow_work)  # (the forked process runs this copy)
    helped = imports.import_paths([str(broken)], dry_run=True, ahead_min_bytes=0)
    assert helped.as_dict() == alone.as_dict()
    ((process, received),) = witness
    assert process.stolen > 0
    assert received + process.stolen == sum(lines(p) for p in broken.glob("*.ndjson"))


def test_no_process_to_be_had_the_import_validates_alone(exported, witness, monkeypatch):
    def refuse_to_fork(*args, **kwargs):
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(ahead.Ahead, "__init__", refuse_to_fork)
    summary = imports.import_paths([str(exported)], dry_run=True, ahead_min_bytes=0)
    assert summary.ok and summary.types["Patient"].created == 7 and witness == []


def test_the_commands_collect_garbage_less_often_and_undo_it(exported):
    import gc

    from orthoreg.interop.fhir import commands

    before, frozen = gc.get_threshold(), gc.get_freeze_count()
    with commands.fewer_collections():
        assert gc.get_threshold()[0] >= 10_000 and gc.get_freeze_count() > frozen
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
    with pytest.raises(RuntimeError), commands.fewer_collections():
        raise RuntimeError("a command fails")
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
    code, summary = run(exported, "--dry-run")  # (the command runs inside it)
    assert code == 0 and summary["resources"]["Patient"]["created"] == 7
    assert gc.get_threshold() == before
