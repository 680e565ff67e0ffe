from django.apps import AppConfig


class SiteConfig(AppConfig):
    """The top of the house: home page, health check, error pages, serve, the demo and the synthetic
    generator. The only app that may import every other."""

    name = "orthoreg.site"
    label = "site"
