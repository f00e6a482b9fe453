"""A requests transport adapter that posts the Graph API's small calls with ``http.client``.

requests lets a session mount its own transport adapter (``BaseAdapter``,
"Transport Adapters" in requests' advanced usage docs): ``Session.send``
still runs whole (hooks, cookies, the ``Response``, instrumentation that
wraps it), and only the last step, putting the request on a connection,
is the adapter's. requests' own ``HTTPAdapter`` does that step through
urllib3's pool manager, which costs about 120 us of CPU per call more than
the standard library's ``http.client`` on a kept-alive connection
(``python -m bench``, scenario 1; docs/performance.rst). A connector answers
every message with one or more such calls, so the GraphClient's own session
mounts :class:`HTTPClientAdapter`.

It handles the calls the Graph API gets all day, and hands every other kind
to a stock ``HTTPAdapter`` as it came:

- handled: ``http://`` and ``https://`` URLs without credentials in them, a
  ``bytes`` body or none, the answer read whole (``stream=False``),
  ``verify`` ``True`` (requests' CA bundle) or a CA file or directory, no
  client certificate, no proxy (``NO_PROXY`` alone names none), a timeout of
  some seconds (a number or a pair) or ``None``, and no coding asked for
  beyond gzip and deflate;
- handed on: ``stream=True`` (media downloads), a proxy for any scheme,
  a false ``verify`` (so requests' warning is still given), a client
  certificate, a body of any other kind, any other timeout (0 included,
  which requests refuses), an ``Accept-Encoding`` naming ``br`` or ``zstd``
  (requests asks for them when it can decode them), and every call while
  ``HTTPAdapter.send`` is not requests' own (a test library such as
  ``responses`` patched it, and is to see every call).

What it keeps to, as requests' adapter does: idle connections are kept per
origin (at most ``pool_maxsize`` each) and checked before reuse, a
connection that failed or that the server will close is never reused,
nothing is ever sent twice, redirects are the session's business, gzip and
deflate answers are decoded, and the errors are requests' own, carrying the
request: ``ConnectTimeout`` and
``ReadTimeout``, ``SSLError``, ``ChunkedEncodingError`` for a body cut short,
:class:`NoConnectionError` (a ``ConnectionError``) when no connection could be
made, so the request never left, and ``ConnectionError`` for the rest.
One difference: a CA file or directory is read once, at the first TLS
connection that uses it (urllib3 reads it for each new connection), so a
CA bundle replaced on disk is seen after a restart. Cookies an answer sets are put on the ``Response`` (``response.cookies``),
as requests' adapter puts them; ``Session.send`` keeps in the session only
those its own adapter read, so the Graph client's sender
(:mod:`~cel_whatsapp.core.sending`) adds them to the session's jar.

Wanting urllib3's behaviour instead (its instrumentation, its retries), mount
``requests.adapters.HTTPAdapter()`` on the client's session for ``"https://"``,
or give the connector a ``requests.Session`` of your own.
"""

from __future__ import annotations

import http.client
import io
import os
import select
import ssl
import types
import urllib.request
import weakref
import zlib
from collections import deque
from collections.abc import Mapping
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import requests
from requests.adapters import BaseAdapter, HTTPAdapter
from requests.structures import CaseInsensitiveDict
from requests.utils import DEFAULT_CA_BUNDLE_PATH, get_encoding_from_headers

from ..config import DEFAULT_GRAPH_POOL_SIZE

__all__ = ["HTTPClientAdapter", "NoConnectionError"]

# Request URLs remembered with their origin and request target: the Graph
# client posts to a handful; past this many they are all forgotten.
_MAX_TARGETS = 256


class NoConnectionError(requests.exceptions.ConnectionError):
    """No connection to the server could be made: nothing of the request was sent."""


class _Target(NamedTuple):
    """A request URL, as the connection pool needs it."""

    scheme: str
    host: str
    port: int  # always given: http.client would read an IPv6 host's last group as one
    path: str  # the request target: path and query


