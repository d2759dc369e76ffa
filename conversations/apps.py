from django.apps import AppConfig


class ConversationsConfig(AppConfig):
    name = "conversations"

    def ready(self) -> None:
        from channels_app import inbox
        from conversations.tasks import inbox_drain_task

        # Conversations consumes the webhook inbox that channels_app fills (channels_app
        # knows no conversations): a stored event nudges a drain of its client's inbox.
        inbox.set_consumer(lambda client_id: inbox_drain_task.apply_async((client_id,)))
