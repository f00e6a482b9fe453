"""Shared fixtures: a fake Graph API over real sockets, an app, a client."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from cel_whatsapp import WhatsappConnector
from cel_whatsapp.testing import FakeGraphAPI, encode, signed_headers
from cel_whatsapp.testing.webhooks import DEFAULT_PHONE_NUMBER_ID

TOKEN = "EAAG-test-token-do-not-log"
VERIFY_TOKEN = "verify-me-please"
APP_SECRET = "app-secret-never-logged"
PHONE_NUMBER_ID = DEFAULT_PHONE_NUMBER_ID


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's WHATSAPP_* settings or proxies."""
    for key in list(os.environ):
        if key.startswith("WHATSAPP_") or key.lower().endswith("_proxy"):
            monkeypatch.delenv(key, raising=False)


@pytest.fixture(scope="session")
def _graph_server() -> Iterator[FakeGraphAPI]:
    with FakeGraphAPI(token=TOKEN) as server:
        yield server


@pytest.fixture
def graph(_graph_server: FakeGraphAPI) -> Iterator[FakeGraphAPI]:
    """The fake Cloud API, emptied for each test."""
    _graph_server.reset()
    yield _graph_server
    _graph_server.reset()


MakeConnector = Callable[..., WhatsappConnector]


@pytest.fixture
def make_connector(graph: FakeGraphAPI) -> MakeConnector:
    """Build a connector pointed at the fake; keywords override the defaults.

    Answers inline (inside the request) unless ``dispatch=`` says otherwise, so
    a test may read the fake's recordings as soon as its POST returns.
    """

    def make(assistant: Any = None, **kwargs: Any) -> WhatsappConnector:
        options: dict[str, Any] = {
            "token": TOKEN,
            "phone_number_id": PHONE_NUMBER_ID,
            "verify_token": VERIFY_TOKEN,
            "app_secret": APP_SECRET,
            "base_url": graph.base_url,
            "read_receipts": False,
            "assistant": assistant,
            "dispatch": "inline",
        }
        options.update(kwargs)
        return WhatsappConnector(**options)

    return make


def make_app(connector: WhatsappConnector) -> Flask:
    app = Flask("test_app")
    app.config["TESTING"] = True
    connector.init_app(app)
    return app


@pytest.fixture
def echo_connector(make_connector: MakeConnector) -> WhatsappConnector:
    return make_connector(lambda message: f"You said: {message.text}")


@pytest.fixture
def client(echo_connector: WhatsappConnector) -> FlaskClient:
    return make_app(echo_connector).test_client()


def post_webhook(
    client: FlaskClient,
    body: dict[str, Any] | bytes,
    *,
    secret: str | None = APP_SECRET,
    path: str = "/whatsapp",
    headers: dict[str, str] | None = None,
) -> Any:
    """POST a body signed the way Meta signs it."""
    raw = body if isinstance(body, bytes) else encode(body)
    all_headers = signed_headers(raw, secret)
    all_headers.update(headers or {})
    return client.post(path, data=raw, headers=all_headers)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server started for this test session (skipped when not installed)."""
    from .components import redis_server

    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[Any]:
    """A client of that server, emptied for each test."""
    redis = pytest.importorskip("redis", reason='needs the redis package: pip install -e ".[test]"')
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.close()
