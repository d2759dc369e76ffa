"""URL map: health and metrics, webhooks, the REST API, its schema and docs, the agents' inbox
and the admin."""

from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from backoffice import client_admin
from wafaa import health, metrics_export
from wafaa.api import views as core_views

urlpatterns = [
    path("health", health.health_view, name="health"),
    path("ready", health.ready_view, name="ready"),
    path("metrics", metrics_export.metrics_view, name="metrics"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves its start-up script as a file: the page needs no inline script
    # (Content-Security-Policy: script-src 'self'), and its assets come from the sidecar app.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/v1/", include("tenants.api.urls")),
    path("", include("channels_app.urls")),
    # Any other /api/ path: the API's 404 envelope, also when DEBUG shows HTML pages elsewhere.
    re_path(r"^api/", core_views.not_found),
    # The agents' inbox; the language switch (Django's set_language) under its prefix.
    path("inbox/i18n/", include("django.conf.urls.i18n")),
    path("inbox/", include("desk.urls")),
    path("admin/client-data/", client_admin.site.urls),
    path("admin/", admin.site.urls),
]

handler404 = core_views.not_found
handler500 = core_views.server_error
