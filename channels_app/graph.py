"""A small client for Meta's Graph API: send WhatsApp and Instagram texts, mark messages read,
fetch media. Its errors are classified once, here, into retryable and final ones.

Why classify by Meta's `error.code` and not only by HTTP status: Meta reports throttling as HTTP
400 with codes such as 130429 or 131056, and a closed 24-hour window as HTTP 400 with 131047.
Retrying the first is right, retrying the second only burns quota. Callers (Celery tasks)
retry exactly the exceptions whose `retryable` is True.

Pure Python (requests only, no Django): the base URL, API version and token are arguments, so
tests point it at the fake Graph server in tests/fakes/graph_api.py.

The access token travels only in the Authorization header (never in the URL, where proxies and
request logs would keep it) and is scrubbed from every exception message.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from wafaa import netguard

WHATSAPP_TEXT_LIMIT = 4096  # characters in a WhatsApp text body
INSTAGRAM_TEXT_MAX_BYTES = 1000  # Instagram: "UTF-8 and 1000 bytes or less"
INTERACTIVE_BODY_LIMIT = 1024  # characters in a WhatsApp interactive message's body

# What Meta accepts as media, per channel and kind: MIME types and the largest size in bytes
# (WhatsApp Cloud API "Supported media types"; Instagram Messaging "Send media").
MEDIA_LIMITS: dict[str, dict[str, tuple[frozenset[str], int]]] = {
    "whatsapp": {
        "image": (frozenset({"image/jpeg", "image/png"}), 5 * 1024 * 1024),
        "video": (frozenset({"video/mp4", "video/3gpp"}), 16 * 1024 * 1024),
        "audio": (
            frozenset({"audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"}),
            16 * 1024 * 1024,
        ),
        "document": (
            frozenset(
                {
                    "text/plain",
                    "application/pdf",
                    "application/msword",
                    "application/vnd.ms-excel",
                    "application/vnd.ms-powerpoint",
                    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
                }
            ),
            100 * 1024 * 1024,
        ),
    },
    "instagram": {
        "image": (frozenset({"image/jpeg", "image/png", "image/gif"}), 8 * 1024 * 1024),
        "video": (
            frozenset({"video/mp4", "video/ogg", "video/avi", "video/quicktime"}),
            25 * 1024 * 1024,
        ),
        "audio": (
            frozenset({"audio/aac", "audio/mp4", "audio/wav", "audio/mpeg"}),
            25 * 1024 * 1024,
        ),
    },
}

# --- Error codes (https://developers.facebook.com/docs/graph-api/guides/error-handling and
# the WhatsApp Cloud API error code reference) -----------------------------------------------

# Throttling: app (4), user (17), page (32), calls-per-hour (613), WhatsApp Business Account
# (80007), Cloud API throughput (130429), spam rate limit (131048), pair rate limit (131056).
RATE_LIMIT_CODES = frozenset({4, 17, 32, 613, 80007, 130429, 131048, 131056})
# Meta's own "temporary, try again" family: unknown (1), service (2), WhatsApp generic
# (131000, "something went wrong"), service unavailable (131016, 133004).
TRANSIENT_CODES = frozenset({1, 2, 131000, 131016, 133004})
# Credentials and permissions: retrying cannot help until someone fixes the token or grants.
# 190 invalid/expired token, 10 and 200-299 permission denied, 131005 WhatsApp access denied,
# 102 session expired.
AUTH_CODES = frozenset({190, 102, 10, 131005}) | frozenset(range(200, 300))
# Customer-service window closed: WhatsApp 131047 (re-engagement); Instagram/Messenger report
# it as code 10 with subcode 2018278 ("sent outside of allowed window").
WINDOW_CLOSED_CODE = 131047
WINDOW_CLOSED_SUBCODES = frozenset({2018278})


class GraphError(Exception):
    """Any failure talking to the Graph API.

    `retryable` tells the caller whether sending the same request again later may succeed.
    `status_code` is None for failures with no HTTP response (timeouts, refused connections).
    `retry_after` is Meta's Retry-After header in seconds, when it sent one.
    """

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        code: int | None = None,
        subcode: int | None = None,
        error_type: str | None = None,
        title: str | None = None,
        fbtrace_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.code = code
        self.subcode = subcode
        self.error_type = error_type
        self.title = title
        self.fbtrace_id = fbtrace_id
        self.retry_after = retry_after

    def __str__(self) -> str:
        parts = [self.message]
        if self.status_code is not None:
            parts.append(f"http={self.status_code}")
        if self.code is not None:
            parts.append(f"code={self.code}")
        if self.subcode is not None:
            parts.append(f"subcode={self.subcode}")
        if self.fbtrace_id:
            parts.append(f"fbtrace_id={self.fbtrace_id}")
        return " ".join(parts)


class GraphRateLimitError(GraphError):
    """Throttled (HTTP 429 or a throttling code, often with HTTP 400). Retry with backoff."""

    retryable = True


class GraphServerError(GraphError):
    """Meta's side failed (HTTP 5xx or a transient code). Retry with backoff."""

    retryable = True


