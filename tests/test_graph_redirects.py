"""The Graph API never redirects: a redirect is an error, and is never followed with the token.

The fake Graph API here answers with a redirect to a local listener that
records every request reaching it and its ``Authorization`` header. The
connector talks to ``graph.example.invalid`` (resolved to the fake on
127.0.0.1), so that a Location naming that host after a backslash reads as
the same host to ``urllib.parse``, which requests consults before it keeps
the token for the next hop. Both kinds of session are tried: the one a
connector builds itself (the token on the session) and a ``requests.Session``
of the user's (the token on each request); calls go through ``Session.send``
either way.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from cel_whatsapp import GraphAPIError, GraphTransportError, WhatsappConnector
from cel_whatsapp.testing import FakeGraphAPI
from cel_whatsapp.testing.fake_graph import RecordedRequest

from .conftest import TOKEN, MakeConnector
from .listeners import Listener, listening

GRAPH_HOST = "graph.example.invalid"

# {port}: the listener's, {graph_port}: the fake Graph API's.
LOCATIONS = {
    "backslash before @": "http://127.0.0.1:{port}\\@graph.example.invalid:{graph_port}/x",
    "another host": "http://127.0.0.1:{port}/x",
    "the Graph host on another port": "http://graph.example.invalid:{port}/x",
}


@pytest.fixture
def listener() -> Iterator[Listener]:
    with listening(b"{}") as recording:
        yield recording


@pytest.fixture
def graph_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """``graph.example.invalid`` resolves to 127.0.0.1 (the port stays the URL's)."""
    original = socket.getaddrinfo

    def resolve(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in (GRAPH_HOST, GRAPH_HOST.encode()):
            host = "127.0.0.1"
        return original(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)


@pytest.fixture(params=["own session", "requests.Session"])
def connector(
    request: pytest.FixtureRequest,
    make_connector: MakeConnector,
    graph: FakeGraphAPI,
    graph_host: None,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[WhatsappConnector]:
    """A connector calling the fake as ``graph.example.invalid``, with either kind of session."""
    sent: list[dict[str, Any]] = []
    original: Callable[..., Any] = requests.Session.send

    def recording(session: requests.Session, prepared: Any, **kwargs: Any) -> Any:
        sent.append(kwargs)
        return original(session, prepared, **kwargs)

    monkeypatch.setattr(requests.Session, "send", recording)
    built = make_connector(
        base_url=f"http://{GRAPH_HOST}:{graph.address[1]}/{graph.api_version}",
        session=None if request.param == "own session" else requests.Session(),
    )
    yield built
    # Every call went through Session.send, never asked to follow a redirect.
    assert len(sent) == len(graph.requests)
    assert all(kwargs["allow_redirects"] is False for kwargs in sent)


def _redirect_every_call(
    graph: FakeGraphAPI, monkeypatch: pytest.MonkeyPatch, status: int, location: str
) -> None:
    recorded = graph.answer

    def answer(request: RecordedRequest) -> tuple[int, dict[str, Any], dict[str, str]]:
        recorded(request)  # records it; its answer is replaced
        return status, {}, {"Location": location}

    monkeypatch.setattr(graph, "answer", answer)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("template", LOCATIONS.values(), ids=LOCATIONS.keys())
def test_a_send_answered_with_a_redirect_fails_and_goes_nowhere(
    connector: WhatsappConnector,
    graph: FakeGraphAPI,
    listener: Listener,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    status: int,
    template: str,
) -> None:
    location = template.format(port=listener.port, graph_port=graph.address[1])
    _redirect_every_call(graph, monkeypatch, status, location)
    with caplog.at_level(logging.DEBUG), pytest.raises(GraphAPIError) as info:
        connector.send("15551234567", "hello")
    assert listener.authorizations() == []  # what a leak would show
    assert listener.received == []  # not even without the token
    error = info.value
    assert not isinstance(error, GraphTransportError)  # an answer, not a failed transport
    assert error.http_status == status
    assert error.retryable is False
    assert f"redirect (HTTP {status})" in str(error)
    assert len(graph.sent()) == 1  # sent once: not retried, not sent elsewhere
    for text in (str(error), repr(error), caplog.text):
        assert str(listener.port) not in text  # the Location is never shown
        assert TOKEN not in text


def test_a_media_lookup_answered_with_a_redirect_fails_and_goes_nowhere(
    connector: WhatsappConnector,
    graph: FakeGraphAPI,
    listener: Listener,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _redirect_every_call(graph, monkeypatch, 302, f"http://127.0.0.1:{listener.port}/x")
    with pytest.raises(GraphAPIError) as info:
        connector.download_media("1234567890")  # not stored: the lookup reaches answer()
    assert listener.received == []
    assert info.value.http_status == 302
    assert len(graph.media_lookups()) == 1
