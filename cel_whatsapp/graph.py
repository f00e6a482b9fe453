"""The Graph API client: one ``requests.Session``, timeouts, Meta's errors.

No Flask here; the connector owns one client, and so does anything sending
outside a webhook.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import requests
from requests.utils import get_environ_proxies

from .config import DEFAULT_TIMEOUT
from .errors import GraphAPIError, GraphTransportError

logger = logging.getLogger(__name__)

Timeout = float | tuple[float, float]

# Error codes for which sending the same request again may succeed. See Meta's
# error-code reference: throttling, temporary and unknown errors.
RETRYABLE_CODES = frozenset({1, 2, 4, 17, 341, 80007, 130429, 131000, 131016, 131057, 133004})


def error_from_response(response: requests.Response) -> GraphAPIError:
    """Build a :class:`GraphAPIError` from an error answer of the Graph API.

    Meta's error body is ``{"error": {"message", "type", "code",
    "error_subcode", "error_data": {"details"}, "fbtrace_id"}}``; anything
    else (an HTML error page from a proxy, say) still gives a useful error.
    """
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, Mapping) else None
    if not isinstance(error, Mapping):
        return GraphAPIError(
            f"Graph API answered HTTP {status} without an error object",
            http_status=status,
            retryable=status >= 500 or status == 429,
        )
    code = _int_or_none(error.get("code"))
    error_data = error.get("error_data")
    if not isinstance(error_data, Mapping):
        error_data = {}
    details = error_data.get("details")
    return GraphAPIError(
        str(error.get("message") or f"Graph API error (HTTP {status})"),
        code=code,
        error_subcode=_int_or_none(error.get("error_subcode")),
        http_status=status,
        fbtrace_id=_str_or_none(error.get("fbtrace_id")),
        error_type=_str_or_none(error.get("type")),
        details=str(details) if details else None,
        error_data=error_data,
        retryable=(code in RETRYABLE_CODES) or status >= 500,
    )


def _int_or_none(value: Any) -> int | None:
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
    Environment settings (``HTTPS_PROXY``, ``NO_PROXY``, ``REQUESTS_CA_BUNDLE``)
    are read once here instead of on every request: requests would otherwise
    re-read them, and ``~/.netrc``, per call, which costs more than the call's
    own work on a fast network. A ``.netrc`` entry would also replace our
    bearer token, so it is not consulted.
    """

    def __init__(
        self,
        token: str,
        base_url: str,
        *,
        timeout: Timeout = DEFAULT_TIMEOUT,
        session: requests.Session | None = None,
    ) -> None:
        self._token = token
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = session if session is not None else self._new_session(self.base_url)
        self.session.headers["Authorization"] = f"Bearer {token}"

    @staticmethod
    def _new_session(base_url: str) -> requests.Session:
        session = requests.Session()
        session.trust_env = False
        session.proxies.update(get_environ_proxies(base_url))
        bundle = _environ_ca_bundle()
        if bundle:
            session.verify = bundle
        session.headers["User-Agent"] = "cel-whatsapp"
        return session

    def __repr__(self) -> str:
        return f"GraphClient(base_url={self.base_url!r}, token=***)"

    def close(self) -> None:
        self.session.close()

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Send one request and return the decoded JSON answer.

        Raises :class:`GraphAPIError` for an error answer and
        :class:`GraphTransportError` when no answer came.
        """
        kwargs.setdefault("timeout", self.timeout)
        try:
            response = self.session.request(method, self.url(path), json=json, **kwargs)
        except requests.ConnectionError as exc:
            sent = not isinstance(exc, requests.ConnectTimeout) and not _refused(exc)
            raise GraphTransportError(
                f"could not reach the Graph API ({type(exc).__name__})", request_sent=sent
            ) from exc
        except requests.Timeout as exc:
            raise GraphTransportError(
                "the Graph API did not answer in time (the request may have been processed)",
                request_sent=True,
            ) from exc
        if response.status_code >= 400:
            error = error_from_response(response)
            logger.debug("Graph API error on %s %s: %s", method, path, error)
            raise error
        try:
            data = response.json()
        except ValueError as exc:
            raise GraphAPIError(
                "Graph API answered with a body that is not JSON",
                http_status=response.status_code,
            ) from exc
        if not isinstance(data, dict):
            raise GraphAPIError(
                "Graph API answered with JSON that is not an object",
                http_status=response.status_code,
            )
        return data

    def send_message(self, phone_number_id: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        """POST ``/{phone_number_id}/messages``; returns Meta's answer."""
        return self.request("POST", f"{phone_number_id}/messages", json=payload)


def _refused(exc: requests.ConnectionError) -> bool:
    """True when the connection was refused, so the request never left."""
    cause: BaseException | None = exc
    seen = 0
    while cause is not None and seen < 10:
        if isinstance(cause, ConnectionRefusedError):
            return True
        cause = cause.__cause__ or cause.__context__ or _reason(cause)
        seen += 1
    return "Connection refused" in str(exc) or "NewConnectionError" in str(exc)


def _reason(exc: BaseException) -> BaseException | None:
    reason = getattr(exc, "reason", None)
    return reason if isinstance(reason, BaseException) else None


def _environ_ca_bundle() -> str | None:
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or None
