"""/api/v1/ routes. Everything client-scoped lives under clients/<client_id>/."""

from django.urls import include, path

from tenants.api import views

client_scoped = [
    path("members", views.MemberListInviteApi.as_view(), name="member-list"),
    path("members/<int:member_id>", views.MemberRemoveApi.as_view(), name="member-remove"),
    path("invitations", views.InvitationListApi.as_view(), name="invitation-list"),
    path(
        "invitations/<int:invitation_id>",
        views.InvitationRevokeApi.as_view(),
        name="invitation-revoke",
    ),
    path("api-keys", views.APIKeyListCreateApi.as_view(), name="apikey-list"),
    path("api-keys/<int:key_id>", views.APIKeyRevokeApi.as_view(), name="apikey-revoke"),
    path("", include("channels_app.api.urls")),
    path("", include("conversations.api.urls")),
    path("knowledge/", include("knowledge.api.urls")),
]

urlpatterns = [
    path("auth/register", views.RegisterApi.as_view(), name="auth-register"),
    path("auth/login", views.LoginApi.as_view(), name="auth-login"),
    path("auth/verify-email", views.VerifyEmailApi.as_view(), name="auth-verify-email"),
    path("auth/refresh", views.RefreshApi.as_view(), name="auth-refresh"),
    path("auth/logout", views.LogoutApi.as_view(), name="auth-logout"),
    path("auth/invitations", views.MyInvitationsApi.as_view(), name="auth-invitations"),
    path(
        "auth/invitations/accept",
        views.InvitationAcceptApi.as_view(),
        name="auth-invitation-accept",
    ),
    path(
        "auth/invitations/<int:invitation_id>/accept",
        views.MyInvitationAcceptApi.as_view(),
        name="auth-my-invitation-accept",
    ),
    path("auth/me", views.MeApi.as_view(), name="auth-me"),
    path("clients", views.ClientListCreateApi.as_view(), name="client-list"),
    path("clients/<int:client_id>", views.ClientDetailApi.as_view(), name="client-detail"),
    path("clients/<int:client_id>/", include(client_scoped)),
]
