from django.urls import path

from . import views

app_name = "registry"
urlpatterns = [
    path("patients/", views.patient_list, name="patient_list"),
    path("patients/new/", views.patient_create, name="patient_create"),
    path("patients/<int:pk>/", views.patient_detail, name="patient_detail"),
    path("patients/<int:pk>/edit/", views.patient_edit, name="patient_edit"),
    path("patients/<int:pk>/history/", views.patient_history, name="patient_history"),
    path("patients/<int:patient_pk>/episodes/new/", views.episode_create, name="episode_create"),
    path("episodes/<int:pk>/", views.episode_detail, name="episode_detail"),
    path("episodes/<int:pk>/edit/", views.episode_edit, name="episode_edit"),
    path("episodes/<int:episode_pk>/grades/new/", views.grade_form, name="grade_create"),
    path("episodes/<int:episode_pk>/grades/<int:pk>/edit/", views.grade_form, name="grade_edit"),
    path("episodes/<int:episode_pk>/grades/suggest/", views.grade_suggest, name="grade_suggest"),
    path("episodes/<int:episode_pk>/procedures/new/", views.procedure_form, name="procedure_create"),
    path("episodes/<int:episode_pk>/procedures/<int:pk>/edit/", views.procedure_form, name="procedure_form_edit"),
    path("procedures/<int:pk>/edit/", views.procedure_edit, name="procedure_edit"),
    path("episodes/<int:episode_pk>/exams/new/", views.exam_form, name="exam_create"),
    path("episodes/<int:episode_pk>/exams/<int:pk>/edit/", views.exam_form, name="exam_edit"),
    path("episodes/<int:episode_pk>/notes/new/", views.note_form, name="note_create"),
    path("episodes/<int:episode_pk>/notes/<int:pk>/edit/", views.note_form, name="note_edit"),
    path("procedures/<int:procedure_pk>/adverse-events/new/", views.adverse_event_form, name="adverse_event_create"),
    path("procedures/<int:procedure_pk>/adverse-events/<int:pk>/edit/", views.adverse_event_form,
         name="adverse_event_edit"),
]
