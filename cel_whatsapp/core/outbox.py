"""Sending for one business number: addressing, limits, and Meta's answers.

Used by the responder (answers inside a webhook) and by the connector's
proactive :meth:`~cel_whatsapp.WhatsappConnector.send`. No Flask here.
"""

from __future__ import annotations

import logging
import mimetypes
import os
import re
from collections.abc import Mapping
from typing import IO, Any, Union

from ..config import DEFAULT_POLICY, check_policy
from ..errors import GraphAPIError, OutsideWindowError
from ..model import Lead
from ..replies import React, Reply, Text
from ._sentences import split_text
from .deferral import SendDeferredError, current_deferral
from .graph import GraphClient
from .limits import fit_reply

logger = logging.getLogger(__name__)

#: What :meth:`Outbox.upload_media` accepts: bytes, a path, or a binary file.
MediaSource = Union[bytes, bytearray, memoryview, str, "os.PathLike[str]", IO[bytes]]

# E.164: up to 15 digits after an optional "+". Spaces, dashes, dots and
# parentheses people type between digit groups are dropped.
_PHONE = re.compile(r"\+?[0-9]{6,15}")
_PHONE_SEPARATORS = re.compile(r"[\s\-().]")
# A business-scoped user id: a two-letter country code, a dot, then letters,
# digits and dots ("US.13491208655302741918", "US.ENT.11815799212886844830").
_BSUID = re.compile(r"[A-Z]{2}\.[A-Za-z0-9][A-Za-z0-9.]{0,160}")


def recipient_for(to: str | Lead) -> dict[str, str]:
    """The addressing part of a send payload for ``to``.

    ``to`` is a phone number in E.164 with or without ``+`` (sent as
    ``"to"``, digits only), a business-scoped user id such as
    ``"US.13491208655302741918"`` (sent as ``"recipient"``), or a
    :class:`~cel_whatsapp.Lead`.
    """
    if isinstance(to, Lead):
        return dict(to.recipient)
    if not isinstance(to, str):
        raise TypeError(f"to must be a phone number, a user id or a Lead, not {type(to).__name__}")
    value = to.strip()
    if _BSUID.fullmatch(value):
        return {"recipient": value}
    digits = _PHONE_SEPARATORS.sub("", value)
    if _PHONE.fullmatch(digits):
        return {"to": digits.lstrip("+")}
    raise ValueError(
        f"{to!r} is neither a phone number in E.164 form (+16505551234) nor a "
        "business-scoped user id (US.13491208655302741918)"
    )


def explain(error: GraphAPIError) -> GraphAPIError:
    """Meta's error, with a message that says what to do when the cause is known."""
    if not isinstance(error, OutsideWindowError):
        return error
    return OutsideWindowError(
        "This user's 24-hour customer-service window is closed (they last wrote "
        "more than 24 hours ago, or never): only a template can reach this user now. "
        "Send an approved Template; when the user writes again, any message type works.",
        code=error.code,
        error_subcode=error.error_subcode,
        http_status=error.http_status,
        fbtrace_id=error.fbtrace_id,
        error_type=error.error_type,
        details=error.details or error.message,
        error_data=error.error_data,
        retryable=False,
        request=error.request,
        response=error.response,
    )


def sent_message_id(answer: Mapping[str, Any]) -> str | None:
    """The wamid from a send answer (``{"messages": [{"id": ...}]}``)."""
    messages = answer.get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[0], (dict, Mapping)):
        value = messages[0].get("id")
        return str(value) if value is not None else None
    return None


