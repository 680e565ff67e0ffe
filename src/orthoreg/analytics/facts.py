"""The analytics facts (models.py): how they are computed and kept in step with the clinical records.

Every write that can change a report marks the episodes it touches as stale (`mark_episodes`, `mark_patients`):
the services that write the records involved, and the bulk loads, send orthoreg.events.records_changed, and
handlers.py marks what it names. `refresh()` rebuilds the stale episodes: in chunks, each in one transaction that takes the
chunk off the queue, deletes its facts and recomputes them with INSERT ... SELECT statements built by the ORM, so
nothing passes through Python and a failure leaves the queue as it was. On PostgreSQL refreshes are serialized by
an advisory lock; on SQLite the write lock does it.

Who refreshes: the follow-up worker, after each of its passes (analytics/handlers.py listens to the worker_passed
event), so a user's request never waits on the bookkeeping; commands refresh once at their start; a report page calls
`ensure_current()` once at its top, which refreshes only when no worker is running (a development server, the
tests), always on the primary database, also when the report reads a replica (orthoreg.replica). Reads never refresh (cohorts.py, selectors.py). Every change of the facts sets a new `version()` (one
primary-key look-up: the reports' cache key), and `freshness()` says which moment the facts describe.

The rules are those of definitions.py; `rebuild(None)` recomputes everything (`orthoreg analytics rebuild`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid
from collections.abc import Iterable, Sequence
from functools import reduce
from operator import or_

from django.core.exceptions import EmptyResultSet
from django.db import connection, transaction
from django.db.models import (
    BooleanField,
    Case,
    CharField,
    DateField,
    Exists,
    F,
    FilteredRelation,
    FloatField,
    IntegerField,
    Max,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce, Greatest, TruncDate
from django.utils import timezone

from orthoreg import replica
from orthoreg.followup import selectors as followup_selectors
from orthoreg.followup.models import Assessment
from orthoreg.followup.services import REPLANNABLE
from orthoreg.instruments.models import Response
from orthoreg.registry.coding import SURGICAL_KINDS
from orthoreg.registry.db import AgeYears
from orthoreg.registry.models import AdverseEvent, Episode, Exam, Patient, Procedure
from orthoreg.registry.rules import GRADE_GRACE_DAYS, conversion_date_subquery, grade_at_treatment_subquery

from . import definitions as defs
from .metrics import EPS, InstrumentInfo, instrument_infos
from .models import (
    BaselineFact,
    CellCounts,
    EpisodeFact,
    FactsState,
    OutcomeCell,
    OutcomeFact,
    OutcomeKindCell,
    StaleEpisode,
)

CHUNK = 5000  # episodes rebuilt per transaction
ANALYZE_EVERY = 20  # chunks of a large refresh between two ANALYZEs of the fact tables (PostgreSQL)
LOCK_KEY = 0x6F72_7468  # PostgreSQL advisory lock of the refresh ("orth")



# ------------------------------------------------------------------------------------------------ the queue

def mark_episodes(episode_ids: Iterable[int]) -> None:
    """Queue these episodes' facts for rebuilding (idempotent; part of the caller's transaction)."""
    ids = sorted({int(i) for i in episode_ids if i is not None})
    for start in range(0, len(ids), CHUNK):
        StaleEpisode.objects.bulk_create([StaleEpisode(episode_id=i) for i in ids[start:start + CHUNK]],
                                         ignore_conflicts=True)


def mark_patients(patient_ids: Iterable[int]) -> None:
    """Queue every episode of these patients (a response or a change of status reaches all of them)."""
    ids = sorted({int(i) for i in patient_ids if i is not None})
    for start in range(0, len(ids), CHUNK):
        mark_episodes(Episode.objects.filter(patient_id__in=ids[start:start + CHUNK]).values_list("pk", flat=True))


def pending() -> int:
    return StaleEpisode.objects.count()


def version() -> str:
    """Changes whenever the facts change (a refreshed chunk, a rebuild, a recount): one primary-key look-up, what
    the reports' cache key is made of."""
    return FactsState.objects.filter(name="version").values_list("value", flat=True).first() or ""


