from django.urls import path

from . import views

app_name = "imaging"
urlpatterns = [
    path("episode/<int:episode_id>/", views.episode_images, name="episode_images"),
    path("episode/<int:episode_id>/upload/", views.upload, name="upload"),
    path("episode/<int:episode_id>/pacs/", views.pacs_studies, name="pacs"),
    path("episode/<int:episode_id>/compare/", views.compare, name="compare"),
    path("episode/<int:episode_id>/compare.png", views.compare_png, name="compare_png"),
    path("image/<int:pk>/", views.image_detail, name="image_detail"),
    path("image/<int:pk>/edit/", views.image_edit, name="image_edit"),
    path("image/<int:pk>/delete/", views.image_delete, name="image_delete"),
    path("image/<int:pk>/rendition.png", views.image_rendition, name="image_rendition"),
    path("image/<int:pk>/thumbnail.png", views.image_thumbnail, name="image_thumbnail"),
    path("image/<int:pk>/original/", views.image_original, name="image_original"),
    path("image/<int:pk>/report.dcm", views.image_sr, name="image_sr"),
    path("image/<int:pk>/report/push/", views.image_sr_push, name="image_sr_push"),
    path("image/<int:pk>/calibration/", views.calibration_view, name="calibration"),
    path("image/<int:pk>/annotations/", views.annotations, name="annotations"),  # type: ignore[call-overload]
    path("annotation/<int:pk>/", views.annotation, name="annotation"),
    path("image/<int:pk>/measure/", views.measure, name="measure"),
    path("image/<int:pk>/measure/manual/", views.measure_manual, name="measure_manual"),
    path("measurement/<int:pk>/accept/", views.measurement_accept, name="measurement_accept"),
    path("measurement/<int:pk>/delete/", views.measurement_delete, name="measurement_delete"),
]
