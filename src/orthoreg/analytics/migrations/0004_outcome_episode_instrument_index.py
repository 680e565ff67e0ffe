"""The index of the outcome facts by episode gains the instrument and time point: reading one instrument at one time
point of every episode of a cohort (the loss-to-follow-up groups, the adjusted comparison) is one index probe per
episode instead of a read of all its assessments (about 24 at 100,000 patients: 2.4 million rows)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('analytics', '0003_stale_queued_at'),
    ]

    operations = [
        migrations.AddIndex(
            model_name='outcomefact',
            index=models.Index(fields=['episode', 'instrument', 'time_point'], name='analytics_outcome_episode_it'),
        ),
        migrations.RemoveIndex(
            model_name='outcomefact',
            name='analytics_outcome_episode',
        ),
    ]
