"""The chat page and its small JSON API: thin views that forward to the hub.

The page polls ``events`` for what happened (each bot message as it is sent,
read receipts, the typing indicator). On a multi-threaded server the request
waits up to 20 s for something new (long polling); on synchronous workers,
where a waiting request would hold a whole worker, it answers at once and
the page asks again a moment later. A page that lost the server asks with
``wait=0`` until it is answered, to tell at once that the server is back.
"""

from __future__ import annotations

import json
import math
from importlib import resources
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, current_app, request, url_for

from ..testing import webhooks
from .hub_client import HubUnavailableError
from .media import MAX_MEDIA_BYTES

if TYPE_CHECKING:
    from .extension import Simulator, SimulatorState

#: Seconds an ``events`` request may wait for news on a multi-threaded server.
LONG_POLL_SECONDS = 20.0
#: Milliseconds between polls when the server cannot afford waiting requests.
SHORT_POLL_MS = 350
#: Header every POST from the page carries. A cross-site form cannot set it
#: (a custom header forces a CORS preflight, which this API never grants).
PAGE_HEADER = "X-Simulator-Page"
#: The longest text a user may type (WhatsApp's own limit is larger; this is plenty).
MAX_TEXT = 4096
_MAX_ID = 256


class InputError(ValueError):
    """What the page sent cannot become a WhatsApp message."""


def build_blueprint(simulator: Simulator) -> Blueprint:
    """The blueprint of the chat page at ``/`` and its API under ``/sim/api``."""
    blueprint = Blueprint(
        "cel_whatsapp_simulator",
        __name__,
        # Not named "static": a folder with an importable name would look like a package.
        static_folder="page-assets",
        static_url_path="/sim/static",
        url_prefix=simulator.url_prefix or None,
    )

    def state() -> SimulatorState:
        from .extension import EXTENSION_KEY

        found: SimulatorState = current_app.extensions[EXTENSION_KEY]
        return found

    def webhook_url() -> str:
        return simulator.webhook_url or request.host_url.rstrip("/") + simulator.webhook_path

    def long_polling() -> bool:
        env = request.environ
        return bool(env.get("wsgi.multithread")) and not env.get("wsgi.multiprocess")

    def error(status: int, message: str) -> Response:
        return Response(json.dumps({"error": message}), status, mimetype="application/json")

    @blueprint.before_request
    def only_from_the_page() -> Response | None:
        if request.method == "POST" and request.headers.get(PAGE_HEADER) != "1":
            return error(403, f"requests to the simulator API need the {PAGE_HEADER}: 1 header")
        return None

    def forward(hub_response: Any) -> Response:
        return Response(hub_response.content, hub_response.status_code, mimetype="application/json")

    @blueprint.get("/")
    def page() -> Response:
        page_config = {
            "api": url_for("cel_whatsapp_simulator.page").rstrip("/") + "/sim/api",
            "user": {"phone": simulator.user_phone, "name": simulator.user_name},
            "bot": {"name": simulator.bot_name, "phone": webhooks.DEFAULT_DISPLAY_NUMBER},
            "maxUpload": MAX_MEDIA_BYTES,
            "maxText": MAX_TEXT,
            "examples": list(simulator.examples),
        }
        # Safe inside <script type="application/json">: no "<" survives.
        embedded = json.dumps(page_config).replace("<", "\\u003c")
        html = (
            resources.files(__package__)
            .joinpath("page-assets")
            .joinpath("index.html")
            .read_text(encoding="utf-8")
            .replace("{{STATIC}}", url_for("cel_whatsapp_simulator.static", filename=""))
            .replace("{{CONFIG}}", embedded)
        )
        response = Response(html, mimetype="text/html")
        response.headers["Cache-Control"] = "no-store"
        return response

    @blueprint.get("/sim/api/events")
    def events() -> Response:
        waiting_allowed = long_polling()
        # A page that does not know the conversation yet, or that is checking
        # whether the server is back, gets an answer at once.
        wants_news = request.args.get("epoch") and request.args.get("wait") != "0"
        wait = LONG_POLL_SECONDS if waiting_allowed and wants_news else 0.0
        params = {
            "after": request.args.get("after", "0"),
            "epoch": request.args.get("epoch", ""),
            "user": simulator.user_phone,
            "wait": f"{wait:g}",
        }
        try:
            hub_response = state().client.request(
                "GET", "events", params=params, timeout=(2.0, wait + 10.0)
            )
        except HubUnavailableError as exc:
            return error(503, str(exc))
        if hub_response.status_code != 200:
            return forward(hub_response)
        data = hub_response.json()
        data["poll_ms"] = 0 if waiting_allowed else SHORT_POLL_MS
        return Response(json.dumps(data), mimetype="application/json")

    @blueprint.post("/sim/api/messages")
    def send() -> Response:
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            return error(400, "send a JSON object")
        try:
            message = _message_from(data, simulator.user_phone)
        except InputError as exc:
            return error(400, str(exc))
        return _deliver(message)

    @blueprint.post("/sim/api/media")
    def send_media() -> Response:
        length = request.content_length
        if length is not None and length > MAX_MEDIA_BYTES + 65536:
            return error(413, f"files are limited to {MAX_MEDIA_BYTES // (1024 * 1024)} MB")
        file = request.files.get("file")
        if file is None:
            return error(400, "attach a file in the 'file' field")
        content = file.read(MAX_MEDIA_BYTES + 1)
        if not content:
            return error(400, "the file is empty")
        if len(content) > MAX_MEDIA_BYTES:
            return error(413, f"files are limited to {MAX_MEDIA_BYTES // (1024 * 1024)} MB")
        mime_type = (file.mimetype or "application/octet-stream").lower()
        filename = (file.filename or "file").replace("\r", "").replace("\n", "")[:200]
        caption = request.form.get("caption", "").strip()[:1024] or None
        try:
            uploaded = state().client.request(
                "POST",
                "media",
                data=content,
                headers={"Content-Type": mime_type, "X-Filename": filename},
            )
        except HubUnavailableError as exc:
            return error(503, str(exc))
        if uploaded.status_code != 200:
            return forward(uploaded)
        info = uploaded.json()
        message = _media_message(
            info,
            mime_type,
            filename,
            caption,
            sender=simulator.user_phone,
            voice=request.form.get("voice") == "1",
        )
        return _deliver(message)

    def _deliver(message: dict[str, Any]) -> Response:
        try:
            hub_response = state().client.post_json(
                "messages",
                {"message": message, "name": simulator.user_name, "webhook_url": webhook_url()},
            )
        except HubUnavailableError as exc:
            return error(503, str(exc))
        return forward(hub_response)

    @blueprint.get("/sim/api/media/<media_id>")
    def media(media_id: str) -> Response:
        if not media_id.isalnum() or len(media_id) > 64:
            return error(404, "no such media")
        try:
            hub_response = state().client.request("GET", f"media/{media_id}")
        except HubUnavailableError as exc:
            return error(503, str(exc))
        if hub_response.status_code != 200:
            return forward(hub_response)
        response = Response(hub_response.content, mimetype=hub_response.headers["Content-Type"])
        for header in ("Content-Disposition", "Cache-Control"):
            if header in hub_response.headers:
                response.headers[header] = hub_response.headers[header]
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    @blueprint.post("/sim/api/seen")
    def seen() -> Response:
        data = request.get_json(silent=True)
        ids = data.get("ids") if isinstance(data, dict) else None
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            return error(400, "send {'ids': [message ids]}")
        try:
            hub_response = state().client.post_json(
                "seen", {"ids": ids[:100], "webhook_url": webhook_url()}
            )
        except HubUnavailableError as exc:
            return error(503, str(exc))
        return forward(hub_response)

    @blueprint.post("/sim/api/clear")
    def clear() -> Response:
        try:
            return forward(state().client.post_json("clear", {}))
        except HubUnavailableError as exc:
            return error(503, str(exc))

    return blueprint


