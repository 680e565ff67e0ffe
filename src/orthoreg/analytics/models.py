"""Models of the analytics app: none of its own data. `CohortMember` and `BaselineScore` map the temporary tables
a report materializes its cohort into (cohorts.materialized): one row per episode with the facts every aggregate
needs, and one row per episode and instrument with its baseline score, computed once per report. The tables exist
only inside a report's computation, per database connection.
"""

from django.db import models


class CohortMember(models.Model):
    episode = models.OneToOneField("registry.Episode", primary_key=True, on_delete=models.DO_NOTHING,
                                   db_constraint=False, related_name="cohort_member")
    patient_id = models.BigIntegerField()
    clinic_id = models.BigIntegerField()
    index_date = models.DateField()
    index_kind = models.CharField(max_length=24)
    conversion_date = models.DateField(null=True)  # first surgery after the index procedure
    gone_date = models.DateField(null=True)  # date of death or withdrawal
    last_contact = models.DateField()  # latest response, exam, procedure, death or withdrawal (>= index date)
    sex = models.CharField(max_length=10)
    age = models.IntegerField(null=True)  # completed years at the index date
    grade = models.SmallIntegerField(null=True)  # grade of record at the index procedure

    class Meta:
        managed = False
        db_table = "analytics_cohort"

    def __str__(self) -> str:
        return f"cohort member {self.episode_id}"


class BaselineScore(models.Model):
    id = models.BigIntegerField(primary_key=True)
    episode = models.ForeignKey("registry.Episode", on_delete=models.DO_NOTHING, db_constraint=False,
                                related_name="baseline_scores")
    instrument = models.CharField(max_length=40)
    score = models.FloatField()  # the valid score of the latest baseline response of the instrument

    class Meta:
        managed = False
        db_table = "analytics_baseline"

    def __str__(self) -> str:
        return f"baseline {self.instrument} of episode {self.episode_id}"
