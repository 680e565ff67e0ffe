from django.urls import path

from . import views

app_name = "interop"
urlpatterns = [
    path("research-export/", views.research_export, name="research_export"),
]
