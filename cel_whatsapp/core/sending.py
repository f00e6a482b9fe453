"""How the Graph client's calls go out: through ``Session.send``, prepared once per endpoint.

Every call goes through ``Session.send`` of the client's ``requests.Session``,
so whatever the user set on it or around it sees the call: response hooks,
mounted adapters, proxies, certificates, and instrumentation that wraps
``Session.send`` (OpenTelemetry's, for one). Only public requests API is used.

What ``Session.request`` would redo on every call is done once instead:

- the ``PreparedRequest`` of a JSON call, which
  ``Session.prepare_request`` builds by merging the session's headers,
  cookies, auth, params and hooks and parsing the URL, is made once per
  (method, URL), with ``Content-Type: application/json``; each call sends a
  ``.copy()`` of it with its own body: the JSON text and its
  ``Content-Length``, set as ``prepare_body`` sets them for ``json=`` (its
  length and stream checks are for bodies of any kind; this one is bytes).
  The session's headers, hooks and connection settings
  are compared on every call and a change prepares anew; while the session
  holds cookies, auth or params, which may change with every call, each call
  is prepared whole, as ``Session.request`` prepares it.
- the proxies, CA bundle and client certificate, which ``Session.request``
  merges with the environment on every call (when ``trust_env`` is on), are
  worked out once per origin with ``Session.merge_environment_settings`` and
  passed to ``Session.send`` explicitly. Proxy or CA variables changed after
  the first call to an origin therefore need a new client.

What is left is ``Session.send`` itself and the adapter it picks: about
100 us of CPU per call less than ``Session.request`` with requests' own
``HTTPAdapter``, and about 120 us less again with the ``HTTPClientAdapter``
the Graph client's own session mounts (see
:mod:`~cel_whatsapp.core.transport`; ``python -m bench``, scenario 1, and
docs/performance.rst). Cookies an answer sets are added to the session's
jar here, as ``Session.send`` adds those requests' own adapter read.

Redirects are never followed (``allow_redirects=False``): the caller decides
what a 3xx means (see :func:`~cel_whatsapp.core.graph.redirect_error`).
"""

from __future__ import annotations

import json as jsonlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.structures import CaseInsensitiveDict

__all__ = ["SessionSender"]

# JSON endpoints kept prepared: one per business number's /messages, so a
# handful; the cap only guards against a caller posting to many URLs.
_MAX_ROUTES = 64


@dataclass(frozen=True, slots=True)
class _Route:
    """One (method, URL) prepared, and what it was prepared from."""

    state: tuple[Any, ...]  # the session's settings it was prepared under (see _state)
    prepared: requests.PreparedRequest  # body-less, as Session.prepare_request made it
    settings: Mapping[str, Any]  # proxies, verify and cert for Session.send


class SessionSender:
    """Sends requests through ``session.send``, preparing what does not change once.

    ``headers`` go with every request, over the session's own (the bearer
    token, when the session is the user's and may serve other clients).
    """

    def __init__(self, session: requests.Session, headers: Mapping[str, str] | None = None) -> None:
        self.session = session
        self.headers = dict(headers or {})
        self._routes: dict[tuple[str, str], _Route] = {}
        self._settings: dict[tuple[str, tuple[Any, ...]], dict[str, Any]] = {}

    def send(
        self,
        method: str,
        url: str,
        *,
        timeout: Any,
        json: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        stream: bool = False,
        **body: Any,
    ) -> requests.Response:
        """Send like ``session.request(method, url, ...)``, without following redirects.

        ``body`` takes ``data`` and ``files`` as ``requests.Request`` does;
        ``headers`` go over the sender's own. With ``stream=False`` the
        answer's body has been read. Raises what ``Session.send`` raises.
        """
        session = self.session
        state = self._state()
        if json is not None and not body and not headers and self._preparable_once():
            route = self._routes.get((method, url))
            if route is None or route.state != state:
                route = self._new_route(method, url, state)
            prepared = route.prepared.copy()
            # What prepare_body does with json=, for a JSON object: serialized
            # without NaN or Infinity, UTF-8, its length given (Content-Type is
            # in the route's headers).
            try:
                text = jsonlib.dumps(json, allow_nan=False)
            except ValueError as exc:  # NaN or infinity; a TypeError passes, as from requests
                raise requests.exceptions.InvalidJSONError(exc, request=prepared) from exc
            prepared.body = body_bytes = text.encode("utf-8")
            prepared.headers["Content-Length"] = str(len(body_bytes))
            settings = route.settings
        else:
            prepared = session.prepare_request(
                requests.Request(
                    method, url, headers={**self.headers, **(headers or {})}, json=json, **body
                )
            )
            settings = self._settings_for(url, state)
        response = session.send(
            prepared, timeout=timeout, allow_redirects=False, stream=stream, **settings
        )
        if "Set-Cookie" in response.headers:
            # Kept as Session.send keeps those requests' own adapter read
            # (a load balancer's, say); see transport.py.
            session.cookies.update(response.cookies)
        return response

    def _preparable_once(self) -> bool:
        """False while the session holds what may change from call to call."""
        session = self.session
        return session.auth is None and not session.params and not session.cookies

    def _state(self) -> tuple[Any, ...]:
        """The session's settings a prepared request and its send settings come from."""
        session = self.session
        headers = session.headers
        return (
            # Names compared without case, as they are sent: lower_items() is
            # one generator, items() on a CaseInsensitiveDict two calls a header.
            tuple(
                headers.lower_items()
                if isinstance(headers, CaseInsensitiveDict)
                else headers.items()
            ),
            tuple(session.hooks.get("response") or ()),
            session.trust_env,
            tuple(session.proxies.items()),
            session.verify,
            session.cert,
        )

    def _new_route(self, method: str, url: str, state: tuple[Any, ...]) -> _Route:
        prepared = self.session.prepare_request(requests.Request(method, url, headers=self.headers))
        if "Content-Type" not in prepared.headers:  # as prepare_body sets it for json=
            prepared.headers["Content-Type"] = "application/json"
        route = _Route(state, prepared, self._settings_for(url, state))
        if len(self._routes) >= _MAX_ROUTES:
            self._routes.clear()
        self._routes[(method, url)] = route
        return route

    def _settings_for(self, url: str, state: tuple[Any, ...]) -> dict[str, Any]:
        """Proxies, ``verify`` and ``cert`` for ``url``, from the environment once per origin."""
        parts = urlsplit(url)
        key = (f"{parts.scheme}://{parts.netloc}", state[2:])
        settings = self._settings.get(key)
        if settings is None:
            merged = self.session.merge_environment_settings(url, {}, None, None, None)
            settings = {name: merged[name] for name in ("proxies", "verify", "cert")}
            if len(self._settings) >= _MAX_ROUTES:
                self._settings.clear()
            self._settings[key] = settings
        return settings
