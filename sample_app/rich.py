"""The demo's rich replies: buttons, a list, media, a location and reactions.

TODO(issue 4): ``cel_whatsapp.replies`` is gaining ``Buttons``, ``ListMenu``,
``Image``, ``Location`` and ``React``. Once they are on main, build these
replies with them and delete :class:`CloudPayload`. Until then the demo sends
exactly the Cloud API payloads those classes will produce (Meta's documented
shapes) through this minimal :class:`~cel_whatsapp.Reply` subclass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from cel_whatsapp import Reply


@dataclass(frozen=True, slots=True)
class CloudPayload(Reply):
    """A reply given as the message-type part of a Cloud API send payload."""

    kind: str
    body: Mapping[str, Any] = field(default_factory=dict)
    _: KW_ONLY
    reply_to: str | None = None

    def content(self) -> dict[str, Any]:
        return {"type": self.kind, self.kind: dict(self.body)}


def buttons(
    body: str,
    choices: Sequence[tuple[str, str]],
    *,
    header: str | None = None,
    footer: str | None = None,
) -> Reply:
    """Up to three reply buttons, each ``(id, title)``."""
    interactive: dict[str, Any] = {
        "type": "button",
        "body": {"text": body},
        "action": {
            "buttons": [{"type": "reply", "reply": {"id": i, "title": t}} for i, t in choices]
        },
    }
    if header:
        interactive["header"] = {"type": "text", "text": header}
    if footer:
        interactive["footer"] = {"text": footer}
    return CloudPayload("interactive", interactive)


def list_menu(
    body: str,
    button: str,
    sections: Sequence[tuple[str, Sequence[tuple[str, str, str]]]],
    *,
    header: str | None = None,
    footer: str | None = None,
) -> Reply:
    """A list message: sections of ``(id, title, description)`` rows behind one button."""
    interactive: dict[str, Any] = {
        "type": "list",
        "body": {"text": body},
        "action": {
            "button": button,
            "sections": [
                {
                    "title": title,
                    "rows": [{"id": i, "title": t, "description": d} for i, t, d in rows],
                }
                for title, rows in sections
            ],
        },
    }
    if header:
        interactive["header"] = {"type": "text", "text": header}
    if footer:
        interactive["footer"] = {"text": footer}
    return CloudPayload("interactive", interactive)


def media(
    kind: str,
    *,
    link: str | None = None,
    media_id: str | None = None,
    caption: str | None = None,
    filename: str | None = None,
) -> Reply:
    """An image, video, audio, document or sticker, by ``link`` or uploaded ``media_id``."""
    body: dict[str, Any] = {"link": link} if link else {"id": media_id}
    if caption and kind in ("image", "video", "document"):
        body["caption"] = caption
    if filename and kind == "document":
        body["filename"] = filename
    return CloudPayload(kind, body)


def location(
    latitude: float, longitude: float, *, name: str | None = None, address: str | None = None
) -> Reply:
    """A location pin."""
    body: dict[str, Any] = {"latitude": latitude, "longitude": longitude}
    if name:
        body["name"] = name
    if address:
        body["address"] = address
    return CloudPayload("location", body)


def react(message_id: str, emoji: str) -> Reply:
    """An emoji reaction to the user's message ``message_id``."""
    return CloudPayload("reaction", {"message_id": message_id, "emoji": emoji})
