"""Models of the analytics app: facts kept beside the clinical records so that a cohort report is one pass over
narrow tables, whatever the size of the registry (see facts.py for how they are kept).

- `EpisodeFact`: one row per treated episode (an episode with an index procedure) with everything a cohort is
  filtered on and every per-episode fact the aggregates need (index date, conversion, death or withdrawal, last
  contact, sex, age and grade at treatment);
- `BaselineFact`: one row per treated episode and instrument: its baseline score;
- `OutcomeFact`: one row per assessment of a treated episode that can count (assessments cancelled because they
  left the protocol are not there) with its answer, score, baseline score and OMERACT-OARSI result;
- `StaleEpisode`: the queue of episodes whose facts must be rebuilt before the next report reads them.

None of these is a record of its own: `orthoreg analytics rebuild` recomputes them all from the clinical tables.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone


class EpisodeFact(models.Model):
    episode = models.OneToOneField("registry.Episode", primary_key=True, on_delete=models.DO_NOTHING,
                                   db_constraint=False, related_name="fact")
    patient_id = models.BigIntegerField()
    clinic_id = models.BigIntegerField()
    condition = models.CharField(max_length=40)
    body_site = models.CharField(max_length=40)
    side = models.CharField(max_length=16)
    consent = models.BooleanField()  # the patient's registry consent
    index_date = models.DateField()
    index_kind = models.CharField(max_length=24)
    conversion_date = models.DateField(null=True)  # first surgery after the index procedure
    gone_date = models.DateField(null=True)  # date of death or withdrawal
    contact = models.DateField()  # latest response, exam, procedure, death or withdrawal (>= index date)
    sex = models.CharField(max_length=10)
    age = models.IntegerField(null=True)  # completed years at the index date
    grade = models.SmallIntegerField(null=True)  # grade of record at the index procedure
    # an adverse event of the index procedure or of a later non-surgical procedure (any / serious)
    adverse_event = models.BooleanField(default=False)
    serious_adverse_event = models.BooleanField(default=False)
    died = models.BooleanField(default=False)  # the patient died (gone_date is then the date of death)

    class Meta:
        db_table = "analytics_episode"
        # a cohort is some clinics' episodes, often of one condition or one index procedure (a comparison of
        # treatments): each index reads only those episodes' entries
        indexes = [models.Index(fields=["clinic_id", "condition", "body_site"]),
                   models.Index(fields=["clinic_id", "index_kind"], name="analytics_episode_kind")]

    def __str__(self) -> str:
        return f"facts of episode {self.episode_id}"


class BaselineFact(models.Model):
    id = models.BigIntegerField(primary_key=True)  # the baseline response
    episode = models.ForeignKey("registry.Episode", on_delete=models.DO_NOTHING, db_constraint=False,
                                related_name="baseline_facts")
    instrument = models.CharField(max_length=40)
    score = models.FloatField()  # the valid score of the latest baseline response of the instrument

    class Meta:
        db_table = "analytics_baseline"
        constraints = [models.UniqueConstraint(fields=["episode", "instrument"], name="analytics_baseline_once")]

    def __str__(self) -> str:
        return f"baseline {self.instrument} of episode {self.episode_id}"


class OutcomeFact(models.Model):
    id = models.BigIntegerField(primary_key=True)  # the assessment
    episode = models.ForeignKey("registry.Episode", on_delete=models.DO_NOTHING, db_constraint=False,
                                related_name="outcome_facts")
    clinic_id = models.BigIntegerField()
    index_kind = models.CharField(max_length=24, default="")  # the episode's (EpisodeFact.index_kind), for the cells
    time_point = models.CharField(max_length=16)
    time_point_order = models.PositiveSmallIntegerField()
    instrument = models.CharField(max_length=40)
    due_date = models.DateField()
    window_end = models.DateField()
    answered = models.BooleanField()
    score = models.FloatField(null=True)  # the valid score of the answer
    base = models.FloatField(null=True)  # the baseline score of the instrument, for scored answers after baseline
    converted = models.BooleanField()  # the episode converted to surgery on or before the due date
    excused = models.BooleanField()  # the patient had died or withdrawn on or before the due date
    oarsi = models.BooleanField(default=False)  # an OMERACT-OARSI responder (pain rows with score and baseline)

    class Meta:
        db_table = "analytics_outcome"
        # an episode's facts (rebuilt together), and one instrument at one time point of each episode of a cohort:
        # the baseline of the groups (metrics.baseline_by_group) and the adjusted comparison (metrics.comparison_rows)
        # read one row per episode instead of all of its assessments
        indexes = [models.Index(fields=["episode", "instrument", "time_point"], name="analytics_outcome_episode_it")]

    def __str__(self) -> str:
        return f"outcome of assessment {self.id}"


class CellCounts(models.Model):
    """Outcome facts counted per cell (the concrete tables below): what a report of whole clinics reads (a few
    hundred thousand rows at most, instead of one per assessment). Kept by facts.rebuild, which subtracts an
    episode's old facts and adds its new ones in the same transaction.

    An answered row's eligibility never changes: its cell is its score and baseline (`window_end` and `excused`
    are fixed at ANSWERED_WINDOW and False). An unanswered row becomes eligible when its window closes unless the
    patient had gone by then: its cell is that date and flag (no score). Unknown scores are has_score=False with
    score 0, so every key column is NOT NULL and the cell is unique."""

    ANSWERED_WINDOW = "0001-01-01"

    clinic_id = models.BigIntegerField()
    time_point = models.CharField(max_length=16)
    instrument = models.CharField(max_length=40)
    answered = models.BooleanField()
    converted = models.BooleanField()
    excused = models.BooleanField()
    window_end = models.DateField()
    has_score = models.BooleanField()
    score = models.FloatField()
    has_base = models.BooleanField()
    base = models.FloatField()
    time_point_order = models.PositiveSmallIntegerField()
    n = models.BigIntegerField()
    oarsi = models.BigIntegerField()

    KEY: tuple[str, ...] = ()
    BY: tuple[str, ...] = ()  # the columns of the facts grouped on besides the clinic and the cell

    class Meta:
        abstract = True


CELL_KEY = ("time_point", "instrument", "answered", "converted", "excused", "window_end", "has_score", "score",
            "has_base", "base")


class OutcomeCell(CellCounts):
    """The outcome facts counted per clinic and cell: what a report of whole clinics reads."""

    KEY = ("clinic_id", *CELL_KEY)

    class Meta:
        db_table = "analytics_cell"
        constraints = [models.UniqueConstraint(
            fields=["clinic_id", "time_point", "instrument", "answered", "converted", "excused", "window_end",
                    "has_score", "score", "has_base", "base"], name="analytics_cell_key")]

    def __str__(self) -> str:
        return f"{self.n} x {self.time_point} {self.instrument} (clinic {self.clinic_id})"


class OutcomeKindCell(CellCounts):
    """The outcome facts counted per clinic, index procedure and cell: what a report of one index procedure in whole
    clinics reads (a comparison of treatments). A table of its own, so that a report of whole clinics keeps reading
    as few cells as before (per clinic and treatment there are about three times as many)."""

    index_kind = models.CharField(max_length=24)

    KEY = ("clinic_id", "index_kind", *CELL_KEY)
    BY = ("index_kind",)

    class Meta:
        db_table = "analytics_kind_cell"
        constraints = [models.UniqueConstraint(
            fields=["clinic_id", "index_kind", "time_point", "instrument", "answered", "converted", "excused",
                    "window_end", "has_score", "score", "has_base", "base"], name="analytics_kind_cell_key")]

    def __str__(self) -> str:
        return f"{self.n} x {self.time_point} {self.instrument} (clinic {self.clinic_id}, {self.index_kind})"


class StaleEpisode(models.Model):
    episode_id = models.BigIntegerField(primary_key=True)
    # when it was first queued (a second mark keeps the first time): the facts describe every change before the
    # oldest of these (facts.freshness)
    queued_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "analytics_stale"
        indexes = [models.Index(fields=["queued_at"], name="analytics_stale_queued")]

    def __str__(self) -> str:
        return f"stale episode {self.episode_id}"


class FactsState(models.Model):
    """What the facts were computed with (facts.rules_stamp): when the rules change, everything is rebuilt."""

    name = models.CharField(max_length=40, primary_key=True)
    value = models.CharField(max_length=128)

    class Meta:
        db_table = "analytics_state"

    def __str__(self) -> str:
        return f"{self.name} = {self.value}"


class ReleasedCohort(models.Model):
    """A cohort whose figures were shown to a user without clinical access (a researcher): its members, so that a
    later cohort differing from it by one to four patients is refused (disclosure.check: differencing two overlapping
    cohorts would give those patients' scores). Written by services.release_record."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    created = models.DateTimeField(auto_now_add=True)
    size = models.PositiveIntegerField()
    digest = models.CharField(max_length=64)  # sha-256 of the sorted member ids: the same cohort is kept once
    members = models.JSONField()  # the episode ids

    class Meta:
        indexes = [models.Index(fields=["user", "size"], name="analytics_release_user_size")]
        constraints = [models.UniqueConstraint(fields=["user", "digest"], name="analytics_release_once")]
