"""Download the media a user sent: photos, voice notes, videos, documents, stickers.

A webhook carries a media id, not the bytes. Meta's two-step download
(https://developers.facebook.com/docs/whatsapp/cloud-api/reference/media):

1. ``GET /{media-id}`` answers a short-lived URL (valid about 5 minutes) with
   the file's ``mime_type``, ``sha256`` and ``file_size``;
2. ``GET {url}`` with the same bearer token answers the bytes.

:func:`download_media` streams the bytes under a size cap, checks them
against the SHA-256 Meta sent, and looks the URL up once more if the first
one has expired (404). The token goes only where :mod:`cel_whatsapp.core._trust`
allows: the Graph API itself and Meta's media hosts.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
from dataclasses import dataclass
from urllib.parse import urljoin

import requests

from ..config import DEFAULT_MEDIA_MAX_BYTES
from ..errors import CelWhatsappError, GraphAPIError, GraphTransportError
from ..model import MediaAttachment
from ._trust import TRUSTED_MEDIA_DOMAINS, token_url
from .graph import REQUEST_ERRORS, GraphClient, chainable, error_from_response, int_or_none

__all__ = [
    "TRUSTED_MEDIA_DOMAINS",
    "MediaChecksumError",
    "MediaDownloadError",
    "MediaFile",
    "MediaTooLargeError",
    "download_media",
]

logger = logging.getLogger(__name__)

_CHUNK = 64 * 1024
# Redirects followed per download URL, each to a URL the token may go to.
_MAX_REDIRECTS = 3
_MEDIA_ID = re.compile(r"[0-9A-Za-z_\-]{1,256}")


class MediaDownloadError(CelWhatsappError):
    """The media was fetched but cannot be handed over (too large, corrupted)."""


class MediaTooLargeError(MediaDownloadError):
    """The media is larger than ``max_bytes``; nothing more than the cap was read."""

    def __init__(self, media_id: str, *, limit: int, size: int | None) -> None:
        told = f"{size} bytes" if size is not None else "more than that"
        super().__init__(
            f"media {media_id} is larger than max_bytes={limit} ({told}); "
            "raise max_bytes to download it"
        )
        self.media_id = media_id
        self.limit = limit
        self.size = size


class MediaChecksumError(MediaDownloadError):
    """The downloaded bytes do not match the SHA-256 Meta sent for them."""

    def __init__(self, media_id: str, *, expected: str, actual: str) -> None:
        super().__init__(
            f"media {media_id} failed its SHA-256 check (expected {expected}, got {actual}); "
            "the download was corrupted or replaced, try again"
        )
        self.media_id = media_id
        self.expected = expected
        self.actual = actual


@dataclass(frozen=True, slots=True, repr=False)
class MediaFile:
    """A downloaded media file."""

    content: bytes
    #: The type Meta gave the file (e.g. ``"image/jpeg"``, ``"audio/ogg; codecs=opus"``).
    mime_type: str | None
    #: SHA-256 of ``content``, as lowercase hex.
    sha256: str
    #: ``len(content)`` in bytes.
    size: int

    def __repr__(self) -> str:
        return f"MediaFile(mime_type={self.mime_type!r}, size={self.size}, sha256={self.sha256!r})"


@dataclass(slots=True)
class _Lookup:
    url: str
    mime_type: str | None
    sha256: str | None
    file_size: int | None


class _ExpiredURLError(Exception):
    """The download URL answered 404: look it up again."""


def download_media(
    graph: GraphClient,
    media: str | MediaAttachment,
    *,
    max_bytes: int = DEFAULT_MEDIA_MAX_BYTES,
    sha256: str | None = None,
) -> MediaFile:
    """Download one media file through ``graph``.

    ``media`` is a media id or a :class:`~cel_whatsapp.MediaAttachment` (whose
    ``sha256`` is then checked and whose ``url``, when Meta sent one, saves
    the lookup). ``sha256`` (hex or base64) adds a checksum to verify.

    Raises :class:`~cel_whatsapp.GraphAPIError` when Meta refuses (unknown or
    expired media id, bad token, a URL still expired after one fresh lookup)
    or when the lookup or a redirect leads off Meta's media hosts (see
    :mod:`cel_whatsapp.core._trust`; a webhook ``url`` off them is only ignored),
    :class:`MediaTooLargeError` past ``max_bytes`` and
    :class:`MediaChecksumError` when the bytes do not match.
    """
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
        raise ValueError(f"max_bytes must be a positive int, not {max_bytes!r}")
    expected: list[str] = [sha256] if sha256 else []
    url: str | None = None
    mime_type: str | None = None
    media_id = media.media_id if isinstance(media, MediaAttachment) else media
    if not isinstance(media_id, str) or not _MEDIA_ID.fullmatch(media_id):
        raise ValueError(f"not a WhatsApp media id: {media_id!r}")
    if isinstance(media, MediaAttachment):
        mime_type = media.mime_type
        if media.sha256:
            expected.append(media.sha256)
        if media.url:
            url = token_url(media.url, graph.base_url)
            if url is None:
                # The id only: the URL may hold anything, signed query included.
                logger.warning(
                    "ignoring the url of media %s: not a Meta media host; looking it up",
                    media_id,
                )

    state = _Download(media_id, max_bytes, mime_type, expected)
    if url is None:
        url = state.look_up(graph)
    try:
        content, content_type = _fetch(graph, url, media_id, max_bytes)
    except _ExpiredURLError:
        # Media URLs live about 5 minutes: ask for a fresh one, once.
        logger.debug("the URL of media %s has expired; looking it up again", media_id)
        url = state.look_up(graph)
        try:
            content, content_type = _fetch(graph, url, media_id, max_bytes)
        except _ExpiredURLError:
            raise GraphAPIError(
                f"media {media_id} could not be downloaded: its URL answered 404 again "
                "after a fresh lookup (media ids from webhooks expire after 7 days)",
                http_status=404,
            ) from None
    digest = hashlib.sha256(content).hexdigest()
    _verify(media_id, digest, state.expected)
    logger.debug("downloaded media %s (%d bytes)", media_id, len(content))
    return MediaFile(
        content=content,
        mime_type=state.mime_type or content_type,
        sha256=digest,
        size=len(content),
    )


@dataclass(slots=True)
class _Download:
    """What is known about one download so far."""

    media_id: str
    max_bytes: int
    mime_type: str | None
    expected: list[str]

    def look_up(self, graph: GraphClient) -> str:
        """``GET /{media-id}``: record what Meta says; return the download URL."""
        info = graph.request("GET", self.media_id)
        answered = info.get("url")
        if not isinstance(answered, str) or not answered:
            raise GraphAPIError(f"the lookup of media {self.media_id} answered no download url")
        url = token_url(answered, graph.base_url)
        if url is None:
            raise GraphAPIError(
                f"the lookup of media {self.media_id} answered a download url that is not on "
                "a Meta media host; it was not fetched, so that the access token stays private"
            )
        mime_type = info.get("mime_type")
        if isinstance(mime_type, str) and mime_type:
            self.mime_type = mime_type
        sha256 = info.get("sha256")
        if isinstance(sha256, str) and sha256 and sha256 not in self.expected:
            self.expected.append(sha256)
        size = int_or_none(info.get("file_size"))
        if size is not None and size > self.max_bytes:
            raise MediaTooLargeError(self.media_id, limit=self.max_bytes, size=size)
        return url


def _fetch(graph: GraphClient, url: str, media_id: str, max_bytes: int) -> tuple[bytes, str | None]:
    """GET the media URL with the bearer token, reading at most ``max_bytes``.

    ``url`` passed :func:`~cel_whatsapp.core._trust.token_url`, and so must every
    redirect: they are followed here, not by requests. requests keeps the
    token when ``urllib.parse`` reads the same host name in the Location, and
    ``https://127.0.0.1:8443\\@lookaside.fbsbx.com/`` reads so while urllib3
    connects to 127.0.0.1 (a case in tests/test_media_trust.py).
    """
    for _ in range(_MAX_REDIRECTS + 1):
        response = graph.call("GET", url, target=f"the host of media {media_id}", stream=True)
        with response:
            if not response.is_redirect:
                return _read(response, media_id, max_bytes)
            target = token_url(urljoin(url, response.headers["Location"]), graph.base_url)
        if target is None:
            raise GraphAPIError(
                f"the download of media {media_id} was redirected off Meta's media hosts; "
                "not followed, so that the access token stays private",
                http_status=response.status_code,
                response=response,
            )
        url = target
    raise GraphAPIError(
        f"the download of media {media_id} was redirected more than {_MAX_REDIRECTS} times",
        http_status=response.status_code,
        response=response,
    )


def _read(response: requests.Response, media_id: str, max_bytes: int) -> tuple[bytes, str | None]:
    """The body of a media download's answer, at most ``max_bytes`` of it."""
    if response.status_code == 404:
        raise _ExpiredURLError
    if response.status_code >= 400:
        raise error_from_response(response)
    declared = int_or_none(response.headers.get("Content-Length"))
    if declared is not None and declared > max_bytes:
        raise MediaTooLargeError(media_id, limit=max_bytes, size=declared)
    chunks: list[bytes] = []
    received = 0
    try:
        for chunk in response.iter_content(_CHUNK):
            received += len(chunk)
            if received > max_bytes:
                raise MediaTooLargeError(media_id, limit=max_bytes, size=None)
            chunks.append(chunk)
    except REQUEST_ERRORS as exc:
        raise GraphTransportError(
            f"the download of media {media_id} broke off after {received} bytes "
            f"({type(exc).__name__})",
            request_sent=True,
            response=response,
        ) from chainable(exc)
    return b"".join(chunks), response.headers.get("Content-Type")


def _verify(media_id: str, actual_hex: str, expected: list[str]) -> None:
    actual = bytes.fromhex(actual_hex)
    for value in expected:
        digest = _digest(value)
        if digest is None:
            logger.warning("media %s: cannot read the SHA-256 Meta sent; not checked", media_id)
        elif digest != actual:
            raise MediaChecksumError(media_id, expected=value, actual=actual_hex)


_HEX_DIGEST = re.compile(r"[0-9A-Fa-f]{64}")
# The standard or the URL-safe alphabet, padded to a multiple of 4 characters.
_BASE64 = re.compile(r"(?:[A-Za-z0-9+/_-]{4})*(?:[A-Za-z0-9+/_-]{2}==|[A-Za-z0-9+/_-]{3}=)?")


def _digest(value: str) -> bytes | None:
    """A SHA-256 given as hex (Graph lookups) or base64 (webhooks), as 32 bytes."""
    text = value.strip()
    if _HEX_DIGEST.fullmatch(text):
        return bytes.fromhex(text)
    padded = text + "=" * (-len(text) % 4)
    if _BASE64.fullmatch(padded):
        raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"))
        if len(raw) == 32:
            return raw
    return None