class Outbox:
    """Sends messages from one business number, within WhatsApp's limits.

    ``limits`` is the policy for replies over a limit: ``"fit"`` or
    ``"strict"`` (see :mod:`cel_whatsapp.core.limits`).
    """

    def __init__(
        self, graph: GraphClient, phone_number_id: str, *, limits: str = DEFAULT_POLICY
    ) -> None:
        self.graph = graph
        self.phone_number_id = phone_number_id
        self.limits = check_policy(limits)

    def __repr__(self) -> str:
        return f"Outbox(phone_number_id={self.phone_number_id!r}, limits={self.limits!r})"

    # -- messages ---------------------------------------------------------------

    def post(self, payload: Mapping[str, Any]) -> str | None:
        """POST one complete payload to ``/messages``; return the new wamid.

        Inside :func:`~cel_whatsapp.core.deferral.deferring` (a job worker), a
        send that would wait long is kept instead, with every later one, and
        ``None`` is returned: see :mod:`cel_whatsapp.core.deferral`.
        """
        deferral = current_deferral()
        if deferral is not None and deferral.holding:
            deferral.keep(self.phone_number_id, payload)
            return None
        try:
            if deferral is None:
                answer = self.graph.send_message(self.phone_number_id, payload)
            else:
                with deferral.armed():
                    answer = self.graph.send_message(self.phone_number_id, payload)
        except SendDeferredError as exc:
            if deferral is None:
                raise
            deferral.keep(self.phone_number_id, payload, exc.seconds)
            return None
        except GraphAPIError as exc:
            explained = explain(exc)
            if explained is exc:
                raise
            raise explained from exc
        return sent_message_id(answer)

    def send_text(self, recipient: Mapping[str, str], body: str) -> str | None:
        """Send one text piece that is already within the 4096-character limit."""
        payload: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual"}
        payload.update(recipient)
        payload["type"] = "text"
        payload["text"] = {"body": body}
        return self.post(payload)

    def prepare(self, item: Reply | str, *, answering: str | None = None) -> list[Reply]:
        """The replies that will be sent for ``item``, checked against the limits.

        A ``str`` is split like streamed text; a reply goes through the
        ``limits`` policy. ``answering`` is the message a reaction without
        ``message_id`` reacts to.
        """
        if isinstance(item, str):
            if not item.strip():
                raise ValueError("cannot send an empty text")
            return [Text(piece) for piece in split_text(item)]
        if not isinstance(item, Reply):
            raise TypeError(f"cannot send {type(item).__name__}: send a str or a reply object")
        if isinstance(item, React):
            if item.message_id is None and answering is None:
                raise ValueError(
                    "React(message_id=None) reacts to the message being answered; outside "
                    "a webhook pass the wamid to react to as message_id="
                )
            item = item.answering(answering) if answering is not None else item
        return fit_reply(item, self.limits)

    def send(
        self,
        to: str | Lead | Mapping[str, str],
        item: Reply | str,
        *,
        answering: str | None = None,
    ) -> list[str]:
        """Send ``item`` to ``to``; return the wamids of the messages sent, in order.

        Everything is checked before the first request, so a strict-limit
        error sends nothing.
        """
        recipient = dict(to) if isinstance(to, Mapping) else recipient_for(to)
        replies = self.prepare(item, answering=answering)
        sent: list[str] = []
        for reply in replies:
            payload: dict[str, Any] = {"messaging_product": "whatsapp"}
            payload["recipient_type"] = "individual"
            payload.update(recipient)
            payload.update(reply.payload())
            wamid = self.post(payload)
            if wamid:
                sent.append(wamid)
        return sent

    def mark_read(self, message_id: str, *, typing: bool = False) -> None:
        """Mark ``message_id`` read (blue ticks); ``typing=True`` also shows "typing…".

        WhatsApp hides the typing indicator after 25 seconds or when the
        answer arrives, whichever comes first.
        """
        if not isinstance(message_id, str) or not message_id.strip():
            raise ValueError("mark_read needs the wamid of a received message")
        payload: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": message_id,
        }
        if typing:
            payload["typing_indicator"] = {"type": "text"}
        self.post(payload)

    # -- media --------------------------------------------------------------------

    def upload_media(self, source: MediaSource, mime_type: str, filename: str | None = None) -> str:
        """Upload a file to WhatsApp; return its media id for ``media_id=``.

        ``source`` is the file's bytes, a path, or a binary file object.
        Meta keeps uploaded media for 30 days.
        """
        if not isinstance(mime_type, str) or "/" not in mime_type:
            raise ValueError(
                f"mime_type must be a MIME type such as 'image/png', not {mime_type!r}"
            )
        data, name = _read(source)
        if not data:
            raise ValueError("cannot upload an empty file")
        name = filename or name or _default_name(mime_type)
        answer = self.graph.request(
            "POST",
            f"{self.phone_number_id}/media",
            data={"messaging_product": "whatsapp", "type": mime_type},
            files={"file": (name, data, mime_type)},
        )
        media_id = answer.get("id")
        if not media_id:
            raise GraphAPIError("the Graph API accepted the upload but returned no media id")
        logger.debug("uploaded %d bytes of %s as media %s", len(data), mime_type, media_id)
        return str(media_id)


def _read(source: MediaSource) -> tuple[bytes, str | None]:
    """The bytes of ``source`` and the file name it suggests, if any."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), None
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        with open(path, "rb") as handle:
            return handle.read(), os.path.basename(path)
    read = getattr(source, "read", None)
    if callable(read):
        data = read()
        if not isinstance(data, bytes):
            raise TypeError("upload_media needs a file opened in binary mode ('rb')")
        name = getattr(source, "name", None)
        return data, os.path.basename(name) if isinstance(name, str) else None
    raise TypeError(
        f"upload_media takes bytes, a path or a binary file, not {type(source).__name__}"
    )


def _default_name(mime_type: str) -> str:
    return "upload" + (mimetypes.guess_extension(mime_type.split(";")[0].strip()) or "")
