from django.apps import AppConfig
from django.db import connections
from django.db.models.signals import post_migrate


def _search_index(sender, using="default", **kwargs):
    """After every migrate: the SQLite search index and its triggers, put back if a table rebuild dropped them."""
    from . import fts

    fts.ensure(connections[using])


class RegistryConfig(AppConfig):
    name = "orthoreg.registry"
    label = "registry"

    def ready(self):
        post_migrate.connect(_search_index, sender=self, dispatch_uid="orthoreg.registry.fts")
