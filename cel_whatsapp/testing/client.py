"""Drive a Flask app's WhatsApp webhook the way Meta does, and read back the replies.

:class:`WhatsappTestClient` pairs a :class:`~cel_whatsapp.testing.FakeGraphAPI`
with settings that point a connector at it. Posting goes through the app's
real webhook view (signature check, parsing, dispatch); replies go over a
real socket to the fake, which records them::

    client = WhatsappTestClient(graph)
    app.config.update(client.config)          # or let the pytest fixture export them
    client.send_text(app, "hello")
    assert client.sent_texts() == ["Hi! You said: hello"]
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from .. import config as _config
from .webhooks import (
    DEFAULT_PHONE_NUMBER_ID,
    DEFAULT_SENDER,
    encode,
    signed_headers,
    text_message,
    webhook,
)

if TYPE_CHECKING:
    from flask import Flask
    from werkzeug.test import TestResponse

    from ..flask.connector import WhatsappConnector
    from .fake_graph import FakeGraphAPI

#: Settings the test client hands to the app under test (none of them real).
TEST_TOKEN = "test-access-token"  # noqa: S105 - a fake credential for the fake API
TEST_VERIFY_TOKEN = "test-verify-token"  # noqa: S105
TEST_APP_SECRET = "test-app-secret"  # noqa: S105


class WhatsappTestClient:
    """Posts signed webhooks to an app and reads what it sent to the fake Graph API.

    ``graph`` is a started :class:`~cel_whatsapp.testing.FakeGraphAPI`. When
    it checks a token, ``token`` must be that token.
    """

    def __init__(
        self,
        graph: FakeGraphAPI,
        *,
        token: str = TEST_TOKEN,
        phone_number_id: str = DEFAULT_PHONE_NUMBER_ID,
        verify_token: str = TEST_VERIFY_TOKEN,
        app_secret: str | None = TEST_APP_SECRET,
        path: str = _config.DEFAULT_ENDPOINT_PREFIX,
        sender: str = DEFAULT_SENDER,
        settle_timeout: float = 10.0,
    ) -> None:
        self.graph = graph
        self.token = token
        self.phone_number_id = phone_number_id
        self.verify_token = verify_token
        self.app_secret = app_secret
        self.path = path
        self.sender = sender
        self.settle_timeout = settle_timeout
        # Apps already pointed at the fake (held weakly: they stay the test's).
        self._configured: weakref.WeakSet[Flask] = weakref.WeakSet()

    def __repr__(self) -> str:
        return f"WhatsappTestClient(base_url={self.graph.base_url!r}, path={self.path!r})"

    @property
    def config(self) -> dict[str, str]:
        """``WHATSAPP_*`` settings pointing a connector at the fake (for ``app.config``)."""
        settings = {
            _config.TOKEN_KEY: self.token,
            _config.PHONE_NUMBER_ID_KEY: self.phone_number_id,
            _config.VERIFY_TOKEN_KEY: self.verify_token,
            _config.BASE_URL_KEY: self.graph.base_url,
        }
        if self.app_secret is not None:
            settings[_config.APP_SECRET_KEY] = self.app_secret
        return settings

    def configure(self, app: Flask) -> None:
        """Point every WhatsApp connector of ``app`` at the fake, with this client's settings.

        Done by every method that posts to or verifies ``app``, so an app whose
        ``app.config`` holds real credentials (the docs' quickstart) is
        tested against the fake all the same. Registering the connector needs
        settings of some kind; the ``whatsapp`` fixture also exports these as
        ``WHATSAPP_*`` environment variables for apps that read none.
        """
        if app in self._configured:
            return
        for connector in _connectors_of(app):
            connector.configure_app(
                app,
                token=self.token,
                phone_number_id=self.phone_number_id,
                verify_token=self.verify_token,
                app_secret=self.app_secret if self.app_secret is not None else "",
                base_url=self.graph.base_url,
            )
        self._configured.add(app)

    # -- sending, as Meta would -------------------------------------------------------

    def post(
        self,
        app: Flask,
        body: Mapping[str, Any] | bytes,
        *,
        signed: bool = True,
        headers: Mapping[str, str] | None = None,
        settle: bool = True,
    ) -> TestResponse:
        """POST a whole webhook body to the app's webhook, signed like Meta signs it.

        Unless ``settle=False``, waits for replies handled in the background
        (connectors that have a ``drain`` method) before returning.
        """
        self.configure(app)
        raw = body if isinstance(body, bytes) else encode(body)
        all_headers = signed_headers(raw, self.app_secret if signed else None)
        all_headers.update(headers or {})
        response = app.test_client().post(self.path, data=raw, headers=all_headers)
        if settle:
            self.settle(app)
        return response

    def send(self, app: Flask, *messages: Mapping[str, Any], **value_options: Any) -> TestResponse:
        """POST a webhook holding ``messages`` (built with :mod:`cel_whatsapp.testing.webhooks`)."""
        value_options.setdefault("phone_number_id", self.phone_number_id)
        return self.post(app, webhook(*messages, **value_options))

    def send_text(self, app: Flask, text: str, **message_options: Any) -> TestResponse:
        """POST a webhook holding one text message from :attr:`sender`."""
        message_options.setdefault("sender", self.sender)
        return self.send(app, text_message(text, **message_options))

    def verify(
        self, app: Flask, challenge: str = "1158201444", *, token: str | None = None
    ) -> TestResponse:
        """GET the webhook the way Meta checks a subscription."""
        self.configure(app)
        return app.test_client().get(
            self.path,
            query_string={
                "hub.mode": "subscribe",
                "hub.verify_token": self.verify_token if token is None else token,
                "hub.challenge": challenge,
            },
        )

    def settle(self, app: Flask, timeout: float | None = None) -> None:
        """Wait until the app's connectors finished work they run in the background."""
        for connector in _connectors_of(app):
            drain = getattr(connector, "drain", None)
            if callable(drain):
                drain(self.settle_timeout if timeout is None else timeout)

    # -- reading what the app sent ------------------------------------------------------

    def sent(self) -> list[dict[str, Any]]:
        """The JSON payload of every message the app sent, in order (read receipts excluded)."""
        return [dict(request.json) for request in self.graph.sent()]

    def sent_texts(self) -> list[str]:
        """The body of every text message the app sent, in order."""
        return self.graph.sent_texts()

    def sent_types(self) -> list[str]:
        """The ``type`` of every message the app sent, in order."""
        return [str(payload.get("type")) for payload in self.sent()]

    def read_receipts(self) -> list[str]:
        """The ids of the messages the app marked as read, in order."""
        return [str(request.json.get("message_id")) for request in self.graph.read_receipts()]


def _connectors_of(app: Flask) -> Iterator[WhatsappConnector]:
    from ..flask.connector import CONNECTORS_KEY

    yield from app.extensions.get(CONNECTORS_KEY, {}).values()
