from django.db import migrations, models


class Migration(migrations.Migration):
    """Outcome facts carry `converted` and `excused` instead of the dates they are computed from, and a covering
    index in the order of the report's GROUP BY. Existing facts are rebuilt on the next refresh (the rules version
    changed), so the defaults below never reach a report."""

    dependencies = [("analytics", "0002_adverse_events")]

    operations = [
        migrations.RemoveField(model_name="outcomefact", name="conversion_date"),
        migrations.RemoveField(model_name="outcomefact", name="gone_date"),
        migrations.AddField(model_name="outcomefact", name="converted", field=models.BooleanField(default=False),
                            preserve_default=False),
        migrations.AddField(model_name="outcomefact", name="excused", field=models.BooleanField(default=False),
                            preserve_default=False),
        migrations.AddIndex(
            model_name="outcomefact",
            index=models.Index(fields=["time_point", "instrument", "answered", "converted", "score", "base",
                                       "window_end", "excused", "clinic_id", "oarsi", "time_point_order"],
                               name="analytics_outcome_cells"),
        ),
    ]
