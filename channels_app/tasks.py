"""Channel tasks: thin, call a service. (Sending is in conversations.tasks.)"""

from __future__ import annotations

from celery import shared_task

from channels_app import services
from wafaa.tasks import WafaaTask


@shared_task(base=WafaaTask, name="channels_app.tasks.channel_accounts_check_silent_task")
def channel_accounts_check_silent_task():
    return services.channel_accounts_flag_silent()
