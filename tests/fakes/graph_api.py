"""A fake of Meta's Graph API: a real HTTP server on 127.0.0.1 speaking Graph's wire format.

Tests point `GraphClient` (or the whole app, via its Graph base URL setting) at `fake.url`
and then assert on what was sent, exactly as Meta would have received it. Because it is a real
server, timeouts, connection pooling and error bodies are exercised for real, and nothing
reaches the internet.

    fake = FakeGraphApi().start()
    fake.fail_next(status=429, code=130429, times=2)   # then succeed
    ...
    fake.wait_for(1)
    assert fake.sent_texts() == ["Hello"]
    fake.stop()

Routes:
- `POST /{version}/{id}/messages`: WhatsApp bodies (`messaging_product: whatsapp`) get
  `{"messaging_product", "contacts": [...], "messages": [{"id": "wamid.FAKE..."}]}`, read
  receipts (`status: read`) get `{"success": true}`, Instagram bodies (`recipient`) get
  `{"recipient_id", "message_id": "mid.FAKE..."}`.
- `GET /{version}/{media_id}`: media registered with `add_media()` → `{url, mime_type,
  file_size, sha256, id}` with a url pointing back here; unknown ids → Graph's error 100/33.
- `GET /media-download/{media_id}`: the media's bytes (Bearer header required, like Meta).
- `GET /{version}/{waba_id}/message_templates`: templates registered with `add_template()`,
  in Graph's `{data, paging}` shape.
- `POST /{version}/{phone_number_id}/media`: a multipart upload → `{"id": ...}`; the bytes
  are kept in `uploads` (media id → (content type of the part, bytes)).
- `GET /{version}/me/permissions`: the token's permissions (`set_permissions()`; by default
  every permission Wafaa needs is granted).
- `GET /{version}/{account_id}?fields=...`: an account registered with `add_account()` →
  `{id, ...fields}` when the Bearer token is the one registered for it; any other token (or
  an unknown id) → Graph's error 100/33, as Meta answers a token with no access to the node.

Scripted answers (`fail_next`, `hang_next`, `respond_next`) apply, in order, to the next
requests of any route. `latency` (seconds, 0 by default) delays every answer, like Meta's
servers far away (the pipeline bench uses 0.1 s).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

_MESSAGES_PATH = re.compile(r"^/(?P<version>v[\d.]+)/(?P<node>[^/]+)/messages/?$")
_PERMISSIONS_PATH = re.compile(r"^/(?P<version>v[\d.]+)/me/permissions/?$")
_NODE_PATH = re.compile(r"^/(?P<version>v[\d.]+)/(?P<node>[^/]+)/?$")
_DOWNLOAD_PATH = re.compile(r"^/media-download/(?P<media_id>[^/]+)/?$")
_TEMPLATES_PATH = re.compile(r"^/(?P<version>v[\d.]+)/(?P<node>[^/]+)/message_templates/?$")
_UPLOAD_PATH = re.compile(r"^/(?P<version>v[\d.]+)/(?P<node>[^/]+)/media/?$")


@dataclass
class RecordedRequest:
    """One request as the fake received it, with the status it was answered with."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: Any
    status: int
    received_at: float = field(default_factory=time.monotonic)

    @property
    def is_message_send(self) -> bool:
        """A POST to /messages that sends something (not a read receipt or typing action)."""
        if self.method != "POST" or not _MESSAGES_PATH.match(self.path):
            return False
        body = self.json if isinstance(self.json, dict) else {}
        return "type" in body or "message" in body

    @property
    def text(self) -> str | None:
        """The text this request sent, for WhatsApp or Instagram bodies."""
        body = self.json if isinstance(self.json, dict) else {}
        if body.get("type") == "text":
            return (body.get("text") or {}).get("body")
        message = body.get("message")
        if isinstance(message, dict):
            return message.get("text")
        return None


@dataclass
class _Script:
    status: int = 200
    body: Any = None  # None: the route's normal answer
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    omit_length: bool = False


@dataclass
class _Media:
    content: bytes
    mime_type: str


