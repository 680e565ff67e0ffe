from django.contrib.auth import views as auth_views
from django.urls import path

from . import views

app_name = "accounts"
urlpatterns = [
    path("login/", auth_views.LoginView.as_view(template_name="accounts/login.html",
                                                redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("2fa/setup/", views.twofactor_setup, name="2fa_setup"),
    path("2fa/verify/", views.twofactor_verify, name="2fa_verify"),
    path("audit/", views.audit_log, name="audit_log"),
]
