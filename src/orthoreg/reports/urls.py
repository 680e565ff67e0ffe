from django.urls import path

from . import views

app_name = "reports"
urlpatterns = [
    path("cohort/", views.cohort, name="cohort"),
    path("cohort/report.pdf", views.cohort_pdf, name="cohort_pdf"),
    path("cohort/report.json", views.cohort_json, name="cohort_json"),
    path("cohort/charts/<slug:name>.<str:fmt>", views.cohort_chart, name="cohort_chart"),
    path("options/", views.options, name="options"),
    path("episodes/<int:episode_id>/", views.case, name="case"),
    path("episodes/<int:episode_id>/report.pdf", views.case_pdf, name="case_pdf"),
    path("episodes/<int:episode_id>/radiographs.png", views.case_images, name="case_images"),
    path("public/", views.public_index, name="public_index"),
    path("public/<slug:site>/<slug:condition>/", views.public_outcomes, name="public_outcomes"),
    path("public/<slug:site>/<slug:condition>/chart.svg", views.public_chart, name="public_chart"),
]
