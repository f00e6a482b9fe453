"""Nothing needless on a webhook's path: no per-request schemas or sessions, pooled
connections, each endpoint's request prepared once and sent through
``Session.send`` as ``Session.request`` would send it, and the environment's
proxy settings read once yet honoured.

These count calls; they never time anything (timings live in ``bench/``).
"""

from __future__ import annotations

import contextlib
import gzip
import http.client
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
from marshmallow import Schema

from cel_whatsapp import GraphAPIError, GraphRequestError
from cel_whatsapp.core.graph import GraphClient
from cel_whatsapp.testing import FakeGraphAPI, encode, signed_headers, text_webhook
from cel_whatsapp.testing.fake_graph import RecordedRequest

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
    connects = CallCounter(monkeypatch, http.client.HTTPConnection, "connect")
    _post_several(client, 5)
    assert len(graph.sent_texts()) == 5
    assert connects.calls == 1


# -- prepared once per endpoint, sent as Session.request sends ------------------------


Sent = tuple[str, str, dict[str, str], bytes]


def _seen(request: RecordedRequest) -> Sent:
    headers = {k: v for k, v in request.headers.items() if k != "host"}
    return request.method, request.path, headers, request.body


def _sent_by(client: GraphClient, graph: FakeGraphAPI) -> Sent:
    graph.reset()
    client.send_message("123", PAYLOAD)
    [request] = graph.requests
    return _seen(request)


def _sent_by_session_request(session: requests.Session, graph: FakeGraphAPI, **kwargs: Any) -> Sent:
    graph.reset()
    session.post(f"{graph.base_url}/123/messages", json=PAYLOAD, timeout=5, **kwargs)
    [request] = graph.requests
    return _seen(request)


