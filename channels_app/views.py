"""Meta's webhooks: GET verify handshake, POST events. Thin: the service does the work.

Answers: 200 when accepted (also for duplicates, unknown app-level accounts and inactive
clients, so Meta does not retry forever), 401 for a missing or wrong signature (nothing
stored), 404 for an unknown slug, 413 for an oversize body, 400 for a body that is not JSON.
"""

from __future__ import annotations

import logging

from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from channels_app import services
from wafaa.api.exceptions import error_response
from wafaa.errors import ApplicationError

logger = logging.getLogger(__name__)


@csrf_exempt
@require_http_methods(["GET", "POST"])
def webhook(request, kind: str, slug: str | None = None):
    try:
        if request.method == "GET":
            challenge = services.webhook_verify(
                kind=kind,
                slug=slug,
                mode=request.GET.get("hub.mode", ""),
                token=request.GET.get("hub.verify_token", ""),
                challenge=request.GET.get("hub.challenge", ""),
            )
            return HttpResponse(challenge, content_type="text/plain")
        length = int(request.META.get("CONTENT_LENGTH") or 0)
        if length > services.settings.WEBHOOK_MAX_BODY_BYTES:
            raise services.PayloadTooLargeError("Webhook bodies are limited in size.")
        result = services.webhook_receive(
            kind=kind,
            slug=slug,
            raw_body=request.body,
            signature=request.headers.get("X-Hub-Signature-256"),
        )
    except ApplicationError as exc:
        status = 403 if request.method == "GET" and exc.status_code == 401 else exc.status_code
        return error_response(exc.code, exc.message, status)
    return JsonResponse(
        {"accepted": result.accepted, "duplicates": result.duplicates, "statuses": result.statuses}
    )
