"""A fake of the WhatsApp Cloud API: a real HTTP server on 127.0.0.1.

It records every request it receives and answers the way the Graph API does,
including Meta-shaped errors on demand. Point a connector's ``base_url`` at
:attr:`FakeGraphAPI.base_url`::

    with FakeGraphAPI() as graph:
        connector = WhatsappConnector(TOKEN, "123", "verify", base_url=graph.base_url)
        ...
        assert graph.sent_texts() == ["Hello!"]
"""

from __future__ import annotations

import email.message
import email.utils
import hashlib
import itertools
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ...config import DEFAULT_API_VERSION, TEXT_LIMIT

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the fake received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: Any
    at: float = field(default_factory=time.monotonic)

    @property
    def is_message(self) -> bool:
        """A send (``POST /{id}/messages`` with a ``type``), not a read receipt."""
        return (
            self.method == "POST"
            and self.path.endswith("/messages")
            and isinstance(self.json, dict)
            and "type" in self.json
        )

    @property
    def is_read_receipt(self) -> bool:
        return (
            self.method == "POST"
            and self.path.endswith("/messages")
            and isinstance(self.json, dict)
            and self.json.get("status") == "read"
        )


#: Path of the fake's media download URLs (outside the versioned Graph paths, like Meta's).
MEDIA_DOWNLOAD_PATH = "_media"


def any_request(request: RecordedRequest) -> bool:
    """``fail_next(match=any_request)``: fail whatever request comes next."""
    return True


def _is_message(request: RecordedRequest) -> bool:
    return request.is_message


@dataclass(frozen=True, slots=True)
class StoredMedia:
    """A media file the fake serves (see :meth:`FakeGraphAPI.add_media`)."""

    content: bytes
    mime_type: str
    sha256: str
    file_size: int
    chunked: bool = False


@dataclass(slots=True)
class ScriptedFailure:
    """An error the fake answers with instead of succeeding."""

    status: int
    error: dict[str, Any] | None
    times: int
    match: Callable[[RecordedRequest], bool] | None = None
    retry_after: float | None = None
    delay: float = 0.0


