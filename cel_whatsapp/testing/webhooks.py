"""Build webhook bodies shaped like Meta's, and sign them like Meta does.

Shapes follow the ``messages`` webhook reference:
https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/components
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

from ..signature import sign

DEFAULT_PHONE_NUMBER_ID = "106540352242922"
DEFAULT_DISPLAY_NUMBER = "15550783881"
DEFAULT_WABA_ID = "102290129340398"

_ids = itertools.count(1)


def new_wamid() -> str:
    """A fresh, unique message id of WhatsApp's shape."""
    return f"wamid.TEST{time.time_ns():x}{next(_ids):06d}"


def text_message(
    body: str,
    *,
    sender: str | None = "16315551181",
    user_id: str | None = None,
    id: str | None = None,  # noqa: A002 - mirrors the payload's field
    timestamp: int | None = None,
    reply_to: str | None = None,
) -> dict[str, Any]:
    """One ``messages[]`` object of type ``text``."""
    message: dict[str, Any] = {
        "id": id or new_wamid(),
        "timestamp": str(int(time.time()) if timestamp is None else timestamp),
        "type": "text",
        "text": {"body": body},
    }
    if sender is not None:
        message["from"] = sender
    if user_id is not None:
        message["from_user_id"] = user_id
    if reply_to is not None:
        message["context"] = {"from": DEFAULT_DISPLAY_NUMBER, "id": reply_to}
    return message


def contact(
    *,
    wa_id: str | None = "16315551181",
    user_id: str | None = None,
    name: str | None = "Kerry Fisher",
) -> dict[str, Any]:
    """One ``contacts[]`` object."""
    result: dict[str, Any] = {}
    if name is not None:
        result["profile"] = {"name": name}
    if wa_id is not None:
        result["wa_id"] = wa_id
    if user_id is not None:
        result["user_id"] = user_id
    return result


def change_value(
    messages: Iterable[Mapping[str, Any]] = (),
    *,
    contacts: Iterable[Mapping[str, Any]] | None = None,
    statuses: Iterable[Mapping[str, Any]] = (),
    phone_number_id: str = DEFAULT_PHONE_NUMBER_ID,
) -> dict[str, Any]:
    """The ``value`` of a ``messages`` change.

    ``contacts`` defaults to one contact per distinct sender of ``messages``.
    """
    messages = [dict(m) if isinstance(m, Mapping) else m for m in messages]
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {
            "display_phone_number": DEFAULT_DISPLAY_NUMBER,
            "phone_number_id": phone_number_id,
        },
    }
    if contacts is None:
        seen: dict[tuple[Any, Any], dict[str, Any]] = {}
        for m in messages:
            if not isinstance(m, Mapping):
                continue  # tests may slip junk into a batch
            key = (m.get("from"), m.get("from_user_id"))
            if key != (None, None) and key not in seen:
                seen[key] = contact(wa_id=key[0], user_id=key[1])
        contacts = list(seen.values())
    contacts = list(contacts)
    if contacts:
        value["contacts"] = contacts
    if messages:
        value["messages"] = messages
    statuses = list(statuses)
    if statuses:
        value["statuses"] = statuses
    return value


def envelope(
    *values: Mapping[str, Any], waba_id: str = DEFAULT_WABA_ID, field: str = "messages"
) -> dict[str, Any]:
    """A whole webhook body: one entry whose changes carry ``values``."""
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": waba_id, "changes": [{"value": dict(v), "field": field} for v in values]}],
    }


def text_webhook(body: str, **kwargs: Any) -> dict[str, Any]:
    """A webhook body holding one text message (keywords go to :func:`text_message`)."""
    phone_number_id = kwargs.pop("phone_number_id", DEFAULT_PHONE_NUMBER_ID)
    return envelope(change_value([text_message(body, **kwargs)], phone_number_id=phone_number_id))


def encode(body: Mapping[str, Any]) -> bytes:
    """Serialise a body the way Meta does: compact JSON, non-ASCII escaped as ``\\uXXXX``."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def signed_headers(raw: bytes, app_secret: str | None) -> dict[str, str]:
    """Headers for posting ``raw``: content type, and the signature when a secret is given."""
    headers = {"Content-Type": "application/json"}
    if app_secret is not None:
        headers["X-Hub-Signature-256"] = sign(raw, app_secret)
    return headers