class HTTPClientAdapter(BaseAdapter):
    """A transport adapter over ``http.client``, for plain calls; the rest go to ``HTTPAdapter``.

    ``pool_maxsize`` connections are kept open per origin (scheme, host,
    port and CA settings); more may be open at once, closed after their
    call. ``fallback`` is the adapter other calls go to (a new
    ``HTTPAdapter(pool_maxsize=pool_maxsize)`` by default). See the module's
    docs for which calls are handled here.
    """

    def __init__(
        self, pool_maxsize: int = DEFAULT_GRAPH_POOL_SIZE, fallback: BaseAdapter | None = None
    ) -> None:
        super().__init__()
        if pool_maxsize < 1:
            raise ValueError("pool_maxsize must be at least 1")
        self.pool_maxsize = pool_maxsize
        self.fallback = fallback if fallback is not None else HTTPAdapter(pool_maxsize=pool_maxsize)
        # Idle connections per origin; deque's append and pop are atomic,
        # so threads share them without a lock.
        self.idle: dict[tuple[Any, ...], deque[http.client.HTTPConnection]] = {}
        self.targets: dict[str, _Target | None] = {}
        self.contexts: dict[str | bool, ssl.SSLContext] = {}
        self.accepted: dict[str, bool] = {}
        _ADAPTERS.add(self)
        # An adapter dropped without close() (its session never closed)
        # closes its idle connections as it goes, as urllib3's pools do.
        weakref.finalize(self, _close_idle, self.idle)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(pool_maxsize={self.pool_maxsize})"

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """Send ``request`` and return its ``Response``, its body read; see the module's docs."""
        body = request.body
        timeouts = _timeouts(timeout)
        plain = (
            not stream
            and cert is None
            and verify  # False, None or "": requests' way of not verifying
            and isinstance(body, bytes | None)
            and not (proxies and _proxied(proxies))
            and self.codings_decoded(request.headers.get("Accept-Encoding"))
            # While a test library (responses) patches requests' adapter,
            # it is to see every call, as it would without this one.
            and not _adapter_patched()
        )
        target = self.target(request.url) if plain else None
        if target is None or timeouts is None:
            return self.fallback.send(
                request,
                stream=stream,
                timeout=timeout,
                verify=verify,
                cert=cert,
                proxies=dict(proxies) if proxies else proxies,
            )
        connect_timeout, read_timeout = timeouts
        key = (target.scheme, target.host, target.port, verify)
        idle = self.idle.get(key)
        if idle is None:
            idle = self.idle.setdefault(key, deque())
        connection = _reusable(idle)
        if connection is None:
            context = self.context(verify) if target.scheme == "https" else None
            connection = _connect(target, context, connect_timeout, request)
        answer: http.client.HTTPResponse | None = None
        try:
            sock = connection.sock
            # settimeout() is a system call each time; the timeout seldom changes.
            if sock is not None and sock.gettimeout() != read_timeout:
                sock.settimeout(read_timeout)
            connection.request(request.method or "GET", target.path, body, request.headers)
            answer = connection.getresponse()
            content = answer.read()
        except BaseException as exc:
            # An answer without a length (or saying close) holds the socket itself.
            if answer is not None:
                answer.close()
            connection.close()
            error = _sending_error(exc, request)
            if error is None:
                raise
            raise error from exc
        # An answer that ends its connection (HTTP/1.0, "Connection: close")
        # has already had http.client close it: no socket left to keep.
        if connection.sock is None or len(idle) >= self.pool_maxsize:
            connection.close()
        else:
            idle.append(connection)
        response = _response(request, answer, content)
        # As requests' adapter sets it: auth handlers (digest, NTLM) resend with it.
        response.connection = self  # type: ignore[assignment]  # typed as HTTPAdapter
        return response

    def codings_decoded(self, accepted: str | bytes | None) -> bool:
        """Whether every coding ``accepted`` (an ``Accept-Encoding``) is one decoded here.

        requests asks for ``br`` when brotli is installed, and for ``zstd`` on
        Python 3.14; urllib3 decodes those, so such calls go to the fallback.
        """
        if accepted is None:
            return True
        if not isinstance(accepted, str):  # requests keeps bytes values as given
            accepted = bytes(accepted).decode("latin-1")
        known = self.accepted.get(accepted)
        if known is None:
            codings = {part.split(";")[0].strip().lower() for part in accepted.split(",")}
            known = codings <= _DECODED | {""}
            if len(self.accepted) >= _MAX_TARGETS:
                self.accepted.clear()
            self.accepted[accepted] = known
        return known

    def close(self) -> None:
        """Close the idle connections and the fallback adapter's."""
        _close_idle(self.idle)
        self.fallback.close()

    def target(self, url: str | None) -> _Target | None:
        """``url`` split for the pool, or ``None`` when it is not plain http(s)."""
        if url is None:
            return None
        target = self.targets.get(url, False)
        if target is not False:
            return target  # type: ignore[return-value]
        target = _split(url)
        if len(self.targets) >= _MAX_TARGETS:
            self.targets.clear()
        self.targets[url] = target
        return target

    def context(self, verify: str | bool) -> ssl.SSLContext:
        """The TLS context for ``verify`` (``True`` or a CA path), made once."""
        context = self.contexts.get(verify)
        if context is None:
            context = self.contexts.setdefault(verify, _tls_context(verify))
        return context