def _bump() -> None:
    """A new version() (inside the transaction that changes the facts)."""
    FactsState.objects.update_or_create(name="version", defaults={"value": uuid.uuid4().hex})


@dataclasses.dataclass(frozen=True)
class Freshness:
    """Which moment the facts describe: every change before `as_of` is counted; `pending` episodes changed since
    and wait for the worker (0: the facts are current, `as_of` is now)."""

    as_of: object  # datetime
    pending: int
    # the rules changed (an upgrade, a new instrument, a setting: rules_stamp) and the worker has not begun to
    # recompute every fact under them: until it has, some figures may be missing or follow the old rules
    rules_changed: bool = False

    @property
    def current(self) -> bool:
        return self.pending == 0 and not self.rules_changed


def freshness() -> Freshness:
    """The facts' moment: the time the oldest waiting change was queued (an index look-up), or now; whether they
    were computed under other rules than today's (one more look-up)."""
    if FactsState.objects.filter(name="rules").values_list("value", flat=True).first() != rules_stamp():
        return Freshness(as_of=timezone.now(), pending=Episode.objects.count(), rules_changed=True)
    oldest = StaleEpisode.objects.order_by("queued_at").values_list("queued_at", flat=True).first()
    if oldest is None:
        return Freshness(as_of=timezone.now(), pending=0)
    return Freshness(as_of=oldest, pending=pending())


@replica.primary()  # decides what to rebuild from the primary, never from a (read-only) replica
def ensure_current() -> int:
    """What a report page or command calls once at its top: when no worker is running to keep the facts up to date
    (a development server, the tests, a command), refresh them here; with a worker, read what it produced (the page
    says how current that is, `freshness`). Returns the episodes rebuilt."""
    if followup_selectors.worker_running():
        return 0
    return refresh()


RULES_VERSION = 3  # raise when the meaning of a fact changes: every fact is rebuilt on the next refresh


