"""Local listeners that stand in for any host and record what reaches them.

``Listener`` is a real HTTP(S) server on 127.0.0.1 that writes down every
request it receives (GET or POST; above all its ``Authorization`` header)
and serves fixed bytes, or a redirect. ``resolve_everything_to`` makes every
host name except 127.0.0.1 resolve to these listeners: whatever URL the
client under test reaches, the connection lands here, where it can be seen,
and never on the internet (Meta's hosts included).
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from .components import require


@dataclass(frozen=True)
class Received:
    """One request a listener received."""

    method: str
    host: str | None
    path: str
    authorization: str | None


@dataclass
class Listener:
    """What a listener received, and what it answers."""

    port: int
    scheme: str
    body: bytes
    received: list[Received] = field(default_factory=list)
    #: path -> Location: these paths answer 302.
    redirects: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def root_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def authorizations(self) -> list[str]:
        """Every ``Authorization`` header received, in order."""
        with self.lock:
            return [r.authorization for r in self.received if r.authorization is not None]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        self._answer("GET")

    def do_POST(self) -> None:
        # Recorded like a GET (a 307 or 308 redirect keeps the method); the body is dropped.
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self._answer("POST")

    def _answer(self, method: str) -> None:
        listener = self.server.listener
        with listener.lock:
            listener.received.append(
                Received(method, self.headers["Host"], self.path, self.headers["Authorization"])
            )
            location = listener.redirects.get(self.path.split("?")[0])
        if location is not None:
            self.send_response(302)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(listener.body)))
        self.end_headers()
        self.wfile.write(listener.body)

    def log_message(self, format: str, *args: Any) -> None:
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    listener: Listener


def certificate(directory: Path, names: Sequence[str]) -> tuple[Path, Path]:
    """A self-signed certificate (key, cert) for 127.0.0.1 and the DNS ``names``."""
    openssl = require("openssl", "makes the test server's certificate")
    key, cert = directory / "key.pem", directory / "cert.pem"
    alt_names = ",".join([*(f"DNS:{name}" for name in names), "IP:127.0.0.1"])
    subprocess.run(  # noqa: S603 - a fixed argv, no shell
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            f"subjectAltName={alt_names}",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return key, cert


@contextmanager
def listening(body: bytes, tls: tuple[Path, Path] | None = None) -> Iterator[Listener]:
    """A listener on a free port of 127.0.0.1; over TLS with ``tls=(key, cert)``."""
    server = _Server(("127.0.0.1", 0), _Handler)
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls[1], tls[0])
        server.socket = context.wrap_socket(server.socket, server_side=True)
    listener = Listener(server.server_address[1], "https" if tls else "http", body)
    server.listener = listener
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield listener
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def resolve_everything_to(
    monkeypatch: pytest.MonkeyPatch, *, plain: Listener, tls: Listener
) -> None:
    """Every host but 127.0.0.1 resolves to a listener: port 80 to ``plain``, others to ``tls``."""
    original = socket.getaddrinfo

    def resolve(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in ("127.0.0.1", b"127.0.0.1"):
            return original(host, port, *args, **kwargs)
        target = plain.port if str(port) == "80" else tls.port
        return original("127.0.0.1", target, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
