"""Send a customer message into Wafaa as Meta would, and print the bot's reply.

    python manage.py simulate_message --client demo "What are your opening hours?"
    python manage.py simulate_message --client demo --sync "Do you deliver?"

Default: a signed WhatsApp webhook is POSTed to the running server (make run), and the reply
is read back from the database once the worker has answered. --sync runs the reply pipeline in
this process instead (no server or worker needed); the reply is stored but not sent to Meta.
"""

from __future__ import annotations

import json
import time
import uuid

import requests
from django.core.management.base import BaseCommand, CommandError
from django_tenants.utils import tenant_context

from channels_app.models import ChannelAccount
from channels_app.providers import sign_body
from conversations.models import Message
from tenants.models import Client


def _envelope(phone_number_id: str, **value) -> bytes:
    """A WhatsApp Cloud API webhook body: one entry, one `messages` change holding `value`."""
    payload = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "0",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "",
                                "phone_number_id": phone_number_id,
                            },
                            **value,
                        },
                    }
                ],
            }
        ],
    }
    return json.dumps(payload).encode()


def webhook_body(
    *, phone_number_id: str, wa_id: str, name: str, message_id: str, text: str
) -> bytes:
    """A customer's text message, as Meta sends it."""
    return _envelope(
        phone_number_id,
        contacts=[{"profile": {"name": name}, "wa_id": wa_id}],
        messages=[
            {
                "from": wa_id,
                "id": message_id,
                "timestamp": str(int(time.time())),
                "type": "text",
                "text": {"body": text},
            }
        ],
    )


def status_webhook_body(
    *, phone_number_id: str, message_id: str, status: str, recipient: str
) -> bytes:
    """Meta's delivery status (sent, delivered, read, failed) of one of our messages."""
    return _envelope(
        phone_number_id,
        statuses=[
            {
                "id": message_id,
                "status": status,
                "timestamp": str(int(time.time())),
                "recipient_id": recipient,
            }
        ],
    )


class Command(BaseCommand):
    help = "Simulate a WhatsApp customer message and print the reply with its citations."

    def add_arguments(self, parser):
        parser.add_argument("text")
        parser.add_argument("--client", default="demo", help="client slug (default: demo)")
        parser.add_argument("--from", dest="wa_id", default="15550000001", help="customer's number")
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="the running server")
        parser.add_argument("--sync", action="store_true", help="run the pipeline in this process")
        parser.add_argument("--timeout", type=float, default=30.0)

    def handle(self, *args, **options):
        client = Client.objects.filter(slug=options["client"]).first()
        if client is None:
            raise CommandError(f"No client with slug {options['client']!r}.")
        account = ChannelAccount.objects.filter(client=client, kind="whatsapp").first()
        if account is None:
            raise CommandError(
                f"Client {client.slug!r} has no WhatsApp account: connect one first."
            )
        message_id = f"wamid.SIM{uuid.uuid4().hex}"
        if options["sync"]:
            self._run_sync(client, account, options, message_id)
        else:
            body = webhook_body(
                phone_number_id=account.external_id,
                wa_id=options["wa_id"],
                name="Simulated customer",
                message_id=message_id,
                text=options["text"],
            )
            url = f"{options['url'].rstrip('/')}/webhook/whatsapp/{client.slug}/"
            try:
                response = requests.post(
                    url,
                    data=body,
                    timeout=10,
                    headers={
                        "Content-Type": "application/json",
                        "X-Hub-Signature-256": sign_body(body, account.app_secret),
                    },
                )
            except requests.RequestException as exc:
                raise CommandError(f"Could not reach {url}: {exc}. Is `make run` running?") from exc
            if response.status_code != 200:
                raise CommandError(f"The webhook answered {response.status_code}: {response.text}")
            self.stdout.write(f"webhook accepted (trace {response.headers.get('X-Trace-ID')})")
        self._print_reply(client, message_id, options["timeout"])

    def _run_sync(self, client, account, options, message_id):
        from channels_app.providers import whatsapp
        from conversations import pipeline, services

        [inbound] = whatsapp.parse(
            json.loads(
                webhook_body(
                    phone_number_id=account.external_id,
                    wa_id=options["wa_id"],
                    name="Simulated customer",
                    message_id=message_id,
                    text=options["text"],
                )
            )
        ).messages
        with tenant_context(client):
            message, _ = services.message_receive(account=account, inbound=inbound)
            outcome = pipeline.reply_for_inbound(message_id=message.pk, send=False)
        self.stdout.write(f"pipeline outcome: {outcome}")

    def _print_reply(self, client, message_id, timeout):
        deadline = time.monotonic() + timeout
        with tenant_context(client):
            while time.monotonic() < deadline:
                inbound = Message.objects.filter(external_id=message_id).first()
                reply = inbound and inbound.replies.order_by("created_at").first()
                if reply is not None:
                    break
                if inbound is not None and inbound.status == Message.Status.STORED:
                    self.stdout.write(
                        "stored: the conversation is with a person (handoff), the bot stays silent"
                    )
                    return
                time.sleep(0.2)
            else:
                raise CommandError("No reply in time: is the worker running (make run starts one)?")
            self.stdout.write(self.style.SUCCESS(f"reply ({reply.status}): {reply.text}"))
            for citation in reply.citations:
                self.stdout.write(
                    f"  cited {citation['document']} chunk {citation['chunk_id']} "
                    f"score={citation['score']} similarity={citation['similarity']}"
                )
            if reply.conversation.mode != "bot":
                self.stdout.write(
                    f"conversation is now in {reply.conversation.mode} "
                    f"({reply.conversation.handoff_reason})"
                )
