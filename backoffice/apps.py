from django.apps import AppConfig


class BackofficeConfig(AppConfig):
    """What spans the apps, for platform staff and operators: the per-client admin site, demo
    data, `trace`, `tenant_diagnostics`, `bootstrap`. It sits above every feature app (the
    import contract in pyproject.toml), so nothing below may import it."""

    name = "backoffice"
    verbose_name = "Back office"
