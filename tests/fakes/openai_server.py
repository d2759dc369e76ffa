"""A fake OpenAI API: a real HTTP server on 127.0.0.1 speaking OpenAI's wire format.

Point the real openai SDK (our `OpenAIEmbedder` and `ChatClient`, or the whole app through
OPENAI_BASE_URL) at `fake.url`, so requests, timeouts and error bodies go through the SDK
exactly as in production, and nothing reaches the internet.

    fake = FakeOpenAI().start()
    fake.fail_next(status=429, times=2)          # the next two requests fail, then succeed
    fake.reply_with("We open at 9.")             # chat replies from now on
    ...
    assert len(fake.embedding_calls) == 3
    fake.stop()

Routes (with or without the /v1 prefix):
- `POST /v1/embeddings`: `input` as a string or a list; `dimensions` honoured (default 512);
  `encoding_format` float or base64 (the SDK's default). Vectors come from `HashingEmbedder`,
  so similar texts really are close.
- `POST /v1/chat/completions`: a `chat.completion` with usage. By default the reply is the
  first line of knowledge excerpt [1] in the system prompt (a "grounded" answer), or an
  "I don't know" with the handoff marker when the prompt has no excerpts. Script it with
  `reply_with(text)` or `reply_fn(fn)` (fn gets the request JSON and returns the text).
- `GET /v1/models`: a short model list.
- `POST /v1/audio/transcriptions`: multipart (`model`, `file`) → `{"text": ...}`: the text
  registered for those exact audio bytes with `add_transcript()`, else "" (silence). Calls
  are in `transcription_calls` ({model, filename, content_type, size}).

Scripted failures: `fail_next(status, times=n)` answers with OpenAI's error JSON
(`{"error": {"message", "type", "param", "code"}}`), `hang_next(seconds, times=n)` stalls
before answering (so a client timeout fires). Both can be limited to one endpoint
('embeddings' or 'chat'). `api_key`, when set, is required as the Bearer token (401 if not).

Concurrency: `latency` (seconds, 0 by default) delays every chat completion, like a model
thinking; `max_in_flight` is the largest number of chat requests the fake was answering at
the same moment (so a test proves replies overlap by counting, never by timing), and
`in_flight_by_key` the same per Bearer key (clients can bring their own key).
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from wafaa.ai.embeddings import HashingEmbedder
from wafaa.ai.llm import HANDOFF_MARKER

DEFAULT_DIMENSIONS = 512

_ERROR_TYPES = {
    400: ("invalid_request_error", None, "Invalid request (scripted by the fake)."),
    401: ("invalid_request_error", "invalid_api_key", None),
    403: ("invalid_request_error", "unsupported_country_region_territory", "Access denied."),
    404: ("invalid_request_error", "model_not_found", None),
    409: ("invalid_request_error", None, "Conflict (scripted by the fake)."),
    422: ("invalid_request_error", None, "Unprocessable (scripted by the fake)."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached (scripted by the fake)."),
}


@dataclass
class RecordedRequest:
    """One request as the fake received it."""

    method: str
    path: str
    headers: dict[str, str]  # names lowercased, as HTTP/2 and httpx send them
    json: Any
    received_at: float = field(default_factory=time.monotonic)

    @property
    def endpoint(self) -> str:
        return _endpoint(self.path)


@dataclass
class _Script:
    kind: str  # "fail" or "hang"
    times: int
    endpoint: str | None
    status: int = 500
    seconds: float = 0.0
    message: str | None = None
    code: str | None = None


def _endpoint(path: str) -> str:
    path = path.split("?", 1)[0].rstrip("/")
    if path.endswith("/embeddings"):
        return "embeddings"
    if path.endswith("/chat/completions"):
        return "chat"
    if path.endswith("/models"):
        return "models"
    if path.endswith("/audio/transcriptions"):
        return "transcriptions"
    return "unknown"


class FakeOpenAI:
    def __init__(self, *, api_key: str | None = None, latency: float = 0.0):
        self.api_key = api_key
        self.latency = latency
        self._in_flight: dict[str, int] = {}
        self.max_in_flight = 0
        self.max_in_flight_by_key: dict[str, int] = {}
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._scripts: list[_Script] = []
        self._reply: str | None = None
        self._reply_fn: Callable[[dict], str] | None = None
        self._release = threading.Event()
        self._ids = itertools.count(1)
        self._embedders: dict[int, HashingEmbedder] = {}
        self._transcripts: dict[bytes, str] = {}
        self.transcription_calls: list[dict] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle ------------------------------------------------------------------------

    def start(self) -> FakeOpenAI:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.fake = self  # type: ignore[attr-defined]
        self._server = server
        self._release.clear()
        # A short poll interval keeps stop() (and so each test's teardown) fast.
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), name="fake-openai", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()  # let hanging handlers finish
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def reset(self) -> None:
        """Forget recorded requests, scripts and scripted replies."""
        with self._lock:
            self._requests.clear()
            self._scripts.clear()
            self._reply = None
            self._reply_fn = None
            self._transcripts.clear()
            self.transcription_calls.clear()
            self.latency = 0.0
            self.max_in_flight = 0
            self.max_in_flight_by_key = {}

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the fake OpenAI server is not running; call start()")
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        """The SDK's base_url (OPENAI_BASE_URL) for this fake."""
        return f"http://127.0.0.1:{self.port}/v1"

    # ---- scripting ------------------------------------------------------------------------

    def add_transcript(self, audio: bytes, text: str) -> None:
        """What the fake hears in these exact audio bytes."""
        with self._lock:
            self._transcripts[audio] = text

    def _transcribe(self, content_type: str, raw: bytes) -> dict:
        fields: dict[str, Any] = {}
        boundary = content_type.split("boundary=", 1)[-1].strip('"').encode()
        for part in raw.split(b"--" + boundary):
            head, _, data = part.partition(b"\r\n\r\n")
            name = re.search(rb'name="([^"]+)"', head)
            if not name:
                continue
            data = data.removesuffix(b"\r\n")
            if name.group(1) == b"file":
                filename = re.search(rb'filename="([^"]*)"', head)
                part_type = re.search(rb"Content-Type: ([^\r\n]+)", head)
                fields["file"] = data
                fields["filename"] = filename.group(1).decode() if filename else ""
                fields["content_type"] = part_type.group(1).decode() if part_type else ""
            else:
                fields[name.group(1).decode()] = data.decode(errors="replace")
        audio = fields.get("file", b"")
        with self._lock:
            self.transcription_calls.append(
                {
                    "model": fields.get("model"),
                    "filename": fields.get("filename"),
                    "content_type": fields.get("content_type"),
                    "size": len(audio),
                }
            )
            return {"text": self._transcripts.get(audio, "")}

    def reply_with(self, text: str) -> None:
        """Every chat completion from now on replies with `text` ('' tests empty replies)."""
        with self._lock:
            self._reply, self._reply_fn = text, None

    def reply_fn(self, fn: Callable[[dict], str]) -> None:
        """Every chat completion from now on replies with `fn(request_json)`."""
        with self._lock:
            self._reply, self._reply_fn = None, fn

    def fail_next(
        self,
        status: int = 500,
        *,
        times: int = 1,
        message: str | None = None,
        code: str | None = None,
        endpoint: str | None = None,
    ) -> None:
        """Answer the next `times` requests (to `endpoint`, or any) with an OpenAI error."""
        with self._lock:
            self._scripts.append(
                _Script("fail", times, endpoint, status, message=message, code=code)
            )

    def hang_next(self, seconds: float, *, times: int = 1, endpoint: str | None = None) -> None:
        """Stall the next `times` requests for `seconds` before answering normally."""
        with self._lock:
            self._scripts.append(_Script("hang", times, endpoint, seconds=seconds))

    # ---- inspection -----------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def embedding_calls(self) -> list[dict]:
        """JSON bodies of the embedding requests received, in order."""
        return [r.json for r in self.requests if r.endpoint == "embeddings"]

    @property
    def chat_calls(self) -> list[dict]:
        """JSON bodies of the chat completion requests received, in order."""
        return [r.json for r in self.requests if r.endpoint == "chat"]

    # ---- used by the handler --------------------------------------------------------------

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _take_scripts(self, endpoint: str) -> list[_Script]:
        """Pop what applies to this request: at most one hang and one failure, in order."""
        taken: list[_Script] = []
        with self._lock:
            for kind in ("hang", "fail"):
                for script in self._scripts:
                    if script.kind == kind and script.endpoint in (None, endpoint):
                        script.times -= 1
                        taken.append(script)
                        break
            self._scripts = [s for s in self._scripts if s.times > 0]
        return taken

    def _wait(self, seconds: float) -> None:
        self._release.wait(seconds)

    def _enter(self, key: str) -> None:
        with self._lock:
            self._in_flight[key] = self._in_flight.get(key, 0) + 1
            total = sum(self._in_flight.values())
            self.max_in_flight = max(self.max_in_flight, total)
            self.max_in_flight_by_key[key] = max(
                self.max_in_flight_by_key.get(key, 0), self._in_flight[key]
            )

    def _leave(self, key: str) -> None:
        with self._lock:
            self._in_flight[key] -= 1

    def _embedder(self, dimensions: int) -> HashingEmbedder:
        with self._lock:
            if dimensions not in self._embedders:
                self._embedders[dimensions] = HashingEmbedder(dimensions=dimensions)
            return self._embedders[dimensions]

    def _chat_reply(self, body: dict) -> str:
        with self._lock:
            reply, fn = self._reply, self._reply_fn
        if fn is not None:
            return fn(body)
        if reply is not None:
            return reply
        return grounded_reply(body)

    def _next_id(self) -> int:
        return next(self._ids)


