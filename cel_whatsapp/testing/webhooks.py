"""Build webhook bodies shaped like Meta's, and sign them like Meta does.

One builder per kind of update in Meta's ``messages`` webhook reference
(https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages):
each ``*_message`` function returns one ``value.messages[]`` object, :func:`status`
one ``value.statuses[]`` object and :func:`error` one ``value.errors[]`` object.
:func:`webhook` wraps any of them into a whole body::

    body = webhook(image_message(caption="Look"), text_message("and this"))
    raw = encode(body)
    client.post("/whatsapp", data=raw, headers=signed_headers(raw, APP_SECRET))

Every message builder takes the same keywords for the parts all messages
share: ``sender`` (the user's phone, ``from``), ``user_id`` (the business-scoped
user id, ``from_user_id``), ``id``, ``timestamp``, ``reply_to`` (``context.id``),
``forwarded``, ``frequently_forwarded``, ``referred_product`` and ``referral``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..core.signature import sign

DEFAULT_PHONE_NUMBER_ID = "106540352242922"
DEFAULT_DISPLAY_NUMBER = "15550783881"
DEFAULT_WABA_ID = "102290129340398"
#: The sender of built messages unless told otherwise.
DEFAULT_SENDER = "16315551181"
DEFAULT_SENDER_NAME = "Kerry Fisher"

#: Types whose webhooks carry no ``contacts`` array (Meta's system messages).
_NO_CONTACT_TYPES = frozenset({"system"})

_ids = itertools.count(1)


def new_wamid() -> str:
    """A fresh, unique message id of WhatsApp's shape."""
    return f"wamid.TEST{time.time_ns():x}{next(_ids):06d}"


def new_media_id() -> str:
    """A fresh, unique numeric media id, as Meta hands them out."""
    return f"{time.time_ns() % 10**15:015d}{next(_ids) % 1000:03d}"


# -- the parts every message shares -------------------------------------------


