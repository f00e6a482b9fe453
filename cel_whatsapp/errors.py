"""Exceptions raised by cel_whatsapp, all under :class:`CelWhatsappError`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


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
    """

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

    def __init__(self, message: str, *, request_sent: bool) -> None:
        super().__init__(message, retryable=not request_sent)
        self.request_sent = request_sent


class GraphRequestError(GraphAPIError):
    """The request could not be made as asked, so nothing was sent.

    A header value (an access token with a line break, say), the URL or the
    body is not valid HTTP; sending the same request again fails the same way.
    """

    #: Always ``False``, as for a :class:`GraphTransportError` refused connection.
    request_sent = False