def test_sends_are_prepared_once_and_match_session_request(
    graph: FakeGraphAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = GraphClient(TOKEN, graph.base_url)
    prepares = CallCounter(monkeypatch, requests.Session, "prepare_request")
    sends = CallCounter(monkeypatch, requests.Session, "send")
    ours = [_sent_by(client, graph) for _ in range(3)]
    assert (prepares.calls, sends.calls) == (1, 3)
    assert ours == [_sent_by_session_request(client.session, graph)] * 3
    assert ours[0][2]["authorization"] == f"Bearer {TOKEN}"
    assert ours[0][2]["content-type"] == "application/json"


def test_a_users_session_sends_what_session_request_sends(graph: FakeGraphAPI) -> None:
    session = requests.Session()
    client = GraphClient(TOKEN, graph.base_url, session=session)
    ours = [_sent_by(client, graph) for _ in range(2)]
    normal = _sent_by_session_request(session, graph, headers=client.auth_headers)
    assert ours == [normal] * 2
    assert "Authorization" not in session.headers  # the token went with the request


def _body_length_auth(request: requests.PreparedRequest) -> requests.PreparedRequest:
    # An auth that signs the body (as OAuth 1 does) must run once the body is there.
    body = request.body if isinstance(request.body, bytes) else b""
    request.headers["X-Body-Length"] = str(len(body))
    return request


@pytest.mark.parametrize(
    ("change", "check"),
    [
        pytest.param(
            lambda s: s.cookies.set("seen", "1"),
            lambda sent: sent[2]["cookie"] == "seen=1",
            id="a cookie",
        ),
        pytest.param(
            lambda s: s.params.update({"debug": "all"}),
            lambda sent: sent[1].endswith("/123/messages?debug=all"),
            id="params",
        ),
        pytest.param(
            lambda s: setattr(s, "auth", _body_length_auth),
            lambda sent: sent[2]["x-body-length"] == str(len(sent[3])),
            id="auth",
        ),
    ],
)
def test_what_may_change_per_call_is_prepared_per_call(
    graph: FakeGraphAPI,
    monkeypatch: pytest.MonkeyPatch,
    change: Callable[[requests.Session], None],
    check: Callable[[Sent], bool],
) -> None:
    client = GraphClient(TOKEN, graph.base_url)
    client.send_message("123", PAYLOAD)  # the endpoint prepared before the change
    change(client.session)
    prepares = CallCounter(monkeypatch, requests.Session, "prepare_request")
    sent = [_sent_by(client, graph) for _ in range(2)]
    assert prepares.calls == 2
    assert all(check(one) for one in sent)
    assert sent[0] == _sent_by_session_request(client.session, graph)


def test_a_session_content_type_in_any_case_is_kept_as_requests_does(
    graph: FakeGraphAPI,
) -> None:
    client = GraphClient(TOKEN, graph.base_url)
    client.session.headers["content-type"] = "application/json; charset=utf-8"
    ours = _sent_by(client, graph)
    assert ours == _sent_by_session_request(client.session, graph)
    assert ours[2]["content-type"] == "application/json; charset=utf-8"


def test_session_headers_changed_later_are_sent(graph: FakeGraphAPI) -> None:
    client = GraphClient(TOKEN, graph.base_url)
    client.send_message("123", PAYLOAD)
    client.session.headers["X-Extra"] = "yes"
    client.send_message("123", PAYLOAD)
    del client.session.headers["X-Extra"]
    client.send_message("123", PAYLOAD)
    assert [r.headers.get("x-extra") for r in graph.requests] == [None, "yes", None]


def test_adapters_mounted_before_or_after_the_first_send_are_used(graph: FakeGraphAPI) -> None:
    class CountingAdapter(requests.adapters.HTTPAdapter):
        sends = 0

        def send(self, *args: Any, **kwargs: Any) -> requests.Response:
            CountingAdapter.sends += 1
            return super().send(*args, **kwargs)

    client = GraphClient(TOKEN, graph.base_url)
    client.send_message("123", PAYLOAD)
    client.session.mount("http://", CountingAdapter())
    client.send_message("123", PAYLOAD)
    mounted_first = GraphClient(TOKEN, graph.base_url)
    mounted_first.session.mount("http://", CountingAdapter())
    mounted_first.send_message("123", PAYLOAD)
    assert CountingAdapter.sends == 2
    assert len(graph.requests) == 3


def test_a_patched_adapter_send_sees_every_request(
    graph: FakeGraphAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What test libraries such as responses do.
    client = GraphClient(TOKEN, graph.base_url)
    client.send_message("123", PAYLOAD)
    patched = CallCounter(monkeypatch, requests.adapters.HTTPAdapter, "send")
    client.send_message("123", PAYLOAD)
    assert patched.calls == 1
    assert len(graph.requests) == 2
    monkeypatch.undo()
    client.send_message("123", PAYLOAD)  # unpatched: on http.client again
    assert patched.calls == 1
    assert len(graph.requests) == 3


def test_a_closed_session_still_sends(graph: FakeGraphAPI) -> None:
    client = GraphClient(TOKEN, graph.base_url)
    client.send_message("123", PAYLOAD)
    client.session.close()  # closes every pool the adapter made
    client.send_message("123", PAYLOAD)
    assert len(graph.requests) == 2


def test_json_that_cannot_be_carried_is_refused_as_requests_does(graph: FakeGraphAPI) -> None:
    client = GraphClient(TOKEN, graph.base_url)
    bad = {**PAYLOAD, "text": {"body": math.nan}}
    with pytest.raises(GraphRequestError) as info:
        client.send_message("123", bad)
    error = info.value
    assert isinstance(error.__cause__, requests.exceptions.InvalidJSONError)
    assert error.request_sent is False
    assert isinstance(error.request, requests.PreparedRequest)  # kept from requests' error
    assert error.request.url == f"{graph.base_url}/123/messages"
    assert error.response is None
    assert TOKEN not in str(error) and TOKEN not in repr(error)
    with pytest.raises(requests.exceptions.InvalidJSONError):
        client.session.post(f"{graph.base_url}/123/messages", json=bad, timeout=5)
    assert graph.requests == []


class _OddAnswers(BaseHTTPRequestHandler):
    """Answers requests reads for us (a cookie, gzip), and a redirect."""

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


def test_gzip_is_decoded_and_cookies_kept_as_requests_does() -> None:
    with _odd_server() as (base_url, received):
        client = GraphClient(TOKEN, base_url)
        first = client.send_message("123", PAYLOAD)
        second = client.send_message("123", PAYLOAD)
    assert len(received) == 2
    assert first["messages"] == [{"id": "wamid.ODD"}]
    assert first["cookie"] is None
    assert client.session.cookies.get("lb") == "blue"
    assert second["cookie"] == "lb=blue"  # sent back, as a session does


def test_a_redirect_is_handed_back_unfollowed() -> None:
    with _odd_server() as (base_url, received):
        client = GraphClient(TOKEN, base_url)
        response = client.call("POST", f"{base_url}/moved/messages", json=PAYLOAD)
        with pytest.raises(GraphAPIError) as info:
            client.send_message("moved", PAYLOAD)
    assert response.status_code == 307
    assert response.headers["Location"] == "/v25.0/123/messages"
    # Neither was followed (see tests/test_graph_redirects.py): the send is an error.
    assert [path for path, _, _ in received] == ["/v25.0/moved/messages"] * 2
    assert info.value.http_status == 307
    assert info.value.response is not None and info.value.response.status_code == 307


# -- proxies from the environment, resolved once and really used ----------------------------


@contextlib.contextmanager
def _proxy() -> Iterator[FakeGraphAPI]:
    """A local server standing in for an HTTP proxy: it records what reaches it."""
    with FakeGraphAPI() as proxy:
        yield proxy


@pytest.mark.parametrize("own_session", [True, False], ids=["own session", "user's session"])
def test_environment_proxy_is_used_for_sends(
    monkeypatch: pytest.MonkeyPatch, own_session: bool
) -> None:
    with _proxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.root_url)
        session = None if own_session else requests.Session()
        client = GraphClient(TOKEN, "http://graph.example.invalid/v25.0", session=session)
        # The proxy is not a Graph API, so the send fails; what matters is where it went.
        with pytest.raises(GraphAPIError):
            client.send_message("123", PAYLOAD)
        [request] = proxy.requests
    assert request.path == "http://graph.example.invalid/v25.0/123/messages"
    assert request.json == PAYLOAD


@pytest.mark.parametrize("own_session", [True, False], ids=["own session", "user's session"])
def test_no_proxy_is_honoured(
    graph: FakeGraphAPI, monkeypatch: pytest.MonkeyPatch, own_session: bool
) -> None:
    with _proxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.root_url)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        session = None if own_session else requests.Session()
        GraphClient(TOKEN, graph.base_url, session=session).send_message("123", PAYLOAD)
        assert proxy.requests == []
    assert len(graph.requests) == 1


