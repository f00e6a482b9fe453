"""Every Graph call goes through ``requests.Session.send``, where instrumentation looks.

Tracing libraries (OpenTelemetry's requests instrumentation, for one) wrap
``Session.send``; response hooks and mounted adapters hang off the session.
These run webhook round trips against the fake Graph API (read receipt,
an inbound image downloaded, a reply streamed into several messages) and
check that each request the fake received was seen there; and that our
errors keep requests' ``request`` and ``response``.
"""

from __future__ import annotations

import hashlib
import re
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from cel_whatsapp import GraphAPIError, GraphTransportError, Message, WhatsappConnector
from cel_whatsapp.core.graph import GraphClient
from cel_whatsapp.testing import FakeGraphAPI, webhook
from cel_whatsapp.testing.webhooks import image_message

from .conftest import TOKEN, MakeConnector, make_app, post_webhook

PHOTO = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8


class SendRecorder:
    """Wraps ``requests.Session.send`` at class level: records every call, then sends."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[requests.PreparedRequest, dict[str, Any]]] = []
        self._lock = threading.Lock()
        original: Callable[..., requests.Response] = requests.Session.send

        def send(
            session: requests.Session, request: requests.PreparedRequest, **kwargs: Any
        ) -> requests.Response:
            with self._lock:
                self.calls.append((request, kwargs))
            return original(session, request, **kwargs)

        monkeypatch.setattr(requests.Session, "send", send)

    def paths(self) -> list[str]:
        with self._lock:
            return sorted(_path(request.url or "") for request, _ in self.calls)


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> SendRecorder:
    return SendRecorder(monkeypatch)


def _describing_assistant(connector: Callable[[], WhatsappConnector]) -> Any:
    """Downloads the image it is sent, then answers in three sentences."""

    def assistant(message: Message) -> Iterator[str]:
        media = connector().download_media(message.attachments[0])
        yield f"Got {media.size} bytes. "
        yield "They look fine. "
        yield "Thanks!"

    return assistant


def _image_webhook(graph: FakeGraphAPI) -> dict[str, Any]:
    media_id = graph.add_media(PHOTO, mime_type="image/png")
    sha256 = hashlib.sha256(PHOTO).hexdigest()
    return webhook(image_message(media_id=media_id, mime_type="image/png", sha256=sha256))


def _round_trip(
    make_connector: MakeConnector, graph: FakeGraphAPI, **options: Any
) -> WhatsappConnector:
    built: list[WhatsappConnector] = []
    connector = make_connector(
        _describing_assistant(lambda: built[0]), read_receipts=True, **options
    )
    built.append(connector)
    client = make_app(connector).test_client()
    assert post_webhook(client, _image_webhook(graph)).status_code == 200
    assert connector.drain(10)
    return connector


def _check_every_call_was_seen(graph: FakeGraphAPI, recorder: SendRecorder) -> None:
    assert graph.sent_texts() == [f"Got {len(PHOTO)} bytes.", "They look fine.", "Thanks!"]
    assert len(graph.read_receipts()) == 1
    assert len(graph.media_lookups()) == 1
    assert len(graph.media_downloads()) == 1
    # 1 receipt + 1 lookup + 1 download + 3 texts, each seen by Session.send.
    assert len(graph.requests) == 6
    assert recorder.paths() == sorted(_path(r.path) for r in graph.requests)
    for _, kwargs in recorder.calls:
        assert kwargs["allow_redirects"] is False
        assert kwargs["timeout"] is not None


@pytest.mark.parametrize("dispatch", ["inline", "background"])
def test_every_graph_call_of_a_webhook_goes_through_session_send(
    make_connector: MakeConnector, graph: FakeGraphAPI, recorder: SendRecorder, dispatch: str
) -> None:
    connector = _round_trip(make_connector, graph, dispatch=dispatch)
    try:
        _check_every_call_was_seen(graph, recorder)
    finally:
        connector.dispatcher.shutdown(5)


def test_a_users_session_sees_every_call_too(
    make_connector: MakeConnector, graph: FakeGraphAPI, recorder: SendRecorder
) -> None:
    session = requests.Session()
    _round_trip(make_connector, graph, session=session)
    _check_every_call_was_seen(graph, recorder)
    # The token went with each request, never onto the user's session.
    assert "Authorization" not in session.headers
    assert all(
        request.headers["Authorization"].startswith("Bearer ") for request, _ in recorder.calls
    )


@pytest.mark.parametrize("own_session", [True, False], ids=["own session", "user's session"])
def test_a_response_hook_on_the_session_fires_for_each_graph_call(
    make_connector: MakeConnector, graph: FakeGraphAPI, own_session: bool
) -> None:
    seen: list[tuple[int, str]] = []

    def hook(response: requests.Response, **kwargs: Any) -> None:
        seen.append((response.status_code, _path(response.url)))

    session = None if own_session else requests.Session()
    connector = make_connector(
        _describing_assistant(lambda: connector), read_receipts=True, session=session
    )
    client = make_app(connector).test_client()
    connector.core(client.application).graph.session.hooks["response"].append(hook)
    assert post_webhook(client, _image_webhook(graph)).status_code == 200
    assert len(graph.requests) == 6
    assert sorted(seen) == sorted((200, _path(r.path)) for r in graph.requests)


def test_a_hook_added_after_the_first_send_fires_and_one_removed_stops(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    connector = make_connector()
    connector.send("15551234567", "before")
    session = connector.core().graph.session
    seen: list[str] = []

    def hook(response: requests.Response, **kwargs: Any) -> None:
        seen.append(response.request.body.decode() if response.request.body else "")  # type: ignore[union-attr]

    session.hooks["response"].append(hook)
    connector.send("15551234567", "during")
    session.hooks["response"].remove(hook)
    connector.send("15551234567", "after")
    assert len(seen) == 1 and '"during"' in seen[0]
    assert graph.sent_texts() == ["before", "during", "after"]


# -- errors keep what requests had --------------------------------------------------------


def test_a_transport_error_keeps_requests_request(graph: FakeGraphAPI) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    client = GraphClient(TOKEN, f"http://127.0.0.1:{port}/v25.0", timeout=2)
    with pytest.raises(GraphTransportError) as info:
        client.send_message("123", {"messaging_product": "whatsapp", "to": "1", "type": "text"})
    error = info.value
    assert error.request_sent is False
    assert isinstance(error.__cause__, requests.ConnectionError)
    assert error.request is error.__cause__.request
    assert isinstance(error.request, requests.PreparedRequest)
    assert error.request.url == f"http://127.0.0.1:{port}/v25.0/123/messages"
    assert error.response is None
    assert TOKEN not in str(error) and TOKEN not in repr(error)


def test_an_error_answer_keeps_the_response(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    graph.fail_next(status=400, code=131047, message="Re-engagement message")
    with pytest.raises(GraphAPIError) as info:
        make_connector().send("15551234567", "hello")
    error = info.value
    assert error.http_status == 400
    assert error.response is not None and error.response.status_code == 400
    assert error.request is error.response.request
    assert error.request is not None and error.request.method == "POST"
    assert TOKEN not in str(error) and TOKEN not in repr(error)


def test_a_broken_media_download_keeps_the_response(
    make_connector: MakeConnector, graph: FakeGraphAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    media_id = graph.add_media(PHOTO)
    original = requests.Response.iter_content

    def broken(self: requests.Response, *args: Any, **kwargs: Any) -> Iterator[Any]:
        if f"mid={media_id}" not in self.url:  # not the download: the lookup reads on
            yield from original(self, *args, **kwargs)
            return
        raise requests.exceptions.ChunkedEncodingError("connection broken")

    monkeypatch.setattr(requests.Response, "iter_content", broken)
    with pytest.raises(GraphTransportError) as info:
        make_connector().download_media(media_id)
    assert info.value.response is not None and info.value.response.status_code == 200
    assert info.value.request is info.value.response.request


# -- only requests' public API --------------------------------------------------------------

PACKAGE = Path(__file__).resolve().parent.parent / "cel_whatsapp"

#: A private name of requests or urllib3, or a private module of theirs.
PRIVATE = re.compile(
    r"\b(?:requests|urllib3)(?:\.\w+)*\._\w*"  # requests.x._name, urllib3._module
    r"|\bfrom\s+(?:requests|urllib3)(?:\.\w+)*\s+import\s+\(?[^)\n]*\b_\w*"  # import _name
    r"|\bfrom\s+(?:requests|urllib3)(?:\.\w+)*\._\w*\s+import"  # from a private module
)
#: Adapter and session internals documented as not for user code, and the
#: helpers requests uses inside Session.send and HTTPAdapter.send.
INTERNALS = re.compile(
    r"\b(?:get_connection_with_tls_context|get_connection|build_connection_pool_key_attributes"
    r"|cert_verify|build_response|request_url|select_proxy|extract_cookies_to_jar"
    r"|poolmanager|proxy_manager_for|urlopen)\b"
)


def test_no_module_uses_private_names_of_requests_or_urllib3() -> None:
    found = [
        f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if PRIVATE.search(line) or INTERNALS.search(line)
    ]
    assert found == []
    # The patterns do catch what the old lean send did.
    assert PRIVATE.search("from requests.cookies import _copy_cookie_jar")
    assert PRIVATE.search("urllib3._collections.HTTPHeaderDict")
    assert INTERNALS.search("pool = adapter.get_connection_with_tls_context(prepared, True)")


# -- a JSON call's body, set on the copied prepared request -----------------------------------


@pytest.mark.parametrize(
    "body", ['é 🙂 \u2028 "q" \\ </script>', "x" * 4096, "line\n\ttab \x00 end"]
)
@pytest.mark.parametrize("preview", [None, True, False])
def test_a_json_call_sends_what_prepare_body_would(
    graph: FakeGraphAPI, monkeypatch: pytest.MonkeyPatch, body: str, preview: bool | None
) -> None:
    text: dict[str, Any] = {"body": body}
    if preview is not None:
        text["preview_url"] = preview
    payload = {"messaging_product": "whatsapp", "to": "1", "type": "text", "text": text}
    recorder = SendRecorder(monkeypatch)
    client = GraphClient(TOKEN, graph.base_url, timeout=5)
    for _ in range(2):  # the route is prepared by the first call, copied for the second
        client.request("POST", "123/messages", json=payload)
    expected = requests.Request("POST", f"{graph.base_url}/123/messages", json=payload).prepare()
    for sent, _ in recorder.calls:
        assert sent.body == expected.body
        assert sent.headers["Content-Length"] == expected.headers["Content-Length"]
        assert sent.headers["Content-Type"] == "application/json"
    assert len(recorder.calls) == 2


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_a_body_json_cannot_carry_is_refused_before_sending(
    graph: FakeGraphAPI, bad: object
) -> None:
    client = GraphClient(TOKEN, graph.base_url, timeout=5)
    with pytest.raises(GraphAPIError) as info:
        client.request("POST", "123/messages", json={"value": bad})
    assert isinstance(info.value.__cause__, requests.exceptions.InvalidJSONError)
    assert graph.requests == []


def test_a_body_json_cannot_encode_raises_as_from_requests(graph: FakeGraphAPI) -> None:
    # A TypeError, from the prepared route as from Session.prepare_request.
    client = GraphClient(TOKEN, graph.base_url, timeout=5)
    with pytest.raises(TypeError):
        client.request("POST", "123/messages", json={"value": object()})
    client.session.params = {"debug": "all"}  # every call prepared whole
    with pytest.raises(TypeError):
        client.request("POST", "123/messages", json={"value": object()})
    assert graph.requests == []
