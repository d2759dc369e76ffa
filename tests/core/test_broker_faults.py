"""The broker (Redis) going away must never kill a worker: kombu's close path is guarded."""

from __future__ import annotations

import pytest
import redis


def test_a_closed_broker_connection_gives_a_recoverable_error(settings):
    from kombu import Connection

    import config.celery  # noqa: F401 - installs the guard, as every worker does

    connection = Connection(settings.CELERY_BROKER_URL)
    connection.connect()
    channel = connection.channel()
    try:
        # What celery's consumer does when the broker is lost: the transport forgets its
        # client, while channels (and their unacked messages) are closed afterwards.
        connection._do_close_transport()
        channel.__dict__.pop("client", None)
        channel._pool = None
        with pytest.raises(redis.exceptions.ConnectionError):
            channel.qos.restore_unacked()
        assert isinstance(redis.exceptions.ConnectionError(), channel.connection_errors)
    finally:
        channel.__dict__.pop("client", None)