def _environment_reads(monkeypatch: pytest.MonkeyPatch) -> list[CallCounter]:
    # requests.sessions imported these by name; requests.utils uses its own.
    return [
        CallCounter(monkeypatch, module, name)
        for module in (requests.sessions, requests.utils)
        for name in ("get_environ_proxies", "get_netrc_auth")
    ]


def test_proxy_settings_are_read_once_not_per_send(
    graph: FakeGraphAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = GraphClient(TOKEN, graph.base_url)
    reads = _environment_reads(monkeypatch)
    for _ in range(3):
        client.send_message("123", PAYLOAD)
    assert len(graph.requests) == 3
    assert [r.calls for r in reads] == [0, 0, 0, 0]
    # The same counters do see a default session reading them on every call.
    requests.Session().post(graph.base_url + "/123/messages", json=PAYLOAD, timeout=5)
    assert sum(r.calls for r in reads) >= 1


def test_a_users_session_reads_the_environment_once_per_endpoint(
    graph: FakeGraphAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    # trust_env is on: what requests would read per call is read on the first.
    client = GraphClient(TOKEN, graph.base_url, session=requests.Session())
    reads = _environment_reads(monkeypatch)
    for _ in range(3):
        client.send_message("123", PAYLOAD)
    assert len(graph.requests) == 3
    assert [r.calls for r in reads] == [1, 1, 0, 0]


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
