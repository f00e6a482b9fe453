"""A message as a job: plain JSON that a worker in another process turns back into it.

A job queue (Celery, see :mod:`cel_whatsapp.celery`) carries JSON, not
pickled objects: the worker may run another version of Python or of this
package, and a pickle from the broker could run code. :func:`job_payload`
keeps what the webhook received for one message, the message object exactly
as Meta sent it and the parts of its change it needs (the business number
and the sender's contact), and :func:`message_from_job` loads it again with
the webhook's own schemas (:func:`cel_whatsapp.core.parsing.load_message`).

The payload never holds a credential: the worker answers with its own
connector's settings, found by ``name``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import PayloadError
from ..model import Message
from .parsing import load_message

#: The payload format; :func:`message_from_job` refuses any other version.
JOB_VERSION = 1


def job_payload(name: str, message: Message) -> dict[str, Any]:
    """The JSON-ready payload of ``message`` for the connector called ``name``.

    ``message`` must come from a webhook (its ``metadata["raw"]`` holds the
    message object as received); a message built in code cannot travel this
    way and raises :class:`ValueError`.
    """
    raw = message.metadata.get("raw")
    if not isinstance(raw, Mapping) or not raw:
        raise ValueError(
            f"message {message.id} has no raw JSON (metadata['raw']): only messages "
            "parsed from a webhook can be answered by a job worker"
        )
    lead = message.lead
    contact: dict[str, Any] = {}
    if lead.phone:
        contact["wa_id"] = lead.phone
    if lead.user_id:
        contact["user_id"] = lead.user_id
    if lead.name is not None:
        contact["profile"] = {"name": lead.name}
    metadata = {
        "phone_number_id": lead.phone_number_id or message.metadata.get("phone_number_id"),
        "display_phone_number": message.metadata.get("display_phone_number"),
        "waba_id": message.metadata.get("waba_id"),
    }
    return {
        "v": JOB_VERSION,
        "name": name,
        "message": dict(raw),
        "metadata": metadata,
        "contact": contact,
        "echo": bool(message.metadata.get("echo")),
    }


def message_from_job(payload: Mapping[str, Any]) -> tuple[str, Message]:
    """The connector name and the :class:`Message` of a :func:`job_payload`.

    Raises :class:`~cel_whatsapp.errors.PayloadError` when the payload is not
    one (another version, a missing part, a message that does not load).
    """
    if not isinstance(payload, Mapping):
        raise PayloadError("a job payload must be a JSON object")
    if payload.get("v") != JOB_VERSION:
        raise PayloadError(
            f"job payload version {payload.get('v')!r} is not {JOB_VERSION}: was it sent by "
            "another version of cel_whatsapp?",
            where="v",
        )
    name = payload.get("name")
    if not isinstance(name, str) or not name:
        raise PayloadError("no connector name in a job payload", where="name")
    raw = _mapping(payload, "message")
    metadata = _mapping(payload, "metadata")
    contact = _mapping(payload, "contact")
    message = load_message(
        raw, metadata=metadata, contact=contact or None, echo=bool(payload.get("echo"))
    )
    return name, message


def _mapping(payload: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = payload.get(key)
    if not isinstance(value, Mapping):
        raise PayloadError("missing, or not a JSON object, in a job payload", where=key)
    return value
