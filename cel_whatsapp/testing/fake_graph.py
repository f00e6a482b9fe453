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

import itertools
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ..config import DEFAULT_API_VERSION, TEXT_LIMIT

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
            self._thread = threading.Thread(
                target=self._server.serve_forever, name="fake-graph-api", daemon=True
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
            self._failures.append(ScriptedFailure(status, error, times, match, retry_after, delay))

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._failures.clear()

    # -- reading what was received -------------------------------------------------

    def sent(self) -> list[RecordedRequest]:
        """Requests that sent a message (read receipts excluded)."""
        with self._lock:
            return [r for r in self.requests if r.is_message]

    def sent_texts(self) -> list[str]:
        """The bodies of every text message sent, in order."""
        return [r.json["text"]["body"] for r in self.sent() if r.json.get("type") == "text"]

    def read_receipts(self) -> list[RecordedRequest]:
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

    # -- answering -------------------------------------------------------------------

    def _record(self, request: RecordedRequest) -> ScriptedFailure | None:
        with self._lock:
            self.requests.append(request)
            failure = None
            for candidate in self._failures:
                if candidate.match is None or candidate.match(request):
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
        if not isinstance(content, dict):
            return (
                400,
                _error(100, f"(#100) The parameter {message_type} is required.", "OAuthException"),
                {},
            )
        if message_type == "text":
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
            status, body, headers = fake.answer(request)
            payload = json.dumps(body).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_DELETE = _handle  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            logger.debug("fake graph: " + format, *args)

    return Handler
