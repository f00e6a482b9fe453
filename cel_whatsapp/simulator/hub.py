"""The Meta side of the simulator: a fake Cloud API that also plays the user's phone.

:class:`SimulatorHub` is a :class:`~cel_whatsapp.testing.FakeGraphAPI` (a real
HTTP server on 127.0.0.1, in its own threads) that in addition

- delivers the simulated user's messages to the bot as signed webhooks over
  HTTP, as Meta does, and reports ``sent``/``delivered``/``read`` statuses;
- keeps an :class:`~cel_whatsapp.simulator.events.EventFeed` of the
  conversation (user messages, bot sends, read receipts, typing) for the page;
- stores the files the user sends and serves them, and the files the bot
  uploads (``POST /{phone-number-id}/media``, the base fake's endpoint),
  through the Graph API's media endpoints (``GET /{media-id}``, then the
  download URL with the token) and to the page.

Its own endpoints live under ``/_simulator/`` and need the same bearer token.
Because the hub serves from its own threads, a bot that sends its replies
inline, from inside the webhook request, never waits on itself: no deadlock,
even under a single synchronous gunicorn worker.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..config import DEFAULT_API_VERSION
from ..testing.fake_graph import FakeGraphAPI, RecordedRequest, ScriptedFailure
from ..testing.webhooks import (
    DEFAULT_DISPLAY_NUMBER,
    DEFAULT_PHONE_NUMBER_ID,
    DEFAULT_WABA_ID,
    change_value,
    envelope,
    status,
)
from . import events as ev
from .delivery import DeliveryResult, WebhookSender
from .events import EventFeed
from .media import MAX_MEDIA_BYTES, MediaStore, StoredMedia

logger = logging.getLogger(__name__)

#: Where the hub's own (non-Graph) endpoints live.
SIMULATOR_PATH = "/_simulator"
#: The longest a reader may wait for new events in one request.
MAX_WAIT_SECONDS = 25.0

Answer = tuple[int, dict[str, Any], dict[str, str]]
RawAnswer = tuple[int, str, bytes, dict[str, str]]


class SimulatorHub(FakeGraphAPI):
    """A fake Cloud API that delivers a simulated user's messages to a bot.

    ``app_secret`` signs the webhooks it posts; ``webhook_url`` is where they
    go (it can also be given with each message, and the last one is kept).
    """

    def __init__(
        self,
        *,
        token: str,
        app_secret: str | None,
        phone_number_id: str = DEFAULT_PHONE_NUMBER_ID,
        display_phone_number: str = DEFAULT_DISPLAY_NUMBER,
        waba_id: str = DEFAULT_WABA_ID,
        webhook_url: str | None = None,
        statuses: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
        api_version: str = DEFAULT_API_VERSION,
        max_recorded: int = 2000,
    ) -> None:
        super().__init__(host=host, port=port, api_version=api_version, token=token)
        self.phone_number_id = phone_number_id
        self.display_phone_number = display_phone_number
        self.waba_id = waba_id
        self.webhook_url = webhook_url
        self.statuses = statuses
        self.max_recorded = max_recorded
        self.feed = EventFeed()
        self.media = MediaStore()
        self.sender = WebhookSender(app_secret)
        # Which user wrote (or received) each wamid, so read receipts and
        # statuses can be attributed; bounded like everything else here.
        self._owners: OrderedDict[str, str | None] = OrderedDict()
        self._read_sent: set[str] = set()
        self._state = threading.Lock()
        base: type[BaseHTTPRequestHandler] = self._server.RequestHandlerClass  # type: ignore[assignment]
        self._server.RequestHandlerClass = _hub_handler(self, base)

    def __repr__(self) -> str:
        return f"SimulatorHub(root_url={self.root_url!r}, token=***, app_secret=***)"

    # -- lifecycle --------------------------------------------------------------

    def start(self) -> SimulatorHub:
        super().start()
        self.sender.start()
        return self

    def stop(self) -> None:
        self.sender.stop(timeout=2.0)
        super().stop()

    def reset(self) -> None:
        """Forget recordings, scripted failures, the conversation and its media."""
        super().reset()
        with self._state:
            self._owners.clear()
            self._read_sent.clear()
        self.media.clear()
        self.feed.clear()
        self.feed.add(ev.CLEARED, None)

    # -- the simulated user ----------------------------------------------------------

    def user_sends(
        self,
        message: Mapping[str, Any],
        *,
        name: str | None = None,
        webhook_url: str | None = None,
    ) -> dict[str, Any]:
        """Deliver one Meta-shaped ``messages[]`` object to the bot; return its feed event."""
        message = dict(message)
        user = _user_of(message)
        wamid = str(message["id"])
        if webhook_url:
            self.webhook_url = webhook_url
        self._own(wamid, user)
        event = self.feed.add(ev.USER_MESSAGE, user, id=wamid, message=message, name=name)
        body = envelope(
            change_value(
                [message],
                phone_number_id=self.phone_number_id,
                display_phone_number=self.display_phone_number,
                name=name,
            ),
            waba_id=self.waba_id,
        )

        def delivered(result: DeliveryResult) -> None:
            self.feed.add(
                ev.DELIVERY,
                user,
                id=wamid,
                ok=result.ok,
                status=result.status,
                detail=result.detail,
            )

        self._deliver(body, delivered)
        return event

    def user_saw(self, message_ids: list[str], *, webhook_url: str | None = None) -> int:
        """The user's phone displayed these bot messages: report them ``read`` once each."""
        if webhook_url:
            self.webhook_url = webhook_url
        reported = 0
        for message_id in message_ids:
            sent = self.feed.find(ev.BOT_MESSAGE, id=message_id)
            with self._state:
                if sent is None or message_id in self._read_sent:
                    continue
                if len(self._read_sent) >= self.max_recorded * 5:
                    self._read_sent.clear()  # bounded; at worst an old message is read twice
                self._read_sent.add(message_id)
            if self.statuses and sent["payload"].get("type") != "reaction":
                self._deliver(self._status_body(message_id, "read", sent["payload"]))
            reported += 1
        return reported

    def upload(self, content: bytes, mime_type: str, filename: str | None = None) -> dict[str, Any]:
        """Store a file the user is about to send; return its media id and facts."""
        item = self.media.put(content, mime_type, filename)
        return {
            "id": item.id,
            "mime_type": item.mime_type,
            "sha256": item.sha256,
            "size": item.size,
        }

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until every queued webhook was delivered (for tests)."""
        return self.sender.wait_idle(timeout)

    # -- the Graph API side ----------------------------------------------------------

    def answer(self, request: RecordedRequest) -> Answer:
        """The fake Graph API's answer, plus the simulator's media endpoints and events."""
        media = self._media_route(request)
        if media is not None:
            return self._guarded(request, media)
        status_code, body, headers = super().answer(request)
        self._observe(request, status_code, body)
        self._trim()
        return status_code, body, headers

    def _media_route(self, request: RecordedRequest) -> Callable[[], Answer] | None:
        # Uploads (POST /{phone-number-id}/media) are the base fake's; lookups and
        # deletes of the media this hub knows are answered here.
        parts = [p for p in urlsplit(request.path).path.split("/") if p]
        if len(parts) != 2 or parts[0] != self.api_version:
            return None
        media_id = parts[1]
        if self.find_media(media_id) is None:
            return None
        if request.method == "GET":
            return lambda: self._media_url(media_id)
        if request.method == "DELETE":
            return lambda: (200, {"success": self._delete_media(media_id)}, {})
        return None

    def find_media(self, media_id: str) -> StoredMedia | None:
        """A file the user sent, or one the bot uploaded, by media id."""
        item = self.media.get(media_id)
        if item is not None:
            return item
        with self._lock:
            upload = self.uploads.get(media_id)
        if upload is None:
            return None
        return StoredMedia(
            id=media_id,
            content=upload.data,
            mime_type=upload.mime_type,
            sha256=hashlib.sha256(upload.data).hexdigest(),
            filename=upload.filename,
        )

    def _delete_media(self, media_id: str) -> bool:
        with self._lock:
            uploaded = self.uploads.pop(media_id, None) is not None
        return self.media.delete(media_id) or uploaded

    def _guarded(self, request: RecordedRequest, route: Callable[[], Answer]) -> Answer:
        # Recorded, failable and token-checked like every other Graph request.
        failure = self._record(request)
        if failure is not None:
            return _scripted_answer(failure)
        if (
            self.token is not None
            and request.headers.get("authorization") != f"Bearer {self.token}"
        ):
            return 401, _graph_error(190, "Invalid OAuth access token.", "OAuthException"), {}
        return route()

    def _media_url(self, media_id: str) -> Answer:
        item = self.find_media(media_id)
        if item is None:
            return 404, _graph_error(100, "(#100) Unknown media id", "GraphMethodException"), {}
        return (
            200,
            {
                "messaging_product": "whatsapp",
                "url": f"{self.root_url}{SIMULATOR_PATH}/media/{item.id}",
                "mime_type": item.mime_type,
                "sha256": item.sha256,
                "file_size": str(item.size),
                "id": item.id,
            },
            {},
        )

    def _observe(self, request: RecordedRequest, status_code: int, body: dict[str, Any]) -> None:
        payload = request.json
        if not isinstance(payload, dict) or not request.path.split("?")[0].endswith("/messages"):
            return
        if request.is_message:
            user = _recipient_of(payload)
            if status_code != 200:
                error = body.get("error") if isinstance(body, dict) else None
                self.feed.add(ev.REFUSED, user, payload=payload, status=status_code, error=error)
                return
            wamid = _sent_id(body)
            if wamid is None:
                return
            self._own(wamid, user)
            self.feed.add(ev.BOT_MESSAGE, user, id=wamid, payload=payload)
            if self.statuses:
                self._deliver(self._status_body(wamid, "sent", payload))
                if payload.get("type") != "reaction":  # Meta reports only "sent" for reactions
                    self._deliver(self._status_body(wamid, "delivered", payload))
        elif request.is_read_receipt and status_code == 200:
            message_id = str(payload.get("message_id"))
            with self._state:
                user = self._owners.get(message_id)
            self.feed.add(ev.READ, user, id=message_id)
            if isinstance(payload.get("typing_indicator"), dict):
                self.feed.add(ev.TYPING, user, id=message_id)

    # -- helpers ---------------------------------------------------------------------

    def _status_body(self, wamid: str, state: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        to = payload.get("to")
        update = status(
            wamid,
            state,
            recipient=str(to).lstrip("+") if to else None,
            recipient_user_id=None if to else payload.get("recipient"),
        )
        value = change_value(
            statuses=[update],
            phone_number_id=self.phone_number_id,
            display_phone_number=self.display_phone_number,
        )
        return envelope(value, waba_id=self.waba_id)

    def _deliver(
        self, body: dict[str, Any], on_delivered: Callable[[DeliveryResult], None] | None = None
    ) -> None:
        url = self.webhook_url
        if url is None:
            if on_delivered is not None:
                on_delivered(DeliveryResult(None, "no webhook URL known yet"))
            return
        self.sender.submit(url, body, on_delivered)

    def _own(self, wamid: str, user: str | None) -> None:
        with self._state:
            self._owners[wamid] = user
            while len(self._owners) > self.max_recorded * 5:
                self._owners.popitem(last=False)

    def _trim(self) -> None:
        if len(self.requests) > self.max_recorded * 2:
            with self._lock:
                del self.requests[: len(self.requests) - self.max_recorded]

    # -- the hub's own endpoints (for the chat page, through the Flask app) --------------

    def simulator_answer(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> RawAnswer:
        """Answer a request under ``/_simulator/``: ``(status, content type, body, headers)``."""
        if headers.get("authorization") != f"Bearer {self.token}":
            return _json(401, {"error": "the simulator hub needs its bearer token"})
        split = urlsplit(path)
        route = split.path[len(SIMULATOR_PATH) :].strip("/")
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        try:
            if method == "GET" and route == "ping":
                return _json(200, {"epoch": self.feed.epoch, "pid": os.getpid()})
            if method == "GET" and route == "events":
                return self._events(query)
            if method == "GET" and route.startswith("media/"):
                return self._download(route.removeprefix("media/"))
            if method == "POST" and route == "messages":
                data = _json_object(body)
                message = data.get("message")
                if not isinstance(message, dict) or "id" not in message:
                    return _json(400, {"error": "'message' must be a messages[] object"})
                event = self.user_sends(
                    message, name=data.get("name"), webhook_url=data.get("webhook_url")
                )
                return _json(200, {"event": event})
            if method == "POST" and route == "media":
                mime_type = headers.get("content-type") or "application/octet-stream"
                return _json(200, self.upload(body, mime_type, headers.get("x-filename") or None))
            if method == "POST" and route == "seen":
                data = _json_object(body)
                ids = [str(i) for i in data.get("ids", []) if isinstance(i, str)]
                read = self.user_saw(ids, webhook_url=data.get("webhook_url"))
                return _json(200, {"read": read})
            if method == "POST" and route == "clear":
                self.reset()
                return _json(200, {"epoch": self.feed.epoch})
        except ValueError as exc:
            return _json(400, {"error": str(exc)})
        return _json(404, {"error": f"no simulator endpoint {method} {split.path}"})

    def _events(self, query: Mapping[str, str]) -> RawAnswer:
        try:
            after = int(query.get("after", "0"))
            wait = min(float(query.get("wait", "0")), MAX_WAIT_SECONDS)
        except ValueError as exc:
            raise ValueError("'after' and 'wait' must be numbers") from exc
        epoch = self.feed.epoch
        if query.get("epoch") not in (None, "", epoch):
            # The reader knew an older conversation (cleared, or a restarted hub):
            # it must start over now, not after a wait for news of the new one.
            after = 0
            wait = 0.0
        found, last = self.feed.after(after, user=query.get("user") or None, wait=wait)
        return _json(200, {"epoch": self.feed.epoch, "events": found, "last": last})

    def _download(self, media_id: str) -> RawAnswer:
        item = self.find_media(media_id)
        if item is None:
            return _json(404, {"error": "no such media"})
        headers = {"Cache-Control": "private, max-age=3600"}
        if item.filename:
            safe = item.filename.replace('"', "").replace("\r", "").replace("\n", "")
            headers["Content-Disposition"] = f'inline; filename="{safe}"'
        return 200, item.mime_type, item.content, headers


def _user_of(message: Mapping[str, Any]) -> str | None:
    user = message.get("from") or message.get("from_user_id")
    return str(user) if user else None


def _recipient_of(payload: Mapping[str, Any]) -> str | None:
    to = payload.get("to")
    if to:
        return str(to).lstrip("+")
    recipient = payload.get("recipient")
    return str(recipient) if recipient else None


def _sent_id(body: Mapping[str, Any]) -> str | None:
    messages = body.get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[0], dict):
        return str(messages[0].get("id"))
    return None


def _graph_error(code: int, message: str, error_type: str) -> dict[str, Any]:
    return {
        "error": {"message": message, "type": error_type, "code": code, "fbtrace_id": "AFakeTrace"}
    }


def _scripted_answer(failure: ScriptedFailure) -> Answer:
    if failure.delay:
        time.sleep(failure.delay)
    headers = {}
    if failure.retry_after is not None:
        headers["Retry-After"] = f"{failure.retry_after:g}"
    return failure.status, ({"error": failure.error} if failure.error is not None else {}), headers


def _json(status_code: int, data: Any) -> RawAnswer:
    return status_code, "application/json", json.dumps(data).encode("utf-8"), {}


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body or b"{}")
    except ValueError as exc:
        raise ValueError("the body must be JSON") from exc
    if not isinstance(data, dict):
        raise ValueError("the body must be a JSON object")
    return data


def _hub_handler(
    hub: SimulatorHub, base: type[BaseHTTPRequestHandler]
) -> type[BaseHTTPRequestHandler]:
    """The fake Graph API's request handler, with the hub's own endpoints in front."""

    class HubHandler(base):  # type: ignore[valid-type,misc]
        def _handle_hub(self) -> None:
            if not urlsplit(self.path).path.startswith(SIMULATOR_PATH + "/"):
                super()._handle()
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_MEDIA_BYTES + 65536:
                self._reply(413, "application/json", b'{"error": "body too large"}', {})
                self.close_connection = True
                return
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            status_code, content_type, payload, extra = hub.simulator_answer(
                self.command, self.path, headers, body
            )
            self._reply(status_code, content_type, payload, extra)

        def _reply(
            self, status_code: int, content_type: str, payload: bytes, extra: Mapping[str, str]
        ) -> None:
            self.send_response(status_code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_DELETE = _handle_hub  # noqa: N815

    return HubHandler
