"""The Graph API client: one ``requests.Session``, timeouts, Meta's errors.

No Flask here; the connector owns one client, and so does anything sending
outside a webhook.
"""

from __future__ import annotations

import json as jsonlib
import logging
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import requests
import urllib3

from ..config import DEFAULT_GRAPH_POOL_SIZE, DEFAULT_TIMEOUT, clean_secret
from ..errors import (
    ConfigurationError,
    GraphAPIError,
    GraphRequestError,
    GraphTransportError,
    error_class_for,
)
from . import answering, tracing
from .deferral import SendDeferredError
from .metrics import Metrics, sent_kind
from .retry import Retrier, RetryPolicy, is_retryable
from .sending import SessionSender
from .transport import HTTPClientAdapter, NoConnectionError

logger = logging.getLogger(__name__)

Timeout = float | tuple[float, float]


#: requests' errors raised after the request was sent, besides timeouts.
_FAILED_AFTER_SENDING = (
    requests.exceptions.ContentDecodingError,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.TooManyRedirects,
    requests.exceptions.RetryError,
)

#: What making a request with requests can raise besides our own errors: its
#: whole hierarchy, urllib3's (in case one slips through), and the
#: UnicodeError of a header value http.client cannot encode.
REQUEST_ERRORS = (requests.RequestException, urllib3.exceptions.HTTPError, UnicodeError)

# Raised while the request was being built, before anything was sent.
_NOT_SENT = (
    requests.exceptions.InvalidHeader,
    requests.exceptions.InvalidURL,
    requests.exceptions.InvalidSchema,
    requests.exceptions.MissingSchema,
    requests.exceptions.URLRequired,
    requests.exceptions.InvalidJSONError,
    UnicodeError,
)

# Errors whose text names the host, the URL or the failure, never a header
# value: safe to chain (a logged traceback prints the chained exception).
# InvalidHeader's text, for one, holds the whole header value: the token.
_CHAINABLE = (
    requests.ConnectionError,
    requests.Timeout,
    *_FAILED_AFTER_SENDING,
    requests.exceptions.InvalidURL,
    requests.exceptions.InvalidSchema,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidJSONError,
)


def request_error(exc: BaseException, target: str) -> GraphAPIError:
    """Our error for ``exc``, one of :data:`REQUEST_ERRORS`, raised calling ``target``.

    The message names the exception's type, never its text, which may hold
    a header value. The ``request`` and ``response`` requests' exception
    carried are kept on ours. Raise it ``from chainable(exc)``.
    """
    name = type(exc).__name__
    kept = _kept(exc)
    if isinstance(exc, requests.ConnectionError):
        sent = not isinstance(exc, requests.ConnectTimeout | NoConnectionError) and not _refused(
            exc
        )
        return GraphTransportError(f"could not reach {target} ({name})", request_sent=sent, **kept)
    if isinstance(exc, requests.Timeout):
        return GraphTransportError(
            f"{target} did not answer in time ({name}; the request may have been processed)",
            request_sent=True,
            **kept,
        )
    if isinstance(exc, _FAILED_AFTER_SENDING):
        # The request went out but its answer could not be read: it may
        # have been processed.
        return GraphTransportError(
            f"the answer of {target} could not be read ({name})", request_sent=True, **kept
        )
    if isinstance(exc, _NOT_SENT):
        return GraphRequestError(
            f"the request to {target} could not be made ({name}): a header value (the access "
            "token?), the URL or the body is not valid HTTP; nothing was sent",
            **kept,
        )
    return GraphTransportError(
        f"the request to {target} failed ({name})", request_sent=True, **kept
    )


def _kept(exc: BaseException) -> dict[str, Any]:
    """The ``request`` and ``response`` of requests' ``exc``, when it has them."""
    if not isinstance(exc, requests.RequestException):
        return {}
    request = getattr(exc, "request", None)
    return {
        # A plain Request (not yet prepared) says nothing a PreparedRequest would not.
        "request": request if isinstance(request, requests.PreparedRequest) else None,
        "response": getattr(exc, "response", None),
    }


