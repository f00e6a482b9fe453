"""The webhook protocol, without a web framework.

:class:`WebhookHandler` takes plain values (query parameters, raw body,
headers) and returns an :class:`HttpResult`; the Flask views only translate.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..config import DEFAULT_MAX_ITEMS_PER_POST
from ..errors import PayloadError
from ..model import Message, StatusEvent
from . import signature
from .answering import message_fields
from .budget import TooManyItemsError, fits_without_counting
from .dedup import Store, StoreError, message_key, safe_key, status_key
from .metrics import Metrics
from .parsing import ParsedWebhook, parse_webhook

logger = logging.getLogger(__name__)

VerificationHandler = Callable[[Any], Any]


#: Sent with every answer: browsers must not guess another type for a body we echo.
NOSNIFF: tuple[tuple[str, str], ...] = (("X-Content-Type-Options", "nosniff"),)
TEXT_PLAIN = "text/plain; charset=utf-8"


@dataclass(frozen=True, slots=True)
class HttpResult:
    """An HTTP answer: status, body, its media type, and further headers."""

    status: int
    body: str
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = NOSNIFF

    @classmethod
    def json(cls, status: int, **fields: Any) -> HttpResult:
        return cls(status, json.dumps(fields, separators=(",", ":")))

    @classmethod
    def error(cls, status: int, message: str) -> HttpResult:
        return cls.json(status, error=message)


OK = HttpResult(200, "OK", TEXT_PLAIN)

#: Unlisted business numbers remembered for the once-per-number warning.
_MAX_WARNED_NUMBERS = 1_000

#: Receives the new messages of a delivery; returns those it could not accept.
MessagesHandler = Callable[[list[Message]], "Sequence[Message] | None"]
#: Receives everything new in a delivery; returns the messages it could not accept.
UpdatesHandler = Callable[[ParsedWebhook], "Sequence[Message] | None"]


class WebhookHandler:
    """Verification (GET) and delivery (POST) for one or several business numbers.

    ``on_updates`` receives what each accepted POST holds that was not seen
    before (with a ``store``, each message id, and each status by id and
    value, is claimed there first): messages of every type, statuses and
    ``value.errors``. Without it, ``on_messages`` receives the new messages
    only. Either returns the messages it could not accept: their claims are
    released and the POST is answered 503, so Meta delivers them again.

    A body holding more than ``max_items`` items (entries, changes, updates
    and the lists inside them; see :mod:`cel_whatsapp.core.budget`) is answered
    413 before any of them is parsed.

    Updates for a business number not in ``phone_number_id`` (one id or a
    sequence) are acknowledged and not handled; each such number is logged
    once, at WARNING.

    With ``metrics``, the new messages accepted are counted by type, and
    the copies skipped.
    """

    def __init__(
        self,
        *,
        verify_token: str,
        phone_number_id: str | Sequence[str],
        on_messages: MessagesHandler | None = None,
        on_updates: UpdatesHandler | None = None,
        app_secret: str | None = None,
        verification_handler: Callable[[], VerificationHandler | None] = lambda: None,
        store: Store | None = None,
        max_items: int | None = DEFAULT_MAX_ITEMS_PER_POST,
        metrics: Metrics | None = None,
    ) -> None:
        if max_items is not None and max_items < 1:
            raise ValueError("max_items must be at least 1 (None: no cap)")
        self._verify_token = verify_token.encode("utf-8")
        self._app_secret = app_secret
        ids = (phone_number_id,) if isinstance(phone_number_id, str) else tuple(phone_number_id)
        if not ids:
            raise ValueError("WebhookHandler needs at least one phone_number_id")
        #: The business numbers handled; the first is the default sender.
        self.phone_number_ids = ids
        self.phone_number_id = ids[0]
        self._numbers = frozenset(ids)
        self._warned_numbers: set[str] = set()
        self._on_messages = on_messages
        self._on_updates = on_updates
        self.store = store
        self.max_items = max_items
        self.metrics = metrics
        self._verification_handler = verification_handler

    def __repr__(self) -> str:
        numbers = self.phone_number_id if len(self.phone_number_ids) == 1 else self.phone_number_ids
        return f"WebhookHandler(phone_number_id={numbers!r}, verify_token=***, app_secret=***)"

    # -- GET -----------------------------------------------------------------

    def verify(self, params: Mapping[str, str]) -> HttpResult:
        """Answer Meta's subscription check.

        ``hub.challenge`` is echoed only when ``hub.mode`` is ``subscribe`` and
        ``hub.verify_token`` matches (compared in constant time), as
        ``text/plain`` with ``X-Content-Type-Options: nosniff`` so that no
        browser reads the echo as HTML or script.
        """
        mode = params.get("hub.mode")
        token = params.get("hub.verify_token")
        challenge = params.get("hub.challenge")
        ok = (
            mode == "subscribe"
            and token is not None
            and challenge is not None
            and hmac.compare_digest(token.encode("utf-8"), self._verify_token)
        )
        self._run_verification_handler(challenge if ok else False)
        if ok:
            logger.info(
                "webhook verified for phone number id(s) %s", ", ".join(self.phone_number_ids)
            )
            return HttpResult(200, challenge or "", TEXT_PLAIN)
        logger.warning("webhook verification refused (mode=%r)", mode)
        return HttpResult(403, "Forbidden", TEXT_PLAIN)

    def _run_verification_handler(self, outcome: Any) -> None:
        handler = self._verification_handler()
        if handler is None:
            return
        try:
            handler(outcome)
        except Exception:
            logger.exception("the verification handler raised; the GET is answered anyway")

    # -- POST ----------------------------------------------------------------

    def receive(self, body: bytes, signature_header: str | None) -> HttpResult:
        """Check, parse and hand over one webhook delivery."""
        if self._app_secret is not None:
            try:
                signature.verify(body, signature_header, self._app_secret)
            except signature.SignatureError as exc:
                logger.warning("webhook refused: %s", exc)
                return HttpResult.error(401 if exc.missing else 403, str(exc))
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            return HttpResult.error(400, "body is not valid JSON")
        # Nearly every body is too short to hold too many items: those are not counted.
        max_items = self.max_items
        if max_items is not None and fits_without_counting(len(body), max_items):
            max_items = None
        try:
            parsed = parse_webhook(data, phone_number_id=self._numbers, max_items=max_items)
        except TooManyItemsError as exc:
            # 413: like a body over the byte cap, the same body will never fit.
            logger.warning("webhook refused (413): %s", exc.reason)
            return HttpResult.error(413, str(exc))
        except PayloadError as exc:
            return HttpResult.error(400, str(exc))
        return self._deliver(parsed)

    def _deliver(self, parsed: ParsedWebhook) -> HttpResult:
        if parsed.other_numbers:
            self._warn_other_numbers(parsed.other_numbers)
        if not (parsed.messages or parsed.statuses or parsed.errors):
            return OK
        try:
            messages = self._claim(parsed.messages)
            try:
                statuses = self._claim_statuses(parsed.statuses) if parsed.statuses else []
            except StoreError:
                self._release(messages)
                raise
        except StoreError as exc:
            logger.error("webhook answered 503: %s", exc)
            return HttpResult.error(503, "temporarily unable to accept updates")
        if self._on_updates is not None:
            # The parsed webhook itself when nothing was a duplicate (the claims
            # keep order, so equal lengths mean equal lists).
            unchanged = len(messages) == len(parsed.messages) and len(statuses) == len(
                parsed.statuses
            )
            fresh = (
                parsed
                if unchanged
                else ParsedWebhook(
                    messages=messages,
                    statuses=statuses,
                    errors=parsed.errors,
                    ignored=parsed.ignored,
                    skipped=parsed.skipped,
                    other_numbers=parsed.other_numbers,
                )
            )
            refused = list(self._on_updates(fresh) or ())
        elif messages and self._on_messages is not None:
            refused = list(self._on_messages(messages) or ())
        else:
            refused = []
        if self.metrics is not None and messages:
            _count_received(self.metrics, messages, refused)
        if not refused:
            return OK
        self._release(refused)
        return HttpResult.error(503, "too busy; deliver again later")

    def _warn_other_numbers(self, numbers: set[str]) -> None:
        new = numbers - self._warned_numbers
        if not new or len(self._warned_numbers) >= _MAX_WARNED_NUMBERS:
            return
        self._warned_numbers |= new
        for number in sorted(new):
            logger.warning(
                "webhook: updates for phone number id %s are not handled here (this webhook "
                "handles %s). Every number subscribed to the Meta app posts to the same URL: "
                "add %s to phone_number_id to answer it, or unsubscribe it. Logged once.",
                safe_key(number),
                ", ".join(self.phone_number_ids),
                safe_key(number),
            )

    def _claim_statuses(self, statuses: list[StatusEvent]) -> list[StatusEvent]:
        """Claim each status (by message id and status value); keep those not seen before."""
        if self.store is None:
            return statuses
        fresh: list[StatusEvent] = []
        for status in statuses:
            number = status.phone_number_id or self.phone_number_id
            if self.store.claim(status_key(number, status.message_id, status.status)):
                fresh.append(status)
        if len(fresh) < len(statuses):
            logger.info(
                "webhook: %d status update(s) already handled: duplicates skipped",
                len(statuses) - len(fresh),
            )
        return fresh

    def _claim(self, messages: list[Message]) -> list[Message]:
        """Claim each message id in the store; keep those not handled before."""
        if self.store is None:
            return messages
        fresh: list[Message] = []
        duplicates: list[Message] = []
        try:
            for message in messages:
                if self.store.claim(message_key(message.lead.phone_number_id, message.id)):
                    fresh.append(message)
                else:
                    duplicates.append(message)
        except StoreError:
            # Give back what this delivery claimed, so its redelivery is handled whole.
            self._release(fresh)
            raise
        if duplicates:
            # One line per POST, however many copies it held; the id is bounded by safe_key.
            logger.info(
                "webhook: %d message(s) already handled: duplicates skipped (first: %s)",
                len(duplicates),
                safe_key(duplicates[0].id),
                extra=message_fields(duplicates[0]),
            )
            if self.metrics is not None:
                self.metrics.duplicates_skipped(len(duplicates))
        return fresh

    def _release(self, messages: Sequence[Message]) -> None:
        if self.store is None:
            return
        failed: list[Message] = []
        error: StoreError | None = None
        for message in messages:
            try:
                self.store.release(message_key(message.lead.phone_number_id, message.id))
            except StoreError as exc:
                failed.append(message)
                error = exc
        if failed:
            logger.error(
                "could not release %d message(s) (%s): a redelivery of them will be skipped "
                "(first: %s)",
                len(failed),
                error,
                safe_key(failed[0].id),
                extra=message_fields(failed[0]),
            )


def _count_received(metrics: Metrics, messages: list[Message], refused: list[Message]) -> None:
    """Count the new messages accepted (those refused come again, and count then)."""
    if refused:
        left = {id(message) for message in refused}
        messages = [message for message in messages if id(message) not in left]
    metrics.messages_received([message.type for message in messages])
