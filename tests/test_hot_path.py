"""Nothing needless on a webhook's path: no per-request schemas or sessions, pooled
connections, the fast schema loads and the lean send really used, and the
environment's proxy settings still honoured.

These count calls; they never time anything (timings live in ``bench/``).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import math
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
import urllib3.connection
from marshmallow import Schema

from cel_whatsapp import GraphAPIError, GraphRequestError
from cel_whatsapp.core.graph import GraphClient
from cel_whatsapp.testing import FakeGraphAPI, encode, signed_headers, text_webhook

from .conftest import APP_SECRET, PHONE_NUMBER_ID, TOKEN, MakeConnector, make_app, post_webhook

PAYLOAD = {"messaging_product": "whatsapp", "to": "111", "type": "text", "text": {"body": "hi"}}


class CallCounter:
    """Counts calls to a method while still running it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, owner: object, name: str) -> None:
        self.calls = 0
        original: Callable[..., Any] = getattr(owner, name)

        def counting(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, counting)


def _post_several(client: Any, count: int) -> None:
    for index in range(count):
        response = post_webhook(client, text_webhook(f"hello {index}"))
        assert response.status_code == 200


def test_webhooks_build_no_schema_and_no_session(
    make_connector: MakeConnector, graph: FakeGraphAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_app(make_connector(lambda message: f"echo {message.text}")).test_client()
    _post_several(client, 1)  # first request: lazy set-up may happen once
    schemas_built = CallCounter(monkeypatch, Schema, "__init__")
    sessions_built = CallCounter(monkeypatch, requests.Session, "__init__")
    _post_several(client, 5)
    assert graph.sent_texts()[-5:] == [f"echo hello {i}" for i in range(5)]
    assert schemas_built.calls == 0
    assert sessions_built.calls == 0


def test_replies_reuse_one_pooled_connection(
    make_connector: MakeConnector, graph: FakeGraphAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_app(make_connector(lambda message: "pong")).test_client()
    connects = CallCounter(monkeypatch, urllib3.connection.HTTPConnection, "connect")
    _post_several(client, 5)
    assert len(graph.sent_texts()) == 5
    assert connects.calls == 1


# -- the lean send gives what Session.request gives -----------------------------------


def _sent_by(client: GraphClient, graph: FakeGraphAPI) -> tuple[str, str, dict[str, str], bytes]:
    graph.reset()
    client.send_message("123", PAYLOAD)
    [request] = graph.requests
    headers = {k: v for k, v in request.headers.items() if k != "host"}
    return request.method, request.path, headers, request.body


def test_lean_send_matches_session_request(
    graph: FakeGraphAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = GraphClient(TOKEN, graph.base_url)
    full_requests = CallCounter(monkeypatch, requests.Session, "request")
    lean = _sent_by(client, graph)
    assert full_requests.calls == 0  # the lean path was taken
    # The same client forced onto the normal path (as for a session given by the user).
    client._quick = None
    normal = _sent_by(client, graph)
    assert full_requests.calls == 1
    assert lean == normal
    assert lean[2]["authorization"] == f"Bearer {TOKEN}"
    assert lean[2]["content-type"] == "application/json"


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda s: s.cookies.set("seen", "1"), id="a cookie"),
        pytest.param(lambda s: setattr(s, "auth", lambda r: r), id="auth"),
        pytest.param(lambda s: s.params.update({"debug": "all"}), id="params"),
        pytest.param(lambda s: s.hooks["response"].append(lambda r, **k: r), id="a hook"),
        pytest.param(lambda s: setattr(s, "trust_env", True), id="trust_env"),
    ],
)
def test_a_changed_session_takes_the_normal_path(
    graph: FakeGraphAPI,
    monkeypatch: pytest.MonkeyPatch,
    change: Callable[[requests.Session], None],
) -> None:
    client = GraphClient(TOKEN, graph.base_url)
    change(client.session)
    full_requests = CallCounter(monkeypatch, requests.Session, "request")
    client.send_message("123", PAYLOAD)
    assert full_requests.calls == 1


def test_a_session_content_type_in_any_case_is_kept_as_requests_does(
    graph: FakeGraphAPI,
) -> None:
    client = GraphClient(TOKEN, graph.base_url)
    client.session.headers["content-type"] = "application/json; charset=utf-8"
    lean = _sent_by(client, graph)
    client._quick = None
    assert lean == _sent_by(client, graph)
    assert lean[2]["content-type"] == "application/json; charset=utf-8"