def chainable(exc: BaseException) -> BaseException | None:
    """``exc`` when its text cannot hold a header value, else ``None`` (chain nothing)."""
    return exc if isinstance(exc, _CHAINABLE) else None


def redirect_error(status: int, response: requests.Response | None = None) -> GraphAPIError:
    """Our error for a 3xx answer of the Graph API, which is never followed.

    Meta's Graph API does not redirect; whatever does (a proxy, a wrong
    ``base_url``) should not get our request. Followed, a redirect could carry
    the token to another host: requests drops ``Authorization`` when the host
    changes as ``urllib.parse`` reads the ``Location``, while urllib3 connects
    where its own parser reads it, and the two disagree on some URLs. A 307 or
    308 would also post the message itself (recipient and text) there. The
    ``Location`` is not named here: its text is the answerer's to choose.
    """
    return GraphAPIError(
        f"the Graph API answered a redirect (HTTP {status}); redirects are not followed so "
        "the token cannot leave Meta's host. Check base_url (WHATSAPP_BASE_URL) and any "
        "proxy in between",
        http_status=status,
        retryable=False,
        response=response,
    )


def error_from_response(response: requests.Response) -> GraphAPIError:
    """Build a :class:`GraphAPIError` from an error answer of the Graph API.

    Meta's error body is ``{"error": {"message", "type", "code",
    "error_subcode", "error_data": {"details"}, "fbtrace_id"}}``; anything
    else (an HTML error page from a proxy, say) still gives a useful error.
    The error keeps ``response`` (and its ``request``).
    """
    status = response.status_code
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    try:
        body = jsonlib.loads(response.content)
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, Mapping) else None
    if not isinstance(error, Mapping):
        bare = GraphAPIError(
            f"Graph API answered HTTP {status} without an error object",
            http_status=status,
            retry_after=retry_after,
            response=response,
        )
        bare.retryable = is_retryable(bare)
        return bare
    code = int_or_none(error.get("code"))
    error_data = error.get("error_data")
    if not isinstance(error_data, Mapping):
        error_data = {}
    details = error_data.get("details")
    result = error_class_for(code)(
        str(error.get("message") or f"Graph API error (HTTP {status})"),
        code=code,
        error_subcode=int_or_none(error.get("error_subcode")),
        http_status=status,
        fbtrace_id=_str_or_none(error.get("fbtrace_id")),
        error_type=_str_or_none(error.get("type")),
        details=str(details) if details else None,
        error_data=error_data,
        retry_after=retry_after,
        response=response,
    )
    result.retryable = is_retryable(result)
    return result


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delay-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - time.time()
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), 24 * 3600.0)


def int_or_none(value: Any) -> int | None:
    """``int(value)`` for numbers and numeric strings Meta sends; ``None`` otherwise."""
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


