"""What an assistant can answer with, beyond plain strings.

Each reply knows the message-type part of its Cloud API send payload; the
sender adds ``messaging_product`` and the recipient. Reference:
https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass
from typing import Any

from .config import TEXT_LIMIT


class Reply:
    """Base class of rich replies. Subclasses implement :meth:`content`."""

    __slots__ = ()

    def content(self) -> dict[str, Any]:
        """The ``type`` and type-specific object of the send payload."""
        raise NotImplementedError

    def payload(self, *, default_reply_to: str | None = None) -> dict[str, Any]:
        """The send payload without the addressing fields."""
        body: dict[str, Any] = {"messaging_product": "whatsapp"}
        body.update(self.content())
        # Every concrete reply has a ``reply_to`` field: the message to quote.
        quoted = getattr(self, "reply_to", None) or default_reply_to
        if quoted:
            body["context"] = {"message_id": quoted}
        return body


@dataclass(frozen=True, slots=True)
class Text(Reply):
    """A text message of at most 4096 characters.

    ``preview_url=True`` asks WhatsApp to render a preview of the first URL.
    """

    body: str
    _: KW_ONLY
    preview_url: bool = False
    reply_to: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.body, str) or not self.body.strip():
            raise ValueError("Text.body must be a non-empty string")
        if len(self.body) > TEXT_LIMIT:
            raise ValueError(
                f"Text.body is {len(self.body)} characters; WhatsApp allows {TEXT_LIMIT}"
            )

    def content(self) -> dict[str, Any]:
        text: dict[str, Any] = {"body": self.body}
        if self.preview_url:
            text["preview_url"] = True
        return {"type": "text", "text": text}
