#!/bin/sh
# Scheduled backups of the whole database (every schema): pg_dump -Fc of DATABASE_URL into
# BACKUP_DIR every BACKUP_INTERVAL_SECONDS, keeping the BACKUP_KEEP newest dumps.
# docker-compose runs it as the `backup` service; `--once` makes one dump and exits.
# Restore: docs/deploy.md ("Restore"); one client alone: manage.py export_client/import_client.
set -eu
: "${DATABASE_URL:?DATABASE_URL is required}"
BACKUP_DIR=${BACKUP_DIR:-/backups}
KEEP=${BACKUP_KEEP:-14}
INTERVAL=${BACKUP_INTERVAL_SECONDS:-86400}
PG_DUMP=${PG_DUMP:-pg_dump}

backup_once() {
    mkdir -p "$BACKUP_DIR"
    file="$BACKUP_DIR/wafaa-$(date -u +%Y%m%dT%H%M%SZ)-$$.dump"
    # Written under a temporary name: a dump cut short never looks like a good one.
    "$PG_DUMP" --format=custom --dbname="$DATABASE_URL" --file="$file.partial"
    mv "$file.partial" "$file"
    # Retention: the newest $KEEP dumps stay.
    ls -1t "$BACKUP_DIR"/wafaa-*.dump | tail -n +$((KEEP + 1)) | while read -r old; do
        rm -f "$old"
    done
    echo "backup: $file ($(wc -c <"$file") bytes)"
}

if [ "${1:-}" = "--once" ]; then
    backup_once
    exit 0
fi
while true; do
    backup_once || echo "backup: pg_dump failed; next try in ${INTERVAL}s" >&2
    sleep "$INTERVAL"
done