class FakeGraphApi:
    """The fake server. Thread-safe; start() before use, stop() after."""

    def __init__(self, host: str = "127.0.0.1", latency: float = 0.0) -> None:
        self._host = host
        self.latency = latency
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._requests: list[RecordedRequest] = []
        self._scripts: list[_Script] = []
        self._media: dict[str, _Media] = {}
        self._accounts: dict[str, tuple[str, dict[str, Any]]] = {}
        self._templates: dict[str, list[dict[str, Any]]] = {}
        self._permissions: dict[str, dict[str, str]] = {}
        self.uploads: dict[str, tuple[str, bytes]] = {}
        self._ids = itertools.count(1)
        # Unique per server instance: ids from an earlier run must never repeat.
        self._run = uuid.uuid4().hex[:8].upper()

    # -- lifecycle --

    def start(self) -> FakeGraphApi:
        if self._server is not None:
            return self
        self._stopping.clear()
        server = ThreadingHTTPServer((self._host, 0), _make_handler(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()  # wakes handlers sleeping in hang_next()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeGraphApi:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeGraphApi is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- scripting --

    def fail_next(
        self,
        status: int = 500,
        code: int | None = 2,
        times: int = 1,
        *,
        subcode: int | None = None,
        message: str | None = None,
        error_type: str = "OAuthException",
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer the next `times` requests with a Graph error JSON body."""
        error: dict[str, Any] = {
            "message": message or f"(#{code}) Fake Graph error",
            "type": error_type,
            "code": code,
            "fbtrace_id": "AFakeTraceId000",
        }
        if subcode is not None:
            error["error_subcode"] = subcode
        for _ in range(times):
            self.respond_next(status, {"error": error}, headers=headers)

    def hang_next(self, seconds: float, times: int = 1) -> None:
        """Wait `seconds` before answering the next `times` requests normally."""
        with self._lock:
            for _ in range(times):
                self._scripts.append(_Script(delay=seconds))

    def respond_next(
        self,
        status: int,
        body: Any,
        *,
        delay: float = 0.0,
        headers: dict[str, str] | None = None,
        omit_length: bool = False,
    ) -> None:
        """Answer the next request with exactly this status and body (bytes, str or JSON).

        `omit_length` sends no Content-Length and closes the connection after the body, the
        way a server streaming a body of unknown size does.
        """
        with self._lock:
            self._scripts.append(_Script(status, body, delay, dict(headers or {}), omit_length))

    def add_media(self, media_id: str, content: bytes, mime_type: str = "image/jpeg") -> None:
        with self._lock:
            self._media[media_id] = _Media(content, mime_type)

    def set_permissions(self, token: str, **statuses: str) -> None:
        """What `GET /me/permissions` answers for `token`: permission → granted/declined.
        A token without an entry has every permission Wafaa asks for granted."""
        with self._lock:
            self._permissions[token] = statuses

    def add_account(self, account_id: str, token: str, **fields: Any) -> None:
        """A phone number id or Instagram account id that `token` (only) may act for."""
        with self._lock:
            self._accounts[account_id] = (token, fields)

    def add_template(
        self,
        business_account_id: str,
        name: str,
        *,
        language: str = "en",
        body: str = "Hello {{1}}",
        status: str = "APPROVED",
        category: str = "UTILITY",
    ) -> None:
        """A message template of a WhatsApp Business Account, as Meta lists it."""
        template = {
            "name": name,
            "language": language,
            "status": status,
            "category": category,
            "components": [{"type": "BODY", "text": body}],
            "id": str(self._new_id()),
        }
        with self._lock:
            self._templates.setdefault(business_account_id, []).append(template)

    def reset(self) -> None:
        """Forget recorded requests, pending scripts, media, accounts, templates, uploads."""
        with self._lock:
            self._requests.clear()
            self._scripts.clear()
            self._media.clear()
            self._accounts.clear()
            self._permissions.clear()
            self._templates.clear()
            self.uploads.clear()

    # -- inspection --

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far (a copy), in order."""
        with self._lock:
            return list(self._requests)

    def message_sends(self, *, successful_only: bool = False) -> list[RecordedRequest]:
        return [
            r
            for r in self.requests
            if r.is_message_send and (not successful_only or r.status < 400)
        ]

    def sent_texts(self) -> list[str]:
        """Texts of message sends that the fake accepted (as Meta would have delivered them)."""
        return [r.text for r in self.message_sends(successful_only=True) if r.text is not None]

    def wait_for(
        self, count: int, timeout: float = 5.0, *, successful_only: bool = False
    ) -> list[RecordedRequest]:
        """Block until at least `count` message sends were received; return them.

        Read receipts do not count. Raises AssertionError on timeout, so a test fails with a
        message saying what arrived instead.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                sends = [
                    r
                    for r in self._requests
                    if r.is_message_send and (not successful_only or r.status < 400)
                ]
                if len(sends) >= count:
                    return sends
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"expected {count} message sends within {timeout}s, got {len(sends)}: "
                        f"{[r.json for r in sends]}"
                    )
                self._changed.wait(remaining)

    # -- used by the handler --

    def _next_script(self) -> _Script | None:
        with self._lock:
            return self._scripts.pop(0) if self._scripts else None

    def _record(self, request: RecordedRequest) -> None:
        with self._changed:
            self._requests.append(request)
            self._changed.notify_all()

    def _new_id(self) -> int:
        with self._lock:
            return next(self._ids)

    def _media_get(self, media_id: str) -> _Media | None:
        with self._lock:
            return self._media.get(media_id)

    def _route(self, method: str, path: str, headers: dict[str, str], body: Any, raw: bytes = b""):
        """The normal answer for a request: (status, body, content type)."""
        if method == "POST" and (match := _MESSAGES_PATH.match(path)):
            return self._answer_message(match["node"], body)
        if method == "GET" and (match := _TEMPLATES_PATH.match(path)):
            with self._lock:
                templates = list(self._templates.get(match["node"], []))
            return (
                200,
                {"data": templates, "paging": {"cursors": {"before": "", "after": ""}}},
                None,
            )
        if method == "POST" and _UPLOAD_PATH.match(path):
            return self._answer_upload(headers, raw)
        if method == "GET" and (match := _DOWNLOAD_PATH.match(path)):
            media = self._media_get(match["media_id"])
            if not headers.get("authorization", "").startswith("Bearer "):
                return 401, _graph_error(190, "Missing access token"), None
            if media is None:
                return 404, b"", "text/plain"
            return 200, media.content, media.mime_type
        if method == "GET" and _PERMISSIONS_PATH.match(path):
            token = headers.get("authorization", "").removeprefix("Bearer ")
            with self._lock:
                statuses = self._permissions.get(token)
            if statuses is None:
                statuses = {
                    name: "granted"
                    for name in (
                        "whatsapp_business_messaging",
                        "whatsapp_business_management",
                        "instagram_basic",
                        "instagram_manage_messages",
                        "pages_messaging",
                    )
                }
            data = [{"permission": name, "status": status} for name, status in statuses.items()]
            return 200, {"data": data}, None
        if method == "GET" and (match := _NODE_PATH.match(path)):
            with self._lock:
                account = self._accounts.get(match["node"])
            if account is not None:
                token, fields = account
                if headers.get("authorization", "") != f"Bearer {token}":
                    return 400, _graph_error(100, "Unsupported get request.", subcode=33), None
                return 200, {"id": match["node"], **fields}, None
            media_id = match["node"]
            media = self._media_get(media_id)
            if media is None:
                return 400, _graph_error(100, "Unsupported get request.", subcode=33), None
            answer = {
                "messaging_product": "whatsapp",
                "url": f"{self.url}/media-download/{media_id}",
                "mime_type": media.mime_type,
                "sha256": base64.b64encode(hashlib.sha256(media.content).digest()).decode(),
                "file_size": len(media.content),
                "id": media_id,
            }
            return 200, answer, None
        return 400, _graph_error(100, f"Unknown path components: {path}"), None

    def _answer_upload(self, headers: dict[str, str], raw: bytes):
        content_type = headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data") or b"messaging_product" not in raw:
            return 400, _graph_error(100, "Param file must be a file with one of the types"), None
        # The file part: its own Content-Type header, then a blank line, then the bytes.
        boundary = content_type.split("boundary=", 1)[-1].encode()
        for part in raw.split(b"--" + boundary):
            head, _, data = part.partition(b"\r\n\r\n")
            if b'name="file"' in head:
                part_type = re.search(rb"Content-Type: ([^\r\n]+)", head)
                media_id = f"{self._new_id():016d}"
                with self._lock:
                    self.uploads[media_id] = (
                        part_type.group(1).decode() if part_type else "",
                        data.removesuffix(b"\r\n"),
                    )
                return 200, {"id": media_id}, None
        return 400, _graph_error(100, "(#100) The parameter file is required"), None

    def _answer_message(self, node: str, body: Any):
        if not isinstance(body, dict):
            return 400, _graph_error(100, "Invalid parameter"), None
        if body.get("messaging_product") == "whatsapp":
            if body.get("status") == "read":
                return 200, {"success": True}, None
            to = body.get("to")
            if not to or "type" not in body:
                return 400, _graph_error(100, "Invalid parameter"), None
            message_id = f"wamid.FAKE{self._run}{self._new_id():010d}"
            contacts = [{"input": to, "wa_id": to}]
            answer = {
                "messaging_product": "whatsapp",
                "contacts": contacts,
                "messages": [{"id": message_id}],
            }
            return 200, answer, None
        recipient = body.get("recipient")
        if isinstance(recipient, dict) and recipient.get("id"):
            if "message" not in body:  # sender_action (typing, mark_seen)
                return 200, {"recipient_id": recipient["id"]}, None
            return (
                200,
                {
                    "recipient_id": recipient["id"],
                    "message_id": f"mid.FAKE{self._run}{self._new_id():010d}",
                },
                None,
            )
        return 400, _graph_error(100, "Invalid parameter"), None


def _graph_error(code: int, message: str, *, subcode: int | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": "AFakeTraceId000",
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    return {"error": error}


def _make_handler(fake: FakeGraphApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.1 so the client's pooled keep-alive connections are exercised too.
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes: without TCP_NODELAY, Nagle plus the
        # client's delayed ACK adds ~40 ms to every response.
        disable_nagle_algorithm = True

        def do_GET(self) -> None:  # http.server's naming
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def _handle(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                parsed = json.loads(raw) if raw else None
            except ValueError:
                parsed = None
            headers = {k.lower(): v for k, v in self.headers.items()}
            path = self.path.split("?", 1)[0]

            script = fake._next_script()
            if script is not None and script.body is not None:
                status, body, content_type = script.status, script.body, None
            else:
                status, body, content_type = fake._route(method, path, headers, parsed, raw)
            extra_headers = script.headers if script is not None else {}
            omit_length = script.omit_length if script is not None else False
            fake._record(RecordedRequest(method, path, headers, raw, parsed, status))

            # The wait is interruptible, so stop() does not sit out a long hang.
            if script is not None and script.delay and fake._stopping.wait(script.delay):
                self.close_connection = True
                return
            if fake.latency and fake._stopping.wait(fake.latency):
                self.close_connection = True
                return
            self._send(status, body, content_type, extra_headers, omit_length)

        def _send(
            self,
            status: int,
            body: Any,
            content_type: str | None,
            headers: dict[str, str],
            omit_length: bool = False,
        ) -> None:
            if isinstance(body, bytes):
                payload = body
            elif isinstance(body, str):
                payload = body.encode("utf-8")
            else:
                payload = json.dumps(body).encode("utf-8")
                content_type = content_type or "application/json"
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type or "text/plain")
                if omit_length:
                    # The body then ends when the connection closes (HTTP/1.1 allows it).
                    self.send_header("Connection", "close")
                    self.close_connection = True
                else:
                    self.send_header("Content-Length", str(len(payload)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (e.g. its read timeout fired during a hang)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean

    return Handler


@pytest.fixture
def fake_graph_api():
    """A started FakeGraphApi, stopped after the test. Re-export it from a conftest to use."""
    fake = FakeGraphApi().start()
    try:
        yield fake
    finally:
        fake.stop()