def _connect(
    target: _Target,
    context: ssl.SSLContext | None,
    timeout: float | None,
    request: requests.PreparedRequest,
) -> http.client.HTTPConnection:
    """A new connection to ``target``'s origin, connected, or requests' error."""
    connection: http.client.HTTPConnection
    if target.scheme == "https":
        connection = http.client.HTTPSConnection(
            target.host, target.port, timeout=timeout, context=context
        )
    else:
        connection = http.client.HTTPConnection(target.host, target.port, timeout=timeout)
    try:
        connection.connect()
    except BaseException as exc:
        connection.close()
        if isinstance(exc, TimeoutError):
            raise requests.exceptions.ConnectTimeout(exc, request=request) from exc
        if isinstance(exc, ssl.SSLError | ssl.CertificateError):
            raise requests.exceptions.SSLError(exc, request=request) from exc
        if isinstance(exc, OSError):
            raise NoConnectionError(exc, request=request) from exc
        raise
    return connection


def _response(
    request: requests.PreparedRequest, answer: http.client.HTTPResponse, content: bytes
) -> requests.Response:
    """requests' ``Response`` for ``answer``, as requests' adapter builds it."""
    response = requests.Response()
    response.status_code = answer.status
    headers: CaseInsensitiveDict[str] = CaseInsensitiveDict()
    for name, value in answer.getheaders():
        # Repeated headers joined as urllib3 joins them.
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    coding = headers.get("Content-Encoding")
    if coding is not None:
        content = _decoded(content, coding, request)
    response.headers = headers
    response.encoding = get_encoding_from_headers(headers)
    response.raw = _Body(content, answer.version)
    response.reason = answer.reason
    response.url = request.url or ""
    response.request = request
    if "Set-Cookie" in headers:
        response.cookies.extract_cookies(
            answer,
            # Only read, never opened; the URL is http(s) (see _split).
            urllib.request.Request(response.url, method=request.method),  # noqa: S310
        )
    return response


class _Body(io.BytesIO):
    """An answer's body, read whole, as ``Response.raw``; ``version`` as urllib3 gives it."""

    def __init__(self, content: bytes, version: int) -> None:
        super().__init__(content)
        self.version = version  # 11 for HTTP/1.1 (OpenTelemetry reads it)


#: The content codings decoded here, as urllib3 decodes them without optional packages.
_DECODED = frozenset({"gzip", "x-gzip", "deflate", "identity"})


def _decoded(content: bytes, coding: str, request: requests.PreparedRequest) -> bytes:
    """``content`` without its gzip or deflate coding, as urllib3 decodes for requests.

    Other codings are left as they came, as urllib3 leaves those it has no
    decoder for (calls that asked for ``br`` or ``zstd`` went to the
    fallback; see :meth:`HTTPClientAdapter.codings_decoded`).
    """
    codings = [part.strip().lower() for part in coding.split(",")]
    if not content or not set(codings) <= _DECODED:
        return content
    try:
        for part in reversed(codings):
            if part in ("gzip", "x-gzip"):
                content = _gunzip(content)
            elif part == "deflate":
                try:
                    content = zlib.decompress(content)
                except zlib.error:  # raw deflate, as some servers send it
                    content = zlib.decompress(content, -zlib.MAX_WBITS)
    except zlib.error as exc:
        raise requests.exceptions.ContentDecodingError(
            f"the answer's {coding} coding could not be decoded", request=request
        ) from exc
    return content


def _gunzip(data: bytes) -> bytes:
    """Every gzip member of ``data``; what follows a member and is not one is ignored.

    As urllib3 does: some servers pad a gzip answer with bytes after it.
    """
    parts = []
    while True:
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            parts.append(decoder.decompress(data))
        except zlib.error:
            if not parts:
                raise  # not gzip at all
            break
        data = decoder.unused_data
        if not data:
            break
    return b"".join(parts)


def _close_idle(pools: dict[tuple[Any, ...], deque[http.client.HTTPConnection]]) -> None:
    for idle in list(pools.values()):
        while idle:
            try:
                idle.pop().close()
            except IndexError:  # another thread took the last one
                break


