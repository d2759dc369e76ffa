"""Delete expired unverified sign-ups, expired invitations and expired JWT records."""

from django.core.management.base import BaseCommand

from tenants import accounts


class Command(BaseCommand):
    help = __doc__

    def handle(self, *args, **options):
        counts = accounts.accounts_purge_expired()
        self.stdout.write(", ".join(f"{name}: {count}" for name, count in counts.items()))
