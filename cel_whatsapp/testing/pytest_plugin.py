"""pytest fixtures for testing bots built on cel_whatsapp.

Installed with the package and loaded by pytest through the ``pytest11``
entry point, so a project's tests can use them without any import:

``whatsapp``
    A :class:`~cel_whatsapp.testing.WhatsappTestClient`. The fixture also
    exports its ``WHATSAPP_*`` settings as environment variables for the
    test, so a connector built without arguments talks to the fake.
``whatsapp_graph``
    The :class:`~cel_whatsapp.testing.FakeGraphAPI` behind it, emptied for
    each test (script failures with ``whatsapp_graph.fail_next(...)``).

Example::

    def test_bot_greets(whatsapp):
        app = create_app()
        whatsapp.send_text(app, "hello")
        assert whatsapp.sent_texts() == ["Hi! You said: hello"]
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .client import WhatsappTestClient
    from .fake_graph import FakeGraphAPI


@pytest.fixture(scope="session")
def whatsapp_graph_server() -> Iterator[FakeGraphAPI]:
    """One fake Graph API server for the whole session (use ``whatsapp_graph`` in tests)."""
    from .client import TEST_TOKEN
    from .fake_graph import FakeGraphAPI

    with FakeGraphAPI(token=TEST_TOKEN) as server:
        yield server


@pytest.fixture
def whatsapp_graph(whatsapp_graph_server: FakeGraphAPI) -> Iterator[FakeGraphAPI]:
    """The fake Graph API, with nothing recorded and no failure scripted."""
    whatsapp_graph_server.reset()
    yield whatsapp_graph_server
    whatsapp_graph_server.reset()


@pytest.fixture
def whatsapp(whatsapp_graph: FakeGraphAPI, monkeypatch: pytest.MonkeyPatch) -> WhatsappTestClient:
    """A client that posts signed webhooks to your app and reads its replies from the fake."""
    from .client import WhatsappTestClient

    client = WhatsappTestClient(whatsapp_graph)
    for key in ("WHATSAPP_API_VERSION",):
        monkeypatch.delenv(key, raising=False)
    for key, value in client.config.items():
        monkeypatch.setenv(key, value)
    return client
