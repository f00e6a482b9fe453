"""GET verification: Meta's subscription handshake."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from cel_whatsapp import WhatsappConnector
from cel_whatsapp.core.webhook import WebhookHandler

from .conftest import VERIFY_TOKEN, MakeConnector, make_app


def _get(client: FlaskClient, path: str = "/whatsapp", **params: str):  # type: ignore[no-untyped-def]
    return client.get(path, query_string=params)


def test_correct_token_echoes_challenge_verbatim(client: FlaskClient) -> None:
    response = _get(
        client,
        **{
            "hub.mode": "subscribe",
            "hub.verify_token": VERIFY_TOKEN,
            "hub.challenge": "1158201444",
        },
    )
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert response.get_data(as_text=True) == "1158201444"


def test_the_echoed_challenge_is_never_sniffed_as_html(client: FlaskClient) -> None:
    # The challenge is whatever the GET carried: a browser must not run it.
    response = _get(
        client,
        **{
            "hub.mode": "subscribe",
            "hub.verify_token": VERIFY_TOKEN,
            "hub.challenge": "<script>alert(1)</script>",
        },
    )
    assert response.status_code == 200
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    refused = _get(client, **{"hub.mode": "subscribe", "hub.verify_token": "wrong"})
    assert refused.status_code == 403
    assert refused.headers["X-Content-Type-Options"] == "nosniff"


def test_the_core_handler_says_which_headers_to_send() -> None:
    handler = WebhookHandler(verify_token=VERIFY_TOKEN, phone_number_id="1")
    result = handler.verify(
        {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "42"}
    )
    assert (result.status, result.body) == (200, "42")
    assert result.content_type.startswith("text/plain")
    assert ("X-Content-Type-Options", "nosniff") in result.headers


@pytest.mark.parametrize("path", ["/whatsapp", "/whatsapp/"])
def test_both_paths_answer_without_redirect(client: FlaskClient, path: str) -> None:
    response = _get(
        client,
        path,
        **{"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "x y+z"},
    )
    assert response.status_code == 200
    assert response.get_data(as_text=True) == "x y+z"


@pytest.mark.parametrize(
    "params",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
        {"hub.mode": "unsubscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"},
        {"hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN},
        {},
        {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN + "x", "hub.challenge": "1"},
    ],
)
def test_anything_else_is_forbidden(client: FlaskClient, params: dict[str, str]) -> None:
    response = _get(client, **params)
    assert response.status_code == 403
    assert "1" not in response.get_data(as_text=True)


def test_odd_bytes_in_query_give_403_not_500(client: FlaskClient) -> None:
    response = client.get("/whatsapp?hub.mode=subscribe&hub.verify_token=%FF%FE&hub.challenge=%00")
    assert response.status_code == 403


def test_verification_handler_sees_challenge_or_false(make_connector: MakeConnector) -> None:
    connector: WhatsappConnector = make_connector()
    seen: list[object] = []

    @connector.on_verification
    def record(outcome: object) -> None:
        seen.append(outcome)

    client = make_app(connector).test_client()
    _get(
        client, **{"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "42"}
    )
    _get(client, **{"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "42"})
    assert seen == ["42", False]
    assert connector.verification_handler is record


def test_verification_handler_assigned_as_attribute_and_raising(
    make_connector: MakeConnector,
) -> None:
    connector = make_connector()

    def boom(outcome: object) -> None:
        raise RuntimeError("handler bug")

    connector.verification_handler = boom
    client = make_app(connector).test_client()
    response = _get(
        client, **{"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "7"}
    )
    assert response.status_code == 200
    assert response.get_data(as_text=True) == "7"
