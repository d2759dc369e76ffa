"""Races between requests, with data committed so that two connections really see it."""

from __future__ import annotations

import threading

import psycopg
from django.db import connections

from tenants import services
from tenants.models import Membership
from tests.tenants.factories import MembershipFactory


def test_two_owners_removed_at_once_leave_one_owner(committed_client, django_db_blocker):
    """A concurrent removal (here a transaction holding one owner's delete) is waited for."""
    with django_db_blocker.unblock():
        first = MembershipFactory(client=committed_client, role=Membership.Role.OWNER)
        second = MembershipFactory(client=committed_client, role=Membership.Role.OWNER)
        users = [first.user, second.user]
        db = connections["default"].settings_dict
        other = psycopg.connect(
            host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=db["NAME"]
        )
        outcome = {}

        def remove_second():
            try:
                services.membership_remove(
                    client=committed_client, membership_id=second.pk, removed_by=first.user
                )
                outcome["result"] = "removed"
            except Exception as exc:
                outcome["result"] = exc
            finally:
                connections.close_all()

        try:
            # Another request removes the first owner and has not committed yet.
            other.execute("DELETE FROM tenants_membership WHERE id = %s", [first.pk])
            worker = threading.Thread(target=remove_second)
            worker.start()
            worker.join(0.5)
            assert worker.is_alive(), "the removal did not wait for the concurrent one"
            other.commit()
            worker.join(10)
            assert isinstance(outcome["result"], services.ConflictError)
            assert list(committed_client.memberships.values_list("pk", flat=True)) == [second.pk]
        finally:
            other.close()
            for user in users:
                user.delete()
