"""The Graph API client against the local fake: errors, timeouts, sessions."""

from __future__ import annotations

import socket

import pytest
import requests

from cel_whatsapp import GraphAPIError, GraphTransportError
from cel_whatsapp.core.graph import GraphClient
from cel_whatsapp.testing import FakeGraphAPI

from .conftest import TOKEN

PAYLOAD = {"messaging_product": "whatsapp", "to": "111", "type": "text", "text": {"body": "hi"}}


def test_send_returns_meta_answer(graph: FakeGraphAPI) -> None:
    answer = GraphClient(TOKEN, graph.base_url).send_message("123", PAYLOAD)
    assert answer["messages"][0]["id"].startswith("wamid.")
    [request] = graph.requests
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["content-type"] == "application/json"


def test_meta_error_is_parsed(graph: FakeGraphAPI) -> None:
    graph.fail_next(
        status=400,
        code=131047,
        subcode=2494010,
        message="Re-engagement message",
        details="Message failed to send because more than 24 hours have passed",
    )
    with pytest.raises(GraphAPIError) as info:
        GraphClient(TOKEN, graph.base_url).send_message("123", PAYLOAD)
    error = info.value
    assert (error.code, error.error_subcode, error.http_status) == (131047, 2494010, 400)
    assert error.fbtrace_id == "AFakeTrace"
    assert error.message == "Re-engagement message"
    assert "24 hours" in str(error)
    assert error.retryable is False


def test_throttling_error_is_retryable(graph: FakeGraphAPI) -> None:
    graph.fail_next(status=429, code=130429, message="Rate limit hit")
    with pytest.raises(GraphAPIError) as info:
        GraphClient(TOKEN, graph.base_url).send_message("123", PAYLOAD)
    assert info.value.retryable is True


def test_error_without_meta_body(graph: FakeGraphAPI) -> None:
    graph.fail_next(status=502, code=None)
    with pytest.raises(GraphAPIError) as info:
        GraphClient(TOKEN, graph.base_url).send_message("123", PAYLOAD)
    assert info.value.http_status == 502 and info.value.code is None and info.value.retryable


def test_wrong_token_is_code_190_and_token_not_in_error(graph: FakeGraphAPI) -> None:
    client = GraphClient("EAAG-wrong-secret-token", graph.base_url)
    with pytest.raises(GraphAPIError) as info:
        client.send_message("123", PAYLOAD)
    assert info.value.code == 190
    for text in (str(info.value), repr(info.value), repr(client)):
        assert "EAAG-wrong-secret-token" not in text


def test_connection_refused_is_a_transport_error_not_sent() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = GraphClient(TOKEN, f"http://127.0.0.1:{port}/v25.0", timeout=2)
    with pytest.raises(GraphTransportError) as info:
        client.send_message("123", PAYLOAD)
    assert info.value.request_sent is False and info.value.retryable is True


def test_read_timeout_is_a_transport_error_maybe_sent(graph: FakeGraphAPI) -> None:
    graph.fail_next(status=200, code=None, delay=1.0)
    client = GraphClient(TOKEN, graph.base_url, timeout=(2, 0.2))
    with pytest.raises(GraphTransportError) as info:
        client.send_message("123", PAYLOAD)
    assert info.value.request_sent is True and info.value.retryable is False


def test_session_resolves_proxy_settings_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    client = GraphClient(TOKEN, "https://graph.example.invalid/v25.0")
    assert client.session.trust_env is False
    assert client.session.proxies.get("https") == "http://proxy.invalid:3128"
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    local = GraphClient(TOKEN, "http://127.0.0.1:1/v25.0")
    assert "http" not in local.session.proxies


def test_given_session_is_used(graph: FakeGraphAPI) -> None:
    session = requests.Session()
    client = GraphClient(TOKEN, graph.base_url, session=session)
    assert client.session is session
    client.send_message("123", PAYLOAD)
    assert len(graph.requests) == 1
