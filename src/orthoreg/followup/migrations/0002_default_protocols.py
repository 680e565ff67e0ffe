"""The default protocols: hallux rigidus, foot and ankle OA, knee, hip and low back."""

from django.db import migrations

from orthoreg.followup.scheduling import DEFAULT_PROTOCOLS, install_default_protocols


def create(apps, schema_editor):
    install_default_protocols(apps.get_model("followup", "Protocol"), apps.get_model("followup", "TimePoint"))


def remove(apps, schema_editor):
    Protocol = apps.get_model("followup", "Protocol")
    names = [name for name, _, _ in DEFAULT_PROTOCOLS]
    Protocol.objects.filter(clinic=None, name__in=names).delete()


class Migration(migrations.Migration):
    dependencies = [("followup", "0001_initial")]
    operations = [migrations.RunPython(create, remove)]