class GraphClient:
    """Talks to the Graph API with a bearer token.

    ``base_url`` includes the version, e.g. ``https://graph.facebook.com/v25.0``.
    ``retry`` (a :class:`~cel_whatsapp.core.retry.RetryPolicy`) makes failed calls
    be sent again when Meta's error code says that is safe; without it every
    call is tried once.

    Every call goes through ``session.send`` (see
    :mod:`cel_whatsapp.core.sending`), so hooks, adapters and instrumentation
    on the session see them all. On the session built here, environment
    settings (``HTTPS_PROXY``, ``NO_PROXY``, ``REQUESTS_CA_BUNDLE``) are read
    once, with ``trust_env`` then turned off: requests would otherwise re-read
    them, and ``~/.netrc``, per call, which costs more than the call's own
    work on a fast network. A ``.netrc`` entry would also replace our bearer
    token, so it is not consulted. Changing them later needs a new client.
    """

    def __init__(
        self,
        token: str,
        base_url: str,
        *,
        timeout: Timeout = DEFAULT_TIMEOUT,
        session: requests.Session | None = None,
        retry: RetryPolicy | Retrier | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        token = clean_secret("GraphClient's token", token, header=True)
        if not token:
            raise ConfigurationError("GraphClient needs an access token; the one given is empty")
        self._token = token
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retrier = retry if isinstance(retry, Retrier) or retry is None else Retrier(retry)
        #: Counts and times :meth:`send_message` calls (``None``: metrics are off).
        self.metrics = metrics
        #: The bearer token header, sent with every request of this client.
        self.auth_headers = {"Authorization": f"Bearer {token}"}
        if session is None:
            self.session = self._new_session(self.base_url)
            # Our own session: the header rides on it (nothing else uses it).
            self.session.headers.update(self.auth_headers)
            self._sender = SessionSender(self.session)
        else:
            # A user's session may serve several clients (one connector on
            # several apps, each with its token): the header goes with each
            # request, never onto the shared session.
            self.session = session
            self._sender = SessionSender(self.session, self.auth_headers)

    @staticmethod
    def _new_session(base_url: str) -> requests.Session:
        session = requests.Session()
        # The environment's proxies and CA bundle, read once and then set on
        # the session explicitly.
        found = session.merge_environment_settings(base_url, {}, None, None, None)
        # Plain calls go out on http.client, the rest through requests' own
        # adapter (see transport.py). As many pooled connections as
        # background threads may send at once: past the pool size (urllib3's
        # is 10 by default) each extra connection is closed after its send,
        # and the next send opens another.
        adapter = HTTPClientAdapter(pool_maxsize=DEFAULT_GRAPH_POOL_SIZE)
        for prefix in ("https://", "http://"):
            session.mount(prefix, adapter)
        session.trust_env = False
        session.proxies.update(found["proxies"])
        session.verify = found["verify"]
        session.headers["User-Agent"] = "cel-whatsapp"
        # Three of requests' default headers say nothing here: HTTP/1.1
        # connections are persistent anyway, no Accept means any type, and
        # the Graph API's answers are small JSON or media files that do not
        # compress (media are already compressed). Each header is built,
        # validated and sent on every call (bench/, scenario 1).
        session.headers.pop("Connection", None)
        session.headers.pop("Accept", None)
        session.headers.pop("Accept-Encoding", None)
        return session

    def __repr__(self) -> str:
        return f"GraphClient(base_url={self.base_url!r}, token=***)"

    def close(self) -> None:
        self.session.close()

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    def call(
        self,
        method: str,
        url: str,
        *,
        target: str = "the Graph API",
        stream: bool = False,
        **kwargs: Any,
    ) -> requests.Response:
        """Send one request through ``session.send`` and return requests' ``Response``.

        ``kwargs`` are ``json``, ``data``, ``files``, ``headers`` and
        ``timeout`` (the client's by default), as for ``Session.request``.
        The bearer token goes along; a redirect is returned, never followed.
        The answer is not checked; with ``stream=True`` its body is not yet
        read. Raises :class:`GraphTransportError` when no answer came and
        :class:`GraphRequestError` when the request could not be made, their
        messages naming ``target``.
        """
        kwargs.setdefault("timeout", self.timeout)
        try:
            return self._sender.send(method, url, stream=stream, **kwargs)
        except REQUEST_ERRORS as exc:
            raise request_error(exc, target) from chainable(exc)

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Send one request and return the decoded JSON answer.

        Raises :class:`GraphAPIError` for an error answer or a redirect
        (never followed), and :class:`GraphTransportError` when no answer
        came. With a retry policy, retryable failures are sent again first;
        ``recipient`` and ``sender`` (keywords) name the user a send goes to
        and the business number it goes from, for rate control.
        """
        recipient = kwargs.pop("recipient", None)
        sender = kwargs.pop("sender", None)
        if self.retrier is None:
            return self._request_once(method, path, json=json, **kwargs)
        return self.retrier.call(
            lambda: self._request_once(method, path, json=json, **kwargs),
            recipient=recipient,
            number=sender,
        )

    def _request_once(
        self,
        method: str,
        path: str,
        *,
        json: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        response = self.call(method, self.url(path), json=json, **kwargs)
        status = response.status_code
        if 300 <= status < 400:
            raise redirect_error(status, response)
        if status >= 400:
            error = error_from_response(response)
            logger.debug("Graph API error on %s %s: %s", method, path, error)
            raise error
        try:
            data = jsonlib.loads(response.content)
        except ValueError as exc:
            raise GraphAPIError(
                "Graph API answered with a body that is not JSON",
                http_status=status,
                response=response,
            ) from exc
        if not isinstance(data, dict):
            raise GraphAPIError(
                "Graph API answered with JSON that is not an object",
                http_status=status,
                response=response,
            )
        return data

    def send_message(self, phone_number_id: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        """POST ``/{phone_number_id}/messages``; returns Meta's answer.

        With metrics on, the send is counted (by kind, or by error code when
        it fails for good) and timed, retries included; the first message
        of an answer that Meta accepts also times the first reply. With
        OpenTelemetry in use (see :mod:`~cel_whatsapp.core.tracing`), it runs in a
        ``whatsapp.send`` span.
        """
        recipient = payload.get("to") or payload.get("recipient")
        metrics = self.metrics
        if metrics is None and not tracing.enabled():
            return self._send_message(phone_number_id, payload, recipient)
        kind = sent_kind(payload)
        attributes = {"whatsapp.send.kind": kind, "whatsapp.phone_number_id": phone_number_id}
        started = time.perf_counter()
        deferred: SendDeferredError | None = None
        with tracing.span(tracing.SEND_SPAN, attributes) as span:
            try:
                answer = self._send_message(phone_number_id, payload, recipient)
            except SendDeferredError as exc:
                # Not a failure: a job worker keeps the send for the job's retry,
                # which counts it when it goes out.
                deferred = exc
                if span is not None:
                    span.set_attribute("whatsapp.send.deferred", True)
            except GraphAPIError as exc:
                if metrics is not None:
                    metrics.send_failed(exc, time.perf_counter() - started)
                if span is not None and exc.code is not None:
                    span.set_attribute("whatsapp.error.code", exc.code)
                raise
        if deferred is not None:
            raise deferred
        if metrics is not None:
            metrics.message_sent(kind, time.perf_counter() - started)
            state = answering.current()
            if kind != "read_receipt" and state is not None and not state.replied:
                state.replied = True
                if state.received_at is not None:
                    metrics.first_reply(time.monotonic() - state.received_at)
        return answer

    def _send_message(
        self, phone_number_id: str, payload: Mapping[str, Any], recipient: Any
    ) -> dict[str, Any]:
        return self.request(
            "POST",
            f"{phone_number_id}/messages",
            json=payload,
            recipient=str(recipient) if recipient else None,
            sender=phone_number_id,
        )


def _refused(exc: requests.ConnectionError) -> bool:
    """True when no connection was made, so the request never left.

    Only what caused ``exc`` is followed (``__cause__``, the exception
    requests wraps, urllib3's ``reason``), never ``__context__``: an error
    the caller was handling when it sent says nothing about this request.
    """
    cause: BaseException | None = exc
    seen = 0
    while cause is not None and seen < 10:
        if isinstance(cause, ConnectionRefusedError | urllib3.exceptions.NewConnectionError):
            return True
        cause = cause.__cause__ or _reason(cause) or _wrapped(cause)
        seen += 1
    return False


def _wrapped(exc: BaseException) -> BaseException | None:
    """The exception requests wrapped in ``exc`` (its first argument), if any."""
    first = exc.args[0] if exc.args else None
    return first if isinstance(first, BaseException) else None


def _reason(exc: BaseException) -> BaseException | None:
    reason = getattr(exc, "reason", None)
    return reason if isinstance(reason, BaseException) else None