class FakeGraphAPI:
    """A local Graph API for tests and the simulator.

    ``token``, when given, must arrive as ``Authorization: Bearer <token>``;
    other requests get Meta's error 190 (invalid access token).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_version: str = DEFAULT_API_VERSION,
        token: str | None = None,
    ) -> None:
        self.api_version = api_version
        self.token = token
        self.requests: list[RecordedRequest] = []
        self._failures: list[ScriptedFailure] = []
        self._lock = threading.Condition()
        self._ids = itertools.count(1)
        #: Media received by ``POST /{phone-number-id}/media``, by media id.
        self.uploads: dict[str, UploadedMedia] = {}
        self._init_media()
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def root_url(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}"

    @property
    def base_url(self) -> str:
        """What to pass as a connector's ``base_url``."""
        return f"{self.root_url}/{self.api_version}"

    def start(self) -> FakeGraphAPI:
        if self._thread is None:
            # A short poll: stop() waits up to one poll for the loop to notice,
            # and a test suite starts and stops many fakes.
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="fake-graph-api",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> FakeGraphAPI:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- scripting ---------------------------------------------------------------

    def fail_next(
        self,
        *,
        status: int = 400,
        code: int | None = 100,
        message: str = "Scripted failure",
        subcode: int | None = None,
        error_type: str = "OAuthException",
        details: str | None = None,
        times: int = 1,
        match: Callable[[RecordedRequest], bool] | None = None,
        retry_after: float | None = None,
        raw_error: dict[str, Any] | None = None,
        delay: float = 0.0,
    ) -> None:
        """Answer the next ``times`` matching requests with a Meta error.

        By default only *message sends* match (``POST /{id}/messages`` with a
        ``type``): read receipts, typing indicators, media lookups and uploads
        go through. ``match`` picks other requests: a predicate on the
        :class:`RecordedRequest`, or :func:`any_request` for whatever comes next.
        ``code=None`` with ``raw_error=None`` answers with no error object.
        ``delay`` holds the answer back that many seconds.
        """
        error: dict[str, Any] | None = raw_error
        if error is None and code is not None:
            error = {
                "message": message,
                "type": error_type,
                "code": code,
                "fbtrace_id": "AFakeTrace",
            }
            if subcode is not None:
                error["error_subcode"] = subcode
            if details is not None:
                error["error_data"] = {"messaging_product": "whatsapp", "details": details}
        with self._lock:
            self._failures.append(
                ScriptedFailure(status, error, times, match or _is_message, retry_after, delay)
            )

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.uploads.clear()
            self._failures.clear()
            self._reset_media()

    # -- reading what was received -------------------------------------------------

    def sent(self) -> list[RecordedRequest]:
        """Requests that sent a message (read receipts excluded)."""
        with self._lock:
            return [r for r in self.requests if r.is_message]

    def sent_texts(self) -> list[str]:
        """The bodies of every text message sent, in order."""
        return [r.json["text"]["body"] for r in self.sent() if r.json.get("type") == "text"]

    def sent_types(self) -> list[str]:
        """The ``type`` of every message sent, in order (as ``WhatsappTestClient.sent_types``)."""
        return [str(r.json.get("type")) for r in self.sent()]

    def read_receipts(self) -> list[RecordedRequest]:
        """Requests that marked a message read (with or without the typing indicator)."""
        with self._lock:
            return [r for r in self.requests if r.is_read_receipt]

    def wait_for(self, predicate: Callable[[FakeGraphAPI], bool], timeout: float = 5.0) -> bool:
        """Block until ``predicate(self)`` holds (re-checked on every request) or time runs out."""
        deadline = time.monotonic() + timeout
        with self._lock:  # re-entrant: the predicate may read the recordings
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(min(remaining, 0.05))
            return True

    # -- media (GET /{media-id} and the download URL it hands out) --------------------
    #
    # Meta's two-step download: GET /{version}/{media-id} answers a short-lived
    # URL, and GET on that URL with the bearer token answers the bytes. Tests
    # store bytes with add_media() and script expiry (404) with
    # expire_media_urls() / expire_next_media_urls(). Files received by the
    # upload endpoint can be downloaded the same way, as on Meta's servers.

    def _init_media(self) -> None:
        self._media: dict[str, StoredMedia] = {}
        self._media_urls: dict[str, str] = {}  # url token -> media id
        self._expired_urls: set[str] = set()
        self._expire_next = 0
        self._media_ids = itertools.count(1)

    def _reset_media(self) -> None:
        self._media.clear()
        self._media_urls.clear()
        self._expired_urls.clear()
        self._expire_next = 0

    def add_media(
        self,
        content: bytes,
        *,
        mime_type: str = "application/octet-stream",
        media_id: str | None = None,
        sha256: str | None = None,
        file_size: int | None = None,
        chunked: bool = False,
    ) -> str:
        """Store ``content`` as a media file and return its media id.

        ``sha256`` and ``file_size`` override what the lookup reports (to
        script a checksum mismatch or a lying size); ``chunked`` serves the
        bytes without a Content-Length.
        """
        with self._lock:
            media_id = media_id or f"{9100000000000000 + next(self._media_ids)}"
            self._media[media_id] = StoredMedia(
                content=bytes(content),
                mime_type=mime_type,
                sha256=sha256 if sha256 is not None else hashlib.sha256(content).hexdigest(),
                file_size=file_size if file_size is not None else len(content),
                chunked=chunked,
            )
        return media_id

    def _stored_media(self, media_id: str) -> StoredMedia | None:
        """Media added with add_media() or uploaded; call with the lock held."""
        stored = self._media.get(media_id)
        if stored is None and media_id in self.uploads:
            upload = self.uploads[media_id]
            stored = StoredMedia(
                content=upload.data,
                mime_type=upload.mime_type,
                sha256=hashlib.sha256(upload.data).hexdigest(),
                file_size=len(upload.data),
            )
        return stored

    def media_url(self, media_id: str) -> str:
        """A fresh download URL for stored media, as a lookup (or a webhook's ``url``) gives."""
        with self._lock:
            if self._stored_media(media_id) is None:
                raise KeyError(media_id)
            token = secrets.token_urlsafe(12)
            self._media_urls[token] = media_id
            if self._expire_next > 0:
                self._expire_next -= 1
                self._expired_urls.add(token)
        return f"{self.root_url}/{MEDIA_DOWNLOAD_PATH}/{token}?mid={media_id}"

    def expire_media_urls(self) -> None:
        """Every download URL handed out so far answers 404 from now on."""
        with self._lock:
            self._expired_urls.update(self._media_urls)

    def expire_next_media_urls(self, count: int = 1) -> None:
        """The next ``count`` download URLs handed out are already expired (404)."""
        with self._lock:
            self._expire_next += count

    def media_lookups(self) -> list[RecordedRequest]:
        """``GET /{version}/{media-id}`` requests received, in order."""
        with self._lock:
            return [
                r
                for r in self.requests
                if r.method == "GET" and not r.path.startswith(f"/{MEDIA_DOWNLOAD_PATH}/")
            ]

    def media_downloads(self) -> list[RecordedRequest]:
        """Requests to download URLs received, in order."""
        with self._lock:
            return [r for r in self.requests if r.path.startswith(f"/{MEDIA_DOWNLOAD_PATH}/")]

    def answer_media(self, request: RecordedRequest) -> tuple[int, bytes, dict[str, str]] | None:
        """Answer a media request as (status, body bytes, headers); ``None`` if not one."""
        if request.method != "GET":
            return None
        parts = [p for p in request.path.split("?")[0].split("/") if p]
        if len(parts) == 2 and parts[0] == MEDIA_DOWNLOAD_PATH:
            return self._download_media(request, parts[1])
        with self._lock:
            known = (
                len(parts) == 2
                and parts[0] == self.api_version
                and self._stored_media(parts[1]) is not None
            )
        if known:
            return self._look_up_media(request, parts[1])
        return None

    def _media_refusal(self, request: RecordedRequest) -> tuple[int, bytes, dict[str, str]] | None:
        """A scripted failure or a missing/wrong bearer token, as Meta answers it."""
        failure = self._record(request)
        if failure is not None:
            if failure.delay:
                time.sleep(failure.delay)
            headers = {"Content-Type": "application/json"}
            if failure.retry_after is not None:
                headers["Retry-After"] = f"{failure.retry_after:g}"
            body = {"error": failure.error} if failure.error is not None else {}
            return failure.status, json.dumps(body).encode("utf-8"), headers
        authorization = request.headers.get("authorization", "")
        authorized = (
            authorization == f"Bearer {self.token}"
            if self.token is not None
            else authorization.startswith("Bearer ") and len(authorization) > len("Bearer ")
        )
        if not authorized:
            body = _error(190, "Invalid OAuth access token.", "OAuthException")
            return 401, json.dumps(body).encode("utf-8"), {"Content-Type": "application/json"}
        return None

    def _look_up_media(
        self, request: RecordedRequest, media_id: str
    ) -> tuple[int, bytes, dict[str, str]]:
        refusal = self._media_refusal(request)
        if refusal is not None:
            return refusal
        with self._lock:
            stored = self._stored_media(media_id)
        if stored is None:  # deleted by a reset() since answer_media() saw it
            body = _error(
                100,
                f"Unsupported get request. Object {media_id} does not exist.",
                "GraphMethodException",
            )
            return 400, json.dumps(body).encode("utf-8"), {"Content-Type": "application/json"}
        url = self.media_url(media_id)
        body = {
            "messaging_product": "whatsapp",
            "url": url,
            "mime_type": stored.mime_type,
            "sha256": stored.sha256,
            "file_size": stored.file_size,
            "id": media_id,
        }
        return 200, json.dumps(body).encode("utf-8"), {"Content-Type": "application/json"}

    def _download_media(
        self, request: RecordedRequest, token: str
    ) -> tuple[int, bytes, dict[str, str]]:
        refusal = self._media_refusal(request)
        if refusal is not None:
            return refusal
        with self._lock:
            media_id = self._media_urls.get(token)
            stored = self._stored_media(media_id) if media_id is not None else None
            expired = token in self._expired_urls
        if stored is None or expired:
            body = _error(100, "The media URL has expired or does not exist.", "OAuthException")
            return 404, json.dumps(body).encode("utf-8"), {"Content-Type": "application/json"}
        headers = {"Content-Type": stored.mime_type}
        if stored.chunked:
            headers["Transfer-Encoding"] = "chunked"
        return 200, stored.content, headers

    # -- answering -------------------------------------------------------------------

    def _record(self, request: RecordedRequest) -> ScriptedFailure | None:
        with self._lock:
            self.requests.append(request)
            failure = None
            for candidate in self._failures:
                if candidate.match is None or candidate.match(request):  # None: any request
                    failure = candidate
                    break
            if failure is not None:
                failure.times -= 1
                if failure.times <= 0:
                    self._failures.remove(failure)
            self._lock.notify_all()
            return failure

    def answer(self, request: RecordedRequest) -> tuple[int, dict[str, Any], dict[str, str]]:
        """Decide the (status, JSON body, extra headers) for a request."""
        failure = self._record(request)
        if failure is not None:
            if failure.delay:
                time.sleep(failure.delay)
            headers = {}
            if failure.retry_after is not None:
                headers["Retry-After"] = f"{failure.retry_after:g}"
            body = {"error": failure.error} if failure.error is not None else {}
            return failure.status, body, headers
        if (
            self.token is not None
            and request.headers.get("authorization") != f"Bearer {self.token}"
        ):
            return 401, _error(190, "Invalid OAuth access token.", "OAuthException"), {}
        parts = [p for p in request.path.split("?")[0].split("/") if p]
        if len(parts) >= 2 and parts[0] == self.api_version:
            parts = parts[1:]
        else:
            return 400, _error(2635, "Unknown or missing API version", "OAuthException"), {}
        if request.method == "POST" and len(parts) == 2 and parts[1] == "messages":
            return self._messages(request)
        if request.method == "POST" and len(parts) == 2 and parts[1] == "media":
            return self._upload(request)
        return 400, _error(100, f"Unsupported {request.method} request", "GraphMethodException"), {}

    def _messages(self, request: RecordedRequest) -> tuple[int, dict[str, Any], dict[str, str]]:
        body = request.json
        if not isinstance(body, dict) or body.get("messaging_product") != "whatsapp":
            return (
                400,
                _error(
                    100, "(#100) The parameter messaging_product is required.", "OAuthException"
                ),
                {},
            )
        if body.get("status") == "read":
            if not body.get("message_id"):
                return (
                    400,
                    _error(100, "(#100) The parameter message_id is required.", "OAuthException"),
                    {},
                )
            return 200, {"success": True}, {}
        to, recipient = body.get("to"), body.get("recipient")
        if not to and not recipient:
            return 400, _error(100, "(#100) The parameter to is required.", "OAuthException"), {}
        message_type = body.get("type", "text")
        content = body.get(message_type)
        if not isinstance(content, (dict, list)):  # contacts is a list
            return (
                400,
                _error(100, f"(#100) The parameter {message_type} is required.", "OAuthException"),
                {},
            )
        if message_type == "text" and isinstance(content, dict):
            text = content.get("body")
            if not isinstance(text, str) or not text:
                return (
                    400,
                    _error(100, "(#100) The parameter text['body'] is required.", "OAuthException"),
                    {},
                )
            if len(text) > TEXT_LIMIT:
                return (
                    400,
                    _error(
                        100,
                        "(#100) Param text['body'] must be at most 4096 characters long.",
                        "OAuthException",
                    ),
                    {},
                )
        refused = check_send_payload(body)
        if refused is not None:
            return 400, refused, {}
        wamid = f"wamid.FAKE{next(self._ids):08d}"
        contact = (
            {"input": to, "wa_id": str(to).lstrip("+")}
            if to
            else {"input": recipient, "user_id": recipient}
        )
        return (
            200,
            {"messaging_product": "whatsapp", "contacts": [contact], "messages": [{"id": wamid}]},
            {},
        )

    # -- media upload (see the block at the end of this module) ---------------------

    def _upload(self, request: RecordedRequest) -> tuple[int, dict[str, Any], dict[str, str]]:
        """``POST /{phone-number-id}/media``: multipart with ``messaging_product``, ``type``, ``file``."""
        upload = parse_upload(request)
        if not isinstance(upload, UploadedMedia):
            return 400, upload, {}
        media_id = f"{9_000_000_000_000 + next(self._ids)}"
        with self._lock:
            self.uploads[media_id] = upload
        return 200, {"id": media_id}, {}


