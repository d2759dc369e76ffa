"""Meta webhook URLs: per client (`/webhook/<channel>/<slug>`) and app-level (`/webhook/<channel>`).

Both forms answer with and without the trailing slash: Meta does not follow a redirect on
POST, so a callback URL registered without the slash would otherwise lose every message.
"""

from django.urls import re_path

from channels_app import views

urlpatterns = [
    re_path(r"^webhook/(?P<kind>whatsapp|instagram)/?$", views.webhook, name="webhook-app"),
    re_path(
        r"^webhook/(?P<kind>whatsapp|instagram)/(?P<slug>[a-z0-9-]+)/?$",
        views.webhook,
        name="webhook",
    ),
]
