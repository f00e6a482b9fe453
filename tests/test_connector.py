"""The public surface: constructor, attributes, configuration layers, factory."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from flask import Flask

import cel_whatsapp
from cel_whatsapp import (
    ConfigurationError,
    Message,
    StreamMode,
    WhatsappConnector,
    whatsapp_blueprint,
)
from cel_whatsapp.config import DEFAULT_MAX_ITEMS_PER_POST
from cel_whatsapp.testing import FakeGraphAPI, envelope, text_message, text_webhook
from cel_whatsapp.testing.webhooks import change_value, status

from .conftest import (
    APP_SECRET,
    PHONE_NUMBER_ID,
    TOKEN,
    VERIFY_TOKEN,
    MakeConnector,
    make_app,
    post_webhook,
)


def test_cel_ai_attributes() -> None:
    connector = WhatsappConnector("tok", "123", "ver")
    assert connector.token == "tok"
    assert connector.phone_number_id == "123"
    assert connector.verify_token == "ver"
    assert connector.endpoint_prefix == "/whatsapp"
    assert connector.stream_mode is StreamMode.SENTENCE
    assert connector.base_url == "https://graph.facebook.com/v25.0"
    assert connector.url == "https://graph.facebook.com/v25.0/123/messages"
    assert connector.verification_handler is None


def test_api_version_and_base_url_are_configurable() -> None:
    assert WhatsappConnector("t", "1", "v", api_version="v26.0").base_url.endswith("/v26.0")
    assert WhatsappConnector("t", "1", "v", api_version="27.0").base_url.endswith("/v27.0")
    local = WhatsappConnector("t", "1", "v", base_url="http://127.0.0.1:9/v25.0/")
    assert local.url == "http://127.0.0.1:9/v25.0/1/messages"


def test_positional_arguments_match_cel_ai() -> None:
    connector = WhatsappConnector("t", "1", "v", "/bot", StreamMode.FULL)
    assert (connector.endpoint_prefix, connector.stream_mode) == ("/bot", StreamMode.FULL)
    assert WhatsappConnector("t", "1", "v", stream_mode="direct").stream_mode is StreamMode.DIRECT
    with pytest.raises(ValueError):
        WhatsappConnector("t", "1", "v", stream_mode="paragraph")


def test_secrets_are_not_in_repr() -> None:
    connector = WhatsappConnector(TOKEN, "1", VERIFY_TOKEN, app_secret=APP_SECRET)
    text = repr(connector)
    for secret in (TOKEN, VERIFY_TOKEN, APP_SECRET):
        assert secret not in text
    assert "***" in text


def test_init_app_reads_app_config(graph: FakeGraphAPI) -> None:
    connector = WhatsappConnector(read_receipts=False)

    @connector.assistant
    def answer(message: Message) -> str:
        return "from config"

    app = Flask(__name__)
    app.config.update(
        WHATSAPP_TOKEN=TOKEN,
        WHATSAPP_PHONE_NUMBER_ID=PHONE_NUMBER_ID,
        WHATSAPP_VERIFY_TOKEN=VERIFY_TOKEN,
        WHATSAPP_APP_SECRET=APP_SECRET,
        WHATSAPP_BASE_URL=graph.base_url,
    )
    connector.init_app(app)
    with app.app_context():  # each app has its own settings
        assert connector.token == TOKEN and connector.phone_number_id == PHONE_NUMBER_ID
    client = app.test_client()
    assert post_webhook(client, text_webhook("x")).status_code == 200
    assert post_webhook(client, text_webhook("x"), secret=None).status_code == 401
    assert connector.drain(5)  # the default dispatch answers in the background
    assert graph.sent_texts() == ["from config"]


def test_explicit_arguments_win_over_config(
    graph: FakeGraphAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WHATSAPP_TOKEN", "env-token")
    connector = WhatsappConnector(TOKEN, verify_token=VERIFY_TOKEN)
    app = Flask(__name__)
    app.config.update(WHATSAPP_TOKEN="config-token", WHATSAPP_PHONE_NUMBER_ID="555")
    connector.init_app(app)
    with app.app_context():
        assert (connector.token, connector.phone_number_id) == (TOKEN, "555")


def test_environment_is_the_last_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHATSAPP_TOKEN", "env-token")
    monkeypatch.setenv("WHATSAPP_PHONE_NUMBER_ID", "777")
    monkeypatch.setenv("WHATSAPP_VERIFY_TOKEN", "env-verify")
    connector = WhatsappConnector()
    connector.init_app(Flask(__name__))
    assert (connector.token, connector.phone_number_id, connector.verify_token) == (
        "env-token",
        "777",
        "env-verify",
    )


def test_missing_settings_fail_at_start_up_saying_what_to_set() -> None:
    connector = WhatsappConnector(token="only-a-token")
    with pytest.raises(ConfigurationError) as info:
        connector.init_app(Flask(__name__))
    message = str(info.value)
    assert "WHATSAPP_PHONE_NUMBER_ID" in message and "WHATSAPP_VERIFY_TOKEN" in message
    assert "WHATSAPP_TOKEN" not in message.replace("WHATSAPP_TOKEN_", "")
    assert "API Setup" in message
    assert "only-a-token" not in message


def test_register_blueprint_directly_and_custom_prefix(graph: FakeGraphAPI) -> None:
    bp = whatsapp_blueprint(
        TOKEN,
        PHONE_NUMBER_ID,
        VERIFY_TOKEN,
        "/hooks/wa/",
        assistant=lambda m: "factory",
        app_secret=APP_SECRET,
        base_url=graph.base_url,
        read_receipts=False,
        dispatch="inline",
    )
    app = Flask(__name__)
    app.register_blueprint(bp)
    client = app.test_client()
    assert post_webhook(client, text_webhook("x"), path="/hooks/wa").status_code == 200
    assert post_webhook(client, text_webhook("x"), path="/hooks/wa/").status_code == 200
    assert post_webhook(client, text_webhook("x"), path="/whatsapp").status_code == 404
    assert graph.sent_texts() == ["factory", "factory"]


def test_two_connectors_in_one_app(graph: FakeGraphAPI) -> None:
    app = Flask(__name__)
    for name, reply in (("wa_sales", "sales"), ("wa_support", "support")):
        WhatsappConnector(
            TOKEN,
            PHONE_NUMBER_ID,
            VERIFY_TOKEN,
            f"/{name}",
            assistant=lambda m, r=reply: r,
            app_secret=APP_SECRET,
            base_url=graph.base_url,
            read_receipts=False,
            name=name,
            dispatch="inline",
        ).init_app(app)
    client = app.test_client()
    post_webhook(client, text_webhook("x"), path="/wa_support")
    post_webhook(client, text_webhook("x"), path="/wa_sales")
    assert graph.sent_texts() == ["support", "sales"]


def test_no_assistant_logs_and_acknowledges(
    graph: FakeGraphAPI, caplog: pytest.LogCaptureFixture
) -> None:
    app = Flask(__name__)
    connector = WhatsappConnector(TOKEN, PHONE_NUMBER_ID, VERIFY_TOKEN, base_url=graph.base_url)
    connector.init_app(app)
    with caplog.at_level(logging.WARNING, logger="cel_whatsapp"):
        assert post_webhook(app.test_client(), text_webhook("x"), secret=None).status_code == 200
        assert connector.drain(5)
    assert "no assistant" in caplog.text
    assert graph.requests == []


def test_public_names() -> None:
    for name in cel_whatsapp.__all__:
        assert hasattr(cel_whatsapp, name), name
    assert cel_whatsapp.__version__
    assert cel_whatsapp.__all__ == sorted(cel_whatsapp.__all__)


def test_the_errors_a_caller_may_meet_are_public() -> None:
    from cel_whatsapp.core.budget import TooManyItemsError
    from cel_whatsapp.core.dedup import StoreError
    from cel_whatsapp.errors import GraphRequestError

    for error in (GraphRequestError, StoreError, TooManyItemsError):
        assert error.__name__ in cel_whatsapp.__all__
        assert getattr(cel_whatsapp, error.__name__) is error
        assert issubclass(error, cel_whatsapp.CelWhatsappError)


@pytest.mark.parametrize(("count", "answer"), [(5, 200), (6, 413)])
def test_max_items_refuses_a_post_holding_more_with_413(
    make_connector: MakeConnector, graph: FakeGraphAPI, count: int, answer: int
) -> None:
    seen: list[str] = []
    # Five messages of one sender are 8 items: the entry, the change, the
    # sender's contact and the messages themselves.
    connector = make_connector(lambda message: seen.append(message.id), max_items=8)
    assert connector.max_items == 8
    client = make_app(connector).test_client()
    body = envelope(change_value([text_message(f"m{i}") for i in range(count)]))
    assert post_webhook(client, body).status_code == answer
    assert len(seen) == (count if answer == 200 else 0)


def test_max_items_none_takes_a_post_over_the_default_cap(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    # The entry, the change and as many statuses as the default cap: 2 items too many.
    statuses = [status(f"wamid.S{i}", "read") for i in range(DEFAULT_MAX_ITEMS_PER_POST)]
    body = envelope(change_value(statuses=statuses))
    assert make_connector().max_items == DEFAULT_MAX_ITEMS_PER_POST
    capped = make_app(make_connector()).test_client()
    assert post_webhook(capped, body).status_code == 413
    seen: list[Any] = []
    connector = make_connector(max_items=None)
    connector.on_status(seen.append)
    assert post_webhook(make_app(connector).test_client(), body).status_code == 200
    assert len(seen) == DEFAULT_MAX_ITEMS_PER_POST


@pytest.mark.parametrize("keyword", ["max_items", "max_messages_per_answer"])
@pytest.mark.parametrize("value", [0, -1, True, 2.5, "5"])
def test_caps_are_checked_by_the_constructor(keyword: str, value: Any) -> None:
    with pytest.raises(ValueError, match=f"{keyword} must be a whole number of at least 1"):
        WhatsappConnector(TOKEN, PHONE_NUMBER_ID, VERIFY_TOKEN, **{keyword: value})


def test_max_messages_per_answer_cannot_be_none() -> None:
    with pytest.raises(ConfigurationError, match="max_messages_per_answer"):
        WhatsappConnector(TOKEN, PHONE_NUMBER_ID, VERIFY_TOKEN, max_messages_per_answer=None)
