"""Meta's webhooks: GET verify handshake, POST events. Thin: the service does the work.

A POST is verified on its raw body and recorded in the durable inbox in one INSERT; the
client's schema is written later by the inbox drain (conversations.inbound). Answers: 200 when
recorded (also for unknown app-level accounts and inactive clients, so Meta does not retry
forever), 401 for a missing or wrong signature (nothing stored), 404 for an unknown slug, 413
for an oversize body, 400 for a signed body that is not a JSON object, 503 when the database
cannot record it (Meta retries; never a 200 for something not stored).
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from channels_app import services
from wafaa.api.exceptions import error_response
from wafaa.errors import ApplicationError, PayloadTooLargeError


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
        if int(request.META.get("CONTENT_LENGTH") or 0) > settings.WEBHOOK_MAX_BODY_BYTES:
            raise PayloadTooLargeError("Webhook bodies are limited in size.")
        stored = services.webhook_accept(
            kind=kind,
            slug=slug,
            raw_body=request.body,
            signature=request.headers.get("X-Hub-Signature-256"),
        )
    except ApplicationError as exc:
        status = 403 if request.method == "GET" and exc.status_code == 401 else exc.status_code
        return error_response(exc.code, exc.message, status)
    return JsonResponse({"received": True, "stored": stored})
