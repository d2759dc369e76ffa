"""Slow query logging: any statement slower than SLOW_QUERY_MS is logged with its duration.

Installed on every new database connection (an execute wrapper), so web, worker and beat
all report them, with the usual request/trace ids and client schema on the log line.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings

logger = logging.getLogger("wafaa.db.slow")


def _slow_query_wrapper(execute, sql, params, many, context):
    started = time.perf_counter()
    try:
        return execute(sql, params, many, context)
    finally:
        elapsed_ms = (time.perf_counter() - started) * 1000
        if elapsed_ms >= settings.SLOW_QUERY_MS:
            # The statement only, never its parameters (they can hold message texts).
            logger.warning(
                "slow query", extra={"duration_ms": round(elapsed_ms, 1), "sql": sql[:500]}
            )


def install_slow_query_logger(sender, connection, **kwargs):
    if _slow_query_wrapper not in connection.execute_wrappers:
        connection.execute_wrappers.append(_slow_query_wrapper)
