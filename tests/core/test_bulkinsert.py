"""orthoreg.bulkinsert stores exactly what Django's bulk_create (and simple_history's bulk_history_create) store,
row for row and column for column as the database holds them, for every model it is used on; on SQLite and on
PostgreSQL (ORTHOREG_DATABASE_URL)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import connection, models
from django.test.utils import CaptureQueriesContext

from orthoreg import bulkinsert
from orthoreg.accounts.models import AuditEvent
from orthoreg.followup.models import Assessment, Protocol
from orthoreg.instruments.models import Response
from orthoreg.interop.models import FhirLink
from orthoreg.registry.models import AdverseEvent, Episode, Patient, Procedure

NOW = dt.datetime(2025, 3, 4, 5, 6, 7, 891011, tzinfo=dt.UTC)
CHICAGO = ZoneInfo("America/Chicago")


def stored(model, pks) -> list[tuple]:
    """The rows as the database holds them (by a plain cursor: no field converts them back), in pk order,
    without the primary key (two inserts of the same values differ only there)."""
    qn = connection.ops.quote_name
    table, pk = model._meta.db_table, model._meta.pk.column
    columns = [f.column for f in model._meta.concrete_fields if f.column != pk]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {', '.join(qn(c) for c in columns)} FROM {qn(table)} WHERE {qn(pk)} IN "
                       f"({', '.join(['%s'] * len(pks))}) ORDER BY {qn(pk)}", list(pks))
        return [tuple(row) for row in cursor.fetchall()]


def assert_same_rows(model, make) -> list:
    """make() twice: stored by bulk_create (then deleted again: unique constraints), then by
    bulkinsert.insert_objects, at the same moment (auto_now): the same rows. Returns the instances stored."""
    with time_machine.travel(NOW, tick=False):
        by_django = models.QuerySet(model).bulk_create(make())  # (the plain one: no audit chain on AuditEvent)
        theirs = stored(model, [o.pk for o in by_django])
        if model is not AuditEvent:  # (append-only, and without unique columns)
            model.objects.filter(pk__in=[o.pk for o in by_django]).delete()
        ours = bulkinsert.insert_objects(model, make())
    assert all(o.pk is not None and not o._state.adding and o._state.db == "default" for o in ours)
    assert len({o.pk for o in ours}) == len(ours) == len(theirs)
    assert stored(model, [o.pk for o in ours]) == theirs
    assert [o.pk for o in ours] == list(model.objects.filter(pk__in=[o.pk for o in ours]).order_by("pk")
                                        .values_list("pk", flat=True))
    return ours


def assert_same_history(model, objs, *, user=None, update=False) -> None:
    """bulk_history_create and bulkinsert.history_insert of the same records: the same historical rows."""
    historical = model.history.model
    before = set(historical.objects.values_list("pk", flat=True))
    with time_machine.travel(NOW, tick=False):
        model.history.bulk_history_create(objs, default_user=user, update=update)
        middle = set(historical.objects.values_list("pk", flat=True))
        bulkinsert.history_insert(model, objs, default_user=user, update=update)
    after = set(historical.objects.values_list("pk", flat=True))
    theirs, ours = sorted(middle - before), sorted(after - middle)
    assert len(ours) == len(theirs) == len(objs)
    hid = historical._meta.pk.column
    names = [f.column for f in historical._meta.concrete_fields if f.column != hid]
    assert [dict(zip(names, r)) for r in stored(historical, ours)] == \
        [dict(zip(names, r)) for r in stored(historical, theirs)]


@pytest.fixture
def records(clinic, clinician):
    patient = Patient.objects.create(clinic=clinic, mrn="B-1", given_name="Zoë", family_name="Ø'Brien",
                                     birth_date=dt.date(1980, 2, 29), sex="female")
    episode = Episode.objects.create(patient=patient, body_site="knee", side="left", condition="knee_oa")
    procedure = Procedure.objects.create(episode=episode, date=dt.date(2024, 5, 6), kind="prp")
    return {"patient": patient, "episode": episode, "procedure": procedure, "clinic": clinic, "user": clinician}


def test_registry_records_are_stored_as_bulk_create_stores_them(db, records):
    clinic, user = records["clinic"], records["user"]
    patients = assert_same_rows(Patient, lambda: [
        Patient(clinic=clinic, mrn=f"X-{n}", given_name="Ana María", family_name="Łukasz-Ng", initials="AL",
                birth_date=dt.date(1950 + n, 1 + n, 28), sex=sex, email=email, phone="", status=status,
                status_date=status_date, consent_registry=bool(n % 2), consent_date=dt.date(2020, 1, 1) if n else None,
                consent_version="v2" if n else "", notes="line one\nline two ✓")
        for n, (sex, email, status, status_date) in enumerate([
            ("female", "a@example.org", "active", None), ("male", "", "deceased", dt.date(2024, 12, 31)),
            ("unknown", "", "withdrawn", dt.date(2023, 6, 1))])])
    episodes = assert_same_rows(Episode, lambda: [
        Episode(patient=patients[n], body_site=site, side=side, condition=condition, icd10_code=icd,
                onset_date=onset, status=status, notes=notes)
        for n, (site, side, condition, icd, onset, status, notes) in enumerate([
            ("first_mtp", "right", "hallux_rigidus", "", None, "active", ""),
            ("knee", "bilateral", "knee_oa", "M17.0", dt.date(2019, 7, 1), "resolved", "ü"),
            ("lumbar_spine", "na", "low_back_pain", "", dt.date(2001, 1, 1), "closed", "x\ty")])])
    procedures = assert_same_rows(Procedure, lambda: [
        Procedure(episode=episodes[0], date=dt.date(2024, 3, 1), kind="bmc", category="orthobiologic", is_index=True,
                  target_structure="joint", image_guidance="ultrasound", cpt_code="", performer_name="Dr Ö",
                  bmi=Decimal("27.5"), harvest_volume_ml=Decimal("60.0"), final_volume_ml=Decimal("4.5"),
                  total_nucleated_cells=1.25e8, cfu_f_per_ml=None, spins=2, g_force=1500,
                  spin_minutes=Decimal("12.5"), notes="", performed_by=user),
        Procedure(episode=episodes[1], date=dt.date(2023, 1, 2), kind="prp", category="orthobiologic",
                  platelets_per_ul=1234.5, leukocytes_per_ul=0.0, platelet_fold=Decimal("5.1"),
                  delivered_volume_ml=Decimal("3"), smoking=True, nsaid_use=False),
        Procedure(episode=episodes[2], date=dt.date(2022, 2, 3), kind="prolotherapy", category="injection",
                  dextrose_percent=Decimal("15.0"), injection_sites=4)])
    events = assert_same_rows(AdverseEvent, lambda: [
        AdverseEvent(procedure=procedures[0], date=dt.date(2024, 3, 2), severity="mild", serious=False,
                     description="Swelling — two days", resolved_date=dt.date(2024, 3, 4)),
        AdverseEvent(procedure=procedures[1], date=dt.date(2023, 1, 3), severity="severe", serious=True,
                     description="x", resolved_date=None)])
    for model, objs in ((Patient, patients), (Episode, episodes), (Procedure, procedures),
                        (AdverseEvent, events)):
        assert_same_history(model, objs, user=user)
        assert_same_history(model, objs, update=True)


def test_responses_and_assessments_are_stored_as_bulk_create_stores_them(db, records):
    patient, episode, user = records["patient"], records["episode"], records["user"]
    responses = assert_same_rows(Response, lambda: [
        Response(patient=patient, episode=episode, time_point="6m", instrument="nprs", instrument_version="1.0",
                 answers=[7], scores={"pain": 7}, score=7.0, valid=True,
                 completed_at=dt.datetime(2024, 9, 1, 23, 30, tzinfo=CHICAGO), source="import", entered_by=user),
        Response(patient=patient, episode=None, time_point="", instrument="foot", instrument_version="2",
                 answers=[1, None, 2.5, "x"], scores={"total": 33.333333333333336, "pain": None,
                                                      "nested": {"a": [1, 2], "ü": "✓"}},
                 score=None, valid=False, invalid_reason="too few answers", completed_at=NOW, source="staff")])
    protocol = Protocol.objects.first()
    assessments = assert_same_rows(Assessment, lambda: [
        Assessment(patient=patient, episode=episode, protocol=protocol, time_point=tp, time_point_order=n,
                   instrument="nprs", due_date=dt.date(2024, 1, 1) + dt.timedelta(days=30 * n),
                   window_start=dt.date(2023, 12, 1) + dt.timedelta(days=30 * n),
                   window_end=dt.date(2024, 2, 1) + dt.timedelta(days=30 * n), status=status,
                   cancelled_reason=reason, completed_at=at, response=response, draft=draft)
        for n, (tp, status, reason, at, response, draft) in enumerate([
            ("baseline", "scheduled", "", None, None, {}),
            ("6w", "cancelled", "patient withdrawn on 1 Jan 2024", None, None, {"1": 3, "note": "ü"}),
            ("3m", "completed", "", dt.datetime(2024, 4, 1, 8, 0, tzinfo=CHICAGO), responses[1],
             {"a": [None, 1.5]})])])
    assessments += assert_same_rows(Assessment, lambda: [
        Assessment(patient=patient, episode=episode, time_point="6m", instrument="nprs", due_date=dt.date(2024, 6, 1),
                   window_start=dt.date(2024, 5, 1), window_end=dt.date(2024, 7, 1), status="completed",
                   completed_at=responses[0].completed_at, response=responses[0])])
    for model, objs in ((Response, responses), (Assessment, assessments)):
        assert_same_history(model, objs, user=user)
        assert_same_history(model, objs, update=True)


def test_audit_entries_are_stored_as_bulk_create_stores_them(db, records):
    user, patient = records["user"], records["patient"]
    assert_same_rows(AuditEvent, lambda: [
        AuditEvent(at=NOW, user=user, username="doc", ip_address="10.1.2.3", action="create", patient=patient,
                   object_type="patient", object_id=str(patient.pk), detail="é", prev_hash="", hash="a" * 64),
        AuditEvent(at=dt.datetime(2024, 1, 1, tzinfo=CHICAGO), user=None, username="", ip_address="",
                   action="view", patient=None, object_type="", object_id="", detail="", prev_hash="p", hash="h"),
        AuditEvent(at=NOW, ip_address="::1", action="update", prev_hash="", hash="")])


def test_audit_entries_still_join_the_chain(db, records):
    from orthoreg.accounts import auditchain
    from orthoreg.accounts.services import audit_record_bulk

    rows = audit_record_bulk(action="create", entries=[(records["patient"], None, "one"), (None, None, "two")])
    assert all(r.pk is not None for r in rows)
    assert auditchain.verify().intact


def test_audit_entries_name_their_user_and_patient_by_id_and_refuse_unsaved_ones(db, records):
    from orthoreg.accounts.services import audit_record_bulk

    user, patient = records["user"], records["patient"]
    rows = audit_record_bulk(user=user, action="update", entries=[(records["episode"], None, "x"), (None, patient, "y")])
    assert [(r.user_id, r.username, r.patient_id, r.object_type) for r in rows] == \
        [(user.pk, user.username, patient.pk, "episode"), (user.pk, user.username, patient.pk, "")]
    assert [r.patient for r in AuditEvent.objects.filter(pk__in=[r.pk for r in rows])] == [patient, patient]
    unsaved = Patient(clinic=records["clinic"], mrn="NEVER", given_name="A", family_name="B",
                      birth_date=dt.date(1990, 1, 1), sex="female")
    before = AuditEvent.objects.count()
    with pytest.raises(ValueError, match="unsaved related object 'patient'"):
        audit_record_bulk(action="view", entries=[(None, patient, "fine"), (None, unsaved, "refused")])
    assert AuditEvent.objects.count() == before


def test_plain_rows_and_ignored_conflicts_as_bulk_create(db):
    with time_machine.travel(NOW, tick=False):
        FhirLink.objects.bulk_create([FhirLink(resource_type="Patient", key="id:Patient/1", object_id=1)])
        models.QuerySet(FhirLink).bulk_create([FhirLink(resource_type="Patient", key="id:Patient/1", object_id=2),
                                               FhirLink(resource_type="Patient", key="ü:2", object_id=2 ** 40)],
                                              ignore_conflicts=True)
        rows = [("Patient", "id:Patient/1", 3, NOW), ("Condition", "ü:2", 2 ** 40, NOW)]
        assert bulkinsert.insert_rows(FhirLink, ("resource_type", "key", "object_id", "created_at"), rows,
                                      ignore_conflicts=True) == []
    links = {(r, k): (o, c) for r, k, o, c in FhirLink.objects.values_list("resource_type", "key", "object_id",
                                                                            "created_at")}
    assert links == {("Patient", "id:Patient/1"): (1, NOW), ("Patient", "ü:2"): (2 ** 40, NOW),
                     ("Condition", "ü:2"): (2 ** 40, NOW)}
    theirs = FhirLink.objects.get(resource_type="Patient", key="ü:2")
    ours = FhirLink.objects.get(resource_type="Condition", key="ü:2")
    assert stored(FhirLink, [ours.pk])[0][1:] == stored(FhirLink, [theirs.pk])[0][1:]


def test_keys_are_returned_in_order_across_batches(db, records):
    patient = records["patient"]
    rows = [("Patient", f"k{n}", n, NOW) for n in range(1207)]
    batch = connection.ops.bulk_batch_size([f for f in FhirLink._meta.concrete_fields if f.name != "id"], rows)
    with CaptureQueriesContext(connection) as queries:
        keys = bulkinsert.insert_rows(FhirLink, ("resource_type", "key", "object_id", "created_at"), rows,
                                      returning=True)
    assert len(queries) == -(-len(rows) // batch)  # one INSERT per batch (SQLite: 999 parameters at most)
    assert dict(FhirLink.objects.filter(pk__in=keys).values_list("pk", "object_id")) == dict(zip(keys, range(len(rows))))
    assert patient.pk is not None


def test_expressions_are_refused(db, records):
    from django.db.models import Value
    from django.db.models.functions import Upper

    link = FhirLink(resource_type="Patient", key=Upper(Value("k")), object_id=1)
    with pytest.raises(TypeError, match="expression"):
        bulkinsert.insert_objects(FhirLink, [link])


# Datetimes of every kind the SQLite fast path sees or must leave alone: UTC (datetime.timezone.utc itself, with
# and without microseconds, a second fold, the first and last years), UTC by another tzinfo, other offsets.
DATETIMES = [NOW, NOW.replace(microsecond=0), NOW.replace(fold=1), dt.datetime(1, 1, 1, tzinfo=dt.UTC),
             dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
             dt.datetime(2024, 11, 3, 1, 30, fold=1, tzinfo=CHICAGO), dt.datetime(2024, 3, 10, 12, tzinfo=CHICAGO),
             dt.datetime(2024, 6, 1, 0, 0, 0, 1, tzinfo=ZoneInfo("UTC")),
             dt.datetime(2024, 6, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=-3, minutes=-30)))]


def _column(model, attname):
    return next(c for c in bulkinsert._plan(model).columns if c.attname == attname)


def test_values_are_prepared_as_their_fields_prepare_them(db):
    """What goes to the database for a value is what the field's get_db_prep_save gives, value for value (on
    SQLite an aware UTC datetime as the text of its naive UTC time, without Django's conversions)."""
    cases = [(Response, "completed_at", DATETIMES),
             (Response, "answers", [[], [1, None, 2.5, "ü"], {"a": [1]}, {}]),
             (Response, "scores", [{}, {"total": 33.333333333333336, "nested": {"ü": "✓"}}, [1]]),
             (Response, "source", [Response.Source.IMPORT, Response.Source.STAFF, "patient", ""]),
             (Assessment, "status", [Assessment.Status.COMPLETED, "scheduled"]),
             (Assessment, "due_date", [dt.date(2024, 2, 29), dt.date(1, 1, 1)])]
    for model, attname, values in cases:
        column = _column(model, attname)
        as_is, prepare = bulkinsert._preparer(column, connection)
        for value in values:
            ours = value if type(value) in as_is else prepare(value)
            theirs = column.field.get_db_prep_save(value, connection=connection)
            if model is Response and attname in ("answers", "scores") and connection.vendor == "postgresql":
                ours, theirs = ours.obj, theirs.obj  # (psycopg's Jsonb wrappers, new ones each time)
            assert (type(ours), ours) == (type(theirs), theirs), (model.__name__, attname, value)
    field = Assessment._meta.get_field("completed_at")
    assert bulkinsert.prepare_values(Assessment, "completed_at", [*DATETIMES, None]) == \
        [field.get_db_prep_save(value, connection=connection) for value in [*DATETIMES, None]]
    assert bulkinsert.prepare_values(Assessment, "response_id", [1, 2 ** 40, None]) == [1, 2 ** 40, None]
    assert bulkinsert._utc_as_text(connection) is (connection.vendor == "sqlite")  # (the fast path is tested)
    if connection.vendor == "sqlite":
        as_is, prepare = bulkinsert._preparer(_column(Response, "completed_at"), connection)
        assert prepare(NOW) == connection.ops.adapt_datetimefield_value(NOW) == "2025-03-04 05:06:07.891011"
        assert prepare(NOW.replace(microsecond=0)) == "2025-03-04 05:06:07"


