"""Patient pages, outside the staff site: /s/<token>/."""

from django.urls import path

from . import views

urlpatterns = [
    path("done/", views.survey_done, name="survey_done"),
    path("<str:token>/", views.survey, name="survey"),
    path("<str:token>/unsubscribe/", views.survey_unsubscribe, name="survey_unsubscribe"),
]