def grounded_reply(body: dict) -> str:
    """The default reply: the gist of excerpt [1] of the system prompt, else a handoff.

    For a FAQ excerpt that is its answer; otherwise the first line of the excerpt after its
    heading trail. Good enough for tests to see that the knowledge reached the prompt.
    """
    system = "\n".join(
        str(m.get("content") or "") for m in body.get("messages", []) if m.get("role") == "system"
    )
    match = re.search(r"^\[1\][^\n]*\n(?P<excerpt>.*?)(?=\n\n\[\d+\]|\Z)", system, re.M | re.S)
    if match:
        excerpt = match.group("excerpt").strip()
        answer = re.search(r"^A:\s*(.+)$", excerpt, re.M)
        if answer:
            return answer.group(1).strip()
        paragraphs = [p.strip() for p in excerpt.split("\n\n") if p.strip()]
        if len(paragraphs) > 1 and not re.search(r"[.!?\u061f]", paragraphs[0]):
            paragraphs = paragraphs[1:]  # the chunk's heading trail, not an answer
        if paragraphs:
            return paragraphs[0].split("\n")[0]
    return (
        "Sorry, I don't have that information. Shall I connect you with a person?\n"
        f"{HANDOFF_MARKER}"
    )


def _approx_tokens(text: str) -> int:
    return max(1, round(len(re.findall(r"\w+|[^\w\s]", text)) * 1.3)) if text else 0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without TCP_NODELAY, Nagle plus the
    # client's delayed ACK adds ~40 ms to every response.
    disable_nagle_algorithm = True
    server_version = "FakeOpenAI/1.0"

    @property
    def fake(self) -> FakeOpenAI:
        return self.server.fake  # type: ignore[attr-defined]

    def log_message(self, format, *args) -> None:  # the test output stays readable
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        endpoint = _endpoint(self.path)
        try:
            body = json.loads(raw) if raw and endpoint != "transcriptions" else None
        except ValueError:
            body = None
        self.fake._record(
            RecordedRequest(
                method,
                self.path.split("?", 1)[0],
                {name.lower(): value for name, value in self.headers.items()},
                body,
            )
        )

        for script in self.fake._take_scripts(endpoint):
            if script.kind == "hang":
                self.fake._wait(script.seconds)
            else:
                return self._error(script.status, script.message, script.code, body)

        if self.fake.api_key is not None:
            sent = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            if sent != self.fake.api_key:
                return self._error(401, None, None, body)

        if method == "GET" and endpoint == "models":
            models = ["gpt-4o-mini", "text-embedding-3-small"]
            return self._json(
                200,
                {
                    "object": "list",
                    "data": [
                        {"id": m, "object": "model", "created": 0, "owned_by": "fake"}
                        for m in models
                    ],
                },
            )
        if method != "POST" or endpoint == "unknown":
            return self._error(404, f"Unknown path {self.path}", "unknown_url", body)
        if endpoint == "transcriptions":
            content_type = self.headers.get("Content-Type", "")
            if not content_type.startswith("multipart/form-data"):
                return self._error(400, "Expected a multipart/form-data body.", None, body)
            return self._json(200, self.fake._transcribe(content_type, raw))
        if not isinstance(body, dict):
            return self._error(400, "We could not parse the JSON body of your request.", None, body)
        if endpoint == "embeddings":
            return self._embeddings(body)
        key = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        self.fake._enter(key)
        try:
            if self.fake.latency:
                self.fake._wait(self.fake.latency)
            return self._chat(body)
        finally:
            self.fake._leave(key)

    def _embeddings(self, body: dict) -> None:
        inputs = body.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs:
            return self._error(400, "'$.input' is invalid.", None, body, param="input")
        if len(inputs) > 2048:
            return self._error(400, "'$.input' must have at most 2048 items.", None, body)
        texts = [x if isinstance(x, str) else " ".join(map(str, x)) for x in inputs]
        if any(not t.strip() for t in texts):
            return self._error(400, "'$.input' is invalid: empty string.", None, body)
        dimensions = int(body.get("dimensions") or DEFAULT_DIMENSIONS)
        vectors = self.fake._embedder(dimensions).embed_documents(texts)
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for index, vector in enumerate(vectors):
            embedding: Any = vector
            if as_base64:
                packed = struct.pack(f"<{len(vector)}f", *vector)
                embedding = base64.b64encode(packed).decode("ascii")
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        tokens = sum(_approx_tokens(t) for t in texts)
        self._json(
            200,
            {
                "object": "list",
                "data": data,
                "model": body.get("model", "text-embedding-3-small"),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )

    def _chat(self, body: dict) -> None:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return self._error(400, "'messages' must be a non-empty array.", None, body)
        if body.get("stream"):
            return self._error(400, "The fake OpenAI server does not stream.", None, body)
        content = self.fake._chat_reply(body)
        prompt_tokens = sum(_approx_tokens(str(m.get("content") or "")) for m in messages)
        completion_tokens = _approx_tokens(content)
        self._json(
            200,
            {
                "id": f"chatcmpl-fake{self.fake._next_id()}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "gpt-4o-mini"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content, "refusal": None},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            },
        )

    def _error(
        self,
        status: int,
        message: str | None,
        code: str | None,
        body: Any,
        *,
        param: str | None = None,
    ) -> None:
        default_type, default_code, default_message = _ERROR_TYPES.get(
            status, ("server_error", None, "The server had an error while processing your request.")
        )
        if message is None:
            message = default_message
        if status == 401 and message is None:
            # Like OpenAI, echo a masked form of the key: our clients must not pass it on.
            sent = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            masked = f"{sent[:3]}{'*' * max(0, len(sent) - 7)}{sent[-4:]}" if sent else "''"
            message = (
                f"Incorrect API key provided: {masked}. You can find your API key at "
                "https://platform.openai.com/account/api-keys."
            )
        if status == 404 and message is None:
            model = body.get("model") if isinstance(body, dict) else None
            message = f"The model `{model}` does not exist or you do not have access to it."
        payload = {
            "error": {
                "message": message,
                "type": default_type,
                "param": param,
                "code": code if code is not None else default_code,
            }
        }
        headers = {}
        if status == 429 or status >= 500:
            # Keeps SDK-level retries in tests fast; real OpenAI sends similar headers.
            headers["retry-after-ms"] = "10"
        self._json(status, payload, headers)

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-request-id", f"req_fake{self.fake._next_id()}")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test); nothing to answer


@pytest.fixture
def fake_openai():
    """A running FakeOpenAI, stopped after the test."""
    fake = FakeOpenAI().start()
    try:
        yield fake
    finally:
        fake.stop()
