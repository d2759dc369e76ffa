"""Tenants tasks: thin, call a service."""

from __future__ import annotations

from celery import shared_task

from tenants import accounts
from wafaa.tasks import WafaaTask


@shared_task(base=WafaaTask, name="tenants.tasks.accounts_purge_expired_task")
def accounts_purge_expired_task():
    return accounts.accounts_purge_expired()