def _split(url: str) -> _Target | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname
    if parts.scheme not in ("http", "https") or not host or parts.username or parts.password:
        return None
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return _Target(parts.scheme, host, port, path)


def _timeouts(timeout: Any) -> tuple[float | None, float | None] | None:
    """(connect, read) seconds from requests' ``timeout``; ``None`` for other kinds."""
    if _seconds(timeout):
        return timeout, timeout
    if isinstance(timeout, tuple) and len(timeout) == 2 and all(map(_seconds, timeout)):
        return timeout
    return None


def _seconds(value: Any) -> bool:
    """True for a timeout of some seconds, or ``None`` (none).

    Not 0, which would make the socket non-blocking: requests' adapter
    refuses it with a ``ValueError``, so it goes there.
    """
    return value is None or (
        isinstance(value, int | float) and not isinstance(value, bool) and value > 0
    )


def _proxied(proxies: Mapping[str, str]) -> bool:
    """Whether ``proxies`` names a proxy for any scheme or host.

    ``"no"`` (from ``NO_PROXY``) names hosts to reach directly, not a proxy.
    """
    return any(value for key, value in proxies.items() if key not in ("no", "no_proxy"))


def _reusable(idle: deque[http.client.HTTPConnection]) -> http.client.HTTPConnection | None:
    """An idle connection the server has not closed, or ``None``."""
    while idle:
        try:
            connection = idle.pop()
        except IndexError:  # another thread took the last one
            return None
        sock = connection.sock
        # Readable while idle means the server closed it (or sent what it
        # should not have): either way it cannot carry a request.
        if sock is not None and not _readable(sock):
            return connection
        connection.close()
    return None


def _readable(sock: Any) -> bool:
    if _POLL:
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    return bool(select.select([sock], [], [], 0)[0])


_POLL = hasattr(select, "poll")


def _tls_context(verify: str | bool) -> ssl.SSLContext:
    """A TLS context that checks certificates against requests' CA bundle or ``verify``."""
    location = DEFAULT_CA_BUNDLE_PATH if verify is True else str(verify)
    try:
        if os.path.isdir(location):
            return ssl.create_default_context(capath=location)
        return ssl.create_default_context(cafile=location)
    except (OSError, ssl.SSLError) as exc:
        # As requests says it: an unusable CA bundle is the caller's mistake.
        raise OSError(
            f"Could not find a suitable TLS CA certificate bundle, invalid path: {location}"
        ) from exc


def _sending_error(
    exc: BaseException, request: requests.PreparedRequest
) -> requests.RequestException | None:
    """requests' error for ``exc``, raised sending ``request`` or reading its answer.

    ``None`` for what is raised as it is: a header value http.client cannot
    encode (a ``UnicodeError``, found before anything was sent, as from
    requests' own adapter), and what is no network failure.
    """
    if isinstance(exc, TimeoutError):
        return requests.exceptions.ReadTimeout(exc, request=request)
    if isinstance(exc, http.client.IncompleteRead):
        return requests.exceptions.ChunkedEncodingError(exc, request=request)
    if isinstance(exc, ssl.SSLError):
        return requests.exceptions.SSLError(exc, request=request)
    if isinstance(exc, UnicodeError):
        return None
    if isinstance(exc, OSError | http.client.HTTPException):
        return requests.exceptions.ConnectionError(exc, request=request)
    return None


#: requests' own adapter's send, once seen to be requests' own (see _adapter_patched).
_stock_send: list[Any] = []


def _adapter_patched() -> bool:
    """Whether ``HTTPAdapter.send`` is not requests' own now (a test library patched it).

    Told by the function itself, so a patch already in place when this
    module was imported is seen too.
    """
    send = HTTPAdapter.send
    if _stock_send and send is _stock_send[0]:
        return False
    if (
        isinstance(send, types.FunctionType)
        and send.__module__ == "requests.adapters"
        and send.__qualname__ == "HTTPAdapter.send"
        # A wrapper made with functools.wraps copies the names, not the code.
        and not hasattr(send, "__wrapped__")
    ):
        _stock_send[:] = [send]
        return False
    return True


# Every adapter alive, so that a forked child (a gunicorn worker) drops the
# connections it inherited instead of sharing them with its parent.
_ADAPTERS: weakref.WeakSet[HTTPClientAdapter] = weakref.WeakSet()


def _after_fork() -> None:
    # Closing the child's copies sends nothing: the parent still holds each
    # socket (and a TLS socket's close() sends no close_notify).
    for adapter in list(_ADAPTERS):
        adapter.close()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