# -- what the page sends -> Meta-shaped messages --------------------------------------


def _text(data: dict[str, Any], key: str, *, limit: int, required: bool = True) -> str | None:
    value = data.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InputError(f"'{key}' is required")
        return None
    if not isinstance(value, str):
        raise InputError(f"'{key}' must be a string")
    if len(value) > limit:
        raise InputError(f"'{key}' is longer than {limit} characters")
    return value


def _number(data: dict[str, Any], key: str, low: float, high: float) -> float:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"'{key}' must be a number")
    if not low <= value <= high:
        raise InputError(f"'{key}' must be between {low:g} and {high:g}")
    return float(value)


def _message_from(data: dict[str, Any], sender: str) -> dict[str, Any]:
    kind = data.get("type")
    reply_to = _text(data, "reply_to", limit=_MAX_ID, required=False)
    common: dict[str, Any] = {"sender": sender}
    if kind == "text":
        body = _text(data, "text", limit=MAX_TEXT) or ""
        return webhooks.text_message(body.strip(), reply_to=reply_to, **common)
    if kind == "button_reply":
        return webhooks.button_reply_message(
            _text(data, "id", limit=_MAX_ID) or "",
            _text(data, "title", limit=MAX_TEXT) or "",
            reply_to=reply_to,
            **common,
        )
    if kind == "list_reply":
        return webhooks.list_reply_message(
            _text(data, "id", limit=_MAX_ID) or "",
            _text(data, "title", limit=MAX_TEXT) or "",
            _text(data, "description", limit=MAX_TEXT, required=False),
            reply_to=reply_to,
            **common,
        )
    if kind == "location":
        return webhooks.location_message(
            _number(data, "latitude", -90, 90),
            _number(data, "longitude", -180, 180),
            name=_text(data, "name", limit=256, required=False),
            address=_text(data, "address", limit=512, required=False),
            **common,
        )
    if kind == "reaction":
        emoji = _text(data, "emoji", limit=16, required=False)
        return webhooks.reaction_message(
            _text(data, "message_id", limit=_MAX_ID) or "", emoji, **common
        )
    raise InputError("'type' must be text, button_reply, list_reply, location or reaction")


def _media_message(
    info: dict[str, Any],
    mime_type: str,
    filename: str,
    caption: str | None,
    *,
    sender: str,
    voice: bool = False,
) -> dict[str, Any]:
    common: dict[str, Any] = {
        "media_id": str(info["id"]),
        "mime_type": mime_type,
        "sha256": str(info["sha256"]),
        "sender": sender,
    }
    if mime_type == "image/webp":
        return webhooks.sticker_message(**common)
    if mime_type.startswith("image/"):
        return webhooks.image_message(caption=caption, **common)
    if mime_type.startswith("video/"):
        return webhooks.video_message(caption=caption, **common)
    if mime_type.startswith("audio/"):
        return webhooks.audio_message(voice=voice, **common)
    return webhooks.document_message(filename=filename, caption=caption, **common)
