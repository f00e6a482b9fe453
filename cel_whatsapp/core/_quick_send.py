"""Sending through our own ``requests.Session`` without redoing constant work per call.

For every call ``Session.request`` rebuilds a ``Request``, merges the
session's headers, cookies, auth, params and hooks into it, re-parses the
URL and re-reads the environment's proxy settings unless ``trust_env`` is
off; then ``HTTPAdapter.send`` looks the connection pool up again, and
``build_response`` wraps urllib3's answer in a ``Response`` with a fresh
cookie jar, whose body is then read back through a chunk generator. Under
gunicorn this was most of a reply's cost (``python -m bench``, scenario 1),
yet for the session :class:`~cel_whatsapp.core.graph.GraphClient` builds itself
nearly all of it gives the same result on every call.

:class:`QuickSender` works that out once per (method, URL): the request
``Session.prepare_request`` would make, and the connection pool the session's
``HTTPAdapter`` would pick for it, with the TLS settings it would apply. Per
call it encodes the JSON body, posts it on that pool with the arguments the
adapter passes (its ``max_retries``, no redirects) and returns the
:class:`Answer`. urllib3's errors become the ``requests`` exceptions the
adapter raises for them, so callers handle one set of errors.

It only runs while the session is in the shape it relies on: nothing that
depends on the call (auth, params, hooks, cookies, ``trust_env``) set, a plain
``HTTPAdapter`` mounted, no proxy for the URL (a proxied send goes through
the adapter as usual, with the proxies read once). Headers, ``verify`` and
``cert`` are compared on every call and a change works things out anew.
Otherwise :meth:`QuickSender.send` returns ``None`` and the caller uses
``Session.request``. The rare answer that sets a cookie has it stored in the
session's jar, as ``Session.send`` would. A redirect is returned as it is,
never followed: the Graph API does not redirect, and
:class:`~cel_whatsapp.core.graph.GraphClient` refuses one rather than let the
token follow it to another host.
"""

from __future__ import annotations

import json as jsonlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import requests
from requests.adapters import HTTPAdapter
from requests.cookies import extract_cookies_to_jar
from requests.utils import select_proxy
from urllib3 import Timeout as PoolTimeout
from urllib3.exceptions import (
    ClosedPoolError,
    ConnectTimeoutError,
    DecodeError,
    HTTPError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ProxyError,
    ReadTimeoutError,
    ResponseError,
)
from urllib3.exceptions import SSLError as PoolSSLError
from urllib3.util.retry import Retry

__all__ = ["Answer", "QuickSender"]

_MAX_ROUTES = 64  # one per endpoint; media URLs would otherwise pile up


class Answer(NamedTuple):
    """What the Graph API answered: status, headers (case-insensitive) and body."""

    status: int
    headers: Mapping[str, str]
    content: bytes


@dataclass(frozen=True, slots=True)
class _Route:
    """Everything about one (method, URL) that stays the same from call to call."""

    # What it was worked out from: headers, verify, cert, proxies, the adapter
    # and its retry settings.
    settings: tuple[Any, ...]
    prepared: requests.PreparedRequest  # body-less, as Session.prepare_request makes it
    adapter: Any  # the session's adapter for the URL (an HTTPAdapter when pool is set)
    pool: Any  # urllib3's HTTPConnectionPool for the URL's host; None: not for us
    target: str  # the request target: path and query
    headers: dict[str, str]  # for a call without a body, as prepared
    json_headers: dict[str, str]  # for a JSON body, but its Content-Length