class GraphTimeoutError(GraphError):
    """No answer in time. Retryable; the request may or may not have been applied."""

    retryable = True


class GraphConnectionError(GraphError):
    """Could not reach the Graph API at all (DNS, refused, reset). Retryable."""

    retryable = True


class GraphAuthError(GraphError):
    """The token is invalid or expired (HTTP 401, code 190) or lacks a permission (code 10,
    200-299, 131005, HTTP 403). Not retryable: the channel account needs new credentials."""


class GraphWindowClosedError(GraphError):
    """The customer last wrote more than 24 hours ago, so a free-form message is refused
    (WhatsApp 131047, Instagram 10/2018278). Not retryable; only a template can reopen it."""


class GraphClientError(GraphError):
    """Any other refusal (invalid parameter, unknown recipient, ...). Not retryable."""


class GraphInvalidResponseError(GraphError):
    """A success status with a body we cannot use (no message id, not JSON). Not retryable:
    the message may well have been sent, and sending again would duplicate it."""


class MediaTooLargeError(GraphError):
    """A media download exceeded the caller's `max_bytes`. Not retryable."""


class MediaHostNotAllowedError(GraphError):
    """A media URL (or a redirect) pointed outside the allowed hosts. Not retryable."""


# --- Session ------------------------------------------------------------------------------

_default_session: requests.Session | None = None
_default_session_lock = threading.Lock()


def default_session() -> requests.Session:
    """One pooled session per process, shared by all GraphClients.

    Keeping connections to graph.facebook.com alive saves a TLS handshake per message. The
    adapter does no retries of its own: whether to retry is decided by the error class, by the
    caller (a Celery task with backoff), never silently here.
    """
    global _default_session
    with _default_session_lock:
        if _default_session is None:
            session = requests.Session()
            adapter = HTTPAdapter(pool_connections=10, pool_maxsize=32, max_retries=0)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
            _default_session = session
        return _default_session


# --- Client -------------------------------------------------------------------------------


