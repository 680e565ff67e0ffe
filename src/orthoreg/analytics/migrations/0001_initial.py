from django.db import migrations, models


class Migration(migrations.Migration):
    """The cohort table of a report is temporary (created per report, per connection): unmanaged, no SQL here."""

    initial = True
    dependencies = [("registry", "0001_initial")]

    operations = [
        migrations.CreateModel(
            name="CohortMember",
            fields=[
                ("episode", models.OneToOneField(db_constraint=False, on_delete=models.deletion.DO_NOTHING,
                                                 primary_key=True, related_name="cohort_member", serialize=False,
                                                 to="registry.episode")),
                ("patient_id", models.BigIntegerField()),
                ("clinic_id", models.BigIntegerField()),
                ("index_date", models.DateField()),
                ("index_kind", models.CharField(max_length=24)),
                ("conversion_date", models.DateField(null=True)),
                ("gone_date", models.DateField(null=True)),
                ("last_contact", models.DateField()),
                ("sex", models.CharField(max_length=10)),
                ("age", models.IntegerField(null=True)),
                ("grade", models.SmallIntegerField(null=True)),
            ],
            options={"db_table": "analytics_cohort", "managed": False},
        ),
        migrations.CreateModel(
            name="BaselineScore",
            fields=[
                ("id", models.BigIntegerField(primary_key=True, serialize=False)),
                ("episode", models.ForeignKey(db_constraint=False, on_delete=models.deletion.DO_NOTHING,
                                              related_name="baseline_scores", to="registry.episode")),
                ("instrument", models.CharField(max_length=40)),
                ("score", models.FloatField()),
            ],
            options={"db_table": "analytics_baseline", "managed": False},
        ),
    ]
