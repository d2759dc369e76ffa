"""What agents send besides text: WhatsApp templates, and images or documents.

A template is the only message WhatsApp allows once the customer's 24-hour window has closed,
so it is how a business reopens a conversation. Media is checked against Meta's size and type
limits (`channels_app.graph.MEDIA_LIMITS`) before anything is sent, so an agent hears "too
large" at once instead of a failed delivery minutes later. An uploaded file goes to WhatsApp's
media store first (outside any transaction) and is sent by its media id; a URL is sent as a
link for Meta to fetch (Instagram has no upload for messages, so only links there).
"""

from __future__ import annotations

import mimetypes
from urllib.parse import urlsplit

from channels_app import graph
from channels_app.models import ChannelAccount
from channels_app.services import graph_client_for
from channels_app.templates import template_render, whatsapp_template_get
from conversations import handoff, services
from conversations.models import Conversation, Message
from wafaa.errors import ApplicationError, PayloadTooLargeError


class TemplateParametersError(ApplicationError):
    code = "template_parameters"
    status_code = 422


class MediaNotAllowedError(ApplicationError):
    code = "media_not_allowed"
    status_code = 422


class MediaUploadFailedError(ApplicationError):
    code = "media_upload_failed"
    status_code = 502


def _account(conversation: Conversation) -> ChannelAccount:
    account = ChannelAccount.objects.filter(pk=conversation.channel_account_id).first()
    if account is None:
        raise MediaNotAllowedError("This conversation's channel account no longer exists.")
    return account


def _open(conversation: Conversation) -> None:
    if conversation.mode == Conversation.Mode.CLOSED:
        raise handoff.ConversationClosedError(
            "This conversation is closed. Replies go to open conversations only."
        )


def template_send(
    *,
    conversation: Conversation,
    name: str,
    language: str,
    parameters: list[str],
    agent_email: str,
) -> Message:
    """Send an approved template with its body parameters; allowed outside the window."""
    _open(conversation)
    if conversation.channel != "whatsapp":
        raise TemplateParametersError("Templates are sent on WhatsApp conversations only.")
    template = whatsapp_template_get(account=_account(conversation), name=name, language=language)
    if len(parameters) != template["parameters"]:
        raise TemplateParametersError(
            f"Template '{name}' takes {template['parameters']} parameter(s), "
            f"{len(parameters)} given.",
            details={"expected": template["parameters"], "given": len(parameters)},
        )
    return handoff.agent_message_store(
        conversation=conversation,
        agent_email=agent_email,
        text=template_render(template, parameters),
        type="template",
        template={"name": name, "language": language, "parameters": parameters},
    )


def media_limits(channel: str, kind: str) -> tuple[frozenset[str], int]:
    limits = graph.MEDIA_LIMITS.get(channel, {}).get(kind)
    if limits is None:
        allowed = ", ".join(graph.MEDIA_LIMITS.get(channel, {}))
        raise MediaNotAllowedError(f"{channel} accepts these media kinds: {allowed}.")
    return limits


def agent_media_reply(
    *,
    conversation: Conversation,
    kind: str,
    agent_email: str,
    url: str = "",
    upload=None,
    caption: str = "",
    filename: str = "",
) -> Message:
    """Send an image, video, audio or document by URL or as an uploaded file (a Django
    UploadedFile: its size is checked before it is read)."""
    _open(conversation)
    if conversation.channel == "whatsapp" and not services.within_customer_window(conversation):
        raise handoff.window_closed_error(conversation)
    types, max_bytes = media_limits(conversation.channel, kind)
    if caption and (conversation.channel == "instagram" or kind == "audio"):
        raise MediaNotAllowedError(f"A {conversation.channel} {kind} cannot carry a caption.")
    fields: dict = {"type": kind, "raw": {"filename": filename} if filename else {}}
    if upload is not None:
        if conversation.channel != "whatsapp":
            raise MediaNotAllowedError("Instagram media is sent by URL, not uploaded.")
        mime_type = (upload.content_type or "").split(";")[0].strip().lower()
        _check_type(mime_type, types, kind)
        if upload.size > max_bytes:
            raise PayloadTooLargeError(
                f"A WhatsApp {kind} may be at most {max_bytes // (1024 * 1024)} MB.",
                details={"max_bytes": max_bytes, "size": upload.size},
            )
        filename = filename or upload.name or ""
        fields["raw"] = {"filename": filename} if filename else {}
        content = upload.read(max_bytes + 1)
        account = _account(conversation)
        try:
            fields["media_id"] = graph_client_for(account).upload_whatsapp_media(
                account.external_id, content, mime_type, filename
            )
        except graph.GraphError as exc:
            raise MediaUploadFailedError(
                "WhatsApp did not accept the file; nothing was sent.",
                details={"graph_code": exc.code},
            ) from None
        fields["media_mime_type"] = mime_type
    else:
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise MediaNotAllowedError("Media URLs must be https:// links Meta can fetch.")
        guessed = mimetypes.guess_type(parts.path)[0]
        if guessed:  # Meta checks the size when it fetches; the type we can check now
            _check_type(guessed, types, kind)
        fields["media_url"] = url
        fields["media_mime_type"] = guessed or ""
    return handoff.agent_message_store(
        conversation=conversation, agent_email=agent_email, text=caption, **fields
    )


def _check_type(mime_type: str, allowed: frozenset[str], kind: str) -> None:
    if mime_type not in allowed:
        raise MediaNotAllowedError(
            f"{mime_type or 'This file type'} cannot be sent as {kind}; allowed: "
            + ", ".join(sorted(allowed))
            + ".",
            details={"allowed": sorted(allowed)},
        )
