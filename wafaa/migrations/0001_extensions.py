"""The vector and pg_trgm extensions, created once in `public`.

`wafaa` is a shared app, so this runs only for the public schema; every client schema's
search_path ends with public, so all of them can use the types and operators.
"""

from django.db import migrations


class Migration(migrations.Migration):
    initial = True
    dependencies = []

    operations = [
        migrations.RunSQL(
            "CREATE EXTENSION IF NOT EXISTS vector WITH SCHEMA public;"
            "CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;",
            reverse_sql=migrations.RunSQL.noop,
        )
    ]
