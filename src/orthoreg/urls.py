from django.urls import include, path

from orthoreg.registry import urls as registry_urls
from orthoreg.site import views as site_views

# The health check (a site view) keeps its URL name registry:healthz, the name monitoring and the permission
# matrix know it by.
registry_patterns = [path("healthz", site_views.healthz, name="healthz"), *registry_urls.urlpatterns]

urlpatterns = [
    path("", include("orthoreg.site.urls")),
    path("accounts/", include("orthoreg.accounts.urls")),
    path("", include((registry_patterns, registry_urls.app_name))),
    path("instruments/", include("orthoreg.instruments.urls")),
    path("followup/", include("orthoreg.followup.urls")),
    path("s/", include("orthoreg.followup.survey_urls")),
    path("imaging/", include("orthoreg.imaging.urls")),
    path("analytics/", include("orthoreg.analytics.urls")),
    path("reports/", include("orthoreg.reports.urls")),
    path("interop/", include("orthoreg.interop.urls")),
    path("api/", include("orthoreg.api.urls")),
]

handler404 = "orthoreg.site.views.not_found"
handler500 = "orthoreg.site.views.server_error"
handler403 = "orthoreg.site.views.permission_denied"
