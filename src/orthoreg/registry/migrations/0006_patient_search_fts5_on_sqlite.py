"""On SQLite, the patient search's FTS5 trigram index and the triggers that keep it in step (registry/fts.py).
Nothing on PostgreSQL, where migration 0004's trigram indexes answer the search."""

from django.db import migrations


def create(apps, schema_editor):
    from orthoreg.registry import fts

    fts.ensure(schema_editor.connection)


def drop(apps, schema_editor):
    from orthoreg.registry import fts

    fts.drop(schema_editor.connection)


class Migration(migrations.Migration):

    dependencies = [
        ('registry', '0005_updated_at_for_api_sync'),
    ]

    operations = [
        migrations.RunPython(create, drop),
    ]
