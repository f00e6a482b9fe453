"""Media download, end to end against the local fake Graph API serving real bytes."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
from pathlib import Path

import pytest
import requests

from cel_whatsapp import (
    CelWhatsappError,
    ConfigurationError,
    GraphAPIError,
    MediaAttachment,
    MediaChecksumError,
    MediaDownloadError,
    MediaFile,
    MediaTooLargeError,
    Message,
    WhatsappConnector,
)
from cel_whatsapp.core.media import _digest
from cel_whatsapp.testing import FakeGraphAPI, any_request

from .conftest import TOKEN, MakeConnector, make_app, post_webhook

DATA = Path(__file__).parent / "data"
PHOTO = os.urandom(300_000)  # bigger than one read chunk, and than one socket buffer
PHOTO_HEX = hashlib.sha256(PHOTO).hexdigest()
PHOTO_B64 = base64.b64encode(hashlib.sha256(PHOTO).digest()).decode()


@pytest.fixture
def connector(make_connector: MakeConnector) -> WhatsappConnector:
    """Not registered on any app: download_media works with just a token."""
    return make_connector()


def test_two_step_download_returns_the_bytes(
    connector: WhatsappConnector, graph: FakeGraphAPI
) -> None:
    media_id = graph.add_media(PHOTO, mime_type="image/jpeg")
    media = connector.download_media(media_id)
    assert media == MediaFile(content=PHOTO, mime_type="image/jpeg", sha256=PHOTO_HEX, size=300_000)
    [lookup] = graph.media_lookups()
    [download] = graph.media_downloads()
    assert lookup.path == f"/v25.0/{media_id}"
    for request in (lookup, download):
        assert request.headers["authorization"] == f"Bearer {TOKEN}"


def test_download_needs_the_token(graph: FakeGraphAPI) -> None:
    media_id = graph.add_media(b"secret bytes")
    url = graph.media_url(media_id)
    assert requests.get(url, timeout=5).status_code == 401
    answer = requests.get(url, headers={"Authorization": "Bearer wrong"}, timeout=5)
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == 190
    ok = requests.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
    assert ok.content == b"secret bytes"


def test_attachment_url_and_base64_checksum_save_the_lookup(
    connector: WhatsappConnector, graph: FakeGraphAPI
) -> None:
    media_id = graph.add_media(PHOTO, mime_type="image/png")
    attachment = MediaAttachment(
        "image", media_id, "image/png", PHOTO_B64, url=graph.media_url(media_id)
    )
    media = connector.download_media(attachment)
    assert (media.content, media.mime_type, media.sha256) == (PHOTO, "image/png", PHOTO_HEX)
    assert graph.media_lookups() == []
    assert len(graph.media_downloads()) == 1


def test_expired_url_is_looked_up_again_once(
    connector: WhatsappConnector, graph: FakeGraphAPI
) -> None:
    media_id = graph.add_media(PHOTO, mime_type="image/jpeg")
    graph.expire_next_media_urls(1)
    assert connector.download_media(media_id).content == PHOTO
    assert len(graph.media_lookups()) == 2
    first, second = graph.media_downloads()
    assert first.path != second.path


def test_expired_webhook_url_falls_back_to_a_lookup(
    connector: WhatsappConnector, graph: FakeGraphAPI
) -> None:
    media_id = graph.add_media(PHOTO)
    stale = MediaAttachment("document", media_id, url=graph.media_url(media_id))
    graph.expire_media_urls()
    assert connector.download_media(stale).content == PHOTO
    assert len(graph.media_lookups()) == 1
    assert len(graph.media_downloads()) == 2


def test_url_still_expired_after_one_refresh_raises(
    connector: WhatsappConnector, graph: FakeGraphAPI
) -> None:
    media_id = graph.add_media(PHOTO)
    graph.expire_next_media_urls(5)
    with pytest.raises(GraphAPIError, match="404 again after a fresh lookup") as info:
        connector.download_media(media_id)
    assert info.value.http_status == 404
    assert len(graph.media_lookups()) == 2  # the first lookup and exactly one refresh
    assert len(graph.media_downloads()) == 2


def test_size_known_from_the_lookup_stops_before_downloading(
    connector: WhatsappConnector, graph: FakeGraphAPI
) -> None:
    media_id = graph.add_media(PHOTO)
    with pytest.raises(MediaTooLargeError, match="larger than max_bytes=1000") as info:
        connector.download_media(media_id, max_bytes=1000)
    assert (info.value.limit, info.value.size) == (1000, 300_000)
    assert graph.media_downloads() == []


def test_content_length_over_the_cap_is_refused(
    connector: WhatsappConnector, graph: FakeGraphAPI
) -> None:
    # The lookup under-reports the size; the download's Content-Length tells the truth.
    media_id = graph.add_media(PHOTO, file_size=10)
    with pytest.raises(MediaTooLargeError) as info:
        connector.download_media(media_id, max_bytes=100_000)
    assert info.value.size == 300_000
    assert len(graph.media_downloads()) == 1


def test_streamed_bytes_over_the_cap_are_cut_off(
    connector: WhatsappConnector, graph: FakeGraphAPI
) -> None:
    # No trustworthy size anywhere: chunked transfer and a lying lookup.
    media_id = graph.add_media(PHOTO, file_size=10, chunked=True)
    with pytest.raises(MediaTooLargeError, match="more than that") as info:
        connector.download_media(media_id, max_bytes=100_000)
    assert info.value.size is None
    # The same file under a cap that fits arrives whole, chunked.
    assert connector.download_media(media_id, max_bytes=300_000).content == PHOTO


def test_cap_equal_to_the_size_is_enough(connector: WhatsappConnector, graph: FakeGraphAPI) -> None:
    media_id = graph.add_media(PHOTO)
    assert connector.download_media(media_id, max_bytes=len(PHOTO)).size == len(PHOTO)


def test_checksum_from_the_lookup_must_match(
    connector: WhatsappConnector, graph: FakeGraphAPI
) -> None:
    media_id = graph.add_media(PHOTO, sha256="0" * 64)
    with pytest.raises(MediaChecksumError, match="failed its SHA-256 check") as info:
        connector.download_media(media_id)
    assert info.value.expected == "0" * 64
    assert info.value.actual == PHOTO_HEX
    assert isinstance(info.value, MediaDownloadError)
    assert isinstance(info.value, CelWhatsappError)


def test_checksum_from_the_webhook_must_match(
    connector: WhatsappConnector, graph: FakeGraphAPI
) -> None:
    media_id = graph.add_media(PHOTO)
    wrong = base64.b64encode(hashlib.sha256(b"other bytes").digest()).decode()
    with pytest.raises(MediaChecksumError):
        connector.download_media(MediaAttachment("image", media_id, sha256=wrong))
    with pytest.raises(MediaChecksumError):
        connector.download_media(media_id, sha256=hashlib.sha256(b"other").hexdigest())
    assert connector.download_media(media_id, sha256=PHOTO_B64).content == PHOTO


def test_unknown_media_id_is_metas_error(connector: WhatsappConnector, graph: FakeGraphAPI) -> None:
    with pytest.raises(GraphAPIError) as info:
        connector.download_media("1234567890")
    assert (info.value.code, info.value.http_status) == (100, 400)


def test_bad_token_is_metas_error(make_connector: MakeConnector, graph: FakeGraphAPI) -> None:
    media_id = graph.add_media(PHOTO)
    with pytest.raises(GraphAPIError) as info:
        make_connector(token="EAAG-wrong").download_media(media_id)
    assert (info.value.code, info.value.http_status) == (190, 401)
    assert graph.media_downloads() == []


def test_scripted_lookup_failure(connector: WhatsappConnector, graph: FakeGraphAPI) -> None:
    media_id = graph.add_media(PHOTO)
    # A lookup is not a message send: fail_next needs match= for it.
    graph.fail_next(status=400, code=131052, message="Media download error", match=any_request)
    with pytest.raises(GraphAPIError, match="Media download error"):
        connector.download_media(media_id)


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/steal?mid=1",
        "http://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1",
        "https://fbsbx.com.evil.example/x",
    ],
)
def test_token_is_never_sent_to_a_foreign_url(
    connector: WhatsappConnector,
    graph: FakeGraphAPI,
    url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    media_id = graph.add_media(PHOTO)
    with caplog.at_level(logging.WARNING, logger="cel_whatsapp"):
        media = connector.download_media(MediaAttachment("image", media_id, url=url))
    assert media.content == PHOTO
    assert len(graph.media_lookups()) == 1  # the foreign URL was ignored for a lookup
    assert "not a Meta media host" in caplog.text


@pytest.mark.parametrize("media_id", ["", "../me/messages", "1/messages", "12?fields=x", "1 2"])
def test_not_a_media_id(connector: WhatsappConnector, graph: FakeGraphAPI, media_id: str) -> None:
    with pytest.raises(ValueError, match="not a WhatsApp media id"):
        connector.download_media(media_id)
    assert graph.requests == []


@pytest.mark.parametrize("max_bytes", [0, -1, 1.5, True])
def test_bad_max_bytes(connector: WhatsappConnector, max_bytes: object) -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        connector.download_media("123", max_bytes=max_bytes)  # type: ignore[arg-type]


def test_without_a_token_it_says_what_to_set() -> None:
    with pytest.raises(ConfigurationError, match="access token"):
        WhatsappConnector().download_media("123")


def test_media_file_repr_leaves_the_bytes_out() -> None:
    media = MediaFile(b"\x89PNG" * 1000, "image/png", "ab" * 32, 4000)
    assert repr(media) == f"MediaFile(mime_type='image/png', size=4000, sha256='{'ab' * 32}')"


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        (PHOTO_HEX, True),
        (PHOTO_HEX.upper(), True),
        (PHOTO_B64, True),
        (PHOTO_B64.rstrip("="), True),
        (base64.urlsafe_b64encode(hashlib.sha256(PHOTO).digest()).decode(), True),
        ("not a hash", False),
        ("", False),
        (base64.b64encode(b"short").decode(), False),
    ],
)
def test_checksums_in_hex_or_base64(value: str, ok: bool) -> None:
    assert (_digest(value) == hashlib.sha256(PHOTO).digest()) is ok


def test_unreadable_checksum_is_warned_about_not_fatal(
    connector: WhatsappConnector, graph: FakeGraphAPI, caplog: pytest.LogCaptureFixture
) -> None:
    media_id = graph.add_media(PHOTO, sha256="garbage")
    with caplog.at_level(logging.WARNING, logger="cel_whatsapp"):
        assert connector.download_media(media_id).content == PHOTO
    assert "cannot read the SHA-256" in caplog.text


def test_assistant_downloads_the_photo_it_was_sent(
    make_connector: MakeConnector, graph: FakeGraphAPI, caplog: pytest.LogCaptureFixture
) -> None:
    """The whole path: webhook -> Message -> download_media -> reply."""
    media_id = graph.add_media(PHOTO, mime_type="image/jpeg")
    body = json.loads((DATA / "image.json").read_text(encoding="utf-8"))
    image = body["entry"][0]["changes"][0]["value"]["messages"][0]["image"]
    image.update(id=media_id, sha256=PHOTO_B64, url=graph.media_url(media_id))

    connector = make_connector()

    @connector.assistant
    def describe(message: Message) -> str:
        [attachment] = message.attachments
        assert isinstance(attachment, MediaAttachment)
        media = connector.download_media(attachment)
        return f"{media.size} bytes of {media.mime_type}"

    client = make_app(connector).test_client()
    with caplog.at_level(logging.DEBUG):
        assert post_webhook(client, body).status_code == 200
    assert graph.sent_texts() == ["300000 bytes of image/jpeg"]
    assert TOKEN not in caplog.text


def test_uploaded_media_downloads_back(connector: WhatsappConnector, graph: FakeGraphAPI) -> None:
    media_id = connector.upload_media(PHOTO, "image/png", "photo.png")
    media = connector.download_media(media_id)
    assert (media.content, media.mime_type, media.sha256) == (PHOTO, "image/png", PHOTO_HEX)
