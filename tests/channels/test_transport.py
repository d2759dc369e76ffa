"""Transport in channels_app: pacing in Redis per number and per customer; silent accounts."""

from __future__ import annotations

from channels_app import services
from channels_app.models import ChannelAccount
from channels_app.pacing import pace
from tests.factories import ChannelAccountFactory


def test_pacing_spaces_messages_to_the_same_customer(in_tenant_a, settings):
    settings.SAME_CUSTOMER_SPACING_MS = 500
    account = ChannelAccountFactory(client=in_tenant_a, external_id="5550000001")
    assert pace(account=account, recipient="15550009999") == 0
    assert pace(account=account, recipient="15550009999") > 0.3
    assert pace(account=account, recipient="15550008888") == 0


def test_token_bucket_limits_a_number_to_its_rate(in_tenant_a, settings):
    settings.WHATSAPP_MESSAGES_PER_SECOND = 5
    settings.SAME_CUSTOMER_SPACING_MS = 0
    account = ChannelAccountFactory(client=in_tenant_a, external_id="5550000002")
    waits = [pace(account=account, recipient=f"1555000{i:04d}") for i in range(8)]
    assert waits[:5] == [0, 0, 0, 0, 0]
    assert all(w > 0 for w in waits[5:])


def test_silent_channel_accounts_are_flagged_once(in_tenant_a, settings, caplog):
    import logging
    from datetime import timedelta

    from django.utils import timezone

    settings.CHANNEL_SILENT_AFTER_MINUTES = 60
    silent = ChannelAccountFactory(client=in_tenant_a, external_id="5550000101")
    fresh = ChannelAccountFactory(client=in_tenant_a, external_id="5550000102")
    ChannelAccount.objects.filter(pk=silent.pk).update(
        last_seen_at=timezone.now() - timedelta(hours=3)
    )
    ChannelAccount.objects.filter(pk=fresh.pk).update(last_seen_at=timezone.now())
    with caplog.at_level(logging.WARNING, logger="channels_app.services"):
        assert services.channel_accounts_flag_silent() >= 1
        services.channel_accounts_flag_silent()
    warnings = [r for r in caplog.records if "silent" in r.getMessage() and r.account == silent.pk]
    assert len(warnings) == 1  # logged when it goes silent, not on every check
    silent.refresh_from_db()
    fresh.refresh_from_db()
    assert silent.silent_flagged_at is not None and fresh.silent_flagged_at is None
