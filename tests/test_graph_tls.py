"""Sends over TLS, the way they reach Meta: a local HTTPS server with its own certificate.

The Graph client reads the environment once and passes the TLS settings to
``Session.send`` itself; these check that they reach the connection: the CA
bundle from ``REQUESTS_CA_BUNDLE`` is used, the certificate is checked, the
connection is reused.
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from cel_whatsapp import GraphTransportError
from cel_whatsapp.core.graph import GraphClient

from . import listeners
from .conftest import TOKEN

PAYLOAD = {"messaging_product": "whatsapp", "to": "111", "type": "text", "text": {"body": "hi"}}


@dataclass
class TLSServer:
    base_url: str
    certificate: Path
    requests: list[tuple[str, dict[str, Any], str | None]] = field(default_factory=list)
    connections: int = 0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Meta's servers do
    server: _Server

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.record.requests.append((self.path, body, self.headers["Authorization"]))
        answer = json.dumps({"messages": [{"id": "wamid.TLS"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    record: TLSServer

    def get_request(self) -> tuple[Any, Any]:
        connection, address = super().get_request()
        self.record.connections += 1
        return connection, address


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[TLSServer]:
    key, certificate = listeners.certificate(tmp_path, [])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate, key)
    server = _Server(("127.0.0.1", 0), _Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    record = TLSServer(f"https://127.0.0.1:{server.server_address[1]}/v25.0", certificate)
    server.record = record
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield record
    finally:
        server.shutdown()
        server.server_close()


def test_sends_over_tls_use_the_ca_bundle_and_one_connection(
    tls_server: TLSServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_server.certificate))
    client = GraphClient(TOKEN, tls_server.base_url)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")  # read once, when the client was made
    verified: list[Any] = []
    original = requests.Session.send

    def recording(self: requests.Session, *args: Any, **kwargs: Any) -> requests.Response:
        verified.append(kwargs.get("verify"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(requests.Session, "send", recording)
    answers = [client.send_message("123", PAYLOAD) for _ in range(3)]
    assert [a["messages"][0]["id"] for a in answers] == ["wamid.TLS"] * 3
    assert verified == [str(tls_server.certificate)] * 3
    assert [path for path, _, _ in tls_server.requests] == ["/v25.0/123/messages"] * 3
    assert all(body == PAYLOAD for _, body, _ in tls_server.requests)
    assert tls_server.requests[0][2] == f"Bearer {TOKEN}"
    assert tls_server.connections == 1


def test_a_certificate_nobody_vouches_for_is_refused(
    tls_server: TLSServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    client = GraphClient(TOKEN, tls_server.base_url, timeout=5)
    with pytest.raises(GraphTransportError) as info:
        client.send_message("123", PAYLOAD)
    assert isinstance(info.value.__cause__, requests.exceptions.SSLError)
    assert tls_server.requests == []  # nothing was sent in the clear, nor at all