def _base(
    message_type: str,
    *,
    sender: str | None = DEFAULT_SENDER,
    user_id: str | None = None,
    id: str | None = None,  # noqa: A002 - mirrors the payload's field
    timestamp: int | None = None,
    reply_to: str | None = None,
    forwarded: bool = False,
    frequently_forwarded: bool = False,
    referred_product: Mapping[str, str] | None = None,
    referral: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    message: dict[str, Any] = {}
    if sender is not None:
        message["from"] = sender
    if user_id is not None:
        message["from_user_id"] = user_id
    message["id"] = id or new_wamid()
    message["timestamp"] = str(int(time.time()) if timestamp is None else timestamp)
    message["type"] = message_type
    context: dict[str, Any] = {}
    if reply_to is not None:
        context["from"] = DEFAULT_DISPLAY_NUMBER
        context["id"] = reply_to
    if forwarded:
        context["forwarded"] = True
    if frequently_forwarded:
        context["frequently_forwarded"] = True
    if referred_product is not None:
        context["referred_product"] = dict(referred_product)
    if context:
        message["context"] = context
    if referral is not None:
        message["referral"] = dict(referral)
    return message


def _with(message: dict[str, Any], key: str, content: Mapping[str, Any]) -> dict[str, Any]:
    message[key] = {k: v for k, v in content.items() if v is not None}
    return message


# -- messages a person writes ------------------------------------------------------


def text_message(body: str, **common: Any) -> dict[str, Any]:
    """A ``text`` message."""
    return _with(_base("text", **common), "text", {"body": body})


def _media(
    kind: str,
    *,
    media_id: str | None,
    mime_type: str,
    sha256: str | None,
    url: str | None,
    extra: Mapping[str, Any],
    common: dict[str, Any],
) -> dict[str, Any]:
    media_id = media_id or new_media_id()
    content: dict[str, Any] = {
        "mime_type": mime_type,
        "sha256": sha256 or hashlib.sha256(media_id.encode()).hexdigest(),
        "id": media_id,
    }
    content.update(extra)
    if url is not None:
        content["url"] = url
    return _with(_base(kind, **common), kind, content)


def image_message(
    *,
    media_id: str | None = None,
    mime_type: str = "image/jpeg",
    sha256: str | None = None,
    caption: str | None = None,
    url: str | None = None,
    **common: Any,
) -> dict[str, Any]:
    """An ``image`` message (``caption`` optional)."""
    return _media(
        "image",
        media_id=media_id,
        mime_type=mime_type,
        sha256=sha256,
        url=url,
        extra={"caption": caption},
        common=common,
    )


def audio_message(
    *,
    media_id: str | None = None,
    voice: bool = False,
    mime_type: str | None = None,
    sha256: str | None = None,
    url: str | None = None,
    **common: Any,
) -> dict[str, Any]:
    """An ``audio`` message; ``voice=True`` for a voice note (Ogg/Opus, ``"voice": true``)."""
    if mime_type is None:
        mime_type = "audio/ogg; codecs=opus" if voice else "audio/mpeg"
    return _media(
        "audio",
        media_id=media_id,
        mime_type=mime_type,
        sha256=sha256,
        url=url,
        extra={"voice": voice},
        common=common,
    )


def video_message(
    *,
    media_id: str | None = None,
    mime_type: str = "video/mp4",
    sha256: str | None = None,
    caption: str | None = None,
    url: str | None = None,
    **common: Any,
) -> dict[str, Any]:
    """A ``video`` message (``caption`` optional)."""
    return _media(
        "video",
        media_id=media_id,
        mime_type=mime_type,
        sha256=sha256,
        url=url,
        extra={"caption": caption},
        common=common,
    )


def document_message(
    *,
    filename: str | None = "document.pdf",
    media_id: str | None = None,
    mime_type: str = "application/pdf",
    sha256: str | None = None,
    caption: str | None = None,
    url: str | None = None,
    **common: Any,
) -> dict[str, Any]:
    """A ``document`` message with its ``filename`` (and an optional ``caption``)."""
    return _media(
        "document",
        media_id=media_id,
        mime_type=mime_type,
        sha256=sha256,
        url=url,
        extra={"caption": caption, "filename": filename},
        common=common,
    )


def sticker_message(
    *,
    media_id: str | None = None,
    animated: bool = False,
    mime_type: str = "image/webp",
    sha256: str | None = None,
    url: str | None = None,
    **common: Any,
) -> dict[str, Any]:
    """A ``sticker`` message (WebP; ``animated`` as Meta reports it)."""
    return _media(
        "sticker",
        media_id=media_id,
        mime_type=mime_type,
        sha256=sha256,
        url=url,
        extra={"animated": animated},
        common=common,
    )


def location_message(
    latitude: float,
    longitude: float,
    *,
    name: str | None = None,
    address: str | None = None,
    url: str | None = None,
    **common: Any,
) -> dict[str, Any]:
    """A ``location`` message; a shared live position has only the coordinates."""
    content = {
        "latitude": latitude,
        "longitude": longitude,
        "name": name,
        "address": address,
        "url": url,
    }
    return _with(_base("location", **common), "location", content)


def contact_card(
    formatted_name: str,
    *,
    phones: Iterable[Mapping[str, str] | str] = (),
    emails: Iterable[Mapping[str, str] | str] = (),
    first_name: str | None = None,
    last_name: str | None = None,
    org: Mapping[str, str] | None = None,
    urls: Iterable[Mapping[str, str] | str] = (),
    addresses: Iterable[Mapping[str, str]] = (),
    birthday: str | None = None,
) -> dict[str, Any]:
    """One card of a ``contacts`` message.

    A plain string in ``phones`` becomes ``{"phone": s, "wa_id": digits, "type": "CELL"}``;
    in ``emails`` and ``urls``, ``{"email"/"url": s, "type": "WORK"}``.
    """
    name: dict[str, Any] = {"formatted_name": formatted_name}
    if first_name is not None:
        name["first_name"] = first_name
    if last_name is not None:
        name["last_name"] = last_name
    card: dict[str, Any] = {"name": name}
    phone_list = [
        {"phone": p, "wa_id": "".join(c for c in p if c.isdigit()), "type": "CELL"}
        if isinstance(p, str)
        else dict(p)
        for p in phones
    ]
    if phone_list:
        card["phones"] = phone_list
    email_list = [{"email": e, "type": "WORK"} if isinstance(e, str) else dict(e) for e in emails]
    if email_list:
        card["emails"] = email_list
    url_list = [{"url": u, "type": "WORK"} if isinstance(u, str) else dict(u) for u in urls]
    if url_list:
        card["urls"] = url_list
    address_list = [dict(a) for a in addresses]
    if address_list:
        card["addresses"] = address_list
    if org is not None:
        card["org"] = dict(org)
    if birthday is not None:
        card["birthday"] = birthday
    return card


def contacts_message(cards: Sequence[Mapping[str, Any]], **common: Any) -> dict[str, Any]:
    """A ``contacts`` message holding one or more :func:`contact_card` objects."""
    message = _base("contacts", **common)
    message["contacts"] = [dict(card) for card in cards]
    return message


def button_reply_message(
    button_id: str, title: str, *, reply_to: str | None = None, **common: Any
) -> dict[str, Any]:
    """The user tapped a reply button (``interactive`` / ``button_reply``).

    ``reply_to`` is the wamid of the message that carried the button.
    """
    message = _base("interactive", reply_to=reply_to or new_wamid(), **common)
    message["interactive"] = {
        "type": "button_reply",
        "button_reply": {"id": button_id, "title": title},
    }
    return message


def list_reply_message(
    row_id: str,
    title: str,
    description: str | None = None,
    *,
    reply_to: str | None = None,
    **common: Any,
) -> dict[str, Any]:
    """The user picked a list row (``interactive`` / ``list_reply``)."""
    row: dict[str, Any] = {"id": row_id, "title": title}
    if description is not None:
        row["description"] = description
    message = _base("interactive", reply_to=reply_to or new_wamid(), **common)
    message["interactive"] = {"type": "list_reply", "list_reply": row}
    return message


def nfm_reply_message(
    response: Mapping[str, Any] | str,
    *,
    name: str = "flow",
    body: str = "Sent",
    reply_to: str | None = None,
    **common: Any,
) -> dict[str, Any]:
    """The user completed a Flow (``interactive`` / ``nfm_reply``).

    ``response`` is the Flow's answer; Meta sends it as a JSON *string* in
    ``response_json``, and so does this builder when given a mapping.
    """
    response_json = response if isinstance(response, str) else json.dumps(dict(response))
    message = _base("interactive", reply_to=reply_to or new_wamid(), **common)
    message["interactive"] = {
        "type": "nfm_reply",
        "nfm_reply": {"name": name, "body": body, "response_json": response_json},
    }
    return message


def template_button_message(
    payload: str, text: str, *, reply_to: str | None = None, **common: Any
) -> dict[str, Any]:
    """The user tapped a template's quick-reply button (type ``button``)."""
    message = _base("button", reply_to=reply_to or new_wamid(), **common)
    message["button"] = {"payload": payload, "text": text}
    return message


def reaction_message(
    message_id: str, emoji: str | None = "\N{THUMBS UP SIGN}", **common: Any
) -> dict[str, Any]:
    """A ``reaction`` to the business's message ``message_id``.

    ``emoji=None`` builds a removed reaction: Meta then leaves ``emoji`` out.
    """
    content: dict[str, Any] = {"message_id": message_id}
    if emoji is not None:
        content["emoji"] = emoji
    message = _base("reaction", **common)
    message["reaction"] = content
    return message


def product_item(
    product_retailer_id: str, *, quantity: int = 1, item_price: float = 7.99, currency: str = "USD"
) -> dict[str, Any]:
    """One ``product_items[]`` entry of an order."""
    return {
        "product_retailer_id": product_retailer_id,
        "quantity": quantity,
        "item_price": item_price,
        "currency": currency,
    }


def order_message(
    catalog_id: str = "194836987003835",
    product_items: Sequence[Mapping[str, Any]] = (),
    *,
    text: str | None = None,
    **common: Any,
) -> dict[str, Any]:
    """An ``order`` placed from a catalog, single- or multi-product message."""
    items = [dict(item) for item in product_items] or [product_item("di9ozbzfi4", quantity=2)]
    content: dict[str, Any] = {"catalog_id": catalog_id}
    if text is not None:
        content["text"] = text
    content["product_items"] = items
    message = _base("order", **common)
    message["order"] = content
    return message


def system_message(
    body: str | None = None,
    *,
    system_type: str = "user_changed_number",
    new_wa_id: str | None = "12195555358",
    **common: Any,
) -> dict[str, Any]:
    """A ``system`` message (e.g. the user changed number). Its webhook has no ``contacts``."""
    if body is None:
        body = f"User {DEFAULT_SENDER_NAME} changed from {common.get('sender', DEFAULT_SENDER)} to {new_wa_id}"
    content: dict[str, Any] = {"body": body, "type": system_type}
    if new_wa_id is not None:
        content["wa_id"] = new_wa_id
    message = _base("system", **common)
    message["system"] = content
    return message


def unsupported_message(
    unsupported_type: str = "poll_update",
    *,
    code: int = 131051,
    title: str = "Message type unknown",
    details: str = "Message type is currently not supported.",
    **common: Any,
) -> dict[str, Any]:
    """A message Cloud API cannot pass on (type ``unsupported``, with Meta's ``errors``)."""
    message = _base("unsupported", **common)
    message["errors"] = [
        {"code": code, "title": title, "message": title, "error_data": {"details": details}}
    ]
    message["unsupported"] = {"type": unsupported_type}
    return message


# -- what Meta reports about the business's own messages -------------------------


def error(
    code: int = 130429,
    title: str = "Rate limit hit",
    *,
    message: str | None = None,
    details: str | None = "Message failed to send because there were too many messages "
    "sent from this phone number in a short period of time",
    href: str
    | None = "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
) -> dict[str, Any]:
    """One error object, as in ``value.errors[]`` and in a failed status's ``errors``."""
    result: dict[str, Any] = {"code": code, "title": title, "message": message or title}
    if details is not None:
        result["error_data"] = {"details": details}
    if href is not None:
        result["href"] = href
    return result


def status(
    message_id: str,
    status: str = "delivered",
    *,
    recipient: str | None = DEFAULT_SENDER,
    recipient_user_id: str | None = None,
    timestamp: int | None = None,
    errors: Sequence[Mapping[str, Any]] | None = None,
    pricing: Mapping[str, Any] | None = None,
    conversation: Mapping[str, Any] | None = None,
    biz_opaque_callback_data: str | None = None,
) -> dict[str, Any]:
    """One ``value.statuses[]`` object: ``sent``, ``delivered``, ``read``, ``failed``, ``played``.

    ``sent`` and ``delivered`` carry service-conversation ``pricing`` unless
    given; ``failed`` carries ``errors`` (default: 131026, undeliverable).
    """
    result: dict[str, Any] = {
        "id": message_id,
        "status": status,
        "timestamp": str(int(time.time()) if timestamp is None else timestamp),
    }
    if recipient is not None:
        result["recipient_id"] = recipient
    if recipient_user_id is not None:
        result["recipient_user_id"] = recipient_user_id
    if biz_opaque_callback_data is not None:
        result["biz_opaque_callback_data"] = biz_opaque_callback_data
    if conversation is not None:
        result["conversation"] = dict(conversation)
    if pricing is None and status in ("sent", "delivered"):
        pricing = {
            "billable": False,
            "pricing_model": "PMP",
            "category": "service",
            "type": "free_customer_service",
        }
    if pricing is not None:
        result["pricing"] = dict(pricing)
    if errors is None and status == "failed":
        errors = [
            error(
                131026,
                "Message undeliverable",
                details="Message failed to send because the recipient is unable to receive it.",
            )
        ]
    if errors is not None:
        result["errors"] = [dict(e) for e in errors]
    return result


# -- a change value and a whole envelope -------------------------------------------


def contact(
    *,
    wa_id: str | None = DEFAULT_SENDER,
    user_id: str | None = None,
    name: str | None = DEFAULT_SENDER_NAME,
) -> dict[str, Any]:
    """One ``contacts[]`` object (who wrote)."""
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
    errors: Iterable[Mapping[str, Any]] = (),
    phone_number_id: str = DEFAULT_PHONE_NUMBER_ID,
    display_phone_number: str = DEFAULT_DISPLAY_NUMBER,
    name: str | None = DEFAULT_SENDER_NAME,
) -> dict[str, Any]:
    """The ``value`` of a ``messages`` change.

    ``contacts`` defaults to one contact (named ``name``) per distinct sender
    of ``messages``, system messages excepted, as Meta does.
    """
    messages = [dict(m) if isinstance(m, Mapping) else m for m in messages]
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {
            "display_phone_number": display_phone_number,
            "phone_number_id": phone_number_id,
        },
    }
    if contacts is None:
        seen: dict[tuple[Any, Any], dict[str, Any]] = {}
        for m in messages:
            if not isinstance(m, Mapping) or m.get("type") in _NO_CONTACT_TYPES:
                continue  # tests may slip junk into a batch
            key = (m.get("from"), m.get("from_user_id"))
            if key != (None, None) and key not in seen:
                seen[key] = contact(wa_id=key[0], user_id=key[1], name=name)
        contacts = list(seen.values())
    contacts = list(contacts)
    if contacts:
        value["contacts"] = contacts
    if messages:
        value["messages"] = messages
    statuses = [dict(s) for s in statuses]
    if statuses:
        value["statuses"] = statuses
    errors = [dict(e) for e in errors]
    if errors:
        value["errors"] = errors
    return value


