"""/inbox/ routes (namespace `desk`); the contract with the browser tests is
docs/inbox.md ("Page contract")."""

from django.urls import path

from desk import auth_views, views

app_name = "desk"

urlpatterns = [
    path("", auth_views.home_view, name="home"),
    path("login/", auth_views.login_view, name="login"),
    path("logout/", auth_views.logout_view, name="logout"),
    path("<slug:slug>/", views.inbox_view, name="inbox"),
]
