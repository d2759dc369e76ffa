"""Database helpers for idempotent writes.

`insert_or_nothing` stores a row with `INSERT ... ON CONFLICT (...) DO NOTHING RETURNING pk`:
a duplicate (a webhook Meta sends twice, two workers racing) is simply not inserted, with no
error. Catching IntegrityError instead works too, but PostgreSQL then logs the failing
statement with its values (a customer's number, name and text) at ERROR level.
"""

from __future__ import annotations

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
