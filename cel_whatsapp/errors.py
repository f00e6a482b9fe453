"""Exceptions raised by cel_whatsapp, all under :class:`CelWhatsappError`."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import requests


class CelWhatsappError(Exception):
    """Root of every exception this package raises on purpose."""


class ConfigurationError(CelWhatsappError, ValueError):
    """A required setting is missing or invalid; the message says what to set."""


class PayloadError(CelWhatsappError, ValueError):
    """A webhook body is not something WhatsApp sends.

    ``where`` is a dotted path into the payload (``"entry[0].changes"``) or
    ``""`` for the body as a whole.
    """

    def __init__(self, message: str, *, where: str = "") -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.reason = message
        self.where = where


class GraphAPIError(CelWhatsappError):
    """The Graph API answered with an error, or could not be reached.

    Attributes mirror Meta's error object (``error.code``, ``error.error_subcode``,
    ``error.message``, ``error.fbtrace_id``) plus the HTTP status. ``retryable``
    says whether sending the same request again may succeed; ``retry_after`` is
    the wait the answer's ``Retry-After`` header asked for, in seconds.

    ``request`` and ``response`` are requests' ``PreparedRequest`` and
    ``Response`` when there was one, as on requests' own exceptions: the
    answer itself, or what the exception from requests carried. They are
    there to inspect, never shown: the request's headers hold the token.
    """

    #: The ``requests.PreparedRequest`` sent (or about to be), when there was one.
    request: requests.PreparedRequest | None
    #: The ``requests.Response`` that came back, when one did.
    response: requests.Response | None

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        error_subcode: int | None = None,
        http_status: int | None = None,
        fbtrace_id: str | None = None,
        error_type: str | None = None,
        details: str | None = None,
        error_data: Mapping[str, Any] | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
        request: requests.PreparedRequest | None = None,
        response: requests.Response | None = None,
    ) -> None:
        self.message = message
        self.code = code
        self.error_subcode = error_subcode
        self.http_status = http_status
        self.fbtrace_id = fbtrace_id
        self.error_type = error_type
        self.details = details
        self.error_data = dict(error_data or {})
        self.retryable = retryable
        #: Seconds from the answer's ``Retry-After`` header, when it had one.
        self.retry_after = retry_after
        if request is None and response is not None:
            request = response.request
        self.request = request
        self.response = response
        super().__init__(self._describe())

    def _describe(self) -> str:
        parts = [self.message]
        if self.details and self.details not in self.message:
            parts.append(f"({self.details})")
        tags = []
        if self.code is not None:
            tags.append(f"code={self.code}")
        if self.error_subcode is not None:
            tags.append(f"subcode={self.error_subcode}")
        if self.http_status is not None:
            tags.append(f"http={self.http_status}")
        if self.fbtrace_id:
            tags.append(f"fbtrace_id={self.fbtrace_id}")
        if tags:
            parts.append("[" + ", ".join(tags) + "]")
        return " ".join(parts)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(message={self.message!r}, code={self.code!r}, "
            f"error_subcode={self.error_subcode!r}, http_status={self.http_status!r}, "
            f"fbtrace_id={self.fbtrace_id!r})"
        )


class GraphTransportError(GraphAPIError):
    """No usable answer came back: connection refused, reset, or timed out.

    ``request_sent`` is ``False`` only when the request certainly never left
    (connection refused, DNS failure); then it is safe to send it again. When
    it is ``True`` WhatsApp may have delivered the message already.
    """

    def __init__(
        self,
        message: str,
        *,
        request_sent: bool,
        request: requests.PreparedRequest | None = None,
        response: requests.Response | None = None,
    ) -> None:
        super().__init__(message, retryable=not request_sent, request=request, response=response)
        self.request_sent = request_sent


class GraphRequestError(GraphAPIError):
    """The request could not be made as asked, so nothing was sent.

    A header value (an access token with a line break, say), the URL or the
    body is not valid HTTP; sending the same request again fails the same way.
    """

    #: Always ``False``, as for a :class:`GraphTransportError` refused connection.
    request_sent = False


class AuthError(GraphAPIError):
    """Meta refused the access token or its permissions (codes 0, 3, 10, 190, 200-299).

    Sending again will not help: renew the token (190: expired) or grant the
    app the ``whatsapp_business_messaging`` permission.
    """


class RateLimitError(GraphAPIError):
    """Too many calls or messages (codes 4, 17, 341, 80007, 130429, 131048, 131056).

    Most are retried after a wait (``retry_after`` when Meta said how long);
    131048 (spam rate limit) is not: the number's quality must recover first.
    """


class OutsideWindowError(GraphAPIError):
    """The user's 24-hour customer-service window is closed (code 131047).

    Only an approved template reaches this user until they write again.
    """


class RecipientError(GraphAPIError):
    """The recipient cannot get this message (e.g. 131026, 131030, 131021, 131049, 131050)."""


class TemplateError(GraphAPIError):
    """A message template was refused: missing, paused, disabled, wrong parameters (132000-132016)."""


class Transience(str, enum.Enum):
    """Whether the same request may succeed if sent again, per Meta's error code."""

    #: Temporary trouble or throttling: send again after a backoff.
    TRANSIENT = "transient"
    #: The pair rate limit (131056): send again once that recipient has cooled down.
    RECIPIENT = "recipient"
    #: Sending the same request again fails the same way.
    PERMANENT = "permanent"


