from django.urls import path

from . import views

app_name = "followup"
urlpatterns = [
    path("", views.worklist, name="worklist"),
    path("protocols/", views.protocol_list, name="protocol_list"),
    path("protocols/<int:pk>/copy/", views.protocol_copy, name="protocol_copy"),
    path("protocols/<int:pk>/edit/", views.protocol_edit, name="protocol_edit"),
    path("assessments/<int:pk>/enter/", views.assessment_enter, name="assessment_enter"),
    path("assessments/<int:pk>/cancel/", views.assessment_cancel, name="assessment_cancel"),
    path("invitations/<int:pk>/resend/", views.invitation_resend, name="invitation_resend"),
    path("invitations/<int:pk>/revoke/", views.invitation_revoke, name="invitation_revoke"),
]
