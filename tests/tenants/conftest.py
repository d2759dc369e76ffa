"""Fixtures for the tenants tests: people in the two test clients, and clean API state."""

from __future__ import annotations

import pytest

from tenants.models import Membership
from tests.tenants.factories import (
    MembershipFactory,
    StaffUserFactory,
    UserFactory,
    api_as_user,
)


@pytest.fixture
def owner_a(tenant_a):
    return MembershipFactory(client=tenant_a, role=Membership.Role.OWNER).user


@pytest.fixture
def admin_a(tenant_a):
    return MembershipFactory(client=tenant_a, role=Membership.Role.ADMIN).user


@pytest.fixture
def agent_a(tenant_a):
    return MembershipFactory(client=tenant_a, role=Membership.Role.AGENT).user


@pytest.fixture
def owner_b(tenant_b):
    return MembershipFactory(client=tenant_b, role=Membership.Role.OWNER).user


@pytest.fixture
def staff(db):
    return StaffUserFactory()


@pytest.fixture
def outsider(db):
    """A user with no membership anywhere."""
    return UserFactory()


@pytest.fixture
def as_owner_a(owner_a, tenant_a):
    return api_as_user(owner_a, tenant_a)


@pytest.fixture
def as_admin_a(admin_a, tenant_a):
    return api_as_user(admin_a, tenant_a)


@pytest.fixture
def as_agent_a(agent_a, tenant_a):
    return api_as_user(agent_a, tenant_a)


@pytest.fixture
def as_staff(staff):
    return api_as_user(staff)
