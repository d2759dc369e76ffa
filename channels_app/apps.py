from django.apps import AppConfig


class ChannelsAppConfig(AppConfig):
    name = "channels_app"

    def ready(self) -> None:
        from channels_app import routing  # noqa: F401 - connects the routing table's invalidation
