"""A client's callback endpoint: a real HTTP(S) server on a loopback address that records
every TCP connection it accepts and every request it reads.

Attack tests point a callback URL at one that is NOT allowed and assert `connections == 0`:
counting accepted sockets, not only parsed requests, shows that nothing reached it at all.

    receiver = CallbackReceiver(host="127.0.0.2").start()
    receiver.redirect_to = "http://127.0.0.3:8080/"    # answer 307 with that Location
    receiver.wait_for(1)
    [request] = receiver.requests
    receiver.stop()
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class CallbackReceiver:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, status: int = 200):
        self.host = host
        self.port = port
        self.status = status
        self.redirect_to: str | None = None
        self.connections = 0
        self.requests: list[ReceivedRequest] = []
        self.server_names: list[str | None] = []  # TLS SNI seen, when serving https
        self.scheme = "http"
        self._ssl_context: ssl.SSLContext | None = None

    def use_tls(self, certfile: str, keyfile: str) -> CallbackReceiver:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certfile, keyfile)
        context.sni_callback = lambda sock, name, ctx: self.server_names.append(name)
        self._ssl_context = context
        self.scheme = "https"
        return self

    def start(self) -> CallbackReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                receiver.requests.append(
                    ReceivedRequest("POST", self.path, dict(self.headers.items()), body)
                )
                self.send_response(receiver.status if not receiver.redirect_to else 307)
                if receiver.redirect_to:
                    self.send_header("Location", receiver.redirect_to)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST  # noqa: N815 - http.server's naming

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            address_family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            daemon_threads = True

            def get_request(self):
                sock, address = super().get_request()
                receiver.connections += 1
                if receiver._ssl_context is not None:
                    sock = receiver._ssl_context.wrap_socket(sock, server_side=True)
                return sock, address

            def handle_error(self, request, client_address):
                pass  # a client that hangs up or fails TLS is part of the tests

        self.server = Server((self.host, self.port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.netloc}/hook"

    def wait_for(self, count: int, timeout: float = 15.0) -> list[ReceivedRequest]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        if len(self.requests) < count:
            raise AssertionError(f"expected {count} callbacks, got {len(self.requests)}")
        return self.requests

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
