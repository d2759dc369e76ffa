"""Voice notes and pictures, turned into words the reply pipeline can answer.

With an OpenAI key, before a burst is answered:

- a voice note is fetched (Meta's media hosts only, size-capped: `outbound.media_fetch`) and
  transcribed (TRANSCRIPTION_MODEL); the transcript is kept on the message and answered like
  text. One that cannot be heard (offline, too large, silence, a failed call) gets the polite
  "please write" reply;
- a picture without a caption is fetched and looked at by a vision-capable model
  (VISION_MODEL): a one-line description is kept as its transcript (what retrieval searches
  the knowledge with), and the picture itself goes with the question to the answering call.

Offline, pictures and other media without text follow the client's `unsupported_media` setting.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass, field

from django.conf import settings

from channels_app import graph
from conversations import outbound
from conversations.models import Message
from wafaa import ai_config, metrics
from wafaa.ai import AIServiceError
from wafaa.errors import NotFoundError

logger = logging.getLogger(__name__)

VISION_MIME_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "image/gif"})
PICTURE_PREFIX = "[picture] "
_DESCRIBE_PROMPT = (
    "A customer sent this picture to a business's customer-service chat, without any text. "
    "In one short sentence, say what it shows that the business should know: the product, "
    "model, brand, any readable text, or the problem visible. No greeting, no advice."
)


@dataclass
class Understood:
    # Data URLs of pictures sent without a caption, for a vision-capable answering call.
    images: list[str] = field(default_factory=list)
    # Only voice notes were sent, and none could be heard.
    voice_unheard: bool = False


def pending_understand(pending: list[Message]) -> Understood:
    """Transcribe the voice notes and look at the uncaptioned pictures of a burst (in place:
    each gets its `transcript`). Never raises for a failed fetch or AI call."""
    result = Understood()
    unheard = heard = 0
    for message in pending:
        if message.deleted_at or (message.text or "").strip():
            continue
        if message.type == "audio":
            if not message.transcript:
                _transcribe(message)
            if message.transcript:
                heard += 1
            else:
                unheard += 1
        elif message.type == "image" and ai_config.llm_enabled():
            image = _image_data_url(message)
            if image:
                result.images.append(image)
                if not message.transcript:
                    _describe(message, image)
    others = [m for m in pending if m.type != "audio" and not m.deleted_at]
    result.voice_unheard = unheard > 0 and heard == 0 and not others
    return result


def attach_images(messages: list[dict], images: list[str]) -> list[dict]:
    """The prompt with the pictures added to the customer's question (the last message)."""
    if not images:
        return messages
    question = messages[-1]
    content = [{"type": "text", "text": question["content"]}]
    content += [{"type": "image_url", "image_url": {"url": url}} for url in images]
    return [*messages[:-1], {**question, "content": content}]


def _fetch(message: Message) -> bytes | None:
    try:
        data = outbound.media_fetch(message_id=message.pk)
    except (graph.GraphError, NotFoundError) as exc:
        logger.warning(
            "customer media not fetched",
            extra={"message_id": str(message.pk), "error": type(exc).__name__},
        )
        return None
    message.refresh_from_db(fields=["media_mime_type", "raw"])
    return data


def _transcribe(message: Message) -> None:
    transcriber = ai_config.get_transcriber()
    if transcriber is None:
        return
    audio = _fetch(message)
    if audio is None:
        return
    mime_type = (message.media_mime_type or "audio/ogg").split(";")[0].strip()
    extension = {"audio/ogg": "ogg", "audio/mpeg": "mp3", "audio/mp4": "m4a", "audio/aac": "aac"}
    try:
        text = transcriber.transcribe(
            audio,
            filename=f"voice-{message.pk}.{extension.get(mime_type, 'ogg')}",
            mime_type=mime_type,
        )
    except AIServiceError as exc:
        metrics.LLM_CALLS.labels(model=transcriber.model, result="error").inc()
        logger.warning("voice note not transcribed", extra={"code": exc.code})
        return
    metrics.LLM_CALLS.labels(model=transcriber.model, result="ok").inc()
    if text:
        message.transcript = text[: settings.MAX_INBOUND_TEXT_CHARS]
        message.save(update_fields=["transcript", "updated_at"])


def _image_data_url(message: Message) -> str | None:
    data = _fetch(message)
    mime_type = (message.media_mime_type or "").split(";")[0].strip()
    if data is None or mime_type not in VISION_MIME_TYPES:
        return None
    return f"data:{mime_type};base64,{base64.b64encode(data).decode('ascii')}"


def _describe(message: Message, image: str) -> None:
    chat = ai_config.get_chat_client(settings.VISION_MODEL)
    if chat is None:
        return
    prompt = [{"role": "user", "content": [{"type": "text", "text": _DESCRIBE_PROMPT}]}]
    prompt[0]["content"].append({"type": "image_url", "image_url": {"url": image}})
    try:
        result = chat.complete(prompt, max_tokens=80)
    except AIServiceError as exc:
        metrics.LLM_CALLS.labels(model=chat.model, result="error").inc()
        logger.warning("picture not described", extra={"code": exc.code})
        return
    metrics.LLM_CALLS.labels(model=chat.model, result="ok").inc()
    message.transcript = (PICTURE_PREFIX + result.text.strip())[:1000]
    message.save(update_fields=["transcript", "updated_at"])