@dataclass(frozen=True, slots=True)
class CodeInfo:
    """What the package knows of one of Meta's numeric error codes."""

    error_class: type[GraphAPIError]
    transience: Transience
    title: str


_T, _R, _P = Transience.TRANSIENT, Transience.RECIPIENT, Transience.PERMANENT

#: Meta's error codes the package acts on: the exception class raised for
#: each, and whether a retry may help. The one table both the error classes
#: and the retry policy read
#: (https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes).
#: A code not listed (nor in :data:`META_CODE_RANGES`) raises a plain
#: :class:`GraphAPIError`, retried only when the HTTP status is 5xx (or 429
#: without a code).
META_CODES: Mapping[int, CodeInfo] = MappingProxyType(
    {
        0: CodeInfo(AuthError, _P, "authentication failed"),
        1: CodeInfo(GraphAPIError, _T, "unknown API error"),
        2: CodeInfo(GraphAPIError, _T, "API service temporarily unavailable"),
        3: CodeInfo(AuthError, _P, "the app lacks the capability for this method"),
        4: CodeInfo(RateLimitError, _T, "too many API calls from the app"),
        10: CodeInfo(AuthError, _P, "permission denied or revoked"),
        17: CodeInfo(RateLimitError, _T, "too many API calls from the user"),
        100: CodeInfo(GraphAPIError, _P, "invalid parameter"),
        190: CodeInfo(AuthError, _P, "access token expired or invalid"),
        341: CodeInfo(RateLimitError, _T, "application limit reached"),
        368: CodeInfo(GraphAPIError, _P, "temporarily blocked for policy violations"),
        80007: CodeInfo(RateLimitError, _T, "WhatsApp Business Account rate limit"),
        130429: CodeInfo(RateLimitError, _T, "throughput limit of the business number"),
        130472: CodeInfo(RecipientError, _P, "the user's number is part of an experiment"),
        131000: CodeInfo(GraphAPIError, _T, "something went wrong at Meta"),
        131005: CodeInfo(AuthError, _P, "access denied"),
        131008: CodeInfo(GraphAPIError, _P, "required parameter missing"),
        131009: CodeInfo(GraphAPIError, _P, "parameter value not valid"),
        131016: CodeInfo(GraphAPIError, _T, "service unavailable"),
        131021: CodeInfo(RecipientError, _P, "the recipient cannot be the sender"),
        131026: CodeInfo(RecipientError, _P, "message undeliverable to this user"),
        131030: CodeInfo(RecipientError, _P, "recipient not in the test number's allowed list"),
        131031: CodeInfo(AuthError, _P, "the business account is locked"),
        131047: CodeInfo(OutsideWindowError, _P, "24-hour customer-service window closed"),
        131048: CodeInfo(RateLimitError, _P, "spam rate limit: the number's quality is low"),
        131049: CodeInfo(RecipientError, _P, "Meta chose not to deliver (engagement limits)"),
        131050: CodeInfo(RecipientError, _P, "the user stopped marketing messages"),
        131051: CodeInfo(GraphAPIError, _P, "unsupported message type"),
        131056: CodeInfo(RateLimitError, _R, "pair rate limit: too many messages to this user"),
        131057: CodeInfo(GraphAPIError, _T, "the business account is in maintenance"),
        133004: CodeInfo(GraphAPIError, _T, "server temporarily unavailable"),
    }
)

#: Ranges of codes, for families Meta numbers in blocks: (first, last, info).
META_CODE_RANGES: tuple[tuple[int, int, CodeInfo], ...] = (
    (200, 299, CodeInfo(AuthError, _P, "API permission missing")),
    (132000, 132016, CodeInfo(TemplateError, _P, "message template refused")),
)


def code_info(code: int | None) -> CodeInfo | None:
    """The table's entry for Meta's ``code``, or ``None`` when the package has none."""
    if code is None:
        return None
    info = META_CODES.get(code)
    if info is not None:
        return info
    for first, last, ranged in META_CODE_RANGES:
        if first <= code <= last:
            return ranged
    return None


def error_class_for(code: int | None) -> type[GraphAPIError]:
    """The :class:`GraphAPIError` subclass raised for Meta's ``code``."""
    info = code_info(code)
    return info.error_class if info is not None else GraphAPIError
