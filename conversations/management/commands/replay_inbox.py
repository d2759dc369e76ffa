"""Re-process a client's webhook inbox events received in a time range.

    python manage.py replay_inbox --client <slug> --since 2026-12-01T09:00 [--until 2026-12-01T10:00]

The events (done or parked, still within INBOX_RETENTION_HOURS) become pending again and are
drained right here, in this process. Safe to run twice: messages already stored are not stored
again (Meta's ids are unique) and statuses never move backwards.
"""

from __future__ import annotations

from datetime import datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from conversations import inbound
from tenants.models import Client


def _moment(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(f"not an ISO 8601 date or time: {value!r}") from None
    return timezone.make_aware(moment) if timezone.is_naive(moment) else moment


class Command(BaseCommand):
    help = "Re-process a client's webhook inbox events received in a time range."

    def add_arguments(self, parser):
        parser.add_argument("--client", required=True, help="the client's slug")
        parser.add_argument("--since", required=True, type=_moment, help="ISO 8601, inclusive")
        parser.add_argument("--until", type=_moment, help="ISO 8601, exclusive (default: now)")

    def handle(self, *args, client, since, until, **options):
        found = Client.objects.filter(slug=client).first()
        if found is None:
            raise CommandError(f"no client with slug {client!r}")
        until = until or timezone.now()
        if until <= since:
            raise CommandError("--until must be after --since")
        count = inbound.inbox_replay(client=found, since=since, until=until)
        result = inbound.inbox_drain(client_id=found.pk, max_batches=10_000)
        self.stdout.write(
            f"{count} event(s) replayed: {result.accepted} message(s) stored, "
            f"{result.duplicates} already stored, {result.statuses} status(es) applied, "
            f"{result.failed} failed, {result.parked} parked"
        )