class QuickSender:
    """Sends JSON requests through ``session`` (built by ``GraphClient``) with less per-call work."""

    def __init__(self, session: requests.Session) -> None:
        self.session = session
        self._routes: dict[tuple[str, str], _Route] = {}
        self._timeouts: dict[Any, PoolTimeout] = {}

    def usable(self) -> bool:
        """True while the session has nothing that ``Session.request`` would merge per call."""
        session = self.session
        return not (
            session.trust_env
            or session.auth is not None
            or session.params
            or len(session.cookies)
            or any(session.hooks.values())
        )

    def send(
        self, method: str, url: str, json: Mapping[str, Any] | None, timeout: Any
    ) -> Answer | None:
        """Send like ``session.request(method, url, json=json, timeout=timeout)``.

        Returns ``None``, having sent nothing, when the session is not in a
        shape this mirrors. Raises what ``Session.request`` raises.
        """
        if not self.usable():
            return None
        route = self._route(method, url)
        if route is None:
            return None
        body = None
        headers = route.headers
        if json is not None:
            # As PreparedRequest.prepare_body encodes and labels it.
            try:
                body = jsonlib.dumps(json, allow_nan=False).encode("utf-8")
            except ValueError as exc:
                raise requests.exceptions.InvalidJSONError(exc) from exc
            headers = {**route.json_headers, "Content-Length": str(len(body))}
        pool_timeout = self._pool_timeout(timeout)
        try:
            try:
                raw = self._urlopen(route, method, body, headers, pool_timeout)
            except ClosedPoolError:
                # The adapter's pool manager closed this pool (session.close(),
                # or too many hosts): nothing was sent; take today's pool.
                self._routes.pop((method, url), None)
                route = self._route(method, url)
                if route is None:
                    return None
                raw = self._urlopen(route, method, body, headers, pool_timeout)
        except HTTPError as exc:
            raise _as_requests_error(exc) from exc
        except OSError as exc:
            raise requests.ConnectionError(exc) from exc
        if "set-cookie" in raw.headers:
            self._store_cookies(route, raw, json)
        return Answer(raw.status, raw.headers, raw.data)

    @staticmethod
    def _urlopen(
        route: _Route,
        method: str,
        body: bytes | None,
        headers: dict[str, str],
        timeout: PoolTimeout,
    ) -> Any:
        # The arguments HTTPAdapter.send gives, except that the body is read
        # (and decoded) at once, as Session.send does when not streaming.
        return route.pool.urlopen(
            method=method,
            url=route.target,
            body=body,
            headers=headers,
            redirect=False,
            assert_same_host=False,
            preload_content=True,
            decode_content=True,
            retries=route.adapter.max_retries,
            timeout=timeout,
            chunked=False,
        )

    def _route(self, method: str, url: str) -> _Route | None:
        """The route for (method, URL), or ``None`` when requests' own path must send."""
        session = self.session
        adapter = session.get_adapter(url)
        settings = (
            tuple(session.headers.items()),
            session.verify,
            session.cert,
            tuple(session.proxies.items()),
            adapter,
            getattr(adapter, "max_retries", None),
            # A test library that patches HTTPAdapter.send (responses does)
            # must see every request: the lean path would go around it.
            HTTPAdapter.send,
        )
        key = (method, url)
        route = self._routes.get(key)
        if route is None or route.settings != settings:
            route = self._new_route(method, url, adapter, settings)
            if len(self._routes) >= _MAX_ROUTES:
                self._routes.clear()
            self._routes[key] = route
        return route if route.pool is not None else None

    def _new_route(self, method: str, url: str, adapter: Any, settings: tuple[Any, ...]) -> _Route:
        session = self.session
        prepared = session.prepare_request(requests.Request(method, url))
        pool = None
        if (
            type(adapter) is HTTPAdapter  # not a user's or a mocking library's adapter
            and HTTPAdapter.send is _ADAPTER_SEND  # nor a patched one
            and _never_resends(adapter.max_retries)
            and not select_proxy(url, session.proxies)  # a proxy: requests' own path
        ):
            pool = adapter.get_connection_with_tls_context(
                prepared, session.verify, proxies=session.proxies, cert=session.cert
            )
            adapter.cert_verify(pool, url, session.verify, session.cert)  # type: ignore[no-untyped-call,unused-ignore]
        # The JSON headers as PreparedRequest.prepare_body sets them: the
        # session's own Content-Type (in any case) wins over application/json,
        # and Content-Length (in any case) is replaced per call.
        json_headers = {k: v for k, v in prepared.headers.items() if k.lower() != "content-length"}
        if "content-type" not in prepared.headers:
            json_headers["Content-Type"] = "application/json"
        return _Route(
            settings=settings,
            prepared=prepared,
            adapter=adapter,
            pool=pool,
            target=prepared.path_url,
            headers=dict(prepared.headers),
            json_headers=json_headers,
        )

    def _pool_timeout(self, timeout: Any) -> PoolTimeout:
        cached = self._timeouts.get(timeout)
        if cached is None:
            if isinstance(timeout, tuple):
                connect, read = timeout
                cached = PoolTimeout(connect=connect, read=read)
            else:
                cached = PoolTimeout(connect=timeout, read=timeout)
            if len(self._timeouts) < _MAX_ROUTES:
                self._timeouts[timeout] = cached
        return cached

    def _store_cookies(self, route: _Route, raw: Any, json: Mapping[str, Any] | None) -> None:
        """Store the answer's cookies in the session's jar, as ``Session.send`` does."""
        prepared = route.prepared.copy()
        prepared.prepare_body(None, None, json)
        extract_cookies_to_jar(self.session.cookies, prepared, raw)  # type: ignore[no-untyped-call,unused-ignore]


_ADAPTER_SEND = HTTPAdapter.send


def _never_resends(retries: Any) -> bool:
    """Whether urllib3 sends a request once at most under ``retries``.

    The adapter's default, ``Retry(0, read=False)``, never sends again. The
    lean path reads the body inside ``urlopen``, where larger retry settings
    could send a POST again on an error while reading; ``HTTPAdapter.send``
    reads it after, so with such settings requests' own path is taken.
    """
    return isinstance(retries, Retry) and retries.total is not None and not retries.total


def _as_requests_error(exc: HTTPError) -> Exception:
    """The exception ``HTTPAdapter.send`` raises for urllib3's ``exc``."""
    if isinstance(exc, MaxRetryError):
        reason = exc.reason
        if isinstance(reason, ConnectTimeoutError) and not isinstance(reason, NewConnectionError):
            return requests.ConnectTimeout(exc)
        if isinstance(reason, ResponseError):
            return requests.exceptions.RetryError(exc)
        if isinstance(reason, ProxyError):
            return requests.exceptions.ProxyError(exc)
        if isinstance(reason, PoolSSLError):
            return requests.exceptions.SSLError(exc)
        return requests.ConnectionError(exc)
    if isinstance(exc, (ProtocolError, ClosedPoolError)):
        return requests.ConnectionError(exc)
    if isinstance(exc, ProxyError):
        return requests.exceptions.ProxyError(exc)
    if isinstance(exc, PoolSSLError):
        return requests.exceptions.SSLError(exc)
    if isinstance(exc, ReadTimeoutError):
        return requests.ReadTimeout(exc)
    if isinstance(exc, DecodeError):
        return requests.exceptions.ContentDecodingError(exc)
    return requests.exceptions.RequestException(exc)
