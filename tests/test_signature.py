"""X-Hub-Signature-256: checked over the raw body, before any parsing."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging

import pytest
from flask.testing import FlaskClient

from cel_whatsapp.core import signature
from cel_whatsapp.testing import FakeGraphAPI, encode, text_webhook

from .conftest import APP_SECRET, MakeConnector, make_app, post_webhook


def test_signed_body_is_answered(client: FlaskClient, graph: FakeGraphAPI) -> None:
    response = post_webhook(client, text_webhook("hi"))
    assert response.status_code == 200
    assert graph.sent_texts() == ["You said: hi"]


def test_missing_header_is_401_and_nothing_is_parsed(
    client: FlaskClient, graph: FakeGraphAPI
) -> None:
    response = post_webhook(client, text_webhook("hi"), secret=None)
    assert response.status_code == 401
    assert "X-Hub-Signature-256" in response.get_json()["error"]
    assert graph.requests == []


@pytest.mark.parametrize(
    "header",
    [
        "sha256=" + "0" * 64,  # well-formed, wrong
        "sha1=" + "0" * 40,  # the old header's algorithm
        "sha256=abc",  # too short
        "0" * 64,  # no prefix
        "sha256=" + "z" * 64,  # not hex
        "sha256=" + "é" * 64,  # not ASCII
    ],
)
def test_malformed_or_wrong_header_is_403(
    client: FlaskClient, graph: FakeGraphAPI, header: str
) -> None:
    raw = encode(text_webhook("hi"))
    response = client.post(
        "/whatsapp",
        data=raw,
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": header},
    )
    assert response.status_code == 403
    assert graph.requests == []


def test_signature_over_a_different_secret_is_403(client: FlaskClient, graph: FakeGraphAPI) -> None:
    response = post_webhook(client, text_webhook("hi"), secret="another-apps-secret")
    assert response.status_code == 403
    assert graph.sent() == []


def test_non_ascii_text_signed_as_meta_signs_it(client: FlaskClient, graph: FakeGraphAPI) -> None:
    """Meta escapes non-ASCII as \\uXXXX and signs those exact bytes."""
    body = text_webhook("Olá, 世界 👋 ñandú")
    raw = json.dumps(body, separators=(",", ":")).encode("ascii")  # ensure_ascii, like Meta
    assert b"\\u4e16" in raw
    header = "sha256=" + hmac.new(APP_SECRET.encode(), raw, hashlib.sha256).hexdigest()
    response = client.post(
        "/whatsapp",
        data=raw,
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": header},
    )
    assert response.status_code == 200
    assert graph.sent_texts() == ["You said: Olá, 世界 👋 ñandú"]


def test_raw_utf8_body_is_verified_byte_for_byte(client: FlaskClient, graph: FakeGraphAPI) -> None:
    raw = json.dumps(text_webhook("ça va?"), ensure_ascii=False).encode("utf-8")
    reserialised = json.dumps(json.loads(raw)).encode()  # what a careless check would hash
    assert reserialised != raw
    response = client.post(
        "/whatsapp",
        data=raw,
        headers={
            "Content-Type": "application/json",
            "X-Hub-Signature-256": signature.sign(raw, APP_SECRET),
        },
    )
    assert response.status_code == 200
    assert graph.sent_texts() == ["You said: ça va?"]


def test_uppercase_hex_digest_is_accepted() -> None:
    raw = b'{"entry":[]}'
    header = signature.sign(raw, APP_SECRET)
    signature.verify(raw, "sha256=" + header[7:].upper(), APP_SECRET)  # raises if refused
    with pytest.raises(signature.SignatureError):
        signature.verify(raw, "sha256=" + "A" * 64, APP_SECRET)


def test_no_app_secret_accepts_unsigned_and_warns_once(
    make_connector: MakeConnector, graph: FakeGraphAPI, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="cel_whatsapp"):
        client = make_app(make_connector(lambda m: "ok", app_secret=None)).test_client()
        post_webhook(client, text_webhook("a"), secret=None)
        post_webhook(client, text_webhook("b"), secret=None)
    warnings = [r for r in caplog.records if "NOT authenticated" in r.getMessage()]
    assert len(warnings) == 1
    assert graph.sent_texts() == ["ok", "ok"]
