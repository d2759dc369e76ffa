"""`manage.py rotate_field_keys`: stored secrets move to the new key, and still decrypt."""

from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection

from wafaa import crypto


@pytest.fixture
def keys(db, settings):
    """A known old key, under which every secret already stored is written again (inside the
    test's transaction, rolled back after)."""
    from wafaa.management.commands.rotate_field_keys import encrypted_fields

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    stored = [
        (obj, field.name)
        for model, field in encrypted_fields()
        for obj in model.objects.exclude(**{field.name: ""})
    ]
    settings.FIELD_ENCRYPTION_KEYS = [old]
    crypto.reset_cache()
    for obj, name in stored:
        obj.save(update_fields=[name])
    yield old, new
    crypto.reset_cache()


def _raw(table: str, column: str, pk) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def test_rotation_re_encrypts_every_secret_under_the_first_key(tenant_a, keys, settings):
    from channels_app.models import ChannelAccount

    old, new = keys
    account = ChannelAccount.objects.create(
        client=tenant_a,
        kind="whatsapp",
        external_id="rot-1",
        access_token="token-before-rotation",
        app_secret="secret-before-rotation",
        verify_token="v",
    )
    before = _raw("channels_app_channelaccount", "access_token", account.pk)
    assert Fernet(old.encode()).decrypt(before.encode()) == b"token-before-rotation"

    settings.FIELD_ENCRYPTION_KEYS = [new, old]
    crypto.reset_cache()
    out = StringIO()
    call_command("rotate_field_keys", "--check", stdout=out)
    assert "channels_app.ChannelAccount.access_token: 1 stale" in out.getvalue()

    call_command("rotate_field_keys", stdout=StringIO())
    after = _raw("channels_app_channelaccount", "access_token", account.pk)
    assert Fernet(new.encode()).decrypt(after.encode()) == b"token-before-rotation"

    # The old key can go: everything still reads with the new key alone.
    settings.FIELD_ENCRYPTION_KEYS = [new]
    crypto.reset_cache()
    account = ChannelAccount.objects.get(pk=account.pk)
    assert account.access_token == "token-before-rotation"
    assert account.app_secret == "secret-before-rotation"
    out = StringIO()
    call_command("rotate_field_keys", "--check", stdout=out)
    assert "0 values still under an older key" in out.getvalue()


def test_a_secret_under_an_unknown_key_fails_loudly(tenant_a, keys, settings):
    from django.core.exceptions import ImproperlyConfigured

    from channels_app.models import ChannelAccount

    _old, new = keys
    ChannelAccount.objects.create(
        client=tenant_a,
        kind="whatsapp",
        external_id="rot-2",
        access_token="t",
        app_secret="s",
        verify_token="v",
    )
    settings.FIELD_ENCRYPTION_KEYS = [new, Fernet.generate_key().decode()]
    crypto.reset_cache()
    with pytest.raises(ImproperlyConfigured):
        call_command("rotate_field_keys", stdout=StringIO())
