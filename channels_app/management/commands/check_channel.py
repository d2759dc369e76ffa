"""`manage.py check_channel <client> [--channel id]`: ask Meta whether each channel
account's token works for that number/account and has the permissions Wafaa needs."""

from django.core.management.base import BaseCommand, CommandError

from channels_app.checks import channel_account_check
from channels_app.models import ChannelAccount


class Command(BaseCommand):
    help = "Check a client's channel accounts with the Graph API (token, access, permissions)."

    def add_arguments(self, parser):
        parser.add_argument("client", help="the client's slug")
        parser.add_argument("--channel", type=int, help="one channel account id")

    def handle(self, *args, client: str, channel: int | None = None, **options):
        accounts = ChannelAccount.objects.filter(client__slug=client).order_by("pk")
        if channel is not None:
            accounts = accounts.filter(pk=channel)
        accounts = list(accounts)
        if not accounts:
            raise CommandError(f"No channel account for client '{client}'.")
        failed = 0
        for account in accounts:
            result = channel_account_check(account=account)
            verdict = "OK" if result.ok else "FAILED"
            failed += not result.ok
            line = f"{verdict} {account.kind} {account.external_id} (id {account.pk}): access {result.access}"
            if result.detail:
                line += f"; {result.detail}"
            self.stdout.write(line)
        if failed:
            raise SystemExit(1)
