"""Database connections while a task waits on the outside world.

Under the `replies` worker many conversations are in flight in one process (threads), and
each would keep its database connection for the whole task. With the pool on
(DB_POOL_MAX_SIZE), `connection_released()` gives the thread's connection back to the pool
before a slow outside call (an LLM completion, a Graph API send), so a timeout of 20 s holds
no connection and a few connections serve every conversation; the next query takes one from
the pool again and django-tenants sets the search_path afresh on it (its `close()` forgets
the schema it had set, so a pooled connection never keeps another task's schema).

Without a pool (prefork workers, web) it does nothing: closing there would mean a new
PostgreSQL connection per call.
"""

from __future__ import annotations

from contextlib import contextmanager

from django.db import connections


def pooled(alias: str = "default") -> bool:
    return getattr(connections[alias], "pool", None) is not None


def release_connection(alias: str = "default") -> bool:
    """Give this thread's connection back to the pool (not inside a transaction)."""
    connection = connections[alias]
    if connection.connection is None or connection.in_atomic_block or not pooled(alias):
        return False
    connection.close()
    return True


@contextmanager
def connection_released(alias: str = "default"):
    """`with connection_released(): slow_outside_call()`: no connection held meanwhile."""
    release_connection(alias)
    yield