def envelope(
    *values: Mapping[str, Any], waba_id: str = DEFAULT_WABA_ID, field: str = "messages"
) -> dict[str, Any]:
    """A whole webhook body: one entry whose changes carry ``values``."""
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": waba_id, "changes": [{"value": dict(v), "field": field} for v in values]}],
    }


def webhook(
    *messages: Mapping[str, Any],
    statuses: Iterable[Mapping[str, Any]] = (),
    errors: Iterable[Mapping[str, Any]] = (),
    **value_options: Any,
) -> dict[str, Any]:
    """A whole body with ``messages``, ``statuses`` and ``errors`` in one change.

    ``value_options`` go to :func:`change_value` (``contacts``, ``phone_number_id``, ``name``...).
    """
    return envelope(change_value(messages, statuses=statuses, errors=errors, **value_options))


def text_webhook(body: str, **kwargs: Any) -> dict[str, Any]:
    """A webhook body holding one text message (keywords go to :func:`text_message`)."""
    phone_number_id = kwargs.pop("phone_number_id", DEFAULT_PHONE_NUMBER_ID)
    return envelope(change_value([text_message(body, **kwargs)], phone_number_id=phone_number_id))


def status_webhook(
    message_id: str, status_name: str = "delivered", **kwargs: Any
) -> dict[str, Any]:
    """A webhook body holding one status update (keywords go to :func:`status`)."""
    phone_number_id = kwargs.pop("phone_number_id", DEFAULT_PHONE_NUMBER_ID)
    return envelope(
        change_value(
            statuses=[status(message_id, status_name, **kwargs)], phone_number_id=phone_number_id
        )
    )


def errors_webhook(*errors: Mapping[str, Any], **value_options: Any) -> dict[str, Any]:
    """A webhook body holding account- or app-level ``value.errors`` (default: one 130429)."""
    return envelope(change_value(errors=errors or [error()], **value_options))


def encode(body: Mapping[str, Any]) -> bytes:
    """Serialise a body the way Meta does: compact JSON, non-ASCII escaped as ``\\uXXXX``."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def signed_headers(raw: bytes, app_secret: str | None) -> dict[str, str]:
    """Headers for posting ``raw``: content type, and the signature when a secret is given."""
    headers = {"Content-Type": "application/json"}
    if app_secret is not None:
        headers["X-Hub-Signature-256"] = sign(raw, app_secret)
    return headers
