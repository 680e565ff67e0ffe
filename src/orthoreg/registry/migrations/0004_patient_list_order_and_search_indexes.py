"""The patient list's order as an index, and on PostgreSQL trigram indexes for the patient search.

The search matches any part of a name, MRN or email (`icontains`, which Django writes on PostgreSQL as
UPPER(column)::text LIKE UPPER(%s)): a GIN trigram index on the same expression answers it without reading every
patient. SQLite has no such index; there the search reads the patients of the user's clinics."""

from django.db import migrations, models

SEARCHED = ("given_name", "family_name", "mrn", "email")


def trigram_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for column in SEARCHED:
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS registry_patient_{column}_trgm ON registry_patient "
                              f"USING gin ((UPPER({column}::text)) gin_trgm_ops)")
    # initials are matched whole (`iexact`): a plain index on the same expression, so that every branch of the
    # search's OR has an index and PostgreSQL can combine them (BitmapOr)
    schema_editor.execute("CREATE INDEX IF NOT EXISTS registry_patient_initials_upper ON registry_patient "
                          "(UPPER(initials::text))")


def drop_trigram_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for column in SEARCHED:
        schema_editor.execute(f"DROP INDEX IF EXISTS registry_patient_{column}_trgm")
    schema_editor.execute("DROP INDEX IF EXISTS registry_patient_initials_upper")


class Migration(migrations.Migration):

    dependencies = [
        ('registry', '0003_clinic_name_and_initials_validated'),
    ]

    operations = [
        migrations.AddIndex(
            model_name='patient',
            index=models.Index(fields=['family_name', 'given_name', 'id'], name='patient_list_order'),
        ),
        migrations.RunPython(trigram_indexes, drop_trigram_indexes),
    ]
