"""HTTPClientAdapter: the Graph client's transport adapter over http.client.

Every test talks to a real server on 127.0.0.1: the fake Graph API, or a
scripted one here that answers in the odd ways a network can (closing an
idle connection, never answering, cutting a body short, TLS).
"""

from __future__ import annotations

import functools
import gc
import gzip
import http.client
import os
import socket
import ssl
import subprocess
import sys
import threading
import warnings
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests
import responses
import trustme
from requests.adapters import BaseAdapter, HTTPAdapter

from cel_whatsapp.core.graph import GraphClient
from cel_whatsapp.core.retry import RetryPolicy
from cel_whatsapp.core.transport import HTTPClientAdapter, NoConnectionError
from cel_whatsapp.errors import GraphTransportError
from cel_whatsapp.testing import FakeGraphAPI

from .components import free_port
from .conftest import TOKEN

PAYLOAD = {
    "messaging_product": "whatsapp",
    "to": "15551234567",
    "type": "text",
    "text": {"body": "hi"},
}
OK = b'{"messages": [{"id": "wamid.OK"}]}'


def _session(adapter: BaseAdapter) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


# -- a scripted server ---------------------------------------------------------------


Handler = Callable[[socket.socket, int], None]


def read_request(conn: socket.socket) -> tuple[bytes, bytes] | None:
    """One request's head and body from ``conn``; ``None`` when it closed first."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head, body


def answer(body: bytes = OK, *, status: str = "200 OK", headers: tuple[str, ...] = ()) -> bytes:
    lines = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class ScriptedServer:
    """Accepts connections on 127.0.0.1; ``handler(conn, index)`` plays each one."""

    def __init__(self, handler: Handler, tls: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.tls = tls
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.requests: list[bytes] = []
        self.threads: list[threading.Thread] = []
        self.stopping = threading.Event()
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            index = self.connections
            self.connections += 1
            thread = threading.Thread(target=self._play, args=(conn, index), daemon=True)
            thread.start()
            self.threads.append(thread)

    def _play(self, conn: socket.socket, index: int) -> None:
        if self.tls is not None:
            try:
                conn = self.tls.wrap_socket(conn, server_side=True)
            except (ssl.SSLError, OSError):
                conn.close()
                return  # the client refused our certificate
        with conn:
            try:
                self.handler(conn, index)
            except OSError:
                return

    def serve(self, conn: socket.socket, reply: bytes) -> bool:
        """Read one request and send ``reply``; False when the client closed first."""
        request = read_request(conn)
        if request is None:
            return False
        self.requests.append(request[0] + b"\r\n\r\n" + request[1])
        conn.sendall(reply)
        return True

    def close(self) -> None:
        self.stopping.set()
        self.listener.close()
        for thread in self.threads:
            thread.join(timeout=5)

    def url(self, scheme: str = "http", host: str = "127.0.0.1") -> str:
        return f"{scheme}://{host}:{self.port}/v25.0/123/messages"


@contextmanager
def scripted(handler: Handler, tls: ssl.SSLContext | None = None) -> Iterator[ScriptedServer]:
    server = ScriptedServer(handler, tls)
    try:
        yield server
    finally:
        server.close()


def keep_answering(server_ref: list[ScriptedServer], reply: bytes = answer()) -> Handler:
    """A handler that answers every request of a connection until it closes."""

    def handler(conn: socket.socket, index: int) -> None:
        while server_ref[0].serve(conn, reply):
            pass

    return handler


@contextmanager
def answering(reply: bytes = answer()) -> Iterator[ScriptedServer]:
    ref: list[ScriptedServer] = []
    with scripted(keep_answering(ref, reply)) as server:
        ref.append(server)
        yield server


# -- what goes out ---------------------------------------------------------------------


def test_a_json_post_goes_out_as_requests_own_adapter_sends_it(graph: FakeGraphAPI) -> None:
    url = f"{graph.base_url}/123/messages"
    for adapter in (HTTPAdapter(), HTTPClientAdapter()):
        with _session(adapter) as session:
            response = session.post(
                url, json=PAYLOAD, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
            )
            assert response.status_code == 200
            assert response.json()["messages"][0]["id"].startswith("wamid.")
    stock, ours = graph.requests
    assert (ours.method, ours.path, ours.body) == (stock.method, stock.path, stock.body)
    assert ours.headers == stock.headers


def test_without_accept_encoding_http_client_asks_for_no_coding(graph: FakeGraphAPI) -> None:
    # The Graph client's session drops requests' "gzip, deflate" (see graph.py):
    # urllib3 then sends no Accept-Encoding, http.client "identity"; both mean
    # an uncompressed answer.
    GraphClient(TOKEN, graph.base_url).send_message("123", PAYLOAD)
    (sent,) = graph.requests
    assert sent.headers["accept-encoding"] == "identity"


def test_the_response_is_requests_own_with_headers_encoding_and_request() -> None:
    reply = answer(
        b'{"ok": true}',
        status="201 Created",
        headers=("Content-Type: application/json", "X-Seen: a", "X-Seen: b"),
    )
    with answering(reply) as server, _session(HTTPClientAdapter()) as session:
        response = session.post(server.url(), data=b"x", timeout=5)
    assert isinstance(response, requests.Response)
    assert (response.status_code, response.reason) == (201, "Created")
    assert response.headers["x-seen"] == "a, b"  # joined as urllib3 joins them
    assert response.encoding == "utf-8"
    assert response.json() == {"ok": True}
    assert response.url == server.url()
    assert response.request is not None and response.request.body == b"x"
    assert response.elapsed.total_seconds() > 0  # set by Session.send, which ran


def test_query_strings_and_ipv6_hosts_are_targeted_as_written() -> None:
    adapter = HTTPClientAdapter()
    target = adapter.target("http://[::1]:8080/v25.0/media?phone_number_id=1")
    assert target == ("http", "::1", 8080, "/v25.0/media?phone_number_id=1")
    assert adapter.target("https://graph.example/v25.0") == (
        "https",
        "graph.example",
        443,
        "/v25.0",
    )
    assert adapter.target("http://user:pw@graph.example/") is None  # requests' adapter's
    assert adapter.target("ftp://graph.example/") is None
    assert adapter.target("http://graph.example:99999/") is None


# -- connections ------------------------------------------------------------------------


def test_one_connection_carries_call_after_call() -> None:
    with answering() as server, _session(HTTPClientAdapter()) as session:
        for _ in range(5):
            assert session.post(server.url(), data=b"{}", timeout=5).status_code == 200
    assert server.connections == 1
    assert len(server.requests) == 5


def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    def once_then_close(conn: socket.socket, index: int) -> None:
        server.serve(conn, answer())  # and close: keep-alive was not honoured

    with scripted(once_then_close) as server, _session(HTTPClientAdapter()) as session:
        for _ in range(3):
            assert session.post(server.url(), data=b"{}", timeout=5).status_code == 200
            # Let the close reach us before the next call looks at the socket.
            server.threads[-1].join(timeout=5)
    assert server.connections == 3
    assert len(server.requests) == 3  # each sent once


def test_an_answer_that_says_close_closes_its_connection() -> None:
    reply = answer(headers=("Connection: close",))
    adapter = HTTPClientAdapter()
    with answering(reply) as server, _session(adapter) as session:
        session.post(server.url(), data=b"{}", timeout=5)
        assert sum(len(idle) for idle in adapter.idle.values()) == 0
        session.post(server.url(), data=b"{}", timeout=5)
    assert server.connections == 2


def test_no_more_than_pool_maxsize_connections_stay_open() -> None:
    adapter = HTTPClientAdapter(pool_maxsize=2)
    gate = threading.Barrier(4)

    def slow_then_answer(conn: socket.socket, index: int) -> None:
        gate.wait(timeout=5)  # all four calls are in flight at once
        while server.serve(conn, answer()):
            pass

    with scripted(slow_then_answer) as server, _session(adapter) as session:
        results: list[int] = []
        calls = [
            threading.Thread(
                target=lambda: results.append(session.post(server.url(), data=b"{}").status_code)
            )
            for _ in range(4)
        ]
        for call in calls:
            call.start()
        for call in calls:
            call.join(timeout=10)
        assert results == [200] * 4
        assert server.connections == 4
        assert [len(idle) for idle in adapter.idle.values()] == [2]


def test_close_closes_the_idle_connections() -> None:
    adapter = HTTPClientAdapter()
    with answering() as server:
        session = _session(adapter)
        session.post(server.url(), data=b"{}", timeout=5)
        (idle,) = adapter.idle.values()
        (connection,) = idle
        session.close()
        assert connection.sock is None
        assert not idle


def test_a_forked_child_opens_its_own_connections() -> None:
    adapter = HTTPClientAdapter()
    with answering() as server, _session(adapter) as session:
        session.post(server.url(), data=b"{}", timeout=5)
        pid = os.fork()
        if pid == 0:  # the child: the parent's connection is not its to use
            held = sum(len(idle) for idle in adapter.idle.values())
            os._exit(0 if held == 0 else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        # The child closed only its copy: the parent's connection carries on.
        assert session.post(server.url(), data=b"{}", timeout=5).status_code == 200
    assert server.connections == 1


# -- failures, as requests' errors ---------------------------------------------------------


def test_a_refused_connection_is_no_connection_and_nothing_was_sent() -> None:
    url = f"http://127.0.0.1:{free_port()}/v25.0/123/messages"
    with _session(HTTPClientAdapter()) as session, pytest.raises(NoConnectionError) as info:
        session.post(url, data=b"{}", timeout=5)
    assert isinstance(info.value, requests.ConnectionError)
    assert isinstance(info.value.__cause__, ConnectionRefusedError)
    assert info.value.request is not None
    client = GraphClient(TOKEN, url.rsplit("/123/", 1)[0])
    with pytest.raises(GraphTransportError) as graph_error:
        client.send_message("123", PAYLOAD)
    assert graph_error.value.request_sent is False


def test_a_connect_timeout_is_requests_connect_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    # Nothing on 127.0.0.1 can be made to hang a connect: the socket call is stood in for.
    def hang(*args: Any, **kwargs: Any) -> socket.socket:
        raise TimeoutError("timed out")

    monkeypatch.setattr(socket, "create_connection", hang)
    with _session(HTTPClientAdapter()) as session, pytest.raises(requests.ConnectTimeout):
        session.post("http://127.0.0.1:9/v25.0/1/messages", data=b"{}", timeout=(0.5, 5))


def test_an_answer_that_never_comes_is_a_read_timeout_and_the_connection_goes() -> None:
    silent = threading.Event()

    def never_answer(conn: socket.socket, index: int) -> None:
        read_request(conn)
        silent.wait(timeout=10)

    adapter = HTTPClientAdapter()
    with scripted(never_answer) as server, _session(adapter) as session:
        with pytest.raises(requests.ReadTimeout) as info:
            session.post(server.url(), data=b"{}", timeout=(5, 0.2))
        silent.set()
    assert info.value.request is not None
    assert sum(len(idle) for idle in adapter.idle.values()) == 0


def test_a_body_without_length_that_stalls_leaves_no_socket_open() -> None:
    # http.client hands such an answer the socket itself: it is closed too.
    stalled = threading.Event()

    def stall(conn: socket.socket, index: int) -> None:
        read_request(conn)
        conn.sendall(b'HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{"mess')
        stalled.wait(timeout=10)

    with scripted(stall) as server, _session(HTTPClientAdapter()) as session:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with pytest.raises(requests.ReadTimeout):
                session.post(server.url(), data=b"{}", timeout=(5, 0.3))
            gc.collect()
        stalled.set()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []


def test_an_error_being_handled_when_sending_does_not_make_a_sent_post_unsent() -> None:
    # The server reads the POST and hangs up: it may have been processed, so
    # it is not sent again, whatever the caller was handling at the time.
    def read_and_hang_up(conn: socket.socket, index: int) -> None:
        server.requests.append(b"".join(read_request(conn) or ()))

    with scripted(read_and_hang_up) as server:
        client = GraphClient(
            TOKEN,
            server.url().rsplit("/123/", 1)[0],
            retry=RetryPolicy(attempts=3, base_delay=0.01),
        )
        try:
            raise ConnectionRefusedError("the caller's own backend is down")
        except ConnectionRefusedError:
            with pytest.raises(GraphTransportError) as info:
                client.send_message("123", PAYLOAD)
        client.close()
    assert info.value.request_sent is True
    assert len(server.requests) == 1


def test_a_connection_closed_before_the_answer_is_a_connection_error() -> None:
    def hang_up(conn: socket.socket, index: int) -> None:
        read_request(conn)

    with (
        scripted(hang_up) as server,
        _session(HTTPClientAdapter()) as session,
        pytest.raises(requests.ConnectionError) as info,
    ):
        session.post(server.url(), data=b"{}", timeout=5)
    assert not isinstance(info.value, NoConnectionError)  # the request had gone out
    assert isinstance(info.value.__cause__, http.client.RemoteDisconnected)


def test_a_body_cut_short_is_a_chunked_encoding_error() -> None:
    def cut_short(conn: socket.socket, index: int) -> None:
        read_request(conn)
        conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"messa')

    with (
        scripted(cut_short) as server,
        _session(HTTPClientAdapter()) as session,
        pytest.raises(requests.exceptions.ChunkedEncodingError),
    ):
        session.post(server.url(), data=b"{}", timeout=5)


def test_a_header_value_http_cannot_carry_raises_before_anything_is_sent() -> None:
    with answering() as server, _session(HTTPClientAdapter()) as session:
        prepared = session.prepare_request(
            requests.Request("POST", server.url(), data=b"{}", headers={"X-Name": "é"})
        )
        prepared.headers["X-Name"] = "\u20ac"  # past latin-1, after requests' own checks
        with pytest.raises(UnicodeError):
            session.send(prepared, timeout=5)
    assert server.requests == []


# -- TLS -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


def _tls_server_context(authority: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    return context


def test_https_is_verified_against_the_ca_bundle_given(
    authority: trustme.CA, tmp_path: Any
) -> None:
    bundle = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(bundle))
    ref: list[ScriptedServer] = []
    with scripted(keep_answering(ref), tls=_tls_server_context(authority)) as server:
        ref.append(server)
        with _session(HTTPClientAdapter()) as session:
            for _ in range(2):
                response = session.post(
                    server.url("https", "localhost"), data=b"{}", verify=str(bundle), timeout=5
                )
                assert response.status_code == 200
            # requests' own CA bundle (certifi) does not know our authority.
            with pytest.raises(requests.exceptions.SSLError):
                session.post(server.url("https", "localhost"), data=b"{}", timeout=5)
    assert server.connections == 2  # one kept alive for both calls, one refused
    assert len(server.requests) == 2


def test_https_refuses_a_certificate_for_another_name(authority: trustme.CA, tmp_path: Any) -> None:
    bundle = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(bundle))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("graph.example").configure_cert(context)
    ref: list[ScriptedServer] = []
    with scripted(keep_answering(ref), tls=context) as server:
        ref.append(server)
        with _session(HTTPClientAdapter()) as session, pytest.raises(requests.exceptions.SSLError):
            session.post(server.url("https", "localhost"), data=b"{}", verify=str(bundle))
    assert server.requests == []


# -- what goes to requests' own adapter ----------------------------------------------------


class Recording(BaseAdapter):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[dict[str, Any]] = []

    def send(  # type: ignore[override]  # records whatever requests passes
        self, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        self.calls.append(kwargs)
        response = requests.Response()
        response.status_code = 299
        response.request = request
        return response

    def close(self) -> None:
        return None


@pytest.mark.parametrize(
    ("options", "body"),
    [
        ({"stream": True}, b"{}"),
        ({"proxies": {"https": "http://proxy.example:3128"}}, b"{}"),
        ({"verify": False}, b"{}"),
        ({"verify": None}, b"{}"),
        ({"timeout": 0}, b"{}"),
        ({"timeout": (5, 0)}, b"{}"),
        ({"cert": "/client.pem"}, b"{}"),
        ({"timeout": "soon"}, b"{}"),
        ({}, iter([b"chunked"])),
        ({}, "text"),
    ],
    ids=[
        "stream",
        "proxy",
        "verify-off",
        "verify-none",
        "zero-timeout",
        "zero-read-timeout",
        "client-cert",
        "odd-timeout",
        "generator",
        "str",
    ],
)
def test_other_calls_go_to_the_fallback_as_they_came(options: dict[str, Any], body: Any) -> None:
    fallback = Recording()
    with answering() as server, _session(HTTPClientAdapter(fallback=fallback)) as session:
        prepared = session.prepare_request(requests.Request("POST", server.url(), data=body))
        response = session.send(prepared, **options)
    assert response.status_code == 299
    (call,) = fallback.calls
    for name, value in options.items():
        assert call[name] == value
    assert server.requests == []


def test_asking_for_a_coding_not_decoded_here_goes_to_the_fallback() -> None:
    # requests asks for br when brotli is installed (zstd on Python 3.14).
    fallback = Recording()
    adapter = HTTPClientAdapter(fallback=fallback)
    with answering() as server, _session(adapter) as session:
        for accepted in ("gzip, deflate, br", "zstd", "gzip, deflate", "identity"):
            session.post(server.url(), data=b"{}", headers={"Accept-Encoding": accepted})
    assert len(fallback.calls) == 2
    assert len(server.requests) == 2


def test_a_bytes_accept_encoding_is_read_as_its_text() -> None:
    fallback = Recording()
    adapter = HTTPClientAdapter(fallback=fallback)
    with answering() as server, _session(adapter) as session:
        for accepted in (b"gzip, br", b"gzip", "gzip"):
            session.post(server.url(), data=b"{}", headers={"Accept-Encoding": accepted})
    assert len(fallback.calls) == 1
    assert adapter.accepted == {"gzip, br": False, "gzip": True}


def test_a_wrapper_on_requests_adapter_sees_every_call(
    graph: FakeGraphAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As tracing libraries wrap it: functools.wraps copies the name and module.
    seen: list[str] = []
    stock = HTTPAdapter.send

    @functools.wraps(stock)
    def traced(self: HTTPAdapter, request: requests.PreparedRequest, **kwargs: Any) -> Any:
        seen.append(request.url or "")
        return stock(self, request, **kwargs)

    monkeypatch.setattr(HTTPAdapter, "send", traced)
    GraphClient(TOKEN, graph.base_url).send_message("123", PAYLOAD)
    assert seen == [f"{graph.base_url}/123/messages"]


def test_no_proxy_alone_names_no_proxy() -> None:
    fallback = Recording()
    with answering() as server, _session(HTTPClientAdapter(fallback=fallback)) as session:
        response = session.post(
            server.url(),
            data=b"{}",
            proxies={"no": "localhost,127.0.0.1", "no_proxy": "localhost"},
            timeout=5,
        )
    assert response.status_code == 200
    assert fallback.calls == []


def test_a_url_with_credentials_goes_to_the_fallback() -> None:
    fallback = Recording()
    with _session(HTTPClientAdapter(fallback=fallback)) as session:
        session.get("http://user:pw@127.0.0.1:9/v25.0/media", timeout=5)
    assert len(fallback.calls) == 1


def test_responses_active_before_the_import_still_sees_the_calls() -> None:
    # The check reads HTTPAdapter.send itself, so a patch made before the
    # package was imported is seen too: a fresh interpreter.
    code = (
        "import responses\n"
        "with responses.RequestsMock() as mocked:\n"
        "    mocked.post('https://graph.example.invalid/v25.0/1/messages', json={'messages': []})\n"
        "    from cel_whatsapp.core.graph import GraphClient\n"
        "    GraphClient('t', 'https://graph.example.invalid/v25.0').send_message('1', {'to': '2'})\n"
        "    assert len(mocked.calls) == 1\n"
    )
    result = subprocess.run(  # noqa: S603  # our own interpreter, our own code
        [sys.executable, "-c", code], capture_output=True, timeout=60
    )
    assert result.returncode == 0, result.stderr.decode()


def test_responses_sees_the_connectors_calls() -> None:
    client = GraphClient(TOKEN, "https://graph.example.invalid/v25.0")
    with responses.RequestsMock() as mocked:
        mocked.post(
            "https://graph.example.invalid/v25.0/123/messages", json={"messages": [{"id": "w.1"}]}
        )
        assert client.send_message("123", PAYLOAD)["messages"] == [{"id": "w.1"}]
        assert len(mocked.calls) == 1


# -- answers' codings and cookies ------------------------------------------------------------


@pytest.mark.parametrize(
    ("coding", "encode"),
    [
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw deflate
        ("deflate, gzip", lambda data: gzip.compress(zlib.compress(data))),
    ],
    ids=["gzip", "x-gzip", "deflate", "raw-deflate", "deflate-then-gzip"],
)
def test_compressed_answers_are_decoded(coding: str, encode: Callable[[bytes], bytes]) -> None:
    reply = answer(encode(OK), headers=(f"Content-Encoding: {coding}",))
    with answering(reply) as server, _session(HTTPClientAdapter()) as session:
        assert session.post(server.url(), data=b"{}", timeout=5).content == OK


def test_an_unknown_coding_is_left_as_it_came_and_a_broken_one_is_an_error() -> None:
    brotli = answer(b"\x00br", headers=("Content-Encoding: br",))
    with answering(brotli) as server, _session(HTTPClientAdapter()) as session:
        assert session.post(server.url(), data=b"{}", timeout=5).content == b"\x00br"
    broken = answer(b"not gzip", headers=("Content-Encoding: gzip",))
    with (
        answering(broken) as server,
        _session(HTTPClientAdapter()) as session,
        pytest.raises(requests.exceptions.ContentDecodingError),
    ):
        session.post(server.url(), data=b"{}", timeout=5)


def test_gzip_padded_after_its_member_is_decoded_as_urllib3_does() -> None:
    reply = answer(gzip.compress(OK) + b"\x00\x00junk", headers=("Content-Encoding: gzip",))
    with answering(reply) as server, _session(HTTPClientAdapter()) as session:
        response = session.post(server.url(), data=b"{}", timeout=5)
    assert response.content == OK
    assert response.raw.version == 11
    assert isinstance(response.connection, HTTPClientAdapter)


def test_cookies_an_answer_sets_are_on_the_response() -> None:
    reply = answer(headers=("Set-Cookie: lb=blue; Path=/", "Set-Cookie: zone=2; Path=/"))
    with answering(reply) as server, _session(HTTPClientAdapter()) as session:
        response = session.post(server.url(), data=b"{}", timeout=5)
    assert response.cookies.get_dict() == {"lb": "blue", "zone": "2"}
