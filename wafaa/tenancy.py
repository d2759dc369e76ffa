"""Tenancy guards shared by the services of client-schema apps."""

from __future__ import annotations

from django.db import connection


class PublicSchemaError(RuntimeError):
    """Client data was touched while the connection was in `public`: a routing bug."""


def assert_client_schema() -> None:
    """Fail loudly if client-scoped code runs in the public schema."""
    if connection.schema_name == "public":
        raise PublicSchemaError("client-scoped code ran in the public schema")