def test_an_adapter_mounted_after_the_first_send_is_used(graph: FakeGraphAPI) -> None:
    class CountingAdapter(requests.adapters.HTTPAdapter):
        sends = 0

        def send(self, *args: Any, **kwargs: Any) -> requests.Response:
            CountingAdapter.sends += 1
            return super().send(*args, **kwargs)

    client = GraphClient(TOKEN, graph.base_url)
    client.send_message("123", PAYLOAD)
    client.session.mount("http://", CountingAdapter())
    client.send_message("123", PAYLOAD)
    assert CountingAdapter.sends == 1
    assert len(graph.requests) == 2


def test_a_patched_adapter_send_sees_every_request(
    graph: FakeGraphAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What test libraries such as responses do: the lean path steps aside.
    client = GraphClient(TOKEN, graph.base_url)
    client.send_message("123", PAYLOAD)
    patched = CallCounter(monkeypatch, requests.adapters.HTTPAdapter, "send")
    client.send_message("123", PAYLOAD)
    assert patched.calls == 1
    assert len(graph.requests) == 2


def test_an_adapter_that_may_resend_takes_the_normal_path(
    graph: FakeGraphAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The lean path reads the body inside urlopen, where retries could send again.
    client = GraphClient(TOKEN, graph.base_url)
    client.session.mount("http://", requests.adapters.HTTPAdapter(max_retries=3))
    full_requests = CallCounter(monkeypatch, requests.Session, "request")
    client.send_message("123", PAYLOAD)
    assert full_requests.calls == 1
    assert len(graph.requests) == 1


def test_session_headers_changed_later_are_sent(graph: FakeGraphAPI) -> None:
    client = GraphClient(TOKEN, graph.base_url)
    client.session.headers["X-Extra"] = "yes"
    client.send_message("123", PAYLOAD)
    assert graph.requests[-1].headers["x-extra"] == "yes"


def test_lean_send_takes_a_new_pool_after_the_session_closed_its_pools(
    graph: FakeGraphAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = GraphClient(TOKEN, graph.base_url)
    full_requests = CallCounter(monkeypatch, requests.Session, "request")
    client.send_message("123", PAYLOAD)
    client.session.close()  # closes every pool the adapter made, the cached one too
    client.send_message("123", PAYLOAD)
    assert len(graph.requests) == 2
    assert full_requests.calls == 0


def test_lean_send_refuses_what_json_cannot_carry_as_requests_does(graph: FakeGraphAPI) -> None:
    client = GraphClient(TOKEN, graph.base_url)
    bad = {**PAYLOAD, "text": {"body": math.nan}}
    with pytest.raises(GraphRequestError) as lean:
        client.send_message("123", bad)
    client._quick = None
    with pytest.raises(GraphRequestError) as full:
        client.send_message("123", bad)
    for info in (lean, full):
        assert isinstance(info.value.__cause__, requests.exceptions.InvalidJSONError)
        assert info.value.request_sent is False
    assert graph.requests == []


def test_a_custom_adapter_takes_the_normal_path(graph: FakeGraphAPI) -> None:
    class CountingAdapter(requests.adapters.HTTPAdapter):
        sends = 0

        def send(self, *args: Any, **kwargs: Any) -> requests.Response:
            CountingAdapter.sends += 1
            return super().send(*args, **kwargs)

    client = GraphClient(TOKEN, graph.base_url)
    client.session.mount("http://", CountingAdapter())
    client.send_message("123", PAYLOAD)
    assert CountingAdapter.sends == 1
    assert len(graph.requests) == 1


class _OddAnswers(BaseHTTPRequestHandler):
    """Answers the lean path reads as requests would (a cookie, gzip), and a redirect."""

    received: list[tuple[str, bytes, str | None]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, body, self.headers["Authorization"]))
        if self.path.endswith("/moved/messages"):
            self.send_response(307)
            self.send_header("Location", self.path.replace("/moved/", "/123/"))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        answer = json.dumps({"messages": [{"id": "wamid.ODD"}], "cookie": self.headers["Cookie"]})
        data = gzip.compress(answer.encode())
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Set-Cookie", "lb=blue; Path=/")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        return None


@contextlib.contextmanager
def _odd_server() -> Iterator[tuple[str, list[tuple[str, bytes, str | None]]]]:
    received: list[tuple[str, bytes, str | None]] = []
    handler = type("Handler", (_OddAnswers,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v25.0", received
    finally:
        server.shutdown()
        server.server_close()


def test_lean_send_decodes_gzip_and_keeps_cookies_as_requests_does() -> None:
    with _odd_server() as (base_url, received):
        client = GraphClient(TOKEN, base_url)
        first = client.send_message("123", PAYLOAD)
        second = client.send_message("123", PAYLOAD)
    assert len(received) == 2
    assert first["messages"] == [{"id": "wamid.ODD"}]
    assert first["cookie"] is None
    assert client.session.cookies.get("lb") == "blue"
    assert second["cookie"] == "lb=blue"  # sent back, as a session does


def test_lean_send_hands_back_a_redirect_unfollowed(monkeypatch: pytest.MonkeyPatch) -> None:
    full_requests = CallCounter(monkeypatch, requests.Session, "request")
    with _odd_server() as (base_url, received):
        client = GraphClient(TOKEN, base_url)
        assert client._quick is not None
        answer = client._quick.send("POST", f"{base_url}/moved/messages", PAYLOAD, 5.0)
        with pytest.raises(GraphAPIError) as info:
            client.send_message("moved", PAYLOAD)
    assert full_requests.calls == 0  # the lean path sent both
    assert answer is not None
    assert answer.status == 307
    assert answer.headers["Location"] == "/v25.0/123/messages"
    # Neither was followed (see tests/test_graph_redirects.py): the send is an error.
    assert [path for path, _, _ in received] == ["/v25.0/moved/messages"] * 2
    assert info.value.http_status == 307


# -- proxies from the environment, resolved once and really used ----------------------------


@contextlib.contextmanager
def _proxy() -> Iterator[FakeGraphAPI]:
    """A local server standing in for an HTTP proxy: it records what reaches it."""
    with FakeGraphAPI() as proxy:
        yield proxy


def test_environment_proxy_is_used_for_sends(monkeypatch: pytest.MonkeyPatch) -> None:
    with _proxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.root_url)
        client = GraphClient(TOKEN, "http://graph.example.invalid/v25.0")
        # The proxy is not a Graph API, so the send fails; what matters is where it went.
        with pytest.raises(GraphAPIError):
            client.send_message("123", PAYLOAD)
        [request] = proxy.requests
    assert request.path == "http://graph.example.invalid/v25.0/123/messages"
    assert request.json == PAYLOAD


def test_no_proxy_is_honoured(graph: FakeGraphAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    with _proxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.root_url)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        GraphClient(TOKEN, graph.base_url).send_message("123", PAYLOAD)
        assert proxy.requests == []
    assert len(graph.requests) == 1


def test_proxy_settings_are_read_once_not_per_send(
    graph: FakeGraphAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = GraphClient(TOKEN, graph.base_url)
    # requests.sessions imported these by name; requests.utils uses its own.
    reads = [
        CallCounter(monkeypatch, module, name)
        for module in (requests.sessions, requests.utils)
        for name in ("get_environ_proxies", "get_netrc_auth")
    ]
    for _ in range(3):
        client.send_message("123", PAYLOAD)
    assert len(graph.requests) == 3
    assert [r.calls for r in reads] == [0, 0, 0, 0]
    # The same counters do see a default session reading them on every call.
    requests.Session().post(graph.base_url + "/123/messages", json=PAYLOAD, timeout=5)
    assert sum(r.calls for r in reads) >= 1


# -- what a plain-text app loads --------------------------------------------------------

_PLAIN_TEXT_APP = """
import json, sys
from flask import Flask
from cel_whatsapp import WhatsappConnector

body = sys.stdin.buffer.read()
headers = json.loads(sys.argv[2])
connector = WhatsappConnector(
    "token", sys.argv[4], "verify", app_secret=sys.argv[3], base_url=sys.argv[1],
    read_receipts=False, dispatch="inline",
    assistant=lambda message: (chunk for chunk in ("You said: ", message.text)),
)
app = Flask("plain")
connector.init_app(app)
status = app.test_client().post("/whatsapp", data=body, headers=headers).status_code
print(json.dumps({"status": status, "modules": sorted(sys.modules)}))
"""


def test_a_plain_text_app_loads_no_test_helpers_simulator_or_redis(graph: FakeGraphAPI) -> None:
    # In a fresh interpreter: the package imports its public names eagerly,
    # but nothing a production worker does not need.
    raw = encode(text_webhook("hi", sender="15550001111"))
    result = subprocess.run(  # noqa: S603 - our own interpreter and script, no shell
        [
            sys.executable,
            "-c",
            _PLAIN_TEXT_APP,
            graph.base_url,
            json.dumps(signed_headers(raw, APP_SECRET)),
            APP_SECRET,
            PHONE_NUMBER_ID,
        ],
        input=raw,
        capture_output=True,
        check=True,
        timeout=60,
    )
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["status"] == 200
    assert graph.sent_texts() == ["You said: hi"]
    loaded = set(report["modules"])
    assert {"cel_whatsapp.flask.connector", "cel_whatsapp.replies"} <= loaded
    assert not loaded & {"cel_whatsapp.testing", "cel_whatsapp.simulator", "redis", "pytest"}
