from django.urls import path

from . import views

# The health check's route is in orthoreg/urls.py, under its old name registry:healthz.
urlpatterns = [
    path("", views.home, name="home"),
]
