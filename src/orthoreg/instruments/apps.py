from django.apps import AppConfig


class InstrumentsConfig(AppConfig):
    name = "orthoreg.instruments"
    label = "instruments"
