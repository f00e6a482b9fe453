"""Sending through our own ``requests.Session`` without redoing constant work per call.

For every call ``Session.request`` rebuilds a ``Request``, merges the
session's headers, cookies, auth, params and hooks into it (several of these
merges go through slow ``typing`` protocol checks), re-parses and re-quotes
the URL, re-reads the environment's proxy settings unless ``trust_env`` is
off, then ``Session.send`` looks the adapter up, runs the hooks, extracts
cookies and checks for redirects. Under gunicorn this came to more than half
a reply's cost (``python -m bench``, scenario 1), yet for the session
:class:`~cel_whatsapp.graph.GraphClient` builds itself nearly all of it gives
the same result on every call.

:class:`QuickSender` prepares each (method, URL) once through
``Session.prepare_request``, and per call copies that prepared request, adds
the JSON body and hands it to the session's adapter with the settings
``Session.request`` would pass (``trust_env`` is off, so they are the
session's own). Cookies a response sets are still stored in the session, and
redirects are still followed through ``Session.resolve_redirects``.

It only runs while the session is in the shape it relies on: nothing that
depends on the call (auth, params, hooks, cookies, ``trust_env``) set; headers
are compared on every call and a change prepares anew. Otherwise
:meth:`QuickSender.send` returns ``None`` and the caller uses
``Session.request``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests
from requests.cookies import extract_cookies_to_jar

__all__ = ["QuickSender"]

_MAX_TEMPLATES = 64  # one per endpoint; media URLs would otherwise pile up


class QuickSender:
    """Sends JSON requests through ``session`` (built by ``GraphClient``) with less per-call work."""

    def __init__(self, session: requests.Session) -> None:
        self.session = session
        self._templates: dict[
            tuple[str, str], tuple[tuple[Any, ...], requests.PreparedRequest]
        ] = {}

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
    ) -> requests.Response | None:
        """Send like ``session.request(method, url, json=json, timeout=timeout)``.

        Returns ``None`` when the session is not in a shape this mirrors.
        Raises what ``Session.request`` raises.
        """
        if not self.usable():
            return None
        session = self.session
        prepared = self._template(method, url).copy()
        prepared.prepare_body(None, None, json)
        settings: dict[str, Any] = {
            "timeout": timeout,
            "verify": session.verify,
            "cert": session.cert,
            "proxies": session.proxies,
            "stream": session.stream,
        }
        response = session.get_adapter(str(prepared.url)).send(prepared, **settings)
        headers = response.headers
        if "set-cookie" in headers or "set-cookie2" in headers:
            extract_cookies_to_jar(session.cookies, prepared, response.raw)  # type: ignore[no-untyped-call,unused-ignore]
        if response.is_redirect:
            # As Session.send does when allow_redirects is on.
            history = list(session.resolve_redirects(response, prepared, **settings))
            if history:
                history.insert(0, response)
                response = history.pop()
                response.history = history
        if not session.stream:
            response.content  # noqa: B018 - read the body now, as Session.send does
        return response

    def _template(self, method: str, url: str) -> requests.PreparedRequest:
        """The request ``Session.prepare_request`` makes for (method, URL) and today's headers."""
        headers = tuple(self.session.headers.items())
        key = (method, url)
        cached = self._templates.get(key)
        if cached is not None and cached[0] == headers:
            return cached[1]
        template = self.session.prepare_request(requests.Request(method, url))
        if len(self._templates) >= _MAX_TEMPLATES:
            self._templates.clear()
        self._templates[key] = (headers, template)
        return template
