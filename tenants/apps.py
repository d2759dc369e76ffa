from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Clients and users"

    def ready(self):
        from tenants import schema  # noqa: F401 - registers the OpenAPI auth schemes
