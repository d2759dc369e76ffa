"""Secrets at rest: Fernet encryption with keys from the environment, and a model field.

FIELD_ENCRYPTION_KEYS holds one or more Fernet keys (comma separated): the first encrypts,
all decrypt, so keys can be rotated. In development without keys, one is derived from
SECRET_KEY (config.settings refuses to run production without FIELD_ENCRYPTION_KEYS).
"""

from __future__ import annotations

import base64
import functools
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models


@functools.cache
def _fernet() -> MultiFernet:
    keys = list(settings.FIELD_ENCRYPTION_KEYS)
    if not keys:
        # Development and tests only: config.settings refuses to start production without keys.
        digest = hashlib.sha256(("wafaa-field-key:" + settings.SECRET_KEY).encode()).digest()
        keys = [base64.urlsafe_b64encode(digest).decode()]
    return MultiFernet([Fernet(key.encode()) for key in keys])


def encrypt(value: str) -> str:
    return _fernet().encrypt(value.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise ImproperlyConfigured(
            "A stored secret cannot be decrypted: FIELD_ENCRYPTION_KEYS does not hold the key "
            "it was encrypted with"
        ) from exc


def rotate(token: str) -> str:
    """The same secret re-encrypted under the first key (MultiFernet.rotate keeps its time)."""
    try:
        return _fernet().rotate(token.encode()).decode()
    except InvalidToken as exc:
        raise ImproperlyConfigured(
            "A stored secret cannot be decrypted with any key of FIELD_ENCRYPTION_KEYS"
        ) from exc


def is_current(token: str) -> bool:
    """Whether a stored secret is encrypted under the first (current) key."""
    keys = list(settings.FIELD_ENCRYPTION_KEYS)
    if len(keys) <= 1:
        return True
    try:
        Fernet(keys[0].encode()).decrypt(token.encode())
    except InvalidToken:
        return False
    return True


def reset_cache() -> None:
    """Forget the keys read from settings (tests and key rotation in one process)."""
    _fernet.cache_clear()


class EncryptedTextField(models.TextField):
    """A text field stored encrypted; Python code sees plain text."""

    def from_db_value(self, value, expression, connection):
        if value in (None, ""):
            return value
        return decrypt(value)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value in (None, ""):
            return value
        return encrypt(value)