def _error(code: int, message: str, error_type: str) -> dict[str, Any]:
    return {
        "error": {"message": message, "type": error_type, "code": code, "fbtrace_id": "AFakeTrace"}
    }


def _handler_for(fake: FakeGraphAPI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # One write per answer and no Nagle delay: otherwise each keep-alive
        # request waits ~40 ms for a delayed ACK.
        wbufsize = 64 * 1024
        disable_nagle_algorithm = True

        def handle(self) -> None:
            # A client may hang up mid-answer (a media download cut at its size
            # cap): that is not a server error worth a traceback.
            try:
                super().handle()
            except (ConnectionResetError, BrokenPipeError):
                logger.debug("fake graph: the client closed the connection early")

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                decoded: Any = json.loads(raw) if raw else None
            except ValueError:
                decoded = None
            request = RecordedRequest(
                method=self.command,
                path=self.path,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=raw,
                json=decoded,
            )
            media = fake.answer_media(request)
            if media is not None:
                status, payload, headers = media
            else:
                status, body, extra = fake.answer(request)
                payload = json.dumps(body).encode("utf-8")
                headers = {"Content-Type": "application/json", **extra}
            chunked = headers.get("Transfer-Encoding") == "chunked"
            self.send_response(status)
            if not chunked:
                self.send_header("Content-Length", str(len(payload)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            if not chunked:
                self.wfile.write(payload)
                return
            for start in range(0, len(payload), 16 * 1024):
                piece = payload[start : start + 16 * 1024]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")

        do_GET = do_POST = do_DELETE = _handle  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            logger.debug("fake graph: " + format, *args)

    return Handler


# == Outbound payloads: validation of sends and media uploads ===================
#
# The fake refuses what Meta refuses, so a test that passes here does not fail
# against the real API for a limit we forgot. Limits are those of Meta's Cloud
# API reference for each message type; error codes are Meta's: 100 (invalid
# parameter) and 131009 (parameter value is not valid), with the reason in
# ``error_data.details`` the way Meta puts it there.

_MEDIA_TYPES = ("image", "video", "audio", "document", "sticker")
_CAPTIONED = ("image", "video", "document")
_SEND_TYPES = (
    "text",
    "location",
    "contacts",
    "interactive",
    "reaction",
    "template",
    *_MEDIA_TYPES,
)

#: Meta's supported media types and their size limits, in bytes.
_UPLOAD_LIMITS: dict[str, int] = {
    "audio/aac": 16 * 2**20,
    "audio/amr": 16 * 2**20,
    "audio/mpeg": 16 * 2**20,
    "audio/mp4": 16 * 2**20,
    "audio/ogg": 16 * 2**20,
    "text/plain": 100 * 2**20,
    "application/pdf": 100 * 2**20,
    "application/msword": 100 * 2**20,
    "application/vnd.ms-excel": 100 * 2**20,
    "application/vnd.ms-powerpoint": 100 * 2**20,
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": 100 * 2**20,
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": 100 * 2**20,
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": 100 * 2**20,
    "image/jpeg": 5 * 2**20,
    "image/png": 5 * 2**20,
    "image/webp": 500 * 2**10,
    "video/3gpp": 16 * 2**20,
    "video/mp4": 16 * 2**20,
}


@dataclass(frozen=True, slots=True)
class UploadedMedia:
    """A file received by the fake's media upload endpoint."""

    data: bytes
    mime_type: str
    filename: str | None
    messaging_product: str


class _RefusedError(Exception):
    """A send payload Meta would refuse; carries Meta's code and details."""

    def __init__(self, details: str, code: int = 131009) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


def _meta_error(code: int, details: str) -> dict[str, Any]:
    message = (
        "(#131009) Parameter value is not valid"
        if code == 131009
        else f"(#{code}) Invalid parameter"
    )
    return {
        "error": {
            "message": message,
            "type": "OAuthException",
            "code": code,
            "error_data": {"messaging_product": "whatsapp", "details": details},
            "fbtrace_id": "AFakeTrace",
        }
    }


def check_send_payload(body: dict[str, Any]) -> dict[str, Any] | None:
    """Meta's error body for a send payload Meta would refuse, else ``None``."""
    try:
        _check_payload(body)
    except _RefusedError as refused:
        return _meta_error(refused.code, refused.details)
    return None


def _no_nulls(value: Any, where: str) -> None:
    if value is None:
        raise _RefusedError(f"{where} is null; leave optional parameters out instead", code=100)
    if isinstance(value, dict):
        for key, item in value.items():
            _no_nulls(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _no_nulls(item, f"{where}[{index}]")


def _text(value: Any, where: str, limit: int | None = None, *, required: bool = True) -> None:
    if value is None and not required:
        return
    if not isinstance(value, str) or (required and not value):
        raise _RefusedError(f"{where} is required and must be a non-empty string", code=100)
    if limit is not None and len(value) > limit:
        raise _RefusedError(f"{where} length invalid. Min length: 1, Max length: {limit}")


def _check_payload(body: dict[str, Any]) -> None:
    _no_nulls(body, "")
    kind = body.get("type", "text")
    if kind not in _SEND_TYPES:
        raise _RefusedError(f"type {kind!r} is not a message type", code=100)
    context = body.get("context")
    if context is not None:
        if not isinstance(context, dict):
            raise _RefusedError("context must be an object", code=100)
        _text(context.get("message_id"), "context.message_id")
    content = body.get(kind)
    if kind == "contacts":
        _check_contacts(content)
        return
    if not isinstance(content, dict):
        raise _RefusedError(f"{kind} is required", code=100)
    if kind in _MEDIA_TYPES:
        _check_media(kind, content, kind)
    elif kind == "location":
        _check_location(content)
    elif kind == "reaction":
        _text(content.get("message_id"), "reaction.message_id")
        if not isinstance(content.get("emoji"), str):
            raise _RefusedError("reaction.emoji is required (an empty string removes)", code=100)
    elif kind == "template":
        _check_template(content)
    elif kind == "interactive":
        _check_interactive(content)


def _check_media(kind: str, media: dict[str, Any], where: str) -> None:
    if ("id" in media) == ("link" in media):
        raise _RefusedError(f"{where} needs exactly one of id and link", code=100)
    if "link" in media:
        link = media["link"]
        if not isinstance(link, str) or not link.startswith(("http://", "https://")):
            raise _RefusedError(f"{where}.link must be an http(s) URL")
    else:
        _text(media["id"], f"{where}.id")
    if "caption" in media:
        if kind not in _CAPTIONED:
            raise _RefusedError(f"{where}.caption is not supported for {kind}", code=100)
        _text(media["caption"], f"{where}.caption", 1024)
    if "filename" in media:
        if kind != "document":
            raise _RefusedError(f"{where}.filename is only for documents", code=100)
        _text(media["filename"], f"{where}.filename")
    if "voice" in media and (kind != "audio" or not isinstance(media["voice"], bool)):
        raise _RefusedError(f"{where}.voice is a boolean for audio only", code=100)


def _number(value: Any, where: str, bound: float) -> None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _RefusedError(f"{where} must be a number", code=100) from None
    if isinstance(value, bool) or not -bound <= number <= bound:
        raise _RefusedError(f"{where} must be between -{bound:g} and {bound:g}")


def _check_location(location: dict[str, Any]) -> None:
    _number(location.get("latitude"), "location.latitude", 90)
    _number(location.get("longitude"), "location.longitude", 180)
    _text(location.get("name"), "location.name", required=False)
    _text(location.get("address"), "location.address", required=False)


def _check_contacts(contacts: Any) -> None:
    if not isinstance(contacts, list) or not 1 <= len(contacts) <= 257:
        raise _RefusedError("contacts must be a list of 1 to 257 contact objects", code=100)
    for index, contact in enumerate(contacts):
        name = contact.get("name") if isinstance(contact, dict) else None
        if not isinstance(name, dict):
            raise _RefusedError(f"contacts[{index}].name is required", code=100)
        _text(name.get("formatted_name"), f"contacts[{index}].name.formatted_name")


def _check_template(template: dict[str, Any]) -> None:
    _text(template.get("name"), "template.name", 512)
    language = template.get("language")
    if not isinstance(language, dict):
        raise _RefusedError("template.language is required", code=100)
    _text(language.get("code"), "template.language.code")
    components = template.get("components", [])
    if not isinstance(components, list):
        raise _RefusedError("template.components must be a list", code=100)
    for index, component in enumerate(components):
        if not isinstance(component, dict) or component.get("type") not in (
            "header",
            "body",
            "button",
            "carousel",
            "limited_time_offer",
        ):
            raise _RefusedError(f"template.components[{index}].type is not valid", code=100)
        if component["type"] == "button" and not {"sub_type", "index"} <= component.keys():
            raise _RefusedError(f"template.components[{index}] needs sub_type and index", code=100)


def _check_interactive(interactive: dict[str, Any]) -> None:
    kind = interactive.get("type")
    if kind not in ("button", "list", "cta_url"):
        return  # flows, products, location requests...: not checked here
    body = interactive.get("body")
    if not isinstance(body, dict):
        raise _RefusedError("interactive.body is required", code=100)
    _text(body.get("text"), "interactive.body.text", 4096 if kind == "list" else 1024)
    if "footer" in interactive:
        footer = interactive["footer"]
        _text(footer.get("text") if isinstance(footer, dict) else None, "footer.text", 60)
    if "header" in interactive:
        _check_header(interactive["header"], text_only=kind == "list")
    action = interactive.get("action")
    if not isinstance(action, dict):
        raise _RefusedError("interactive.action is required", code=100)
    if kind == "button":
        _check_reply_buttons(action)
    elif kind == "list":
        _check_list(action)
    else:
        if action.get("name") != "cta_url" or not isinstance(action.get("parameters"), dict):
            raise _RefusedError("action.name must be cta_url, with parameters", code=100)
        parameters = action["parameters"]
        _text(parameters.get("display_text"), "action.parameters.display_text", 20)
        url = parameters.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise _RefusedError("action.parameters.url must be an http(s) URL")


def _check_header(header: Any, *, text_only: bool) -> None:
    kind = header.get("type") if isinstance(header, dict) else None
    if kind == "text":
        _text(header.get("text"), "header.text", 60)
        return
    if text_only or kind not in ("image", "video", "document"):
        raise _RefusedError(f"header type {kind!r} is not supported here", code=100)
    media = header.get(kind)
    if not isinstance(media, dict):
        raise _RefusedError(f"header.{kind} is required", code=100)
    if "caption" in media:
        raise _RefusedError(f"header.{kind}.caption is not supported", code=100)
    _check_media(kind, media, f"header.{kind}")


def _check_reply_buttons(action: dict[str, Any]) -> None:
    buttons = action.get("buttons")
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
        raise _RefusedError("action.buttons must hold 1 to 3 buttons")
    ids: set[str] = set()
    titles: set[str] = set()
    for index, button in enumerate(buttons):
        reply = button.get("reply") if isinstance(button, dict) else None
        if (
            not isinstance(button, dict)
            or button.get("type") != "reply"
            or not isinstance(reply, dict)
        ):
            raise _RefusedError(f"buttons[{index}] must be a reply button", code=100)
        _text(reply.get("id"), f"buttons[{index}].reply.id", 256)
        _text(reply.get("title"), f"buttons[{index}].reply.title", 20)
        if reply["id"] in ids or reply["title"] in titles:
            raise _RefusedError("Buttons must have unique ids and titles")
        ids.add(reply["id"])
        titles.add(reply["title"])


def _check_list(action: dict[str, Any]) -> None:
    _text(action.get("button"), "action.button", 20)
    sections = action.get("sections")
    if not isinstance(sections, list) or not 1 <= len(sections) <= 10:
        raise _RefusedError("action.sections must hold 1 to 10 sections")
    ids: set[str] = set()
    for s_index, section in enumerate(sections):
        if not isinstance(section, dict):
            raise _RefusedError(f"sections[{s_index}] must be an object", code=100)
        _text(section.get("title"), f"sections[{s_index}].title", 24, required=len(sections) > 1)
        rows = section.get("rows")
        if not isinstance(rows, list) or not rows:
            raise _RefusedError(f"sections[{s_index}].rows must hold at least one row")
        for r_index, row in enumerate(rows):
            where = f"sections[{s_index}].rows[{r_index}]"
            if not isinstance(row, dict):
                raise _RefusedError(f"{where} must be an object", code=100)
            _text(row.get("id"), f"{where}.id", 200)
            _text(row.get("title"), f"{where}.title", 24)
            _text(row.get("description"), f"{where}.description", 72, required=False)
            if row["id"] in ids:
                raise _RefusedError("Row ids must be unique across sections")
            ids.add(row["id"])
    if len(ids) > 10:
        raise _RefusedError("A list can hold at most 10 rows in total")


def parse_upload(request: RecordedRequest) -> UploadedMedia | dict[str, Any]:
    """The upload in a multipart ``POST /media``, or Meta's error body for a bad one."""
    fields: dict[str, str] = {}
    file_part: tuple[bytes, str | None, str | None] | None = None
    content_type = request.headers.get("content-type", "")
    boundary = _header_param(content_type, "content-type", "boundary")
    if not content_type.startswith("multipart/form-data") or not boundary:
        return _meta_error(100, "the upload must be multipart/form-data")
    for headers, data in _multipart_parts(request.body, boundary.encode("latin-1")):
        disposition = headers.get("content-disposition", "")
        name = _header_param(disposition, "content-disposition", "name")
        filename = _header_param(disposition, "content-disposition", "filename")
        if name == "file":
            file_part = (data, filename, headers.get("content-type"))
        elif name:
            fields[name] = data.decode("utf-8", "replace")
    if fields.get("messaging_product") != "whatsapp":
        return _meta_error(100, "The parameter messaging_product is required.")
    if file_part is None or not file_part[0]:
        return _meta_error(100, "The parameter file is required.")
    mime_type = fields.get("type") or file_part[2] or ""
    limit = _UPLOAD_LIMITS.get(mime_type)
    if limit is None:
        return _meta_error(131053, f"Media upload error: unsupported type {mime_type!r}")
    if len(file_part[0]) > limit:
        return _meta_error(131053, f"Media upload error: {mime_type} is over {limit} bytes")
    return UploadedMedia(file_part[0], mime_type, file_part[1], fields["messaging_product"])


def _header_param(value: str, header: str, param: str) -> str | None:
    message = email.message.Message()
    message[header] = value
    found = message.get_param(param, header=header)
    if isinstance(found, tuple):  # RFC 2231 encoded
        return email.utils.collapse_rfc2231_value(found)
    return found if isinstance(found, str) else None


def _multipart_parts(body: bytes, boundary: bytes) -> list[tuple[dict[str, str], bytes]]:
    """The (headers, data) of each part of a multipart body, data byte-exact."""
    parts = []
    delimiter = b"--" + boundary
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        chunk = chunk.removeprefix(b"\r\n").removesuffix(b"\r\n")
        head, _, data = chunk.partition(b"\r\n\r\n")
        headers = {}
        for line in head.decode("latin-1").split("\r\n"):
            key, _, value = line.partition(":")
            if key:
                headers[key.strip().lower()] = value.strip()
        parts.append((headers, data))
    return parts
