"""Meta webhook URLs: per client (`/webhook/<channel>/<slug>/`) and app-level (`/webhook/<channel>/`)."""

from django.urls import re_path

from channels_app import views

urlpatterns = [
    re_path(r"^webhook/(?P<kind>whatsapp|instagram)/$", views.webhook, name="webhook-app"),
    re_path(
        r"^webhook/(?P<kind>whatsapp|instagram)/(?P<slug>[a-z0-9-]+)/$",
        views.webhook,
        name="webhook",
    ),
]
