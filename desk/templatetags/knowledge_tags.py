"""The knowledge page's template helpers."""

from __future__ import annotations

from django import template

from tenants.api.base import ROLE_RANK
from tenants.models import Membership

register = template.Library()


@register.filter
def manages_knowledge(request) -> bool:
    """May this person open the knowledge page (owners and admins; the API's rule for changing
    the knowledge)? `request.role_rank` is set by `desk.access.client_view`."""
    rank = getattr(request, "role_rank", None)
    return rank is not None and rank >= ROLE_RANK[Membership.Role.ADMIN]
