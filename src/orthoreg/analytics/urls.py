"""The analytics app has no pages of its own (it is the read side): its address leads to the cohort report."""

from django.urls import path

from . import views

app_name = "analytics"
urlpatterns = [
    path("", views.index, name="index"),
]
