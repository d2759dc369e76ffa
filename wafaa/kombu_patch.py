"""A guard for a kombu 5.7.0 crash of the worker when Redis drops under load.

What happens: when the broker connection is lost, celery closes the kombu Connection, which
sets its transport's `client` to None. A Redis channel closed after that (or its QoS
finalizer) still restores its unacked messages (`QoS.restore_unacked`), which needs a Redis
client; if the channel has none cached it builds a connection pool from
`Channel._connparams`, which reads `self.connection.client.hostname` -> AttributeError
("'NoneType' object has no attribute 'hostname'"). An AttributeError is not one of the
transport's connection errors, so celery reports "Unrecoverable error" and the worker exits.
kombu 5.7.0 is the newest release (no fixed version to pin to).

The guard: with no client left, `_connparams` raises redis' ConnectionError instead, a
connection error the worker recovers from (it reconnects). The unacked messages are not
lost: they stay in kombu's unacked index in Redis and come back after the visibility
timeout, like a killed worker's.
"""

from __future__ import annotations

from kombu.transport import redis as kombu_redis

_PATCHED = "_wafaa_guarded"


def install() -> None:
    channel = kombu_redis.Channel
    original = channel._connparams
    if getattr(original, _PATCHED, False):
        return

    def _connparams(self, asynchronous=False):
        if getattr(self.connection, "client", None) is None:
            import redis

            raise redis.exceptions.ConnectionError("the broker connection was closed; reconnecting")
        return original(self, asynchronous=asynchronous)

    setattr(_connparams, _PATCHED, True)
    channel._connparams = _connparams