class GraphClient:
    """Graph API calls for one access token (one channel account)."""

    def __init__(
        self,
        base_url: str,
        api_version: str,
        access_token: str,
        session: requests.Session | None = None,
        connect_timeout: float = 3.05,
        read_timeout: float = 10,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_version = api_version.strip("/")
        self._access_token = access_token
        self.session = session or default_session()
        self.timeout = (connect_timeout, read_timeout)

    def __repr__(self) -> str:  # never show the token
        return f"GraphClient(base_url={self.base_url!r}, api_version={self.api_version!r})"

    # -- WhatsApp --

    def send_whatsapp_text(
        self,
        phone_number_id: str,
        to: str,
        text: str,
        reply_to: str | None = None,
        preview_url: bool = False,
    ) -> str:
        """Send a free-form text; returns the new message's id (`wamid...`).

        `to` may be a phone number or a business-scoped user id. `reply_to` quotes an earlier
        message. Texts must be 1..4096 characters: split longer ones with `split_text` first.
        """
        _check_text(text, max_chars=WHATSAPP_TEXT_LIMIT)
        body: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to,
            "type": "text",
            "text": {"body": text, "preview_url": preview_url},
        }
        if reply_to:
            body["context"] = {"message_id": reply_to}
        data = self._request("POST", f"{phone_number_id}/messages", json=body)
        messages = data.get("messages")
        if isinstance(messages, list) and messages and isinstance(messages[0], dict):
            message_id = messages[0].get("id")
            if isinstance(message_id, str) and message_id:
                return message_id
        raise GraphInvalidResponseError("send succeeded without a message id", status_code=200)

    def send_whatsapp_template(
        self,
        phone_number_id: str,
        to: str,
        name: str,
        language: str,
        body_parameters: list[str] | None = None,
    ) -> str:
        """Send an approved message template (the only kind allowed outside the 24-hour
        window); `body_parameters` fill the body's {{1}}, {{2}}... in order."""
        template: dict[str, Any] = {"name": name, "language": {"code": language}}
        if body_parameters:
            template["components"] = [
                {
                    "type": "body",
                    "parameters": [{"type": "text", "text": p} for p in body_parameters],
                }
            ]
        return self._send_whatsapp(phone_number_id, to, {"type": "template", "template": template})

    def send_whatsapp_buttons(
        self,
        phone_number_id: str,
        to: str,
        text: str,
        buttons: list[dict[str, str]],
        reply_to: str | None = None,
    ) -> str:
        """Send text with up to 3 reply buttons ({id, title}; titles up to 20 characters).
        A tap comes back as an `interactive.button_reply` with the button's id."""
        _check_text(text, max_chars=INTERACTIVE_BODY_LIMIT)
        if not 1 <= len(buttons) <= 3:
            raise ValueError("WhatsApp reply buttons: 1 to 3 buttons")
        body: dict[str, Any] = {
            "type": "interactive",
            "interactive": {
                "type": "button",
                "body": {"text": text},
                "action": {
                    "buttons": [
                        {"type": "reply", "reply": {"id": b["id"], "title": b["title"][:20]}}
                        for b in buttons
                    ]
                },
            },
        }
        if reply_to:
            body["context"] = {"message_id": reply_to}
        return self._send_whatsapp(phone_number_id, to, body)

    def send_whatsapp_media(
        self,
        phone_number_id: str,
        to: str,
        kind: str,
        *,
        media_id: str | None = None,
        link: str | None = None,
        caption: str = "",
        filename: str = "",
    ) -> str:
        """Send an image, video, audio or document by an uploaded media id or a public link."""
        media: dict[str, Any] = {"id": media_id} if media_id else {"link": link}
        if caption and kind in ("image", "video", "document"):
            media["caption"] = caption
        if filename and kind == "document":
            media["filename"] = filename
        return self._send_whatsapp(phone_number_id, to, {"type": kind, kind: media})

    def upload_whatsapp_media(
        self, phone_number_id: str, content: bytes, mime_type: str, filename: str
    ) -> str:
        """Upload a file to WhatsApp's media store; returns the media id to send it with."""
        try:
            response = self.session.post(
                self._url(f"{phone_number_id}/media"),
                data={"messaging_product": "whatsapp", "type": mime_type},
                files={"file": (filename or "file", content, mime_type)},
                headers=self._auth_headers(),
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            raise self._transport_error(exc) from None
        if response.status_code >= 400:
            raise self._http_error(response)
        media_id = _json_or_none(response)
        media_id = media_id.get("id") if isinstance(media_id, dict) else None
        if isinstance(media_id, str) and media_id:
            return media_id
        raise GraphInvalidResponseError("upload succeeded without a media id", status_code=200)

    def list_whatsapp_templates(self, business_account_id: str) -> list[dict[str, Any]]:
        """The WhatsApp Business Account's message templates (every page, up to 1000)."""
        templates: list[dict[str, Any]] = []
        path = (
            f"{business_account_id}/message_templates"
            "?fields=name,language,status,category,components&limit=100"
        )
        for _ in range(10):
            data = self._request("GET", path)
            templates += [t for t in data.get("data") or [] if isinstance(t, dict)]
            after = ((data.get("paging") or {}).get("cursors") or {}).get("after")
            if not after or not (data.get("paging") or {}).get("next"):
                break
            path = (
                f"{business_account_id}/message_templates"
                f"?fields=name,language,status,category,components&limit=100&after={after}"
            )
        return templates

    def _send_whatsapp(self, phone_number_id: str, to: str, message: dict[str, Any]) -> str:
        body = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to}
        data = self._request("POST", f"{phone_number_id}/messages", json={**body, **message})
        messages = data.get("messages")
        if isinstance(messages, list) and messages and isinstance(messages[0], dict):
            message_id = messages[0].get("id")
            if isinstance(message_id, str) and message_id:
                return message_id
        raise GraphInvalidResponseError("send succeeded without a message id", status_code=200)

    def mark_whatsapp_read(self, phone_number_id: str, message_id: str) -> None:
        """Mark an inbound message read (blue ticks for the customer)."""
        body = {"messaging_product": "whatsapp", "status": "read", "message_id": message_id}
        self._request("POST", f"{phone_number_id}/messages", json=body)

    # -- Instagram --

    def send_instagram_text(self, ig_account_id: str, recipient_id: str, text: str) -> str:
        """Send a text to an Instagram-scoped user id; returns the new message's `mid`.
        Texts must be 1..1000 bytes of UTF-8: split longer ones with `split_text` first."""
        _check_text(text, max_bytes=INSTAGRAM_TEXT_MAX_BYTES)
        body = {"recipient": {"id": recipient_id}, "message": {"text": text}}
        data = self._request("POST", f"{ig_account_id}/messages", json=body)
        message_id = data.get("message_id")
        if isinstance(message_id, str) and message_id:
            return message_id
        raise GraphInvalidResponseError("send succeeded without a message id", status_code=200)

    # -- Accounts --

    def permissions_get(self) -> dict[str, str]:
        """The token's permissions as Meta lists them: {permission: granted|declined|expired}."""
        answer = self._request("GET", "me/permissions")
        return {
            str(item.get("permission")): str(item.get("status"))
            for item in answer.get("data") or []
            if isinstance(item, dict)
        }

    def node_get(self, node_id: str, fields: str) -> dict[str, Any]:
        """A Graph node (phone number id, Instagram account id) as this token sees it.

        Meta answers only when the token may act for that node; otherwise code 100/33
        ("does not exist, cannot be loaded due to missing permissions") or an auth error.
        """
        return self._request("GET", f"{node_id}?fields={fields}")

    def send_instagram_quick_replies(
        self, ig_account_id: str, recipient_id: str, text: str, buttons: list[dict[str, str]]
    ) -> str:
        """Send text with quick replies ({id, title}); a tap comes back as a message whose
        `quick_reply.payload` is the button's id."""
        _check_text(text, max_bytes=INSTAGRAM_TEXT_MAX_BYTES)
        replies = [
            {"content_type": "text", "title": b["title"][:20], "payload": b["id"]}
            for b in buttons[:13]
        ]
        body = {
            "recipient": {"id": recipient_id},
            "message": {"text": text, "quick_replies": replies},
        }
        return self._send_instagram(ig_account_id, body)

    def send_instagram_media(
        self, ig_account_id: str, recipient_id: str, kind: str, link: str
    ) -> str:
        """Send an image, video or audio by a public URL (Instagram has no upload for this)."""
        attachment = {"type": kind, "payload": {"url": link}}
        body = {"recipient": {"id": recipient_id}, "message": {"attachment": attachment}}
        return self._send_instagram(ig_account_id, body)

    def _send_instagram(self, ig_account_id: str, body: dict[str, Any]) -> str:
        data = self._request("POST", f"{ig_account_id}/messages", json=body)
        message_id = data.get("message_id")
        if isinstance(message_id, str) and message_id:
            return message_id
        raise GraphInvalidResponseError("send succeeded without a message id", status_code=200)

    # -- Media --

    def get_media_url(self, media_id: str) -> dict[str, Any]:
        """A WhatsApp media object's short-lived download URL: {url, mime_type, file_size, ...}."""
        data = self._request("GET", media_id)
        if not isinstance(data.get("url"), str):
            raise GraphInvalidResponseError("media lookup returned no url", status_code=200)
        return data

    def download_media(
        self,
        url: str,
        max_bytes: int,
        *,
        authenticated: bool = True,
        allowed_host: Callable[[str], bool] | None = None,
    ) -> bytes:
        """Download media from a URL given by `get_media_url`, refusing more than `max_bytes`.

        WhatsApp media URLs need the Bearer token; Instagram attachment URLs are pre-signed CDN
        links, so pass `authenticated=False` for them and the token is not handed to a CDN.
        Streamed, so an oversized file is abandoned as soon as it is known to be too big
        (from Content-Length, or while reading) instead of being held in memory first.

        `allowed_host`, when given, must approve the host of the URL and of every redirect
        (followed here, at most 3, the token never sent to another host): media URLs come from
        webhooks and Graph answers, and must not make us fetch anything but Meta's media.
        """
        response = self._get_media(url, authenticated, allowed_host)
        with response:
            if response.status_code >= 400:
                raise self._http_error(response)
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise MediaTooLargeError(
                    f"media is {declared} bytes, limit {max_bytes}",
                    status_code=response.status_code,
                )
            chunks: list[bytes] = []
            received = 0
            try:
                for chunk in response.iter_content(chunk_size=64 * 1024):
                    received += len(chunk)
                    if received > max_bytes:
                        raise MediaTooLargeError(
                            f"media exceeds limit of {max_bytes} bytes",
                            status_code=response.status_code,
                        )
                    chunks.append(chunk)
            except requests.RequestException as exc:
                raise self._transport_error(exc) from None
            return b"".join(chunks)

    def _get_media(
        self, url: str, authenticated: bool, allowed_host: Callable[[str], bool] | None
    ) -> requests.Response:
        # The URL comes from a webhook (which a client can sign for its own account) or a Graph
        # answer: public addresses only, each CDN redirect checked again and pinned
        # (wafaa.netguard), Meta's hosts only when `allowed_host` says so, and the token
        # never sent to another host than the first.
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise GraphClientError("media url must be http(s)")
        headers = self._auth_headers() if authenticated else {}
        try:
            return netguard.outbound_request(
                "GET",
                url,
                headers=headers,
                timeout=self.timeout,
                stream=True,
                max_redirects=3,
                host_allowed=allowed_host,
            )
        except netguard.OutboundHostNotAllowedError as exc:
            raise MediaHostNotAllowedError(f"media {exc.message}") from None
        except netguard.OutboundURLRefusedError as exc:
            raise GraphClientError(f"media url refused: {exc.message}") from None
        except requests.RequestException as exc:
            raise self._transport_error(exc) from None

    # -- plumbing --

    def _auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._access_token}"}

    def _url(self, path: str) -> str:
        return f"{self.base_url}/{self.api_version}/{path.lstrip('/')}"

    def _request(self, method: str, path: str, json: Any = None) -> dict[str, Any]:
        try:
            response = self.session.request(
                method,
                self._url(path),
                json=json,
                headers=self._auth_headers(),
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            # `from None`: the unscrubbed requests exception is not chained into tracebacks.
            raise self._transport_error(exc) from None
        if response.status_code >= 400:
            raise self._http_error(response)
        try:
            data = response.json()
        except ValueError:
            raise GraphInvalidResponseError(
                "response is not JSON", status_code=response.status_code
            ) from None
        if not isinstance(data, dict):
            raise GraphInvalidResponseError(
                "response is not a JSON object", status_code=response.status_code
            )
        return data

    def _scrub(self, text: str) -> str:
        if self._access_token:
            text = text.replace(self._access_token, "[token]")
        # Also any access_token=... a URL in an upstream message might carry.
        return re.sub(r"(access_token=)[^&\s]+", r"\1[token]", text)

    def _transport_error(self, exc: requests.RequestException) -> GraphError:
        # requests' messages name the host and path (useful) but never headers, so the token
        # cannot be in them; they are scrubbed anyway in case a URL ever carries one.
        detail = self._scrub(f"{type(exc).__name__}: {exc}")
        # ConnectTimeout is both a Timeout and a ConnectionError; it counts as a timeout.
        if isinstance(exc, requests.Timeout):
            return GraphTimeoutError(f"Graph API timed out ({detail})")
        return GraphConnectionError(f"Graph API unreachable ({detail})")

    def _http_error(self, response: requests.Response) -> GraphError:
        return classify_error(
            status_code=response.status_code,
            body=_json_or_none(response),
            retry_after=response.headers.get("Retry-After"),
            scrub=self._scrub,
        )


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def classify_error(
    *,
    status_code: int,
    body: Any,
    retry_after: str | None = None,
    scrub: Callable[[str], str] = lambda text: text,
) -> GraphError:
    """Turn an error response into the right GraphError subclass.

    Meta's error code decides first, because the HTTP status is ambiguous (throttling comes
    as 400); the status decides only when the body is not Graph's error JSON. Order matters:
    throttling and the closed window are checked before the generic permission family, since
    Instagram reports its closed window as permission code 10 with a subcode.
    """
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    code = _int_or_none(error.get("code"))
    subcode = _int_or_none(error.get("error_subcode"))
    message = error.get("message") if isinstance(error.get("message"), str) else ""
    title = error.get("error_user_title") or error.get("title")
    details = {
        "status_code": status_code,
        "code": code,
        "subcode": subcode,
        "error_type": error.get("type") if isinstance(error.get("type"), str) else None,
        "title": scrub(title) if isinstance(title, str) else None,
        "fbtrace_id": error.get("fbtrace_id") if isinstance(error.get("fbtrace_id"), str) else None,
        "retry_after": _retry_after_seconds(retry_after),
    }
    text = scrub(message or f"Graph API HTTP {status_code}")

    if status_code == 429 or code in RATE_LIMIT_CODES:
        cls: type[GraphError] = GraphRateLimitError
    elif code == WINDOW_CLOSED_CODE or subcode in WINDOW_CLOSED_SUBCODES:
        cls = GraphWindowClosedError
    elif status_code in (401, 403) or code in AUTH_CODES:
        cls = GraphAuthError
    elif status_code >= 500 or code in TRANSIENT_CODES:
        cls = GraphServerError
    else:
        cls = GraphClientError
    return cls(text, **details)


def _retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # HTTP-date form; Meta does not use it
    return max(seconds, 0.0)


def _check_text(text: str, *, max_chars: int | None = None, max_bytes: int | None = None) -> None:
    # A programming error, not a Graph error: caught before spending a request on it.
    if not isinstance(text, str) or not text.strip():
        raise ValueError("text must be a non-empty string")
    if max_chars is not None and len(text) > max_chars:
        raise ValueError(f"text is {len(text)} characters, limit {max_chars}; use split_text()")
    if max_bytes is not None and len(text.encode("utf-8")) > max_bytes:
        raise ValueError(f"text is over {max_bytes} bytes of UTF-8; use split_text()")


# --- Splitting long replies ---------------------------------------------------------------

# Sentence ends, Latin and Arabic, optionally followed by closing quotes or brackets, then
# whitespace. Written as escapes so the Arabic marks are not mistaken for Latin look-alikes.
_SENTENCE_END = re.compile(
    "[.!?\u2026\u061f\u06d4\u3002]+"  # . ! ? ellipsis, Arabic question mark and full stop, CJK
    "[\"'\u201d\u2019)\\]\u00bb]*"  # closing quotes and brackets
    "(?=\\s)"
)


def split_text(
    text: str, limit: int = WHATSAPP_TEXT_LIMIT, *, max_bytes: int | None = None
) -> list[str]:
    """Split `text` into chunks of at most `limit` characters (and `max_bytes` bytes of UTF-8,
    when given: Instagram counts bytes, and Arabic letters take two each).

    Splits at the last paragraph break that fits, else the last sentence end, else the last
    whitespace, and only cuts inside a word when a single word is longer than a chunk. A
    paragraph or sentence boundary is used only if it keeps the chunk at least half full, so a
    reply is not sent as a short fragment followed by a full one. Whitespace at split points
    (and around the whole text) is dropped; no other character is lost or reordered. Blank text
    gives an empty list.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    if max_bytes is not None and max_bytes < 4:
        raise ValueError("max_bytes must fit at least one character (4 bytes)")
    chunks: list[str] = []
    rest = text.strip()
    while rest:
        window = _fitting_length(rest, limit, max_bytes)
        if window >= len(rest):
            chunks.append(rest)
            break
        cut = _split_point(rest, window)
        chunk = rest[:cut].rstrip()
        chunks.append(chunk)
        rest = rest[cut:].lstrip()
    return chunks


def _fitting_length(text: str, limit: int, max_bytes: int | None) -> int:
    """The longest prefix length within `limit` characters and `max_bytes` bytes."""
    length = min(limit, len(text))
    if max_bytes is None:
        return length
    size = 0
    for index, char in enumerate(text[:length]):
        size += len(char.encode("utf-8"))
        if size > max_bytes:
            return index
    return length


def _split_point(text: str, window: int) -> int:
    """Where to cut `text` so that text[:cut] fits in `window` characters (window < len)."""
    minimum = max(1, window // 2)
    # A separator may start exactly at `window`: the chunk before it still fits.
    paragraph = text.rfind("\n\n", 0, window + 2)
    if paragraph >= minimum:
        return paragraph
    sentence_end = -1
    for match in _SENTENCE_END.finditer(text, 0, window + 1):
        if match.end() <= window:
            sentence_end = match.end()
    if sentence_end >= minimum:
        return sentence_end
    for index in range(window, 0, -1):
        if text[index].isspace():
            return index
    return window  # one word longer than a chunk: cut it
