from django.urls import path

from . import views

app_name = "instruments"
urlpatterns = [
    path("", views.instrument_list, name="instrument_list"),
    path("patients/<int:patient_id>/responses/new/", views.response_new, name="response_new"),
    path("responses/<int:pk>/", views.response_detail, name="response_detail"),
    path("episodes/<int:episode_id>/responses/", views.episode_responses, name="episode_responses"),
    path("episodes/<int:episode_id>/charts/<slug:code>.<str:fmt>", views.episode_chart, name="episode_chart"),
    path("<slug:code>/", views.instrument_detail, name="instrument_detail"),
]
