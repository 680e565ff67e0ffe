from django.urls import include, path

from orthoreg.registry import views as registry_views

urlpatterns = [
    path("", registry_views.home, name="home"),
    path("accounts/", include("orthoreg.accounts.urls")),
    path("", include("orthoreg.registry.urls")),
    path("instruments/", include("orthoreg.instruments.urls")),
    path("followup/", include("orthoreg.followup.urls")),
    path("s/", include("orthoreg.followup.survey_urls")),
    path("imaging/", include("orthoreg.imaging.urls")),
    path("analytics/", include("orthoreg.analytics.urls")),
    path("reports/", include("orthoreg.reports.urls")),
    path("interop/", include("orthoreg.interop.urls")),
    path("api/", include("orthoreg.api.urls")),
]

handler404 = "orthoreg.registry.views.not_found"
handler500 = "orthoreg.registry.views.server_error"
handler403 = "orthoreg.registry.views.permission_denied"