def rules_stamp() -> str:
    """A digest of everything facts are computed with besides the records: the rules' version, the instruments'
    scales and directions, the OMERACT-OARSI thresholds. A change (an upgrade, a new instrument, a setting)
    rebuilds every fact on the next refresh."""
    infos = instrument_infos()
    payload = json.dumps([RULES_VERSION, defs.oarsi_thresholds(), GRADE_GRACE_DAYS, list(REPLANNABLE),
                          [list(dataclasses.astuple(infos[c])) for c in sorted(infos)]], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def _replace_everything(stamp: str, *, force: bool = False) -> None:
    """Forget every fact and queue every episode, to be rebuilt under the rules `stamp`; the clinic counts are
    recounted in one pass once the queue is empty (facts computed under other rules cannot be taken out of them one
    by one, and counting a whole registry at once is much faster than chunk by chunk)."""
    with transaction.atomic():
        _lock()
        if not force and FactsState.objects.filter(name="rules", value=stamp).exists():
            return  # another process did it while we waited
        for model in (EpisodeFact, BaselineFact, OutcomeFact, OutcomeCell, OutcomeKindCell, StaleEpisode):
            model.objects.all().delete()
        with connection.cursor() as cursor:
            sql, params = Episode.objects.order_by().values("pk").query.sql_with_params()
            cursor.execute(f"INSERT INTO {StaleEpisode._meta.db_table} (episode_id, queued_at) "
                           f"SELECT q.*, %s FROM ({sql}) q", (*params, timezone.now()))
        _bump()
        FactsState.objects.update_or_create(name="rules", defaults={"value": stamp})
        FactsState.objects.update_or_create(name="cells", defaults={"value": "recount when the queue is empty"})


def _recount_cells() -> None:
    """Count the clinic cells from every outcome fact in one statement (after _replace_everything)."""
    with transaction.atomic():
        _lock()
        if not FactsState.objects.filter(name="cells").exists():
            return  # another process did it while we waited
        for model in CELLS:
            model._default_manager.all().delete()
            sql, params = cell_rows(OutcomeFact.objects.all(), +1, model).query.sql_with_params()
            columns = ", ".join((*model.KEY, "time_point_order", "n", "oarsi"))
            with connection.cursor() as cursor:
                cursor.execute(f"INSERT INTO {model._meta.db_table} ({columns}) {sql}", params)
        FactsState.objects.filter(name="cells").delete()
        _bump()
    _analyze()  # the cells were counted anew: without it PostgreSQL plans the next report as if there were none


def _analyze(*, everything: bool = False) -> None:
    """Refresh PostgreSQL's statistics of the fact tables (with `everything`, of every table, the clinical
    records the facts are computed from included). Without it a rebuild that starts from empty tables is planned
    as if they were still empty (whole-table scans for every chunk: 900 -> 300 episodes/s at 1M), and one right
    after a bulk load (an import, `orthoreg synth`, a server with autovacuum off) as if the records were few: a
    nested loop over a million responses for one chunk, minutes instead of a second."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            if everything:
                cursor.execute("ANALYZE")
                return
            for table in [m._meta.db_table for m in (EpisodeFact, BaselineFact, OutcomeFact)] + \
                    [m._meta.db_table for m in CELLS]:
                cursor.execute(f"ANALYZE {table}")


def _lock() -> None:
    """Serialize refreshes until the end of the transaction (PostgreSQL; SQLite's write lock does it there)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_KEY])


def check_rules() -> dict[str, str]:
    """Replace every fact when the rules changed since they were computed (rules_stamp); returns the facts'
    state (FactsState as a dict)."""
    state = dict(FactsState.objects.values_list("name", "value"))
    stamp = rules_stamp()
    if state.get("rules") != stamp:
        _replace_everything(stamp)
        state = dict(FactsState.objects.values_list("name", "value"))
    return state


@replica.primary()
def refresh(progress=None) -> int:
    """Rebuild the facts of every queued episode (of every episode when the rules changed, see rules_stamp);
    returns how many were rebuilt. `progress(n)` is called after each chunk. Two queries when nothing is queued."""
    recount = "cells" in check_rules()
    done = chunks = 0
    if StaleEpisode.objects.exists():
        if StaleEpisode.objects.count() > CHUNK:  # a large refresh: plan its first chunk on true statistics
            _analyze(everything=True)
        while True:
            if chunks % ANALYZE_EVERY == 1 and done == chunks * CHUNK:  # a large refresh, the tables grow:
                _analyze()  # keep the planner's estimates true
            chunks += 1
            with transaction.atomic():
                _lock()
                ids = list(StaleEpisode.objects.order_by("episode_id").values_list("episode_id", flat=True)[:CHUNK])
                if not ids:
                    break
                recount = FactsState.objects.filter(name="cells").exists()
                StaleEpisode.objects.filter(episode_id__in=ids).delete()
                rebuild(contiguous(ids), count_cells=not recount)
            done += len(ids)
            if progress:
                progress(len(ids))
    if recount:
        _recount_cells()
    return done


def defer_cell_counts() -> None:
    """Recount the clinic counts in one pass when the queue is next empty (refresh) instead of keeping them in
    step chunk by chunk: for a bulk load of about as many episodes as the registry has, or more."""
    with transaction.atomic():
        _lock()
        FactsState.objects.update_or_create(name="cells", defaults={"value": "recount when the queue is empty"})


def build_loaded(episode_ids: Sequence[int], *, analyze: bool = False) -> None:
    """Compute the facts of episodes a bulk load has just written, inside its transaction (instead of queueing
    them for refresh): what refresh() does to one chunk of the queue. With `analyze`, PostgreSQL's statistics of
    every table are brought up to date first (a load's first batches: the planner must not plan on empty tables).
    The caller runs check_rules() once before its first batch."""
    if analyze:
        _analyze(everything=True)
    recount = FactsState.objects.filter(name="cells").exists()
    if not recount:  # counted chunk by chunk: one at a time (with recounting deferred, loads run side by side)
        _lock()
        recount = FactsState.objects.filter(name="cells").exists()
    rebuild(contiguous(sorted(episode_ids)), count_cells=not recount)


@replica.primary()
def rebuild_all(progress=None) -> int:
    """Recompute every fact from the clinical tables: forget them all, queue every episode, then refresh."""
    _replace_everything(rules_stamp(), force=True)
    return refresh(progress)


# ------------------------------------------------------------------------------------------------ rebuilding

def rebuild(episode_ids: Sequence[int], *, count_cells: bool = True) -> None:
    """Delete and recompute the facts of these episodes (inside the caller's transaction), keeping the clinic
    counts in step unless they are to be recounted whole (`count_cells=False`)."""
    ids = episode_ids if isinstance(episode_ids, range) else list(episode_ids)
    if count_cells:
        _count_cells(ids, -1)  # take the old facts out of the clinic counts
    for model in (OutcomeFact, BaselineFact):
        model.objects.filter(among("episode_id", ids)).delete()
    EpisodeFact.objects.filter(among("episode_id", ids)).delete()
    infos = instrument_infos()
    _insert(EpisodeFact, EPISODE_COLUMNS, episode_rows(ids))
    _insert(BaselineFact, BASELINE_COLUMNS, baseline_rows(ids))
    _insert(OutcomeFact, OUTCOME_COLUMNS, outcome_rows(ids, infos))
    oarsi = oarsi_responders(ids, infos)
    if oarsi is not None:
        OutcomeFact.objects.filter(pk__in=Subquery(oarsi.values("pk"))).update(oarsi=True)
    if count_cells:
        _count_cells(ids, +1)
    _bump()


def among(field: str, ids: Sequence[int]) -> Q:
    """`field` is one of `ids`: a range of ids (range(a, b)) is two comparisons, which PostgreSQL plans as a scan
    of an index range instead of one probe per id (a bulk load's episodes are consecutive)."""
    if isinstance(ids, range) and ids.step == 1:
        return Q(**{f"{field}__gte": ids.start, f"{field}__lt": ids.stop})
    return Q(**{f"{field}__in": ids})


def contiguous(ids: list[int]) -> Sequence[int]:
    """Sorted ids as a range when they are consecutive (every id between the first and the last)."""
    if ids and ids[-1] - ids[0] + 1 == len(ids):
        return range(ids[0], ids[-1] + 1)
    return ids


CELLS: tuple[type[CellCounts], ...] = (OutcomeCell, OutcomeKindCell)  # the counted cells, kept alike


def cell_rows(outcomes: QuerySet, sign: int, model: type[CellCounts] = OutcomeCell) -> QuerySet:
    """The outcome facts grouped into the keys of the cells `model` (OutcomeCell: per clinic; OutcomeKindCell: per
    clinic and index procedure), counted with `sign` (+1 to add, -1 to take out), in the order of model.KEY."""
    answered = Q(answered=True)
    return (outcomes.annotate(
        c_excused=_flag(~answered & Q(excused=True)),
        c_window=Case(When(answered, then=Value(OutcomeCell.ANSWERED_WINDOW, output_field=DateField())),
                      default=F("window_end"), output_field=DateField()),
        c_has_score=_flag(Q(score__isnull=False)), c_score=Coalesce(F("score"), Value(0.0)),
        c_has_base=_flag(Q(base__isnull=False)), c_base=Coalesce(F("base"), Value(0.0)))
        .values("clinic_id", *model.BY, "time_point", "instrument", "answered", "converted", "c_excused", "c_window",
                "c_has_score", "c_score", "c_has_base", "c_base")
        .annotate(c_order=Min("time_point_order"), c_n=Sum(Value(sign)),
                  c_oarsi=Sum(Case(When(oarsi=True, then=Value(sign)), default=Value(0))))
        .order_by())


def _count_cells(ids: Sequence[int], sign: int) -> None:
    for model in CELLS:
        try:
            sql, params = cell_rows(OutcomeFact.objects.filter(among("episode_id", ids)), sign,
                                    model).query.sql_with_params()
        except EmptyResultSet:
            return
        table, key = model._meta.db_table, ", ".join(model.KEY)
        columns = f"{key}, time_point_order, n, oarsi"
        with connection.cursor() as cursor:
            cursor.execute(f"INSERT INTO {table} ({columns}) {sql} ON CONFLICT ({key}) DO UPDATE SET "
                           f"n = {table}.n + excluded.n, oarsi = {table}.oarsi + excluded.oarsi, "
                           f"time_point_order = excluded.time_point_order", params)


def _insert(model, columns: list[str], rows: QuerySet) -> None:
    try:
        sql, params = rows.query.sql_with_params()
    except EmptyResultSet:
        return
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {model._meta.db_table} ({', '.join(columns)}) {sql}", params)


def _latest(model, expression) -> Subquery:
    return Subquery(model.objects.filter(episode=OuterRef("pk")).order_by().values("episode")
                    .annotate(last=Max(expression)).values("last")[:1])


EPISODE_COLUMNS = ["episode_id", "patient_id", "clinic_id", "condition", "body_site", "side", "consent",
                   "index_date", "index_kind", "conversion_date", "gone_date", "contact", "sex", "age", "grade",
                   "adverse_event", "serious_adverse_event", "died"]


def adverse_events_subquery() -> QuerySet:
    """Adverse events of the episode's index procedure or of a later non-surgical procedure (definitions.py)."""
    return (AdverseEvent.objects.filter(procedure__episode=OuterRef("pk"), procedure__date__gte=OuterRef("index_date"))
            .filter(Q(procedure__is_index=True) | ~Q(procedure__kind__in=SURGICAL_KINDS)))


def episode_rows(ids: Sequence[int]) -> QuerySet:
    """One row per treated episode among `ids`, in EPISODE_COLUMNS order."""
    index = F("index_date")
    gone = Case(When(patient__status__in=[Patient.Status.WITHDRAWN, Patient.Status.DECEASED],
                     then=F("patient__status_date")), default=Value(None), output_field=DateField())
    contact = Greatest(
        index,
        # the patient's last answer to any questionnaire (the patient index makes this one probe per episode)
        Coalesce(TruncDate(Subquery(Response.objects.filter(patient=OuterRef("patient_id")).order_by("-completed_at")
                                    .values("completed_at")[:1])), index),
        Coalesce(_latest(Exam, F("date")), index),
        Coalesce(_latest(Procedure, F("date")), index),
        Coalesce(gone, index),
        output_field=DateField())
    return (Episode.objects.filter(among("pk", ids))
            .annotate(ix=FilteredRelation("procedures", condition=Q(procedures__is_index=True)))
            .filter(ix__isnull=False)
            .annotate(index_date=F("ix__date"), f_kind=Coalesce(F("ix__kind"), Value(""), output_field=CharField()),
                      f_conversion=conversion_date_subquery(), f_gone=gone, f_contact=contact,
                      f_age=AgeYears(F("patient__birth_date"), index), f_grade=grade_at_treatment_subquery(),
                      f_ae=Exists(adverse_events_subquery()),
                      f_sae=Exists(adverse_events_subquery().filter(serious=True)),
                      f_died=Case(When(patient__status=Patient.Status.DECEASED, then=Value(True)),
                                  default=Value(False), output_field=BooleanField()))
            .values_list("pk", "patient_id", "patient__clinic_id", "condition", "body_site", "side",
                         "patient__consent_registry", "index_date", "f_kind", "f_conversion", "f_gone", "f_contact",
                         "patient__sex", "f_age", "f_grade", "f_ae", "f_sae", "f_died")
            .order_by())


BASELINE_COLUMNS = ["id", "episode_id", "instrument", "score"]


def baseline_rows(ids: Sequence[int]) -> QuerySet:
    """(id, episode, instrument, score) of the valid baseline score of each treated episode among `ids` and
    instrument: its latest baseline response."""
    baseline = Q(time_point="baseline", valid=True, score__isnull=False)
    later = (Response.objects.filter(baseline, episode_id=OuterRef("episode_id"), instrument=OuterRef("instrument"))
             .filter(Q(completed_at__gt=OuterRef("completed_at"))
                     | Q(completed_at=OuterRef("completed_at"), pk__gt=OuterRef("pk"))))
    return (Response.objects.filter(baseline, among("episode_id", ids), episode__fact__isnull=False)
            .exclude(Exists(later)).values_list("pk", "episode_id", "instrument", "score").order_by())


OUTCOME_COLUMNS = ["id", "episode_id", "clinic_id", "index_kind", "time_point", "time_point_order", "instrument", "due_date",
                   "window_end", "answered", "score", "base", "converted", "excused", "oarsi"]
SCORED = Q(response__valid=True, response__score__isnull=False)


def outcome_rows(ids: Sequence[int], infos: dict[str, InstrumentInfo]) -> QuerySet:
    """One row per assessment of a treated episode among `ids` that can count (definitions.py: assessments
    cancelled because they left the protocol never do), in OUTCOME_COLUMNS order."""
    with_baseline = [c for c, i in infos.items() if i.has_baseline]
    return (Assessment.objects.filter(among("episode_id", ids), episode__fact__isnull=False)
            .exclude(status=Assessment.Status.CANCELLED, cancelled_reason__in=REPLANNABLE)
            .annotate(bl=FilteredRelation("episode__baseline_facts", condition=Q(
                episode__baseline_facts__instrument=F("instrument"))))
            .annotate(
                f_answered=_flag(Q(response__isnull=False)),
                f_score=Case(When(SCORED, then=F("response__score")), default=Value(None), output_field=FloatField()),
                f_base=Case(When(SCORED & Q(instrument__in=with_baseline) & ~Q(time_point="baseline"),
                                 then=F("bl__score")), default=Value(None), output_field=FloatField()),
                f_converted=_flag(Q(episode__fact__conversion_date__lte=F("due_date"))),
                f_excused=_flag(Q(episode__fact__gone_date__lte=F("due_date"))),
                f_oarsi=Value(False, output_field=BooleanField()))
            .values_list("pk", "episode_id", "episode__fact__clinic_id", "episode__fact__index_kind", "time_point", "time_point_order",
                         "instrument", "due_date", "window_end", "f_answered", "f_score", "f_base",
                         "f_converted", "f_excused", "f_oarsi")
            .order_by())


def _flag(condition: Q) -> Case:
    return Case(When(condition, then=Value(True)), default=Value(False), output_field=BooleanField())


# ------------------------------------------------------------------------------------------------ OMERACT-OARSI

def _improvement(infos: dict[str, InstrumentInfo], score: str, base: str):
    """Score change in the better direction: positive = better, whatever the scale's direction."""
    higher = [c for c, i in infos.items() if i.higher_is_better]
    return Case(When(instrument__in=higher, then=F(score) - F(base)), default=F(base) - F(score),
                output_field=FloatField())


def _room(infos: dict[str, InstrumentInfo], base: str):
    """Distance from the baseline score to the best end of the scale (the most a patient could improve)."""
    whens = [When(instrument=c, then=(Value(i.maximum) - F(base)) if i.higher_is_better
                  else (F(base) - Value(i.minimum))) for c, i in infos.items()]
    return Case(*whens, default=Value(None), output_field=FloatField())


def oarsi_responders(ids: Sequence[int], infos: dict[str, InstrumentInfo]) -> QuerySet | None:
    """The pain (NPRS) outcome facts of these episodes with a score and a baseline that meet OMERACT-OARSI
    (whatever a later conversion: the report counts converted patients as failures). None without NPRS.

    Pain comes from the NPRS row itself; function from a regional function score answered at the same time point
    with a baseline of the same instrument; patient global from SANE. A domain that was not answered counts as
    not improved; several answers of a domain can only make one row a responder once."""
    pain = infos.get(defs.OARSI_PAIN)
    if pain is None:
        return None
    t = defs.oarsi_thresholds()
    qs = (OutcomeFact.objects.filter(among("episode_id", ids), instrument=pain.code, score__isnull=False,
                                     base__isnull=False)
          .annotate(improvement=_improvement(infos, "score", "base"), room=_room(infos, "base")))
    success = _domain_met(Q(), "improvement", "room", pain, t["high_relative"], t["high_absolute"])
    moderate = [_domain_met(Q(), "improvement", "room", pain, t["moderate_relative"], t["moderate_absolute"])]
    domains = [("fn", [infos[c] for c in defs.OARSI_FUNCTION if c in infos], True)]
    if defs.OARSI_GLOBAL in infos:
        domains.append(("gl", [infos[defs.OARSI_GLOBAL]], False))
    for prefix, members, counts_high in domains:
        if not members:
            continue
        codes = [m.code for m in members]
        qs = qs.annotate(**{
            f"{prefix}_t": FilteredRelation("episode__responses", condition=Q(
                episode__responses__time_point=F("time_point"), episode__responses__valid=True,
                episode__responses__score__isnull=False, episode__responses__instrument__in=codes)),
            f"{prefix}_b": FilteredRelation("episode__baseline_facts", condition=Q(
                episode__baseline_facts__instrument__in=codes))})
        same = Q(**{f"{prefix}_t__instrument": F(f"{prefix}_b__instrument")})
        imp, room = [], []
        for m in members:
            later, before = F(f"{prefix}_t__score"), F(f"{prefix}_b__score")
            imp.append(When(**{f"{prefix}_t__instrument": m.code},
                            then=(later - before) if m.higher_is_better else (before - later)))
            room.append(When(**{f"{prefix}_t__instrument": m.code},
                             then=(Value(m.maximum) - before) if m.higher_is_better else (before - Value(m.minimum))))
        qs = qs.annotate(**{f"{prefix}_imp": Case(*imp, output_field=FloatField()),
                            f"{prefix}_room": Case(*room, output_field=FloatField())})
        for m in members:
            is_m = same & Q(**{f"{prefix}_t__instrument": m.code})
            if counts_high:
                success |= _domain_met(is_m, f"{prefix}_imp", f"{prefix}_room", m, t["high_relative"],
                                       t["high_absolute"])
        moderate.append(reduce(or_, [
            _domain_met(same & Q(**{f"{prefix}_t__instrument": m.code}), f"{prefix}_imp", f"{prefix}_room", m,
                        t["moderate_relative"], t["moderate_absolute"]) for m in members]))
    flags = [Case(When(q, then=Value(1)), default=Value(0), output_field=IntegerField()) for q in moderate]
    qs = qs.annotate(moderate_domains=reduce(lambda a, b: a + b, flags))  # type: ignore[arg-type, return-value]
    return qs.filter(success | Q(moderate_domains__gte=2))


def _domain_met(where: Q, improvement: str, room: str, info: InstrumentInfo, relative: float, absolute: float) -> Q:
    """An OARSI domain improved: by at least `relative` of the room to improve and `absolute` points on 0-100."""
    return where & Q(**{f"{room}__gt": 0}) & Q(**{f"{improvement}__gte": F(room) * relative - EPS}) & \
        Q(**{f"{improvement}__gte": absolute / info.to_100(1) - EPS})
