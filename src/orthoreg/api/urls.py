"""/api/v1/...: the NinjaAPI's routes inside this app's namespace ("api"), which is also the API's urls_namespace,
so that its own reverse("api:api-root") resolves."""

from django.urls import include, path

from .api import api

app_name = "api"
urlpatterns = [
    path("v1/", include(api.urls[0])),
]
