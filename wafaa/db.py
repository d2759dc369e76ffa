"""Database helpers: idempotent writes, and connections while a task waits outside.

`insert_or_nothing` stores a row with `INSERT ... ON CONFLICT (...) DO NOTHING RETURNING pk`:
a duplicate (a webhook Meta sends twice, two workers racing) is simply not inserted, with no
error. Catching IntegrityError instead works too, but PostgreSQL then logs the failing
statement with its values (a customer's number, name and text) at ERROR level.

Under the `replies` worker many conversations are in flight in one process (threads), and
each would keep its database connection for the whole task. With the pool on
(DB_POOL_MAX_SIZE), `connection_released()` gives the thread's connection back to the pool
before a slow outside call (an LLM completion, a Graph API send), so a timeout of 20 s holds
no connection and a few connections serve every conversation; the next query takes one from
the pool again and django-tenants sets the search_path afresh on it (its `close()` forgets
the schema it had set, so a pooled connection never keeps another task's schema).

Without a pool (prefork workers, web) `connection_released()` does nothing: closing there would mean a new
PostgreSQL connection per call.
"""

from __future__ import annotations

from contextlib import contextmanager

from django.db import connections, router


def insert_or_nothing(obj, *, conflict_fields: list[str]) -> bool:
    """Insert model instance `obj` unless a row with the same `conflict_fields` (a unique
    constraint) exists. Returns True and sets `obj.pk` when inserted, False otherwise."""
    model = type(obj)
    meta = model._meta
    connection = connections[router.db_for_write(model)]
    quote = connection.ops.quote_name
    fields = [
        f for f in meta.concrete_fields if not (f.primary_key and getattr(obj, f.attname) is None)
    ]
    values = [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields]
    columns = ", ".join(quote(f.column) for f in fields)
    conflict = ", ".join(quote(meta.get_field(name).column) for name in conflict_fields)
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({columns}) "  # noqa: S608 - names from the model
        f"VALUES ({', '.join(['%s'] * len(values))}) "
        f"ON CONFLICT ({conflict}) DO NOTHING RETURNING {quote(meta.pk.column)}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        row = cursor.fetchone()
    if row is None:
        return False
    setattr(obj, meta.pk.attname, row[0])
    obj._state.adding = False
    obj._state.db = connection.alias
    return True


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
