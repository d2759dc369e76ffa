from django.apps import AppConfig


class DeskConfig(AppConfig):
    """The agents' inbox in the browser (/inbox/): server-rendered pages and htmx fragments
    over the same services as the REST API. It sits at the top beside `backoffice` (the import
    contract in pyproject.toml); it has no models of its own."""

    name = "desk"
    verbose_name = "Agents' inbox"
