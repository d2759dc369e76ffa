"""WhatsApp message templates of a channel account: listed from the Graph API, cached.

Templates are the only messages WhatsApp lets a business send once the customer's 24-hour
window has closed. Meta approves them per WhatsApp Business Account; the list changes rarely,
so it is cached for `TEMPLATE_CACHE_SECONDS` and an agent's reply refused outside the window
can name the templates that could be sent instead without a Graph call each time.
"""

from __future__ import annotations

import logging
import re

from django.core.cache import cache

from channels_app import graph
from channels_app.models import ChannelAccount
from channels_app.services import graph_client_for
from wafaa.errors import ApplicationError

logger = logging.getLogger(__name__)

TEMPLATE_CACHE_SECONDS = 600
_PLACEHOLDER = re.compile(r"\{\{\s*(\d+)\s*\}\}")


class TemplatesUnavailableError(ApplicationError):
    code = "templates_unavailable"
    status_code = 409


class TemplateNotFoundError(ApplicationError):
    code = "template_not_found"
    status_code = 422


def _cache_key(account: ChannelAccount) -> str:
    return f"wafaa:templates:{account.pk}:{account.business_account_id}"


def whatsapp_template_list(*, account: ChannelAccount, refresh: bool = False) -> list[dict]:
    """The account's APPROVED templates: [{name, language, category, body, parameters}], where
    `parameters` is how many {{n}} the body needs. Cached; `refresh` asks Meta again."""
    if account.kind != ChannelAccount.Kind.WHATSAPP:
        raise TemplatesUnavailableError("Message templates exist on WhatsApp channels only.")
    if not account.business_account_id:
        raise TemplatesUnavailableError(
            "Set this channel's business_account_id (the WhatsApp Business Account id) to "
            "list its templates."
        )
    key = _cache_key(account)
    cached = None if refresh else cache.get(key)
    if cached is not None:
        return cached
    try:
        raw = graph_client_for(account).list_whatsapp_templates(account.business_account_id)
    except graph.GraphError as exc:
        logger.warning("could not list templates", extra={"account": account.pk, "code": exc.code})
        raise TemplatesUnavailableError(
            "Meta did not return this channel's templates; try again.",
            details={"graph_code": exc.code},
        ) from None
    templates = [_describe(t) for t in raw if t.get("status") == "APPROVED"]
    cache.set(key, templates, TEMPLATE_CACHE_SECONDS)
    return templates


def whatsapp_template_get(*, account: ChannelAccount, name: str, language: str) -> dict:
    for template in whatsapp_template_list(account=account):
        if template["name"] == name and template["language"] == language:
            return template
    raise TemplateNotFoundError(
        f"No approved template '{name}' in language '{language}' on this channel.",
        details={"name": name, "language": language},
    )


def whatsapp_template_names(*, account: ChannelAccount) -> list[str]:
    """Approved template names (for an error message); empty when they cannot be listed."""
    try:
        return sorted({t["name"] for t in whatsapp_template_list(account=account)})
    except ApplicationError:
        return []


def template_render(template: dict, parameters: list[str]) -> str:
    """The body as the customer will read it, {{n}} replaced by the n-th parameter."""
    return _PLACEHOLDER.sub(
        lambda m: parameters[int(m[1]) - 1] if 0 < int(m[1]) <= len(parameters) else m[0],
        template["body"],
    )


def _describe(template: dict) -> dict:
    body = next(
        (
            c.get("text") or ""
            for c in template.get("components") or []
            if isinstance(c, dict) and str(c.get("type", "")).upper() == "BODY"
        ),
        "",
    )
    numbers = [int(n) for n in _PLACEHOLDER.findall(body)]
    return {
        "name": template.get("name") or "",
        "language": template.get("language") or "",
        "category": template.get("category") or "",
        "body": body,
        "parameters": max(numbers, default=0),
    }
