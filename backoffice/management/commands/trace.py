"""Show what happened to a message: `python manage.py trace <trace_id> [--client slug]`.

Finds the messages carrying the trace id (in every client schema unless --client is given)
and prints the path with times: stored, processing, knowledge cited, LLM call, reply stored,
sent, delivered, read or failed, and the conversation events around it.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django_tenants.utils import tenant_context

from tenants.models import Client


class Command(BaseCommand):
    help = "Print the path of a message through Wafaa by its trace id."

    def add_arguments(self, parser):
        parser.add_argument("trace_id")
        parser.add_argument("--client", help="client slug (faster: search one schema)")

    def handle(self, *args, **options):
        from conversations.models import Message

        clients = Client.objects.all()
        if options["client"]:
            clients = clients.filter(slug=options["client"])
        found = False
        for client in clients.order_by("pk"):
            with tenant_context(client):
                messages = list(
                    Message.objects.filter(trace_id=options["trace_id"])
                    .select_related("conversation__contact")
                    .order_by("created_at")
                )
                if not messages:
                    continue
                found = True
                self.stdout.write(
                    self.style.MIGRATE_HEADING(f"client {client.slug} ({client.schema_name})")
                )
                for message in messages:
                    self._print(message)
        if not found:
            raise CommandError(f"No message carries trace id {options['trace_id']!r}.")

    def _line(self, when, what):
        self.stdout.write(
            f"  {when:%Y-%m-%d %H:%M:%S.%f}"[:-3] + f"  {what}" if when else f"  {'-' * 23}  {what}"
        )

    def _print(self, message):
        conversation = message.conversation
        self.stdout.write(
            f"conversation {conversation.pk} ({conversation.channel}, mode {conversation.mode}), "
            f"contact {conversation.contact_id}"
        )
        direction = "inbound" if message.direction == "in" else f"outbound by {message.author}"
        self._line(
            message.created_at,
            f"{direction} {message.type} stored (id {message.pk}, "
            f"external {message.external_id or '-'})",
        )
        self._line(
            message.updated_at,
            f"status {message.status}"
            + (
                f" ({message.failure_reason}: {message.failure_detail})"
                if message.failure_reason
                else ""
            ),
        )
        for reply in message.replies.order_by("created_at"):
            cited = (
                ", ".join(
                    f"{c['document']}#{c['chunk_id']} ({c['score']})" for c in reply.citations
                )
                or "none"
            )
            self._line(reply.created_at, f"knowledge cited: {cited}")
            self._line(
                reply.created_at,
                f"reply by {reply.author} via {reply.model or '-'}: "
                f"{reply.latency_ms} ms, tokens {reply.prompt_tokens}/{reply.completion_tokens}",
            )
            self._line(reply.sent_at, f"sent (graph id {reply.external_id or '-'})")
            self._line(reply.delivered_at, "delivered")
            self._line(reply.read_at, "read")
            if reply.status in {"failed", "not_sent"}:
                self._line(
                    reply.updated_at,
                    f"{reply.status}: {reply.failure_reason} {reply.failure_detail}",
                )
        for event in conversation.events.filter(created_at__gte=message.created_at).order_by(
            "created_at"
        )[:10]:
            self._line(
                event.created_at, f"event {event.kind} by {event.actor} {event.detail or ''}"
            )