def test_choices_datetimes_and_json_are_stored_as_bulk_create_stores_them(db, records):
    patient, episode = records["patient"], records["episode"]
    sources = [Response.Source.IMPORT, Response.Source.STAFF, "patient"]
    responses = assert_same_rows(Response, lambda: [
        Response(patient=patient, episode=episode, time_point="6m", instrument="nprs", instrument_version="1.0",
                 answers=[n, None], scores={"pain": n} if n % 2 else {}, score=float(n), valid=bool(n % 2),
                 completed_at=at, source=sources[n % 3])
        for n, at in enumerate(DATETIMES)])
    assert_same_history(Response, responses)
    # plain rows (FhirLink's created_at is auto_now_add: bulk_create would replace it): read back as they were
    # given, held as Django's own adapter makes them
    keys = bulkinsert.insert_rows(FhirLink, ("resource_type", "key", "object_id", "created_at"),
                                  [("Patient", f"k{n}", n, at) for n, at in enumerate(DATETIMES)], returning=True)
    assert list(FhirLink.objects.filter(pk__in=keys).order_by("pk").values_list("created_at", flat=True)) == \
        [at.astimezone(dt.UTC) for at in DATETIMES]  # (the same instants; one in a fold never equals another zone's)
    with connection.cursor() as cursor:  # (SQLite: the text itself, not the driver's datetime parsed from it)
        cast = "CAST(created_at AS TEXT)" if connection.vendor == "sqlite" else "created_at"
        cursor.execute(f"SELECT {cast} FROM interop_fhirlink ORDER BY id")
        held = [row[0] for row in cursor.fetchall()]
    if connection.vendor == "sqlite":
        assert held == [connection.ops.adapt_datetimefield_value(at) for at in DATETIMES]
    else:
        assert held == [at.astimezone(dt.UTC) for at in DATETIMES]
