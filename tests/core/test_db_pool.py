"""Pooled database connections (DB_POOL_MAX_SIZE) never carry one task's schema into another.

django-tenants caches the search_path it set on a connection; with a pool, the physical
connection a thread gets back may last have been used by another thread in another client's
schema. Two wrappers sharing one pool of ONE connection (so they must get the same physical
connection, checked by its backend pid) play two worker threads.
"""

from __future__ import annotations

import copy
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django.db.utils import load_backend


def _sql(wrapper, sql):
    with wrapper.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchone()


@pytest.fixture
def pooled(live, tenant_a, tenant_b):
    settings_dict = copy.deepcopy(connection.settings_dict)
    settings_dict["CONN_MAX_AGE"] = 0
    settings_dict["OPTIONS"] = {
        **settings_dict["OPTIONS"],
        "pool": {"min_size": 1, "max_size": 1, "timeout": 5},
    }
    alias = f"pooltest_{uuid.uuid4().hex[:8]}"
    backend = load_backend(settings_dict["ENGINE"])
    threads = [ThreadPoolExecutor(1), ThreadPoolExecutor(1)]
    # Each wrapper lives in its own thread, as Django's per-thread connections do.
    wrappers = [t.submit(backend.DatabaseWrapper, settings_dict, alias).result() for t in threads]

    def run(n, fn):
        return threads[n].submit(fn, wrappers[n]).result()

    yield run
    for n, wrapper in enumerate(wrappers):
        threads[n].submit(wrapper.close).result()
    threads[0].submit(wrappers[0].close_pool).result()
    for t in threads:
        t.shutdown()


def test_a_pooled_connection_never_keeps_another_threads_schema(pooled, tenant_a, tenant_b):
    def in_client(tenant):
        def step(wrapper):
            wrapper.set_tenant(tenant)
            schema, pid = _sql(wrapper, "SELECT current_schema(), pg_backend_pid()")
            wrapper.close()  # the task ends: back to the pool
            return schema, pid

        return step

    def again(wrapper):  # the same thread, its tenant unchanged, a new task
        result = _sql(wrapper, "SELECT current_schema(), pg_backend_pid()")
        wrapper.close()
        return result

    schema_b, pid = pooled(1, in_client(tenant_b))
    schema_a, pid_a = pooled(0, in_client(tenant_a))  # the same connection, now in A
    assert (schema_b, schema_a, pid_a) == (tenant_b.schema_name, tenant_a.schema_name, pid)
    # Thread 1 still "is" in B; the pooled connection was last set to A by thread 0.
    assert pooled(1, again) == (tenant_b.schema_name, pid)
    assert pooled(0, again) == (tenant_a.schema_name, pid)


def test_a_public_task_on_a_pooled_connection_sees_no_client_tables(pooled, tenant_a):
    def client_task(wrapper):
        wrapper.set_tenant(tenant_a)
        found = _sql(wrapper, "SELECT to_regclass('conversations_message') IS NOT NULL")[0]
        wrapper.close()
        return found

    def public_task(wrapper):
        wrapper.set_schema_to_public()
        found = _sql(wrapper, "SELECT to_regclass('conversations_message') IS NOT NULL")[0]
        wrapper.close()
        return found

    assert pooled(0, client_task) is True
    assert pooled(1, public_task) is False
